#!/usr/bin/env bash
# E2E: interfaces that someone else enslaved to a network's bridge (what
# libvirt's <interface type='bridge'> does with a VM's tap, see
# docs/guests.md), not attached through kvmnet ports, are remembered as
# observed and enslaved again when a repair recreates the deleted bridge
# (issue 11 item 11):
#   - a guest veth and a tap enslaved with `ip link set ... master BR`:
#     back on the new bridge, the guest gets a lease without re-plugging;
#   - an interface released on purpose (`nomaster`) while the bridge lived
#     stays released;
#   - an Update that restarts the network (a new gateway prefix: the bridge
#     is deleted and made again) puts them onto the new bridge too (issue 12).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

nat_topology
bus_start
daemon_start
default_network_running

ip -n "$H" tuntap add dev vmtap0 mode tap
ip -n "$H" link set vmtap0 master kvmbr0 up
ip -n "$H" link add vfree0 type veth peer name vfree1
ip -n "$H" link set vfree0 master kvmbr0 up
guest_plug "$G1" vg1 kvmbr0
guest_dhcp "$G1" >/dev/null
# Released on purpose while the bridge exists: not ours to take back.
ip -n "$H" link set vfree0 nomaster

master_of() { ip -n "$H" -j link show dev "$1" | jq -r '.[0].master // "none"'; }
repaired() { grep -c 'default: repaired bridge' "$T/kvmnetd.log" || true; }
_repaired() { (($(repaired) > ${1:-0})); }

log "ip link del kvmbr0"
ip -n "$H" link del kvmbr0
retry 50 _repaired || fail "bridge not recreated"
wait_state default active
assert_eq "$(master_of vg1)" kvmbr0 "master of the guest's veth after the bridge was recreated"
assert_eq "$(master_of vmtap0)" kvmbr0 "master of the tap after the bridge was recreated"
assert_eq "$(master_of vfree0)" none "master of the interface released on purpose"
assert_contains "$(grep 'default: repaired bridge' "$T/kvmnetd.log")" "vg1" "the repair names the ports it re-attached"
# No re-plug by the test: the daemon did it.
guest_dhcp "$G1" >/dev/null

log "and again, after a daemon restart (ports observed at adoption)"
daemon_stop
daemon_start
wait_state default active
ip -n "$H" link del kvmbr0
retry 50 _repaired 1 || fail "bridge not recreated after the daemon restart"
wait_state default active
assert_eq "$(master_of vg1)" kvmbr0 "master of the guest's veth after the second repair"
assert_eq "$(master_of vmtap0)" kvmbr0 "master of the tap after the second repair"
guest_dhcp "$G1" >/dev/null

log "an Update that restarts the network (ipv4.address 192.168.122.1/23)"
ctl set default ipv4.address=192.168.122.1/23 >/dev/null
wait_state default active
assert_eq "$(ip -n "$H" -j addr show dev kvmbr0 | jq -r '.[0].addr_info[] | select(.family == "inet") | "\(.local)/\(.prefixlen)"')" \
    192.168.122.1/23 "the gateway after the restart"
assert_eq "$(master_of vg1)" kvmbr0 "master of the guest's veth after the restart"
assert_eq "$(master_of vmtap0)" kvmbr0 "master of the tap after the restart"
assert_eq "$(master_of vfree0)" none "master of the interface released on purpose after the restart"
guest_dhcp "$G1" >/dev/null

ctl stop default >/dev/null
daemon_stop
assert_eq "$DAEMON_EXIT" 0 "kvmnetd exit status after SIGTERM"
log PASS
