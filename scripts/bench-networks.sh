#!/usr/bin/env bash
# Networks per host (issue 17, item 3): creates and starts NAT networks one
# after another in kvmnetd's own namespace (each with its own dnsmasq, DHCP
# off: DNS only), up to MAX, and at each checkpoint measures
#   - the start of one more network (`kvmnetctl start` wall time, median of
#     SAMPLES starts of an extra network, stopped again untimed, and their
#     spread), and its ratio to the same at 0 networks (target ≤ 1.5);
#   - kvmnetd's VmRSS and open fds; the dnsmasq processes' summed RSS and
#     PSS (so shared pages count once);
#   - Manager.Describe and DescribeBrief (`kvmnetctl list`) wall time;
#   - the repair of a deleted bridge (`ip link del`, until the bridge is
#     back with its address; the daemon's repair delay included);
#   - the rules of the hooked chains and in all of table inet kvmnet.
# The total time of all creates and starts is reported too. When the first
# checkpoint is 0 and there are others, the start at 0 is measured again at
# the end, by a fresh daemon in fresh namespaces (the 1,000 networks' gone):
# the ratio is given against both, so a slow or fast checkpoint at 0 shows.
# The runtime directory is a tmpfs, as /run is under systemd
# (KVMNET_E2E_RUNTIME_TMPFS=0: on the disk, ext4 here, whose journal other
# work on the machine shares). Results go to RESULTS (raw.csv,
# networks.md); the section between the "networks:" markers of
# docs/performance.md is replaced unless --no-doc.
#
# Usage: sudo nice -n 19 scripts/bench-networks.sh [--max N] [--checkpoints "0 100 300 1000"]
#            [--samples N] [--results DIR] [--no-doc] [--profile] [--strace]
# --profile records perf (cpu-clock) of the whole machine and of kvmnetd
# with call graphs over the starts of one more network: RESULTS/perf-*.data.
# --strace traces kvmnetd and its children (strace -f -tt -T) over one more
# start after the timed ones at each checkpoint: RESULTS/strace-N.txt.
# Plot: scripts/bench-networks-plot.sh RESULTS.
# About 4 minutes for 1,000 networks on 2 cores.
set -euo pipefail
# The runtime directory on a tmpfs, as /run is for real (lib.sh's
# KVMNET_E2E_RUNTIME_TMPFS): in a private mount namespace.
if [[ -z ${KVMNET_E2E_MOUNTNS:-} ]] && ((EUID == 0)); then
    KVMNET_E2E_MOUNTNS=1 exec unshare --mount --propagation private bash "$0" "$@"
fi
export KVMNET_E2E_RUNTIME_TMPFS=${KVMNET_E2E_RUNTIME_TMPFS:-1}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
MAX=1000
CHECKPOINTS="0 100 300 1000"
SAMPLES=15
RESULTS=""
WRITE_DOC=1
PROFILE=0
STRACE=0
while (($# > 0)); do
    case $1 in
    --max)
        MAX=${2:?--max needs a number}
        shift
        ;;
    --checkpoints)
        CHECKPOINTS=${2:?--checkpoints needs a list}
        shift
        ;;
    --samples)
        SAMPLES=${2:?--samples needs a number}
        shift
        ;;
    --results)
        RESULTS=${2:?--results needs a directory}
        shift
        ;;
    --no-doc) WRITE_DOC=0 ;;
    --profile) PROFILE=1 ;;
    --strace) STRACE=1 ;;
    -h | --help)
        sed -n '2,34p' "$0" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "bench-networks.sh: unknown option '$1' (see --help)" >&2
        exit 2
        ;;
    esac
    shift
done
if ((EUID != 0)); then
    echo "bench-networks.sh: needs root (it creates network namespaces)" >&2
    exit 1
fi
for c in $CHECKPOINTS; do
    ((c <= MAX)) || {
        echo "bench-networks.sh: checkpoint $c is past --max $MAX" >&2
        exit 2
    }
done

