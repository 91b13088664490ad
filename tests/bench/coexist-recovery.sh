#!/usr/bin/env bash
# Benchmark (not a test: it asserts no times), issue 14 "Measured": how
# long until guests work again after another firewall changes, p50 and max
# over RUNS runs (default 10), in namespaces made by tests/e2e/lib.sh.
#  1. Docker recreating DOCKER-USER: the host namespace gets Docker's
#     filter shape through iptables-nft (FORWARD policy DROP, jump to
#     DOCKER-USER), not a dockerd; each run flushes DOCKER-USER and adds
#     Docker's RETURN back, as Docker's restart over a flushed table does
#     (test_coexist_docker does both with a real dockerd). Measured: from
#     the recreated chain (flush and RETURN done) until a guest's new TCP connection to the "internet"
#     namespace succeeds (tried every 10 ms), i.e. kvmnetd noticing the
#     change and putting its two rules back.
#  2. A foreign table's drop policy answered by the printed command: from
#     `nft insert rule ... iifname/oifname BRIDGE accept` (both done) until the
#     network's State is active again (read from the bus every 10 ms),
#     i.e. kvmnetd noticing and re-judging. ufw's `ufw route allow` is the
#     same mechanism (test_coexist_ufw); ufw itself takes ~0.5 s per call.
# Each try is a process started in a namespace (socat, busctl), a few ms
# each: the figures include that polling.
# Usage: bash tests/bench/coexist-recovery.sh [RUNS]   (KVMNETD, KVMNETCTL
# as for the e2e tests). About 30 s here.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../e2e/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib-recovery.sh"
RUNS=${1:-10}

nat_topology
bus_start
in_ns "$H" iptables-nft -P FORWARD DROP
in_ns "$H" iptables-nft -N DOCKER-USER
in_ns "$H" iptables-nft -A DOCKER-USER -j RETURN
in_ns "$H" iptables-nft -A FORWARD -j DOCKER-USER
recovery_network
recovery_guest "Docker's FORWARD drop"

connects() { [[ $(in_ns "$G1" socat -T 0.2 - TCP:203.0.113.2:9000,connect-timeout=0.2 </dev/null 2>/dev/null) == ok ]]; }
: >"$T/docker.ms"
for ((run = 0; run < RUNS; run++)); do
    in_ns "$H" iptables-nft -F DOCKER-USER
    in_ns "$H" iptables-nft -A DOCKER-USER -j RETURN
    t0=$(now_ms)
    until connects; do
        (($(now_ms) - t0 < 10000)) || fail "no connection 10 s after DOCKER-USER was recreated"
        sleep 0.01
    done
    echo $(($(now_ms) - t0)) >>"$T/docker.ms"
done

state_active() {
    [[ $(busctl --system get-property org.kvmnet1 /org/kvmnet1/network/default org.kvmnet1.Network State) == 's "active"' ]]
}
: >"$T/foreign.ms"
for ((run = 0; run < RUNS; run++)); do
    in_ns "$H" nft add table ip foreignfw
    in_ns "$H" nft add chain ip foreignfw FORWARD '{ type filter hook forward priority 0; policy drop; }'
    wait_state default degraded 50
    in_ns "$H" nft insert rule ip foreignfw FORWARD iifname kvmbr0 accept
    in_ns "$H" nft insert rule ip foreignfw FORWARD oifname kvmbr0 accept
    t0=$(now_ms)
    until state_active; do
        (($(now_ms) - t0 < 10000)) || fail "not active 10 s after the foreign chain let the guests through"
        sleep 0.01
    done
    echo $(($(now_ms) - t0)) >>"$T/foreign.ms"
    in_ns "$H" nft delete table ip foreignfw
done

echo "coexistence recovery"
echo "DOCKER-USER recreated -> guest's new connection works: $(stats <"$T/docker.ms")"
echo "foreign chain lets the guests through -> State active:  $(stats <"$T/foreign.ms")"
ctl stop default >/dev/null
daemon_stop
