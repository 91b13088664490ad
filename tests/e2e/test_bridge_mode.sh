#!/usr/bin/env bash
# E2E: a bridge-mode network takes over the host's uplink and gives it back.
# L is the LAN router with its own DHCP server (a dnsmasq this test starts);
# H's uplink0 is a veth to it with IPv4 and IPv6 addresses, a default route
# per family and an extra route with its own metric. Starting network "lan"
# (bridge br0 on uplink0) must keep H's connectivity and move exactly those
# addresses and routes onto br0, which carries uplink0's MAC; a guest attached
# with `port attach` gets its lease from L's dnsmasq and L sees the guest's
# own MAC; a daemon restart adopts all of it. STP, forward delay, hello
# time, max age, priority and multicast snooping set at create are visible in
# `ip -d link`, and `set` changes them on the running bridge without
# recreating it or moving the addresses. Stop puts uplink0 back exactly as it
# was and deletes br0.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

GUEST_MAC=52:54:00:aa:bb:01

lan_topology
guest_add 1
lan_dhcp_start
bus_start
daemon_start

pings "$H" 192.0.2.1 || fail "baseline: H cannot ping the LAN router 192.0.2.1 over uplink0"
retry 25 pings "$H" 2001:db8:1::1 || fail "baseline: H cannot ping 2001:db8:1::1 over uplink0"
before=$(iface_config "$H" uplink0)
uplink_mac=$(jq -r .mac <<<"$before")
log "uplink0 before: $(jq -c . <<<"$before")"

# What must end up on br0: the uplink's addresses but its IPv6 link-local
# one (label aside, which names the interface), and every route of uplink0
# with the same metric, protocol and gateway, now through br0.
want_addrs=$(jq -c '[.addresses[] | select(.scope != "link") | del(.label)]' <<<"$before")
want_routes=$(jq -c '[.routes[] | .dev = "br0"] | sort_by(tostring)' <<<"$before")
# What must stay on uplink0 while it is a bridge port: only link-local.
keep_addrs=$(jq -c '[.addresses[] | select(.scope == "link")]' <<<"$before")
keep_routes=$(jq -c '[.routes[] | select(.dst == "fe80::/64")]' <<<"$before")
br0_addrs() { iface_config "$H" br0 | jq -c '[.addresses[] | select(.scope != "link") | del(.label)]'; }
br0_routes() { iface_config "$H" br0 | jq -c '.routes'; }
_br0_has_uplink_config() {
    [[ $(br0_addrs) == "$want_addrs" && $(br0_routes) == "$want_routes" ]]
}

log "create + start (STP on, forward delay 4 s, hello 2 s, max age 20 s, priority 4096, snooping off)"
ctl create lan --mode bridge --uplink uplink0 --bridge br0 --stp on --forward-delay 4 \
    --hello-time 2 --max-age 20 --priority 4096 --multicast-snooping off
ctl start lan
wait_state lan active

link=$(link_json "$H" br0) || fail "bridge br0 missing after start"
assert_eq "$(jq -r .linkinfo.info_kind <<<"$link")" bridge "br0 kind"
assert_eq "$(jq -r '.ifalias // ""' <<<"$link")" kvmnet:lan "br0 ifalias"
assert_eq "$(jq -r .address <<<"$link")" "$uplink_mac" "br0 MAC (must be uplink0's)"
assert_eq "$(jq -r '.master // ""' <<<"$(link_json "$H" uplink0)")" br0 "uplink0 master"
br_index=$(jq -r .ifindex <<<"$link")
bridge_settings() {
    link_json "$H" br0 | jq -c '.linkinfo.info_data | {stp_state, forward_delay, hello_time, max_age,
        priority, mcast_snooping}'
}
assert_eq "$(bridge_settings)" \
    '{"stp_state":1,"forward_delay":400,"hello_time":200,"max_age":2000,"priority":4096,"mcast_snooping":0}' \
    "br0 settings from create (times in centiseconds)"

