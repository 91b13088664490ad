#!/usr/bin/env bash
# VM check (full kernel): the flowtable fast path ("fast_path": true), which
# the CI kernel lacks (there test_fast_path.sh sees `Unsupported`). A routed
# network with an uplink (vm_fast_path_nat.sh runs it again as a NAT network
# with a forward: KVMNET_VM_FAST_MODE=nat): a guest's TCP connection to the
# "internet" namespace works (and, NAT, one from there through the forward),
# table inet kvmnet_fast has the flowtable over the bridge and the uplink,
# and conntrack shows the flows [OFFLOAD]ed. No throughput figure: under TCG
# it means nothing.
set -euo pipefail
source "$SRCDIR/tests/e2e/lib.sh"

ok() { echo "ok: $*"; }

nat_topology
bus_start
# A NAT network's dnsmasq did not become ready within kvmnetd's default
# 10 s under TCG on a loaded host (twice, 2026-12-05): the emulated machine
# gets two minutes.
daemon_start --dnsmasq-ready-timeout 120
# KVMNET_VM_FAST_MODE=nat: masquerade and a forward (vm_fast_path_nat.sh).
mode=${KVMNET_VM_FAST_MODE:-routed}
ctl create fp --mode "$mode" --bridge kvmbfp --ipv4 192.168.140.1/24 --uplink uplink0 --fast-path
ctl start fp
wait_state fp active
guest_plug "$G1" vg1 kvmbfp
ip -n "$G1" addr add 192.168.140.10/24 dev eth0
ip -n "$G1" route add default via 192.168.140.1
if [[ $mode == nat ]]; then
    ctl forward add fp --proto tcp --host-port 8080 --guest 192.168.140.10 --guest-port 80
else
    route_back 192.168.140.0/24
fi

table=$(in_ns "$H" nft list table inet kvmnet_fast)
assert_contains "$table" "flowtable fast" "the flowtable"
assert_contains "$table" "kvmbfp" "the bridge in the flowtable"
assert_contains "$table" "uplink0" "the uplink in the flowtable"
assert_contains "$table" "flow add @fast" "the rule that adds flows"
ok "table inet kvmnet_fast: flowtable over kvmbfp and uplink0"

# No ":" in a SYSTEM command: socat splits its address there.
# Long enough connections that their established packets reach the rule.
# Receive-only clients (socat -u): tcp_get's client half-closes at once (its
# stdin is /dev/null), which keeps the flow out of the flowtable (a FIN sends
# a TCP flow back to the slow path) and lets socat quit 0.5 s after that EOF
# (its -t), before a slow TCG guest has sent 200000 bytes: the 0-byte
# transfers of the first VM runs.
receive() { in_ns "$1" socat -u -T 30 "TCP:$2:$3,connect-timeout=30" -; }
listen_tcp "$I" 9000 'head -c 200000 /dev/zero'
listen_tcp "$G1" 80 'head -c 200000 /dev/zero'
out=$(receive "$G1" 203.0.113.2 9000 | wc -c)
assert_eq "$out" 200000 "bytes from the internet namespace to the guest"
ok "internet to guest carries 200000 bytes"
if [[ $mode == nat ]]; then
    out=$(receive "$I" 203.0.113.1 8080 | wc -c)
    assert_eq "$out" 200000 "bytes through the forward"
    ok "internet through the forward carries 200000 bytes"
fi

# An open connection that keeps sending: a TCP flow leaves the flowtable at
# its FIN, so the check looks while it is established.
command -v conntrack >/dev/null || fail "missing tool 'conntrack' (run scripts/deps.sh)"
listen_tcp "$I" 9001 'while true; do echo x; sleep 0.2; done'
spawn_in_ns "$G1" socat -u TCP:203.0.113.2:9001 - >"$T/ticks" 2>>"$T/socat.log"
track_pid "$SPAWNED_PID"
# What a failure needs to be understood in the VM's console log.
state() {
    echo "conntrack: $(in_ns "$H" conntrack -L 2>&1)"
    echo "guest sockets: $(in_ns "$G1" ss -tn 2>&1)"
    echo "internet sockets: $(in_ns "$I" ss -tn 2>&1)"
    echo "socat: $(tail -5 "$T/socat.log")"
    echo "received: $(wc -c <"$T/ticks") bytes"
    echo "flowtable: $(in_ns "$H" nft list flowtables 2>&1)"
}
offloaded() { [[ $(in_ns "$H" conntrack -L -p tcp --dport 9001 2>/dev/null) == *OFFLOAD* ]]; }
retry 150 offloaded || fail "no [OFFLOAD] conntrack entry for the open connection: $(state)"
echo "  $(in_ns "$H" conntrack -L -p tcp --dport 9001 2>/dev/null)"
ok "conntrack shows the open connection [OFFLOAD]ed to the flowtable"
# The offloaded flow still delivers: the flowtable's transmit towards the
# bridge works (an entry alone would not show that).
seen=$(wc -c <"$T/ticks")
grew() { (($(wc -c <"$T/ticks") > seen)) && offloaded; }
retry 150 grew || fail "the offloaded connection delivered nothing more (at $seen bytes): $(state)"
ok "the offloaded connection keeps delivering ($seen -> $(wc -c <"$T/ticks") bytes)"
stop_pid "$SPAWNED_PID"

ctl stop fp
retry 25 not in_ns "$H" nft list table inet kvmnet_fast || fail "kvmnet_fast outlived the stop"
ok "stop removes table inet kvmnet_fast"
