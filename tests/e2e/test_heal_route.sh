#!/usr/bin/env bash
# E2E: the subnet route of a running NAT or routed network deleted by
# someone else (issue 12): the bridge keeps its gateway address, but the
# host no longer routes to the guests, so their traffic dies on the way
# back. The daemon sees the route go (RTM_DELROUTE) and adds it again as the
# kernel had it (a Repaired "route" signal, LastRepair), and traffic flows
# again:
#   - NAT: the guest reaches the "internet" again (replies are de-NATed to
#     the guest's address and routed through the bridge);
#   - routed: the far side reaches the guest's own address again.
# A route repair that cannot succeed (another link already routes the
# subnet with the same metric: EEXIST) leaves the network degraded with a
# reason naming the route and why (route-deleted), and Diagnose lists it;
# the next route change of the bridge repairs it once that link's route is
# gone.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

nat_topology
guest_add 2
bus_start
signal_monitor_start "$T/signals"
daemon_start
ctl create default --mode nat --bridge kvmbr0 --ipv4 192.168.122.1/24 \
    --dhcp-range 192.168.122.100-192.168.122.254 >/dev/null
ctl start default >/dev/null
wait_state default active
guest_plug "$G1" vg1 kvmbr0
guest_dhcp "$G1" >/dev/null
pings "$G1" 203.0.113.2 || fail "NAT guest cannot reach 203.0.113.2 before the change"

routed_guest "$G2" vg2

# _repaired NET CIDR: the daemon logged that it added the route again.
_repaired() { grep -q "$1: repaired route: re-added route $2 through" "$T/kvmnetd.log"; }
routes_of() { ip -n "$H" -j route show dev "$1" | jq -c '[.[] | {dst, protocol, scope, prefsrc}]'; }
# delete_route NET BRIDGE CIDR: someone deletes the network's subnet route;
# the daemon adds it again as the kernel had it, and says so.
delete_route() {
    local net=$1 br=$2 cidr=$3 before
    before=$(routes_of "$br")
    assert_contains "$before" "\"dst\":\"$cidr\"" "route $cidr before"
    log "ip route del $cidr dev $br"
    ip -n "$H" route del "$cidr" dev "$br"
    retry 50 _repaired "$net" "$cidr" || fail "route $cidr not repaired; $(ctl show "$net" --json | jq -c .status)"
    assert_eq "$(routes_of "$br")" "$before" "routes of $br after the repair"
    assert_contains "$(ctl show "$net" --json | jq -r .status.last_repair)" "re-added route $cidr" "LastRepair"
    wait_state "$net" active
}

delete_route default kvmbr0 192.168.122.0/24
pings "$G1" 203.0.113.2 || fail "NAT guest cannot reach 203.0.113.2 after the repair"
retry 25 grep -q 'string "route"' "$T/signals" || fail "no Repaired signal for the route"

delete_route rt kvmbr5 10.62.0.0/24
pings "$I" 10.62.0.10 || fail "203.0.113.2 cannot reach the routed guest after the repair"
# One repair each: the daemon's own route notification changes nothing more.
assert_eq "$(grep -c ': repaired route: ' "$T/kvmnetd.log")" 2 "route repairs"

log "a route repair that fails: uplink0 routes 10.62.0.0/24 too"
ip -n "$H" route append 10.62.0.0/24 dev uplink0
ip -n "$H" route del 10.62.0.0/24 dev kvmbr5
_route_deleted() { [[ $(ctl show rt --json | jq -r .status.state) == degraded ]]; }
retry 50 _route_deleted || fail "rt not degraded after a failed route repair: $(ctl show rt --json | jq -c .status)"
assert_contains "$(ctl show rt --json | jq -r .status.state_reason)" \
    "route 10.62.0.0/24 through kvmbr5 was deleted outside kvmnet; re-adding it failed: " "StateReason"
assert_eq "$(busctl --system get-property org.kvmnet1 /org/kvmnet1/network/rt \
    org.kvmnet1.Network StateReasonCode)" 's "route-deleted"' "StateReasonCode"
report=$(ctl diagnose rt --json) && fail "diagnose exited 0 with the route missing: $report"
assert_eq "$(jq -r '.checks[] | select(.check == "ipv4-route") | .status + ": " + .detail' <<<"$report")" \
    "fail: 10.62.0.0/24 is not routed through kvmbr5 (its route was deleted)" "Diagnose's ipv4-route check"
ip -n "$H" route del 10.62.0.0/24 dev uplink0
log "a route of kvmbr5 comes and goes: the repair runs again and succeeds"
ip -n "$H" route add 10.62.0.128/25 dev kvmbr5
ip -n "$H" route del 10.62.0.128/25 dev kvmbr5
wait_state rt active
assert_contains "$(routes_of kvmbr5)" '"dst":"10.62.0.0/24"' "route of kvmbr5 after the repair"
pings "$I" 10.62.0.10 || fail "203.0.113.2 cannot reach the routed guest after the second repair"

ctl stop rt >/dev/null
ctl stop default >/dev/null
stop_pid "$MONITOR_PID"
daemon_stop
assert_eq "$DAEMON_EXIT" 0 "kvmnetd exit status after SIGTERM"
log PASS
