#!/usr/bin/env bash
# E2E: D-Bus load (issue #5, "Load"). `kvmnet-bench dbus-load` runs 32
# concurrent clients, each with its own bus connection, against kvmnetd on
# the private bus for about a minute, closed loop: 80 % reads (ListNetworks,
# Describe, GetManagedObjects, properties, ListForwards, Leases, Statistics)
# and 20 % writes (AddForwards/RemoveForward in each client's own port range,
# AddHost/RemoveHost, SetAutostart, and its own NAT network created, started,
# stopped and deleted step by step). Asserts:
#  - no call failed;
#  - the daemon's open file descriptors are the same after as before (its
#    dnsmasq children are separate processes and not counted);
#  - its resident memory is flat: the last sample is within a generous bound
#    of the first one after warm-up (a leak check, not a timing assertion);
#  - the daemon still answers, and its state is what the clients did: the
#    forwards and static hosts match the generator's account (forwards at
#    start + added - removed), and no client network is left.
# No latency thresholds: the numbers go to docs/performance.md.
# LOAD_SECONDS (default 55) and LOAD_CLIENTS (default 32) override the run;
# with LOAD_RESULTS=DIR the report (dbus-load.json), the VmRSS/fd samples and
# dbus-load-meta.json (fds and VmRSS before/after, machine load) are copied to DIR
# once the test has passed, for scripts/bench.sh and bench-report.sh.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

KVMNET_BENCH=${KVMNET_BENCH:-$SRCDIR/build/tests/bench/kvmnet-bench}
[[ -x $KVMNET_BENCH ]] || fail "not built: $KVMNET_BENCH"
LOAD_SECONDS=${LOAD_SECONDS:-55}
LOAD_CLIENTS=${LOAD_CLIENTS:-32}

nat_topology
bus_start
daemon_start

fd_count() { find "/proc/$DAEMON_PID/fd" -mindepth 1 -maxdepth 1 | wc -l; }
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$DAEMON_PID/status"; }
fd_list() { # target of every open fd, for the failure message
    local f
    for f in "/proc/$DAEMON_PID/fd"/*; do echo "${f##*/} -> $(readlink "$f")"; done | sort -n
}

loadavg_start=$(cut -d' ' -f1-3 /proc/loadavg)

log "a running NAT network with DHCP and a /16 subnet"
ctl create load --mode nat --bridge kvmbr0 --ipv4 10.100.0.1/16 --dhcp-range 10.100.200.10-10.100.200.250
ctl start load
wait_state load active

log "warm-up: ${LOAD_CLIENTS} clients for 4 s"
"$KVMNET_BENCH" dbus-load --network load --clients "$LOAD_CLIENTS" --seconds 4 --json "$T/warmup.json" \
    >"$T/warmup.txt" 2>&1 || fail "warm-up load failed: $(cat "$T/warmup.txt")"
fds_before=$(fd_count)
fd_list >"$T/fds.before"
rss_before=$(rss_kb)
log "before: $fds_before fds, VmRSS $rss_before kB"

log "load: ${LOAD_CLIENTS} clients for ${LOAD_SECONDS} s"
"$KVMNET_BENCH" dbus-load --network load --clients "$LOAD_CLIENTS" --seconds "$LOAD_SECONDS" \
    --json "$T/dbus-load.json" >"$T/load.txt" 2>&1 &
load_pid=$!
track_pid "$load_pid"
: >"$T/rss.samples"
load_running() { _pid_alive "$load_pid" && [[ $(awk '{print $3}' "/proc/$load_pid/stat" 2>/dev/null) != Z ]]; }
for ((i = 0; i < LOAD_SECONDS * 2 + 120; i++)); do # 0.5 s steps; samples every 5 s
    load_running || break
    ((i % 10 == 9)) && echo "$(rss_kb) $(fd_count)" >>"$T/rss.samples"
    sleep 0.5
done
load_running && fail "dbus-load still running $((LOAD_SECONDS + 60)) s after it started"
wait "$load_pid" && load_rc=0 || load_rc=$?
cat "$T/load.txt" >&2
log "VmRSS (kB) and fds every 5 s: $(tr '\n' ',' <"$T/rss.samples")"
((load_rc == 0)) || fail "dbus-load exited $load_rc: $(jq -c .errors "$T/dbus-load.json" 2>/dev/null)"

