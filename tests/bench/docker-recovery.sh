#!/usr/bin/env bash
# Benchmark (not a test: it asserts no times), issue 14 "Measured": a real
# dockerd (Debian docker.io 20.10, confined as in test_coexist_docker,
# tests/e2e/lib-docker.sh) restarted beside a running NAT network, RUNS
# times (default 10) each way:
#  1. plain restart (dockerd stopped by its PID and started again): Docker
#     keeps DOCKER-USER and kvmnet's rules in it, and leaves FORWARD's
#     policy alone while forwarding is on;
#  2. start over a filter table emptied while dockerd was down, with
#     FORWARD policy DROP (a boot-time `iptables-restore` of a saved
#     ruleset): guests are cut off until Docker creates DOCKER-USER afresh
#     and kvmnetd puts its rules into it.
# From dockerd's spawn, a guest's new TCP connection to the "internet"
# namespace is tried every 10 ms (each try a socat started in the
# namespace, 100 ms connect timeout, 1 s for the reply) until dockerd's API listens and a
# connection after that works. Measured: from dockerd ready (its log says
# "API listen on", read at each try) to the first connection that works
# after it (0 when the try right after already worked), and dockerd's own
# start (spawn to ready) for scale, and in how many runs a try failed
# between the spawn and that connection (guests cut off for a while).
# Usage: bash tests/bench/docker-recovery.sh [RUNS]   (KVMNETD, KVMNETCTL
# as for the e2e tests). About 60 s here for 10 runs.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../e2e/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/../e2e/lib-docker.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib-recovery.sh"
RUNS=${1:-10}

nat_topology
bus_start
dockerd_start
recovery_network
recovery_guest "Docker's FORWARD drop"

connects() { [[ $(in_ns "$G1" socat -T 1 - TCP:203.0.113.2:9000,connect-timeout=0.1 </dev/null 2>/dev/null) == ok ]]; }
# restart_and_measure FILE-PREFIX [emptied]
restart_and_measure() {
    local out=$1 how=${2:-} t0 ready='' now failed=0
    dockerd_stop
    if [[ $how == emptied ]]; then
        in_ns "$H" iptables-nft -F
        in_ns "$H" iptables-nft -X
        in_ns "$H" iptables-nft -P FORWARD DROP
        wait_state default degraded 50
    fi
    t0=$(now_ms)
    dockerd_spawn
    while :; do
        now=$(now_ms)
        ((now - t0 < 30000)) || fail "no connection 30 s after dockerd's spawn"
        if [[ -z $ready ]] && dockerd_ready; then ready=$now; fi
        if connects; then
            if [[ -n $ready ]]; then
                echo $(($(now_ms) - ready)) >>"$T/$out.after-ready"
                echo $((ready - t0)) >>"$T/$out.start"
                echo "$failed" >>"$T/$out.failed"
                break
            fi
        else
            failed=1
        fi
        sleep 0.01
    done
    dockerd_wait
    wait_state default active
}
for ((run = 0; run < RUNS; run++)); do
    restart_and_measure plain
    restart_and_measure emptied emptied
done

echo "dockerd restart recovery (load $(cut -d' ' -f1-3 /proc/loadavg))"
echo "plain restart:   dockerd ready -> guest's new connection works: $(stats <"$T/plain.after-ready")"
echo "                 dockerd spawn -> ready:                         $(stats <"$T/plain.start")"
echo "                 runs with a failed try: $(awk '{ s += $1 } END { print s }' "$T/plain.failed") of $RUNS"
echo "emptied table:   dockerd ready -> guest's new connection works: $(stats <"$T/emptied.after-ready")"
echo "                 dockerd spawn -> ready:                         $(stats <"$T/emptied.start")"
echo "                 runs with a failed try: $(awk '{ s += $1 } END { print s }' "$T/emptied.failed") of $RUNS"
ctl stop default >/dev/null
daemon_stop
dockerd_stop
