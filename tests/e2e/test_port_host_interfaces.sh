#!/usr/bin/env bash
# E2E: AttachPort never takes the host's own interfaces, and DetachPort gives
# back what attach changed (issue 11, item 10).
#  - uplink0 (the host's address 203.0.113.1/24 and its default route) is
#    refused with Conflict naming it and why; so is a veth carrying only a
#    static route, only a default route, or only a global IPv6 address. Nothing
#    changes: no master, same MAC, the host still reaches the "internet".
#  - a veth with only its IPv6 link-local address is a guest interface: it
#    is attached.
#  - vg1 (MAC 02:..:aa, MTU 1400, down) attached with --mac --isolated to a
#    network with mtu 1450: host-side MAC, MTU 1450, up, isolated. After a
#    daemon restart (the original state is stored with the port), detach
#    puts back MAC, MTU and down, and releases it.
#  - vg2, already a port of the bridge (as libvirt plugs its taps) and not
#    isolated: attach --isolated, detach: still a port, not isolated again.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

nat_topology
guest_add 2
bus_start
daemon_start

ctl create default --mode nat --bridge kvmbr0 --ipv4 192.168.122.1/24 --mtu 1450 \
    --dhcp-range 192.168.122.100-192.168.122.254
ctl start default
wait_state default active

# port_flag PORT KEY: a bridge port attribute (isolated, hairpin) in H.
port_flag() { in_ns "$H" bridge -d -j link show dev "$1" | jq -r ".[0].$2"; }
master_of() { link_json "$H" "$1" | jq -r '.master // ""'; }
ports_of() { ctl port list default --json | jq -r '[.[].name] | join(",")'; }

log "the host's uplink (address and default route) is refused"
uplink_before=$(link_json "$H" uplink0 | jq -c '{address, mtu, master, operstate}')
expect_error Conflict port attach default uplink0 --mac 52:54:00:00:00:31
log "refused: $ERR_MSG"
assert_contains "$ERR_MSG" "uplink0" "error for uplink0"
assert_contains "$ERR_MSG" "203.0.113.1/24" "error for uplink0 (names the host address)"
assert_eq "$(link_json "$H" uplink0 | jq -c '{address, mtu, master, operstate}')" "$uplink_before" "uplink0 after the refusal"
assert_eq "$(ports_of)" "" "ports after the refusal"
pings "$H" 203.0.113.2 || fail "the host lost its uplink after a refused attach"

log "an interface carrying only a route, or a global IPv6 address, is refused"
veth_pair "$H" vr0 "$G2" vr0peer
ip -n "$H" route add 198.51.100.0/24 dev vr0
expect_error Conflict port attach default vr0
assert_contains "$ERR_MSG" "vr0" "error for vr0"
assert_contains "$ERR_MSG" "198.51.100.0/24" "error for vr0 (names the route)"
ip -n "$H" route del 198.51.100.0/24 dev vr0
ip -n "$H" route add default dev vr0 metric 500
expect_error Conflict port attach default vr0
assert_contains "$ERR_MSG" "the default route" "error for vr0 (names the default route)"
ip -n "$H" route del default dev vr0 metric 500
ip -n "$H" addr add fd00:77::1/64 dev vr0 nodad
expect_error Conflict port attach default vr0
assert_contains "$ERR_MSG" "fd00:77::1/64" "error for vr0 (names the IPv6 address)"
assert_eq "$(master_of vr0)" "" "vr0 master after the refusals"
ip -n "$H" addr del fd00:77::1/64 dev vr0

log "an interface with only its IPv6 link-local address is attached"
_has_link_local() { [[ $(ip -n "$H" -6 addr show dev vr0) == *"scope link"* ]]; }
retry 50 _has_link_local || fail "vr0 got no link-local address"
ctl port attach default vr0
assert_eq "$(master_of vr0)" kvmbr0 "vr0 master"
ctl port detach default vr0

log "attach changes MAC, MTU, up state and isolation of vg1"
ip -n "$H" link set vg1 down
ip -n "$H" link set vg1 address 02:00:00:00:00:aa mtu 1400
ctl port attach default vg1 --mac 52:54:00:00:00:01 --isolated
link=$(link_json "$H" vg1)
assert_eq "$(jq -r .address <<<"$link"),$(jq -r .mtu <<<"$link"),$(jq -r .master <<<"$link")" \
    fe:54:00:00:00:01,1450,kvmbr0 "vg1 MAC, MTU, master after attach"
assert_contains "$(jq -r '.flags | join(",")' <<<"$link")" UP "vg1 flags after attach"
assert_eq "$(port_flag vg1 isolated)" true "vg1 isolation after attach"

log "daemon restart: what vg1 was is stored with the port"
daemon_stop
daemon_start
wait_state default active

log "detach restores vg1"
ctl port detach default vg1
link=$(link_json "$H" vg1)
assert_eq "$(jq -r .address <<<"$link"),$(jq -r .mtu <<<"$link"),$(jq -r '.master // ""' <<<"$link")" \
    02:00:00:00:00:aa,1400, "vg1 MAC, MTU, master after detach"
assert_not_contains "$(jq -r '.flags | join(",")' <<<"$link")" UP "vg1 flags after detach"

log "a port the bridge had already (as libvirt plugs it) stays on it, isolation restored"
ip -n "$H" link set vg2 master kvmbr0 up
assert_eq "$(port_flag vg2 isolated)" false "vg2 isolation before attach"
ctl port attach default vg2 --isolated
assert_eq "$(port_flag vg2 isolated)" true "vg2 isolation after attach"
ctl port detach default vg2
assert_eq "$(master_of vg2)" kvmbr0 "vg2 master after detach"
assert_eq "$(port_flag vg2 isolated)" false "vg2 isolation after detach"

daemon_stop
assert_eq "$DAEMON_EXIT" 0 "kvmnetd exit status after SIGTERM"
log "PASS"