log "no failed calls"
assert_eq "$(jq .failed "$T/dbus-load.json")" 0 "failed calls"
calls=$(jq .calls "$T/dbus-load.json")
writes=$(jq .writes "$T/dbus-load.json")
((calls > 1000 && writes > 100)) || fail "too few calls to call this a load test: $calls calls, $writes writes"
for c in Network.AddForwards Network.RemoveForward Network.AddHost Network.RemoveHost Network.SetAutostart \
    Manager.CreateNetwork Network.Start Network.Stop Manager.DeleteNetwork Network.ListForwards Network.Leases \
    Network.Statistics Get\(State\) Manager.ListNetworks Network.Describe; do
    (($(jq --arg c "$c" '.per_call[$c].calls // 0' "$T/dbus-load.json") > 0)) || fail "no $c call was made"
done

log "the daemon still answers"
assert_eq "$(net_state load)" active "state of the load network"
assert_eq "$(ctl list --json | jq -r '[.[].name] | join(",")')" load "networks left (client networks deleted)"

log "the final state is the clients' account"
expected=$(jq -c '.expected_forwards' "$T/dbus-load.json")
actual=$(ctl forward list load --json | jq -c '[.[].host_port] | sort')
assert_eq "$actual" "$expected" "forwards (host ports) in ListForwards"
count=$(jq '.forwards_at_start + .forwards_added - .forwards_removed' "$T/dbus-load.json")
assert_eq "$(jq length <<<"$actual")" "$count" "forwards: at start + added - removed"
in_kernel=$(in_ns "$H" nft -j list map inet kvmnet fwd4_any |
    jq -c '[.nftables[].map? // empty | .elem[]? | .[0].elem.val.concat[1]] | sort')
assert_eq "$in_kernel" "$expected" "forwards (host ports) in the kernel's map fwd4_any"
assert_eq "$(ctl forward list load --json | jq '[.[] | select(.problem != null)] | length')" 0 \
    "forwards with elements missing from the kernel"
assert_eq "$(ctl show load --json | jq -c '[.config.ipv4.dhcp.hosts[]?.mac] | sort')" \
    "$(jq -c .expected_hosts "$T/dbus-load.json")" "static hosts"
assert_eq "$(jq -c '[.ipv4.dhcp.hosts[]?.mac] | sort' "$T/state/networks/load.json")" \
    "$(jq -c .expected_hosts "$T/dbus-load.json")" "static hosts in the stored document"

log "no leaked file descriptors"
fds_after=$(fd_count)
fd_list >"$T/fds.after"
if ((fds_after != fds_before)); then
    fail "kvmnetd had $fds_before open fds before the load and $fds_after after: $(diff "$T/fds.before" "$T/fds.after" | tr '\n' ' ')"
fi

log "resident memory flat"
rss_after=$(rss_kb)
[[ -s $T/rss.samples ]] || fail "no VmRSS samples during the load (LOAD_SECONDS too short?)"
warm=$(sed -n 1p "$T/rss.samples" | cut -d' ' -f1)
last=$(tail -n1 "$T/rss.samples" | cut -d' ' -f1)
log "VmRSS: $rss_before kB before, $warm kB 5 s into the load, $last kB at its end, $rss_after kB after"
# Generous: 8 MB or a quarter over the first sample, whichever is more (the
# daemon's state is bounded: at most 20 forwards and 4 hosts per client).
bound=$((warm / 4 > 8192 ? warm + warm / 4 : warm + 8192))
((last <= bound)) || fail "kvmnetd VmRSS grew from $warm kB to $last kB during the load (bound $bound kB)"
((rss_after <= bound)) || fail "kvmnetd VmRSS $rss_after kB after the load (bound $bound kB)"

jq -c '{clients, seconds, calls, calls_per_second, failed}' "$T/dbus-load.json" >&2
if [[ -n ${LOAD_RESULTS:-} ]]; then
    mkdir -p "$LOAD_RESULTS"
    cp "$T/dbus-load.json" "$LOAD_RESULTS/dbus-load.json"
    cp "$T/rss.samples" "$LOAD_RESULTS/dbus-load-samples.txt"
    jq -n --argjson fb "$fds_before" --argjson fa "$fds_after" --argjson rb "$rss_before" --argjson rw "$warm" \
        --argjson rl "$last" --argjson ra "$rss_after" --arg l0 "$loadavg_start" \
        --arg l1 "$(cut -d' ' -f1-3 /proc/loadavg)" --argjson cpus "$(nproc)" \
        '{fds_before: $fb, fds_after: $fa, rss_before_kb: $rb, rss_warm_kb: $rw, rss_last_kb: $rl,
          rss_after_kb: $ra, loadavg_start: $l0, loadavg_end: $l1, nproc: $cpus}' >"$LOAD_RESULTS/dbus-load-meta.json"
    log "results in $LOAD_RESULTS"
fi
log "PASS"
