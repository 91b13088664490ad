#!/usr/bin/env bash
# E2E (issue 11, item 5): an unprivileged user's reads cannot starve the
# daemon. A running NAT network holds 100,000 forwards; nobody keeps ten
# calls queued (five loops calling Statistics, five calling ListForwards,
# back to back). Meanwhile:
#   - root's `kvmnetctl list` is answered (kvmnetctl's 25 s call timeout);
#   - a bridge deleted by someone else is recreated by self-healing.
# Before the fix each of those reads dumped every forward's counters from
# the kernel and built the whole JSON (3.7 s and 5 s per call at 100k), so
# ten queued calls held the loop for ~40 s: `list` timed out and the repair
# waited for the queue. Now reads share one counter dump (refreshed at most
# every 4-20x its own duration), Statistics sums it once per dump and
# ListForwards stops at the reply limit. How long `list` and the repair took
# is printed, not asserted (no timing assertions; kvmnet-bench daemon-reads
# measures the reads).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

command -v setpriv >/dev/null || skip "setpriv (util-linux) is needed to run a command as another user"

nat_topology
bus_start
daemon_start

NOBODY=65534
NET=/org/kvmnet1/network/load

ctl create load --mode nat --bridge kvmbr5 --ipv4 10.49.0.1/24
ctl start load
wait_state load active

# 100,000 forwards: tcp and udp host ports 1..50,000, in batches of 25,000.
FORWARDS=100000
BATCH=25000
started=$(date +%s.%N)
for ((first = 0; first < FORWARDS; first += BATCH)); do
    awk -v first=$first -v n=$BATCH -v half=$((FORWARDS / 2)) 'BEGIN {
        printf "["
        for (i = first; i < first + n; i++) {
            proto = i < half ? "tcp" : "udp"; port = i % half + 1
            printf "%s{\"proto\":\"%s\",\"host_port\":%d,\"guest\":\"10.49.0.5\",\"guest_port\":%d}",
                (i > first ? "," : ""), proto, port, port
        }
        printf "]"
    }' >"$T/batch.json"
    ctl forward add load --file "$T/batch.json" >/dev/null
done
log "added $FORWARDS forwards to the running network in $(echo "$(date +%s.%N) - $started" | bc) s"

# reader METHOD: as nobody, call METHOD back to back until stopped; on
# SIGTERM the pending dbus-send is stopped too.
reader() {
    # shellcheck disable=SC2016 # expanded by the inner bash
    setpriv --reuid=$NOBODY --regid=$NOBODY --clear-groups bash -c '
        trap "kill \$c 2>/dev/null; exit 0" TERM
        while :; do
            dbus-send --system --print-reply --reply-timeout=300000 --dest=org.kvmnet1 "$1" "$2" >/dev/null 2>&1 &
            c=$!
            wait $c || true
        done' reader "$NET" "org.kvmnet1.Network.$1" &
    track_pid $!
    READERS+=($!)
}
READERS=()
for ((i = 0; i < 5; i++)); do
    reader Statistics
    reader ListForwards
done
sleep 3 # let the readers fill the queue

t0=$(date +%s.%N)
out=$(ctl list 2>&1) || fail "root's kvmnetctl list failed while nobody's reads were queued: $out"
assert_contains "$out" "load" "kvmnetctl list"
log "root's kvmnetctl list answered in $(echo "$(date +%s.%N) - $t0" | bc) s with ten reads queued"

t0=$(date +%s.%N)
ip -n "$H" link del kvmbr5
_bridge_back() { [[ $(ip -n "$H" -j link show kvmbr5 2>/dev/null | jq -r '.[0].ifalias') == kvmnet:load ]]; }
retry 300 _bridge_back || fail "the deleted bridge was not recreated within 60 s while nobody's reads were queued"
log "deleted bridge recreated after $(echo "$(date +%s.%N) - $t0" | bc) s with ten reads queued"

_pid_alive "$DAEMON_PID" || fail "kvmnetd exited"
for pid in "${READERS[@]}"; do stop_pid "$pid"; done
wait_state load active
# The readers got answers, not only the test's own calls.
stats=$(ctl stats load --json)
assert_eq "$(jq -r .forwards.count <<<"$stats")" "$FORWARDS" "Statistics: forward count"

daemon_stop
assert_eq "$DAEMON_EXIT" 0 "kvmnetd exit status"
log "PASS"
