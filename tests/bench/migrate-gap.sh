#!/usr/bin/env bash
# Benchmark (not a test: it asserts no times), issue 15 "Measured": the
# longest gap between ping replies while a real QEMU guest (TCG) is
# live-migrated between two hosts of an overlay network, for static peers
# and for EVPN (FRR in every host namespace; skipped with the reason when
# FRR is not installed). The set-up is test_overlay_migrate's
# (tests/e2e/lib-migrate.sh): three host namespaces, the guest on host 1,
# a watcher on host 3 pinging it every MIG_INTERVAL_MS (20), QEMU's own
# migration over QMP. The guest moves host 1 -> 2 -> 1 -> ... RUNS times
# per mode (default 5); p50 and max of the gap, the lost pings and QEMU's
# own downtime are printed with the load average at each run.
# Usage: bash tests/bench/migrate-gap.sh [RUNS]   (KVMNETD, KVMNETCTL as for
# the e2e tests). About 2 minutes here.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../e2e/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/../e2e/guest/guest.sh"
source "$(dirname "${BASH_SOURCE[0]}")/../e2e/lib-frr.sh"
source "$(dirname "${BASH_SOURCE[0]}")/../e2e/lib-migrate.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib-recovery.sh"
RUNS=${1:-5}
MODES=${MIG_MODES:-static evpn} # a subset, e.g. MIG_MODES=evpn

guest_prepare
EVPN=1
frr_available || EVPN=0
hosts_topology 3
for k in 1 2 3; do
    if ((EVPN)); then
        host_daemon_start "$k" --frr-vty-socket "$T/h$k/frr"
    else
        host_daemon_start "$k"
    fi
done

# bench MODE: RUNS migrations back and forth; one summary line.
bench() {
    local mode=$1 i from=1 to=2 loads=()
    mig_network "$mode"
    mig_boot 1
    : >"$T/gap.$mode"
    : >"$T/lost.$mode"
    : >"$T/down.$mode"
    for ((i = 1; i <= RUNS; i++)); do
        loads+=("$(cut -d' ' -f1 /proc/loadavg)")
        mig_measure "$from" "$to"
        echo "${MIG_GAP_MS%.*}" >>"$T/gap.$mode"
        echo "$MIG_LOST" >>"$T/lost.$mode"
        echo "$MIG_DOWNTIME_MS" >>"$T/down.$mode"
        echo "$mode run $i: host $from -> $to: longest gap ${MIG_GAP_MS} ms, lost $MIG_LOST of $MIG_SENT," \
            "QEMU downtime ${MIG_DOWNTIME_MS} ms, total ${MIG_TOTAL_MS} ms, load ${loads[-1]}"
        local t=$from
        from=$to
        to=$t
    done
    SUMMARY+=("$mode: gap $(stats <"$T/gap.$mode"); lost $(sort -n "$T/lost.$mode" | paste -sd' ') pings at ${MIG_INTERVAL_MS} ms; QEMU downtime $(stats <"$T/down.$mode"); load ${loads[*]}")
    mig_stop
}

SUMMARY=()
[[ " $MODES " != *" static "* ]] || bench static
if [[ " $MODES " != *" evpn "* ]]; then
    :
elif ((EVPN)); then
    # FRR as installed: back and forth RUNS times stays below the
    # duplicate-address threshold kvmnet puts into FRR (20 moves in 180 s).
    for k in 1 2 3; do frr_start "$k"; done
    bench evpn
    for k in 3 2 1; do frr_stop "$k"; done
else
    SUMMARY+=("evpn: skipped, FRR is not installed (scripts/deps-overlay.sh)")
fi
echo "----- live migration, longest gap between replies (pings every ${MIG_INTERVAL_MS} ms), $RUNS runs per mode"
printf '%s\n' "${SUMMARY[@]}"
