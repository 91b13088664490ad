#!/usr/bin/env bash
# E2E: the other things a guest sees, one network at a time on the same guest:
#  - a static DHCP host (--dhcp-host MAC,IP,NAME) gives the guest its address;
#  - an isolated network serves DHCP but forwards nothing out;
#  - a routed network forwards without NAT: the far side sees the guest's
#    own address.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

nat_topology
bus_start
daemon_start
listen_tcp "$I" 9000 'echo $SOCAT_PEERADDR'
mac=52:54:00:12:34:56
ip -n "$G1" link set eth0 address "$mac"

log "static DHCP host"
ctl create st --mode nat --bridge kvmbr3 --ipv4 10.60.0.1/24 \
    --dhcp-range 10.60.0.100-10.60.0.200 --dhcp-host "$mac,10.60.0.10,web"
assert_eq "$(ctl show st --json | jq -c '.config.ipv4.dhcp.hosts')" \
    '[{"ip":"10.60.0.10","mac":"52:54:00:12:34:56","name":"web"}]' "st hosts"
ctl start st
wait_state st active
guest_plug "$G1" vg1 kvmbr3
read -r gaddr _ <<<"$(guest_dhcp "$G1")"
assert_eq "$gaddr" 10.60.0.10/24 "lease of the guest with the reserved MAC"
assert_eq "$(tcp_get "$G1" 203.0.113.2 9000)" 203.0.113.1 "source seen through NAT"
ctl stop st
wait_state st inactive

log "isolated"
ctl create iso --mode isolated --bridge kvmbr4 --ipv4 10.61.0.1/24 \
    --dhcp-range 10.61.0.100-10.61.0.200
ctl start iso
wait_state iso active
guest_plug "$G1" vg1 kvmbr4
read -r gaddr _ <<<"$(guest_dhcp "$G1")"
gip=${gaddr%/*}
[[ $gip == 10.61.0.* ]] || fail "isolated lease $gaddr outside 10.61.0.0/24"
# Give the guest and the far side every route they need, so that only the
# daemon's policy can stop the traffic.
ip -n "$G1" route replace default via 10.61.0.1
route_back 10.61.0.0/24
if out=$(tcp_get "$G1" 203.0.113.2 9000 2>&1); then
    fail "isolated guest reached 203.0.113.2:9000 (saw '$out')"
fi
if in_ns "$G1" busybox ping -c 1 -W 2 203.0.113.2 >/dev/null 2>&1; then
    fail "isolated guest can ping 203.0.113.2"
fi
ctl stop iso
wait_state iso inactive

log "routed"
ctl create rt --mode routed --bridge kvmbr5 --ipv4 10.62.0.1/24 \
    --dhcp-range 10.62.0.100-10.62.0.200
ctl start rt
wait_state rt active
guest_plug "$G1" vg1 kvmbr5
read -r gaddr _ <<<"$(guest_dhcp "$G1")"
gip=${gaddr%/*}
[[ $gip == 10.62.0.* ]] || fail "routed lease $gaddr outside 10.62.0.0/24"
route_back 10.62.0.0/24
assert_eq "$(tcp_get "$G1" 203.0.113.2 9000)" "$gip" "source seen from a routed guest (no NAT)"
ctl stop rt
wait_state rt inactive
if in_ns "$H" nft list table inet kvmnet >/dev/null 2>&1; then
    fail "table inet kvmnet left behind with no active network"
fi

daemon_stop
assert_eq "$DAEMON_EXIT" 0 "kvmnetd exit status after SIGTERM"
log "PASS"
