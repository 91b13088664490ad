#!/usr/bin/env bash
# E2E: the sysctls a running NAT network needs, turned off by someone else
# (issue 11 item 13, issue 12): the daemon turns each one on again by itself
# (a Repaired "sysctl" signal and LastRepair name it) and traffic that needs
# it flows again:
#   - net.ipv4.ip_forward (the kernel announces the change: RTM_NEWNETCONF):
#     the guest reaches the "internet" over IPv4 again;
#   - net.ipv6.conf.all.forwarding, held while a network with IPv6 runs: the
#     guest reaches the "internet" over IPv6 (NAT66) again;
#   - net.ipv4.conf.kvmbr0.forwarding (the bridge's own; notified too): the
#     guest reaches the "internet" over IPv4 again;
#   - net.ipv4.conf.kvmbr0.route_localnet (no notification: polled every
#     2 s): a forward reached from the host as 127.0.0.1 works again.
# The values the daemon restores at stop stay those it found before the start.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

nat_topology
ip -n "$H" addr add 2001:db8:ff::1/64 dev uplink0 nodad
ip -n "$I" addr add 2001:db8:ff::2/64 dev eth0 nodad
ip -n "$H" -6 route add default via 2001:db8:ff::2
bus_start
signal_monitor_start "$T/signals"
daemon_start
forward() { in_ns "$H" cat /proc/sys/net/ipv4/ip_forward; }
forward6() { in_ns "$H" cat /proc/sys/net/ipv6/conf/all/forwarding; }
assert_eq "$(forward)" 0 "ip_forward before the start"
assert_eq "$(forward6)" 0 "IPv6 forwarding before the start"
ctl create default --mode nat --bridge kvmbr0 --ipv4 192.168.122.1/24 \
    --dhcp-range 192.168.122.100-192.168.122.254 --ipv6 fd00:1:2:3::1/64 --nat66 >/dev/null
ctl start default >/dev/null
wait_state default active
guest_plug "$G1" vg1 kvmbr0
lease=$(guest_dhcp "$G1")
ip -n "$G1" addr add fd00:1:2:3::5/64 dev eth0 nodad
ip -n "$G1" -6 route replace default via fd00:1:2:3::1
pings "$G1" 203.0.113.2 || fail "guest cannot reach 203.0.113.2 before the change"
retry 50 pings "$G1" 2001:db8:ff::2 || fail "guest cannot reach 2001:db8:ff::2 before the change"
ctl forward add default tcp 8080 "${lease%%/*}:80" >/dev/null
listen_tcp "$G1" 80 'echo web1'
assert_eq "$(tcp_get "$H" 127.0.0.1 8080)" web1 "host -> 127.0.0.1:8080 before the change"

# _repaired SYSCTL: the daemon logged that it turned SYSCTL on again.
_repaired() { grep -q "default: repaired sysctl: turned $1 on again" "$T/kvmnetd.log"; }
repaired_state() { ctl show default --json | jq -c '.status | {state, state_reason, last_repair}'; }
# turn_off SYSCTL: someone turns it off; the daemon turns it on again, says
# so in the log and LastRepair, and the network is active.
turn_off() {
    log "sysctl -w $1=0"
    in_ns "$H" sysctl -qw "$1=0"
    retry 50 _repaired "$1" || fail "$1=0 not repaired; state: $(repaired_state)"
    assert_eq "$(in_ns "$H" sysctl -n "$1")" 1 "$1 after the repair"
    assert_contains "$(ctl show default --json | jq -r .status.last_repair)" "turned $1 on again" "LastRepair"
    wait_state default active
}

turn_off net.ipv4.ip_forward
# The kernel turned every link's own forwarding off with it, and on again
# with the repair: nothing else to repair.
assert_eq "$(grep -c 'default: repaired sysctl: ' "$T/kvmnetd.log")" 1 "repairs after ip_forward=0"
assert_contains "$(cat "$T/signals")" "net.ipv4.ip_forward was turned off outside kvmnet" \
    "State said why while it was off"
retry 25 grep -q 'string "sysctl"' "$T/signals" || fail "no Repaired signal for the sysctl"
pings "$G1" 203.0.113.2 || fail "guest cannot reach 203.0.113.2 after the repair"

turn_off net.ipv6.conf.all.forwarding
retry 50 pings "$G1" 2001:db8:ff::2 || fail "guest cannot reach 2001:db8:ff::2 after the repair"

# The bridge's own, which IPv4 checks on input.
turn_off net.ipv4.conf.kvmbr0.forwarding
pings "$G1" 203.0.113.2 || fail "guest cannot reach 203.0.113.2 after the repair"

turn_off net.ipv4.conf.kvmbr0.route_localnet
assert_eq "$(tcp_get "$H" 127.0.0.1 8080)" web1 "host -> 127.0.0.1:8080 after the repair"

ctl stop default >/dev/null
assert_eq "$(forward)" 0 "ip_forward after stop (as found before the start)"
assert_eq "$(forward6)" 0 "IPv6 forwarding after stop (as found before the start)"
stop_pid "$MONITOR_PID"
daemon_stop
assert_eq "$DAEMON_EXIT" 0 "kvmnetd exit status after SIGTERM"
log PASS
