#!/usr/bin/env bash
# E2E: taking over an uplink is safe. On the lan_topology uplink (IPv4 and
# IPv6 addresses, routes with metrics):
#  (a) a step that fails: with net.ipv6.conf.default.disable_ipv6=1 in H the
#      new bridge cannot take uplink0's IPv6 address; start fails naming that
#      step, the network is "failed" with that reason, and H is exactly as
#      before (uplink0's addresses, routes and master, no br0, no table);
#  (b) a confirmation deadline: unconfirmed, the start is rolled back on its
#      own ("not confirmed") and uplink0 restored exactly; confirmed, it stays;
#      confirm with nothing pending is a Conflict;
#  (c) an uplink already enslaved to a foreign bridge is refused (Conflict)
#      and nothing changes, nor when the refused network is stopped.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

lan_topology
bus_start
daemon_start

pings "$H" 192.0.2.1 || fail "baseline: H cannot ping the LAN router 192.0.2.1"
ctl create lan --mode bridge --uplink uplink0 --bridge br0
before_if=$(iface_config "$H" uplink0)
before=$(kernel_snapshot "$H")

# assert_restored WHAT: uplink0 and all of H are as before, and H reaches the router.
assert_restored() {
    local after_if after
    if ip -n "$H" link show br0 >/dev/null 2>&1; then fail "$1: br0 left behind"; fi
    after_if=$(iface_config "$H" uplink0)
    [[ $after_if == "$before_if" ]] || fail "$1: uplink0 differs from before:
--- before
$before_if
--- after
$after_if"
    after=$(kernel_snapshot "$H")
    [[ $after == "$before" ]] || fail "$1: host namespace differs from before:
$(diff <(echo "$before") <(echo "$after"))"
    retry 25 pings "$H" 192.0.2.1 || fail "$1: H cannot ping 192.0.2.1 over uplink0"
}

awaiting_confirmation() {
    dbus-send --system --print-reply=literal --dest=org.kvmnet1 /org/kvmnet1/network/lan \
        org.freedesktop.DBus.Properties.Get string:org.kvmnet1.Network string:AwaitingConfirmation |
        awk '{print $NF}'
}

log "(a) the bridge cannot take the IPv6 address: start fails and rolls back"
in_ns "$H" sysctl -qw net.ipv6.conf.default.disable_ipv6=1
out=$(ctl start lan 2>&1) && fail "start succeeded although br0 cannot hold IPv6 addresses: $out"
log "start failed: $out"
[[ $out == "kvmnetctl: "*": "* ]] || fail "start error is not 'kvmnetctl: KIND: message': $out"
assert_contains "$out" "2001:db8:1::10/64" "start error (must name the IPv6 address step)"
assert_eq "$(net_state lan)" failed "state after the failed start"
reason=$(ctl show lan --json | jq -r .status.state_reason)
assert_contains "$reason" "2001:db8:1::10/64" "state reason"
in_ns "$H" sysctl -qw net.ipv6.conf.default.disable_ipv6=0
assert_restored "after the failed start"

log "(b) confirmation deadline: 3 s, never confirmed"
t0=$SECONDS
ctl start lan --confirm-timeout 3
assert_eq "$(net_state lan)" active "state right after start --confirm-timeout 3"
assert_eq "$(awaiting_confirmation)" true "AwaitingConfirmation while the deadline runs"
assert_eq "$(jq -r '.master // ""' <<<"$(link_json "$H" uplink0)")" br0 "uplink0 master during the deadline"
wait_state lan failed 40
elapsed=$((SECONDS - t0))
log "rolled back after ~${elapsed} s"
((elapsed >= 2)) || fail "rolled back after ${elapsed} s, before the 3 s deadline"
((elapsed <= 7)) || fail "rolled back only after ${elapsed} s (deadline 3 s)"
reason=$(ctl show lan --json | jq -r .status.state_reason)
assert_contains "$reason" "not confirmed" "state reason after the deadline"
assert_eq "$(awaiting_confirmation)" false "AwaitingConfirmation after the rollback"
assert_restored "after the unconfirmed start"
expect_error Conflict confirm lan

log "(b) confirmed within the deadline: the network stays"
ctl start lan --confirm-timeout 5
ctl confirm lan
assert_eq "$(awaiting_confirmation)" false "AwaitingConfirmation after confirm"
sleep 7
assert_eq "$(net_state lan)" active "state 7 s after a confirmed start with a 5 s deadline"
assert_eq "$(jq -r '.master // ""' <<<"$(link_json "$H" uplink0)")" br0 "uplink0 master after confirm"
pings "$H" 192.0.2.1 || fail "H cannot ping 192.0.2.1 through br0 after confirm"
expect_error Conflict confirm lan
assert_contains "$ERR_MSG" "lan" "confirm with nothing pending"
ctl stop lan
wait_state lan inactive
assert_restored "after stop"

log "(c) uplink0 already enslaved to a foreign bridge"
ip -n "$H" link add fbr0 type bridge
ip -n "$H" link set fbr0 up
ip -n "$H" link set uplink0 master fbr0
foreign_if=$(iface_config "$H" uplink0)
foreign=$(kernel_snapshot "$H")
expect_error Conflict start lan
assert_contains "$ERR_MSG" "fbr0" "start error for an enslaved uplink"
[[ $(net_state lan) != active ]] || fail "network active although its uplink belongs to fbr0"
if ip -n "$H" link show br0 >/dev/null 2>&1; then fail "br0 created although the uplink was refused"; fi
assert_eq "$(iface_config "$H" uplink0)" "$foreign_if" "uplink0 after the refused start"
after=$(kernel_snapshot "$H")
[[ $after == "$foreign" ]] || fail "refused start changed the host namespace:
$(diff <(echo "$foreign") <(echo "$after"))"
# Stopping the failed network must not touch what it never took: uplink0
# stays in the foreign bridge.
stop_out=$(ctl stop lan 2>&1) && stop_rc=0 || stop_rc=$?
assert_eq "$(iface_config "$H" uplink0)" "$foreign_if" "uplink0 after stopping the refused network"
((stop_rc == 0)) || fail "stopping the refused network failed: $stop_out"
assert_eq "$(net_state lan)" inactive "state after stopping the refused network"
after=$(kernel_snapshot "$H")
[[ $after == "$foreign" ]] || fail "stopping the refused network changed the host namespace:
$(diff <(echo "$foreign") <(echo "$after"))"
ip -n "$H" link set uplink0 nomaster
ip -n "$H" link del fbr0

ctl delete lan
daemon_stop
assert_eq "$DAEMON_EXIT" 0 "kvmnetd exit status after SIGTERM"
log PASS