log "H keeps its connectivity (after STP listening + learning, 2 x 4 s)"
retry 100 pings "$H" 192.0.2.1 || fail "H cannot ping 192.0.2.1 through br0 $(ip -n "$H" -j route show | jq -c .)"
retry 25 pings "$H" 2001:db8:1::1 || fail "H cannot ping 2001:db8:1::1 through br0"

log "addresses and routes moved from uplink0 to br0"
retry 25 _br0_has_uplink_config || fail "br0 does not carry uplink0's configuration:
  addresses: want $want_addrs
             have $(br0_addrs)
  routes:    want $want_routes
             have $(br0_routes)"
now_uplink=$(iface_config "$H" uplink0)
assert_eq "$(jq -c .addresses <<<"$now_uplink")" "$keep_addrs" "addresses left on uplink0 (only link-local)"
assert_eq "$(jq -c .routes <<<"$now_uplink")" "$keep_routes" "routes left on uplink0 (only fe80::/64)"
assert_eq "$(jq -r .mac <<<"$now_uplink")" "$uplink_mac" "uplink0 MAC while enslaved"

log "no dnsmasq and no NAT in bridge mode"
[[ ! -e $T/run/lan/dnsmasq.pid ]] || fail "bridge mode wrote $T/run/lan/dnsmasq.pid"
for pid in $(ip netns pids "$H"); do
    [[ $(proc_cmdline "$pid") != *dnsmasq* ]] || fail "a dnsmasq runs in H in bridge mode: $(proc_cmdline "$pid")"
done
if ruleset=$(in_ns "$H" nft -j list table inet kvmnet 2>/dev/null); then
    jq -e '[.. | objects | select(has("masquerade") or has("snat") or has("dnat"))] | length == 0' \
        <<<"$ruleset" >/dev/null || fail "NAT rules in bridge mode: $(in_ns "$H" nft list table inet kvmnet)"
fi

log "guest on the LAN: port attach vg1 --mac $GUEST_MAC"
ip -n "$G1" link set eth0 address "$GUEST_MAC"
ctl port attach lan vg1 --mac "$GUEST_MAC"
vg1=$(link_json "$H" vg1)
assert_eq "$(jq -r '.master // ""' <<<"$vg1")" br0 "vg1 master"
assert_eq "$(jq -r .address <<<"$vg1")" "fe:54:00:aa:bb:01" "vg1 (host side) MAC"
port=$(port_json lan vg1)
assert_eq "$(jq -r .state <<<"$port")" attached "vg1 state in port list"
assert_eq "$(jq -r .mac <<<"$port")" "$GUEST_MAC" "vg1 mac in port list"
assert_eq "$(jq -r .host_mac <<<"$port")" "fe:54:00:aa:bb:01" "vg1 host_mac in port list"

# STP is on: a new port listens and learns for 2 x forward delay first.
_forwarding() { [[ $(in_ns "$H" bridge -j link show dev "$1" | jq -r '.[0].state') == forwarding ]]; }
retry 75 _forwarding vg1 || fail "vg1 not forwarding: $(in_ns "$H" bridge -j link show dev vg1)"
lease=$(guest_dhcp "$G1")
read -r gaddr router <<<"$lease"
log "guest lease: $gaddr router $router"
gip=${gaddr%/*}
last=${gip##*.}
[[ $gip == 192.0.2.* && $last -ge 100 && $last -le 150 ]] || fail "guest lease $gaddr is not from L's range 192.0.2.100-150"
assert_eq "${gaddr#*/}" 24 "guest lease prefix"
assert_eq "$router" 192.0.2.1 "guest lease router"
retry 25 grep -q " $GUEST_MAC $gip " "$LAN_LEASES" ||
    fail "L's dnsmasq has no lease '$GUEST_MAC $gip': $(cat "$LAN_LEASES")"
in_ns "$G1" busybox ping -c 2 -W 2 192.0.2.1 >/dev/null || fail "guest cannot ping the LAN router 192.0.2.1"
pings "$G1" 192.0.2.10 || fail "guest cannot ping the host's address 192.0.2.10 (now on br0)"
neigh=$(ip -n "$L" -j neigh show "$gip" dev eth0 | jq -r '.[0].lladdr // ""')
assert_eq "$neigh" "$GUEST_MAC" "MAC the LAN router sees for the guest $gip"

