#!/usr/bin/env bash
# What one D-Bus call costs in CPU time, a figure that does not depend on how
# busy the machine is (issue 12, item 4): the load test's clients
# (`kvmnet-bench dbus-load`) against kvmnetd on a private bus, and for each
# phase the CPU time (user + system) that kvmnetd, its loop thread,
# dbus-daemon and the clients used, divided by the calls served. The loop
# is one thread: with every client waiting on it, its CPU per call is what
# bounds the calls per second (1 / loop ms per call on one free CPU).
# Phases: "mix" (80 % reads, 20 % writes, as test_load.sh), "writes" (the
# write mix alone) and one per read kind (--read).
#
# Usage: sudo nice -n 19 scripts/loop-cpu.sh [--daemon PATH] [--bench PATH]
#            [--seconds S] [--clients N] [--phases mix,writes,GetAll,...]
#            [--perf DIR] [--perf-clients DIR]
# --bench PATH: the load generator (default this tree's kvmnet-bench), e.g.
# an older build, to compare what the clients cost.
# --perf DIR: `perf record -g` on kvmnetd during each phase (DIR/PHASE.data).
# --perf-clients DIR: the same on the clients (DIR/PHASE-clients.data);
# perf's own CPU then counts in clients_ms.
# Prints one CSV line per phase: phase,calls,calls_per_second,daemon_ms,
# loop_ms,bus_ms,clients_ms (ms of CPU per call) on stdout.
set -euo pipefail
# The runtime directory on a tmpfs, as /run is for real (lib.sh's
# KVMNET_E2E_RUNTIME_TMPFS): in a private mount namespace.
if [[ -z ${KVMNET_E2E_MOUNTNS:-} ]] && ((EUID == 0)); then
    KVMNET_E2E_MOUNTNS=1 exec unshare --mount --propagation private bash "$0" "$@"
fi
export KVMNET_E2E_RUNTIME_TMPFS=${KVMNET_E2E_RUNTIME_TMPFS:-1}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DAEMON=$ROOT/build/daemon/kvmnetd
SECONDS_PER_PHASE=10
CLIENTS=32
PHASES=mix,writes,GetAll,Network.Describe,Manager.Describe,GetManagedObjects,Network.ListForwards,Network.Leases,Network.Statistics
PERF_DIR=""
PERF_CLIENTS_DIR=""
BENCH=$ROOT/build/tests/bench/kvmnet-bench
while (($# > 0)); do
    case $1 in
    --daemon) DAEMON=${2:?} && shift ;;
    --seconds) SECONDS_PER_PHASE=${2:?} && shift ;;
    --clients) CLIENTS=${2:?} && shift ;;
    --phases) PHASES=${2:?} && shift ;;
    --bench) BENCH=${2:?} && shift ;;
    --perf) PERF_DIR=${2:?} && shift ;;
    --perf-clients) PERF_CLIENTS_DIR=${2:?} && shift ;;
    -h | --help)
        sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "loop-cpu.sh: unknown option '$1' (see --help)" >&2
        exit 2
        ;;
    esac
    shift
done
((EUID == 0)) || {
    echo "loop-cpu.sh: needs root (it creates network namespaces)" >&2
    exit 1
}
[[ -x $BENCH && -x $DAEMON ]] || {
    echo "loop-cpu.sh: build $BENCH and $DAEMON first" >&2
    exit 1
}
[[ -z $PERF_DIR ]] || mkdir -p "$PERF_DIR"
[[ -z $PERF_CLIENTS_DIR ]] || mkdir -p "$PERF_CLIENTS_DIR"

export SRCDIR=$ROOT KVMNETCTL=$ROOT/build/client/kvmnetctl KVMNETD=$DAEMON
KVMNET_LIB_MODE=demo
# shellcheck source=../tests/e2e/lib.sh
source "$ROOT/tests/e2e/lib.sh"
PFX=kvmc$$-
nat_topology
bus_start
daemon_start --log-level info
ctl create load --mode nat --bridge kvmbr0 --ipv4 10.100.0.1/16 --dhcp-range 10.100.200.10-10.100.200.250 >/dev/null
ctl start load >/dev/null
wait_state load active

TICK=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; } # utime + stime of the whole process
loop_ns() { awk '{print $1}' "/proc/$DAEMON_PID/task/$DAEMON_PID/schedstat"; } # the main (loop) thread
ms_per() { awk -v a="$1" -v n="$2" 'BEGIN { printf "%.3f", (n > 0 ? a / n : 0) }'; }

"$BENCH" dbus-load --network load --clients "$CLIENTS" --seconds 3 --json "$T/warmup.json" >/dev/null 2>&1 ||
    fail "warm-up failed"
echo "phase,calls,calls_per_second,daemon_ms,loop_ms,bus_ms,clients_ms,loadavg"
IFS=, read -r -a phase_list <<<"$PHASES"
for phase in "${phase_list[@]}"; do
    args=(--read-percent 80)
    case $phase in
    mix) ;;
    writes) args=(--read-percent 0) ;;
    *) args=(--read-percent 100 --read "$phase") ;;
    esac
    d0=$(cpu_ticks "$DAEMON_PID") l0=$(loop_ns) b0=$(cpu_ticks "$BUS_PID")
    perf_pid=""
    if [[ -n $PERF_DIR ]]; then
        perf record -g -q -o "$PERF_DIR/$phase.data" -p "$DAEMON_PID" 2>/dev/null &
        perf_pid=$!
        track_pid "$perf_pid"
    fi
    clients_perf=()
    [[ -z $PERF_CLIENTS_DIR ]] || clients_perf=(perf record -g -q -o "$PERF_CLIENTS_DIR/$phase-clients.data" --)
    # The clients' CPU: the children's times of the shell that waited for them.
    client_ticks=$(bash -c '"$@" >/dev/null 2>&1 || exit 1; awk "{print \$16 + \$17}" /proc/$$/stat' _ \
        "${clients_perf[@]}" "$BENCH" dbus-load --network load --clients "$CLIENTS" --seconds "$SECONDS_PER_PHASE" \
        "${args[@]}" --json "$T/$phase.json") || fail "phase $phase: dbus-load failed: $(jq -c .errors "$T/$phase.json")"
    d1=$(cpu_ticks "$DAEMON_PID") l1=$(loop_ns) b1=$(cpu_ticks "$BUS_PID")
    if [[ -n $perf_pid ]]; then
        kill -INT "$perf_pid"
        wait "$perf_pid" || true
    fi
    calls=$(jq .calls "$T/$phase.json")
    echo "$phase,$calls,$(jq -r '.calls_per_second | floor' "$T/$phase.json")," \
        "$(ms_per "$(((d1 - d0) * 1000 / TICK))" "$calls"),$(ms_per "$(((l1 - l0) / 1000000))" "$calls")," \
        "$(ms_per "$(((b1 - b0) * 1000 / TICK))" "$calls"),$(ms_per "$((client_ticks * 1000 / TICK))" "$calls")," \
        "$(cut -d' ' -f1 /proc/loadavg)" | tr -d ' '
done
ctl delete load >/dev/null
daemon_stop
