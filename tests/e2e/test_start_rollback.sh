#!/usr/bin/env bash
# E2E: start is a transaction. A port squatter makes dnsmasq fail after the
# bridge, its address and the nftables table were already made; the start
# must fail with an error naming the dnsmasq step, the network must be
# "failed" with that reason, and the host namespace must be exactly as it
# was before: no bridge, no table, ip_forward back to its old value. Once the
# squatter is gone the same network starts normally.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

nat_topology
bus_start
daemon_start

ctl create rb --mode nat --bridge kvmbr5 --ipv4 10.66.0.1/24 --dhcp-range 10.66.0.10-10.66.0.20
before=$(kernel_snapshot "$H")
forward_before=$(in_ns "$H" sysctl -n net.ipv4.ip_forward)

log "squat on DNS port 53 (no SO_REUSEADDR), so dnsmasq cannot bind"
spawn_in_ns "$H" socat -u UDP4-RECVFROM:53 STDOUT >/dev/null 2>&1
squatter=$SPAWNED_PID
track_pid "$squatter"
_udp53_bound() { [[ $(in_ns "$H" ss -Hlun "sport = :53") == *":53"* ]]; }
retry 25 _udp53_bound || fail "squatter did not bind UDP port 53"

expect_error Kernel start rb
assert_contains "$ERR_MSG" "dnsmasq" "start error"
assert_eq "$(net_state rb)" failed "state after the failed start"
assert_contains "$(ctl show rb --json | jq -r .status.state_reason)" "dnsmasq" "state reason"

after=$(kernel_snapshot "$H")
[[ $before == "$after" ]] || fail "kernel state changed by a failed start:
--- before
$before
--- after
$after"
ip -n "$H" link show kvmbr5 >/dev/null 2>&1 && fail "bridge kvmbr5 left behind"
in_ns "$H" nft list table inet kvmnet >/dev/null 2>&1 && fail "table inet kvmnet left behind"
assert_eq "$(in_ns "$H" sysctl -n net.ipv4.ip_forward)" "$forward_before" "ip_forward after rollback"

log "without the squatter the network starts"
stop_pid "$squatter"
ctl start rb
wait_state rb active
assert_eq "$(ctl show rb --json | jq -r .status.state_reason)" "" "state reason once active"
ctl stop rb
ctl delete rb
log PASS