log "daemon restart: the takeover and the port are adopted as they are"
br0_before_restart=$(iface_config "$H" br0)
vg1_index=$(ifindex "$H" vg1)
daemon_stop
assert_eq "$DAEMON_EXIT" 0 "kvmnetd exit status after SIGTERM"
daemon_start
wait_state lan active
assert_eq "$(ifindex "$H" br0)" "$br_index" "br0 ifindex after the daemon restart"
assert_eq "$(ifindex "$H" vg1)" "$vg1_index" "vg1 ifindex after the daemon restart"
assert_eq "$(iface_config "$H" br0)" "$br0_before_restart" "br0 configuration after the daemon restart"
assert_eq "$(jq -r '.master // ""' <<<"$(link_json "$H" uplink0)")" br0 "uplink0 master after the daemon restart"
assert_eq "$(port_json lan vg1 | jq -r .state)" attached "vg1 state after the daemon restart"
pings "$G1" 192.0.2.1 || fail "guest cannot ping 192.0.2.1 after the daemon restart"

log "set: bridge settings change on the running bridge"
br0_before_set=$(iface_config "$H" br0)
ctl set lan stp=off forward_delay=0 hello_time=1 max_age=10 priority=8192 multicast_snooping=on
assert_eq "$(net_state lan)" active "state after set"
assert_eq "$(ifindex "$H" br0)" "$br_index" "br0 ifindex after set (bridge must not be recreated)"
assert_eq "$(bridge_settings)" \
    '{"stp_state":0,"forward_delay":0,"hello_time":100,"max_age":1000,"priority":8192,"mcast_snooping":1}' \
    "br0 settings after set"
br0_after_set=$(iface_config "$H" br0)
[[ $br0_after_set == "$br0_before_set" ]] || fail "set changed br0's addresses or routes:
--- before
$br0_before_set
--- after
$br0_after_set"
assert_eq "$(jq -c .addresses <<<"$(iface_config "$H" uplink0)")" "$keep_addrs" "uplink0 addresses after set"
assert_eq "$(jq -r '.master // ""' <<<"$(link_json "$H" vg1)")" br0 "vg1 master after set"
# With STP off the ports forward at once: no waiting here.
pings "$H" 192.0.2.1 || fail "H cannot ping 192.0.2.1 right after set"
pings "$G1" 192.0.2.1 || fail "guest cannot ping 192.0.2.1 right after set"

ctl set lan stp=on forward_delay=15
assert_eq "$(ifindex "$H" br0)" "$br_index" "br0 ifindex after the second set"
assert_eq "$(bridge_settings)" \
    '{"stp_state":1,"forward_delay":1500,"hello_time":100,"max_age":1000,"priority":8192,"mcast_snooping":1}' \
    "br0 settings after set stp=on forward_delay=15"
assert_eq "$(jq -c '{stp, forward_delay, hello_time, max_age, priority, multicast_snooping}' <<<"$(ctl show lan --json | jq .config)")" \
    '{"stp":true,"forward_delay":15,"hello_time":1,"max_age":10,"priority":8192,"multicast_snooping":true}' \
    "stored bridge settings"

log "stop: uplink0 gets back exactly what it had"
ctl stop lan
wait_state lan inactive
if ip -n "$H" link show br0 >/dev/null 2>&1; then fail "br0 still exists after stop"; fi
after=$(iface_config "$H" uplink0)
[[ $after == "$before" ]] || fail "uplink0 after stop differs from before start:
--- before
$before
--- after
$after"
retry 25 pings "$H" 192.0.2.1 || fail "H cannot ping 192.0.2.1 over uplink0 after stop"
retry 25 pings "$H" 2001:db8:1::1 || fail "H cannot ping 2001:db8:1::1 over uplink0 after stop"
# The guest's veth is not the daemon's: released, not deleted.
assert_eq "$(jq -r '.master // ""' <<<"$(link_json "$H" vg1)")" "" "vg1 master after stop"

ctl delete lan
daemon_stop
assert_eq "$DAEMON_EXIT" 0 "kvmnetd exit status after SIGTERM"
log PASS
