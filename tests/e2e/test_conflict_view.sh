#!/usr/bin/env bash
# E2E: the kernel conflict check of a create and a start no longer dumps
# every address of the host (issue 17 item 3): kvmnetd keeps a view of the
# host's addresses from rtnetlink's notifications (core::AddressView) and
# dumps only the links it names. Whatever the view knew and when, the
# errors are those of a full dump:
#   an address there before the daemon started (the view's first listing);
#   IPv4 and IPv6 addresses added while it runs (notifications);
#   one removed meanwhile: no conflict any more (the link's own dump, even
#   where the view would still hold it);
#   a stopped network whose subnet someone took meanwhile: its start refused.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

nat_topology
bus_start
ip -n "$H" link add kvother type bridge
ip -n "$H" addr add 10.71.0.9/24 dev kvother
daemon_start

expect_error Conflict create before --mode nat --bridge kvmbr1 --ipv4 10.71.0.1/24
assert_eq "$ERR_MSG" "ipv4.address: 10.71.0.0/24 overlaps 10.71.0.9/24 on interface kvother, which kvmnet does not manage; choose another subnet" "an address there before the daemon"

ip -n "$H" addr add 10.72.0.9/16 dev kvother
expect_error Conflict create later --mode nat --bridge kvmbr2 --ipv4 10.72.5.1/24
assert_contains "$ERR_MSG" "10.72.5.0/24 overlaps 10.72.0.9/16 on interface kvother" "an address added while it runs"

ip -n "$H" addr del 10.72.0.9/16 dev kvother
ctl create later --mode nat --bridge kvmbr2 --ipv4 10.72.5.1/24
log "an address removed: no conflict"

ctl create v4 --mode nat --bridge kvmbr3 --ipv4 10.73.0.1/24
ip -n "$H" addr add 10.73.0.200/25 dev kvother
expect_error Conflict start v4
assert_contains "$ERR_MSG" "10.73.0.0/24 overlaps 10.73.0.200/25 on interface kvother" "a start after the subnet was taken"
ip -n "$H" addr del 10.73.0.200/25 dev kvother
ctl start v4
wait_state v4 active
if [[ -e /proc/sys/net/ipv6 ]]; then
    ip -n "$H" addr add fd00:74::9/64 dev kvother nodad
    cat >"$T/v6.json" <<JSON
{"name": "v6", "mode": "nat", "bridge": "kvmbr4", "ipv4": {"address": "10.74.0.1/24"},
 "ipv6": {"address": "fd00:74::1/64"}}
JSON
    expect_error Conflict create v6 --file "$T/v6.json"
    assert_contains "$ERR_MSG" "ipv6.address: fd00:74::/64 overlaps fd00:74::9/64 on interface kvother" "an IPv6 address"
fi
log "ok"
