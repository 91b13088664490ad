#!/usr/bin/env bash
# E2E: an Update that restarts dnsmasq (setting dns.domain) keeps the DHCP
# leases: the guest still holds its address, so Leases() must still list it
# (issue 12). dnsmasq is restarted (another pid) with the lease file kept.
# A change of subnet is different: the old leases name addresses of the old
# subnet and are dropped.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

nat_topology
bus_start
daemon_start

ctl create default --mode nat --bridge kvmbr0 --ipv4 192.168.122.1/24 \
    --dhcp-range 192.168.122.100-192.168.122.254
ctl start default
wait_state default active

mac=52:54:00:aa:00:01
ip -n "$G1" link set eth0 address "$mac"
guest_plug "$G1" vg1 kvmbr0
read -r gaddr _ <<<"$(guest_dhcp "$G1")"
gip=${gaddr%/*}
[[ $gip == 192.168.122.* ]] || fail "lease $gaddr outside 192.168.122.0/24"
lease_ip() { ctl leases default --json | jq -r --arg m "$mac" '.[] | select(.mac == $m) | .ip'; }
retry 10 test -n "$(lease_ip)" || fail "no lease listed for $mac"
assert_eq "$(lease_ip)" "$gip" "lease before the update"

log "an update that restarts dnsmasq keeps the lease"
pid=$(dnsmasq_pid default)
is_dnsmasq "$pid" || fail "no dnsmasq for default (pid '$pid')"
ctl set default dns.domain=kvm.lan
assert_eq "$(net_state default)" active "state right after the update"
assert_eq "$(ctl show default --json | jq -r .config.dns.domain)" kvm.lan "dns.domain after the update"
newpid=$(dnsmasq_pid default)
is_dnsmasq "$newpid" || fail "no dnsmasq after the update (pid '$newpid')"
[[ $newpid != "$pid" ]] || fail "dnsmasq was not restarted (pid $pid): the test needs a restarting update"
assert_eq "$(lease_ip)" "$gip" "lease of $mac after the restarting update"


log "a new subnet drops the old subnet's leases"
ctl set default ipv4.address=192.168.123.1/24 'ipv4.dhcp.ranges=["192.168.123.100-192.168.123.254"]'
wait_state default active
assert_eq "$(lease_ip)" "" "lease of the old subnet after a subnet change"
log "PASS"
