#!/usr/bin/env bash
# E2E: net.ipv4.ip_forward turned off by someone else while a NAT network
# runs (issue 11 item 13): the daemon notices (it checks every 2 s; sysctls
# send no notification), says so in State (`degraded`, naming the sysctl),
# turns it on again (Repaired "sysctl"), and the guest reaches the
# "internet" again. The value the daemon restores at stop stays the one
# it found before the start.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

nat_topology
bus_start
signal_monitor_start "$T/signals"
daemon_start
forward() { in_ns "$H" cat /proc/sys/net/ipv4/ip_forward; }
assert_eq "$(forward)" 0 "ip_forward before the start"
default_network_running
guest_plug "$G1" vg1 kvmbr0
guest_dhcp "$G1" >/dev/null
pings "$G1" 203.0.113.2 || fail "guest cannot reach 203.0.113.2 before the change"

log "sysctl -w net.ipv4.ip_forward=0"
in_ns "$H" sysctl -qw net.ipv4.ip_forward=0
_repaired() { grep -q 'default: repaired sysctl: ' "$T/kvmnetd.log"; }
retry 50 _repaired || fail "ip_forward=0 not repaired; state: $(ctl show default --json | jq -c '.status | {state, state_reason}')"
assert_eq "$(forward)" 1 "ip_forward after the repair"
wait_state default active
assert_contains "$(cat "$T/signals")" "net.ipv4.ip_forward was turned off outside kvmnet" \
    "State said why while it was off"
assert_contains "$(grep 'default: repaired sysctl' "$T/kvmnetd.log")" "turned net.ipv4.ip_forward on again" "the repair"
pings "$G1" 203.0.113.2 || fail "guest cannot reach 203.0.113.2 after the repair"

ctl stop default >/dev/null
assert_eq "$(forward)" 0 "ip_forward after stop (as found before the start)"
daemon_stop
assert_eq "$DAEMON_EXIT" 0 "kvmnetd exit status after SIGTERM"
log PASS