RESULTS=${RESULTS:-$ROOT/bench-results/networks-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$RESULTS"
RESULTS=$(cd "$RESULTS" && pwd)
[[ -f build/build.ninja ]] || meson setup build
ninja -C build -j2 daemon/kvmnetd client/kvmnetctl >/dev/null
COMMIT=$(git -C "$ROOT" rev-parse --short HEAD)
if [[ -n $(git -C "$ROOT" status --porcelain -- daemon) ]]; then COMMIT="$COMMIT+changes"; fi

export SRCDIR=$ROOT KVMNETCTL=$ROOT/build/client/kvmnetctl KVMNETD=$ROOT/build/daemon/kvmnetd
KVMNET_LIB_MODE=demo
# shellcheck source=../tests/e2e/lib.sh
source "$ROOT/tests/e2e/lib.sh"
PFX=kvmn$$-
nat_topology
bus_start
# Many dnsmasq and a big table: room for the daemon's fds.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
daemon_start --log-level info

RAW=$RESULTS/raw.csv
echo "figure,n,unit,value" >"$RAW"
cut -d' ' -f1-3 /proc/loadavg >"$RESULTS/load-start.txt"
now_ms() { date +%s%3N; }
ns_time() { date +%s%N; }
ms_since() { awk -v a="$1" -v b="$(ns_time)" 'BEGIN { printf "%.2f", (b - a) / 1e6 }'; }
record() { echo "$1,$2,$3,$4" >>"$RAW"; }

# Network i: bridge kvn<i>, subnet 10.<100 + i/250>.<i%250>.0/24.
subnet_of() { echo "10.$((100 + $1 / 250)).$(($1 % 250))"; }
create_net() {
    local s
    s=$(subnet_of "$1")
    ctl create "n$1" --mode nat --bridge "kvn$1" --ipv4 "$s.1/24" >/dev/null
}

dnsmasq_mem() { # prints "RSS_kB PSS_kB COUNT" of the daemon's dnsmasq processes
    local rss=0 pss=0 count=0 f pid
    for f in "$T"/run/*/dnsmasq.pid; do
        [[ -e $f ]] || continue
        pid=$(tr -d ' \n' <"$f")
        [[ -r /proc/$pid/smaps_rollup ]] || continue
        rss=$((rss + $(awk '/^Rss:/ { print $2 }' "/proc/$pid/smaps_rollup")))
        pss=$((pss + $(awk '/^Pss:/ { print $2 }' "/proc/$pid/smaps_rollup")))
        count=$((count + 1))
    done
    echo "$rss $pss $count"
}

bridge_back() { # BRIDGE ADDRESS: the bridge exists again with its address
    ip -n "$H" -4 -o addr show dev "$1" 2>/dev/null | grep -q " $2/"
}
# Polls every 5 ms for up to 10 s: lib.sh's retry sleeps 200 ms between
# looks, which measured a repair of ~20 ms as ~260 ms.
wait_bridge_back() {
    local i
    for ((i = 0; i < 2000; i++)); do
        bridge_back "$@" && return 0
        sleep 0.005
    done
    return 1
}

# One more start (untimed) under strace -f of kvmnetd and what it spawns:
# every system call with its time, to tell the phases of a start apart.
strace_one_start() {
    local n=$1 strace_pid i
    strace -f -tt -T -o "$RESULTS/strace-$n.txt" -p "$DAEMON_PID" 2>/dev/null &
    strace_pid=$!
    for ((i = 0; i < 50; i++)); do
        [[ $(awk '/^TracerPid:/ { print $2 }' "/proc/$DAEMON_PID/status") == 0 ]] || break
        sleep 0.1
    done
    sleep 0.5
    date +%T.%6N >"$RESULTS/strace-$n.begin"
    ctl start extra >/dev/null
    date +%T.%6N >"$RESULTS/strace-$n.end"
    sleep 0.5
    kill -INT "$strace_pid"
    wait "$strace_pid" || true
    ctl stop extra >/dev/null
}

# The starts of one more network only, as figure FIGURE at N. Each start
# begins SETTLE_S after the previous stop returned, so that it does not
# also measure the tail of that stop (the notifications of the bridge's
# deletion, which the daemon handles after its reply).
SETTLE_S=0.1
time_starts() {
    local figure=$1 n=$2 i t0
    for ((i = 0; i < SAMPLES; i++)); do
        sleep "$SETTLE_S"
        t0=$(ns_time)
        ctl start extra >/dev/null
        record "$figure" "$n" ms "$(ms_since "$t0")"
        ctl stop extra >/dev/null
    done
}

checkpoint() {
    local n=$1 i t0 mem
    echo "bench-networks.sh: checkpoint at $n networks" >&2
    # One more network, started and stopped SAMPLES times.
    local perf_pid="" perf_daemon_pid=""
    if ((PROFILE)); then
        perf record -q -a -e cpu-clock -o "$RESULTS/perf-$n.data" >/dev/null 2>&1 &
        perf_pid=$!
        perf record -q -p "$DAEMON_PID" --call-graph dwarf,16384 -e cpu-clock -o "$RESULTS/perf-daemon-$n.data" \
            >/dev/null 2>&1 &
        perf_daemon_pid=$!
        sleep 1
    fi
    if [[ -n $perf_pid ]]; then
        for ((i = 0; i < SAMPLES; i++)); do
            t0=$(ns_time)
            ctl start extra >/dev/null
            record start_one_more "$n" ms "$(ms_since "$t0")"
            sleep 1 # lets the other dnsmasq settle inside the profile
            ctl stop extra >/dev/null
        done
    else
        time_starts start_one_more "$n"
    fi
    if [[ -n $perf_pid ]]; then
        kill -INT "$perf_pid" "$perf_daemon_pid"
        wait "$perf_pid" "$perf_daemon_pid" || true
    fi
    ((STRACE == 0)) || strace_one_start "$n"
    for ((i = 0; i < 3; i++)); do
        t0=$(ns_time)
        dbus-send --system --print-reply --dest=org.kvmnet1 /org/kvmnet1 org.kvmnet1.Manager.Describe >/dev/null
        record describe "$n" ms "$(ms_since "$t0")"
        t0=$(ns_time)
        ctl list >/dev/null
        record list "$n" ms "$(ms_since "$t0")"
    done
    record daemon_rss "$n" kB "$(awk '/^VmRSS:/ { print $2 }' "/proc/$DAEMON_PID/status")"
    record daemon_fds "$n" count "$(find "/proc/$DAEMON_PID/fd" -mindepth 1 -maxdepth 1 | wc -l)"
    read -r rss pss count < <(dnsmasq_mem)
    record dnsmasq_rss "$n" kB "$rss"
    record dnsmasq_pss "$n" kB "$pss"
    record dnsmasq_count "$n" count "$count"
    local listing
    listing=$(in_ns "$H" nft -a list table inet kvmnet 2>/dev/null || true) # none at 0
    record rules_total "$n" count "$(grep -c '# handle' <<<"$listing" || true)"
    record rules_hooked "$n" count "$(awk '/^\tchain / { hooked = 0 } /type .* hook / { hooked = 1 }
        hooked && /# handle/ && !/^\tchain/ { c++ } END { print c + 0 }' <<<"$listing")"
    # Repair of a deleted bridge at n networks (network n1, or extra at 0).
    local victim=extra bridge=kvnx address=10.99.0.1
    if ((n > 0)); then
        victim=n1 bridge=kvn1 address=$(subnet_of 1).1
    else
        ctl start extra >/dev/null
    fi
    for ((i = 0; i < 3; i++)); do
        t0=$(ns_time)
        ip -n "$H" link del "$bridge"
        wait_bridge_back "$bridge" "$address" || fail "bridge $bridge was not repaired"
        record repair_bridge "$n" ms "$(ms_since "$t0")"
        sleep 1 # the repair budget is per minute; keep well inside it
    done
    ((n > 0)) || ctl stop extra >/dev/null
}

ctl create extra --mode nat --bridge kvnx --ipv4 10.99.0.1/24 >/dev/null
started=0
total_t0=$(ns_time)
total_ms=0
for target in $CHECKPOINTS; do
    seg_t0=$(ns_time)
    while ((started < target)); do
        started=$((started + 1))
        t0=$(ns_time)
        create_net "$started"
        ctl start "n$started" >/dev/null
        record start_nth "$started" ms "$(ms_since "$t0")"
    done
    total_ms=$(awk -v a="$total_ms" -v b="$(ms_since "$seg_t0")" 'BEGIN { printf "%.0f", a + b }')
    checkpoint "$target"
done
record create_start_all "$MAX" ms "$total_ms"
# The daemon's log (with KVMNET_LOOP_TRACE=MS set: the slow turns of the
# loop and their pieces) outlives the test directory.
cp "$T/kvmnetd.log" "$RESULTS/kvmnetd.log" 2>/dev/null || true
echo "bench-networks.sh: stopping $started networks" >&2
t0=$(ns_time)
daemon_stop
record daemon_stop_all "$MAX" ms "$(ms_since "$t0")"
unset total_t0

# The start at 0 once more, after the run: the networks' dnsmasq stopped
# by PID, the namespaces (and with them every bridge) deleted and made
# afresh, a new daemon with empty state and runtime directories.
FIRST=$(echo "$CHECKPOINTS" | awk '{ print $1 }')
AGAIN=0
if [[ $FIRST == 0 && $(echo "$CHECKPOINTS" | wc -w) -gt 1 ]]; then
    AGAIN=1
    echo "bench-networks.sh: the start at 0 again, by a fresh daemon" >&2
    pids=()
    for f in "$T"/run/*/dnsmasq.pid; do
        [[ -f $f ]] || continue
        pid=$(tr -d ' \n' <"$f")
        [[ $pid =~ ^[0-9]+$ && $(proc_cmdline "$pid") == *dnsmasq* ]] && pids+=("$pid")
    done
    ((${#pids[@]} == 0)) || kill -TERM "${pids[@]}" 2>/dev/null || true
    for ((i = 0; i < 300; i++)); do
        [[ -z $(command ip netns pids "$H") ]] && break
        sleep 0.1
    done
    [[ -z $(command ip netns pids "$H") ]] || fail "processes left in $H: $(command ip netns pids "$H" | head -5)"
    for ns in "${NAMESPACES[@]}"; do command ip netns del "$ns"; done
    NAMESPACES=()
    nat_topology
    runtime_reset
    rm -rf "$T/state"
    mkdir -p "$T/state"
    daemon_start --log-level info
    ctl create extra --mode nat --bridge kvnx --ipv4 10.99.0.1/24 >/dev/null
    time_starts start_one_more_again 0
    daemon_stop
    cp "$T/kvmnetd.log" "$RESULTS/kvmnetd.log" 2>/dev/null || true
fi
cut -d' ' -f1-3 /proc/loadavg >"$RESULTS/load-end.txt"

# ---------------------------------------------------------------- report
median() { # FIGURE N
    awk -F, -v f="$1" -v n="$2" '$1 == f && $2 == n { v[++c] = $4 } END {
        if (c == 0) { print "-"; exit }
        for (i = 1; i <= c; i++) for (j = i + 1; j <= c; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
        m = (c % 2) ? v[(c + 1) / 2] : (v[c / 2] + v[c / 2 + 1]) / 2; printf "%.1f", m }' "$RAW"
}
spread() { # FIGURE N: "min–max"
    awk -F, -v f="$1" -v n="$2" '$1 == f && $2 == n { if (c++ == 0 || $4 < lo) lo = $4; if (c == 1 || $4 > hi) hi = $4 }
        END { if (c == 0) print "-"; else printf "%.1f–%.1f", lo, hi }' "$RAW"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "×%.2f", a / b; else print "-" }'; }
value() { awk -F, -v f="$1" -v n="$2" '$1 == f && $2 == n { print $4; exit }' "$RAW"; }
mb() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
first=$(echo "$CHECKPOINTS" | awk '{ print $1 }')
base=$(median start_one_more "$first")
again=$(median start_one_more_again 0)
{
    echo "<!-- networks: rendered by scripts/bench-networks.sh; it replaces this section -->"
    echo "## 9. Networks per host (issue 17)"
    echo
    echo "Measured by \`scripts/bench-networks.sh\` on $(date -u +%Y-%m-%d), commit $COMMIT, on $(nproc) shared"
    echo "cores (load average $(cat "$RESULTS/load-start.txt") at the start, $(cat "$RESULTS/load-end.txt") at the end)."
    echo "NAT networks are created and started one after another in kvmnetd's namespace, each"
    echo "with its own bridge and dnsmasq (DNS only: no DHCP range), up to $MAX. At each"
    echo "checkpoint: one more network started $SAMPLES times (\`kvmnetctl start\`: bridge, nftables"
    echo "commit, dnsmasq ready; stopped again untimed, the next start ${SETTLE_S} s after the stop), reads, memory, and 3 repairs of an"
    echo "\`ip link del\`eted bridge (until its address is back, looked at every 5 ms; the daemon"
    echo "syncs 5 ms after the first notification). Target: start at 1,000 ÷ at 0 ≤ 1.5."
    if ((AGAIN)); then
        echo "The start at 0 is measured twice: first, and again at the end by a fresh daemon in fresh"
        echo "namespaces (row \"0, again\"); the ratio is given against each (first / again)."
    fi
    if [[ $KVMNET_E2E_RUNTIME_TMPFS == 1 ]]; then
        echo "kvmnetd's runtime directory is a tmpfs, as \`/run/kvmnet\` is under systemd."
    else
        echo "kvmnetd's runtime directory is on the machine's disk, not a tmpfs as \`/run\` is."
    fi
    echo
    echo "| Networks | start one more, median ms (min–max) | ÷ at $first$( ((AGAIN)) && echo " (first / again)") | \`Describe\` ms | \`kvmnetctl list\` ms | bridge repair ms | kvmnetd RSS MB | kvmnetd fds | dnsmasq: processes, RSS MB (PSS MB) | rules: hooked chains / whole table |"
    echo "|---|---|---|---|---|---|---|---|---|---|"
    for n in $CHECKPOINTS; do
        one=$(median start_one_more "$n")
        r=$(ratio "$one" "$base")
        ((AGAIN == 0)) || r="$r / $(ratio "$one" "$again")"
        echo "| $n | $one ($(spread start_one_more "$n")) | $r | $(median describe "$n") | $(median list "$n") | $(median repair_bridge "$n") |" \
            "$(mb "$(value daemon_rss "$n")") | $(value daemon_fds "$n") |" \
            "$(value dnsmasq_count "$n"), $(mb "$(value dnsmasq_rss "$n")") ($(mb "$(value dnsmasq_pss "$n")")) |" \
            "$(value rules_hooked "$n") / $(value rules_total "$n") |"
    done
    if ((AGAIN)); then
        echo "| 0, again | $again ($(spread start_one_more_again 0)) | $(ratio "$again" "$base") / ×1.00 | | | | | | | |"
    fi
    echo
    echo "Creating and starting all $MAX networks took $(awk -v m="$total_ms" 'BEGIN { printf "%.1f", m / 1000 }') s"
    echo "(median start of the n-th network: $(median start_nth 1) ms for the first, $(median start_nth "$MAX") ms for the last);"
    echo "stopping the daemon with all of them running took $(awk -v m="$(value daemon_stop_all "$MAX")" 'BEGIN { printf "%.1f", m / 1000 }') s."
    echo
    echo "<!-- /networks -->"
} >"$RESULTS/networks.md"
if ((WRITE_DOC)); then
    python3 "$ROOT/scripts/doc-section.py" networks "$ROOT/docs/performance.md" "$RESULTS/networks.md"
fi
cat "$RESULTS/networks.md"
echo "bench-networks.sh: results in $RESULTS" >&2
