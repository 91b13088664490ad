#!/usr/bin/env bash
# E2E: a routed network's subnet route deleted while another link routes
# the subnet (so re-adding it fails: EEXIST) leaves the network degraded,
# route-deleted. The administrator removes the other route and puts the
# bridge's back by hand: the added route's notification (RTM_NEWROUTE) has
# the daemon observe the routes again, and the network is active again with
# no repair of its own (issue 12: the drift result clears once the route is
# observed again).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

nat_topology
bus_start
daemon_start
routed_guest "$G1" vg1

log "a route repair that fails: uplink0 routes 10.62.0.0/24 too"
ip -n "$H" route append 10.62.0.0/24 dev uplink0
ip -n "$H" route del 10.62.0.0/24 dev kvmbr5
reason_code() { busctl --system get-property org.kvmnet1 /org/kvmnet1/network/rt org.kvmnet1.Network StateReasonCode; }
_route_deleted() { [[ $(reason_code) == 's "route-deleted"' ]]; }
retry 50 _route_deleted || fail "rt not route-deleted after a failed route repair: $(ctl show rt --json | jq -c .status)"
repairs=$(grep -c ': repaired route: ' "$T/kvmnetd.log" || true)

log "the administrator puts the route back by hand"
ip -n "$H" route del 10.62.0.0/24 dev uplink0
ip -n "$H" route add 10.62.0.0/24 dev kvmbr5 proto kernel scope link src 10.62.0.1
wait_state rt active
assert_eq "$(reason_code)" 's "none"' "StateReasonCode"
assert_eq "$(grep -c ': repaired route: ' "$T/kvmnetd.log" || true)" "$repairs" "route repairs by the daemon"
report=$(ctl diagnose rt --json) || fail "diagnose failed with the route back: $report"
assert_eq "$(jq -r '.checks[] | select(.check == "ipv4-route") | .status' <<<"$report")" pass "Diagnose's ipv4-route check"
pings "$I" 10.62.0.10 || fail "203.0.113.2 cannot reach the routed guest with the route back"

ctl stop rt >/dev/null
daemon_stop
assert_eq "$DAEMON_EXIT" 0 "kvmnetd exit status after SIGTERM"
log PASS
