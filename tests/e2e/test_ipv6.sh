#!/usr/bin/env bash
# E2E: IPv6 on NAT networks.
#  - "default" (nat, fd00:1:2:3::1/64, NAT66, SLAAC): the gateway sits on the
#    bridge (not tentative), IPv6 forwarding is on in the host namespace
#    while it runs and back as it was after stop; a guest configures itself
#    from the router advertisements, reaches the "internet" namespace over
#    IPv6 (ping and TCP) with the host's uplink address as its source, and
#    resolves a name through the gateway's IPv6 address; new inbound IPv6
#    connections to it are refused although the internet has a route back;
#  - "dh" (nat, fd00:66::1/64, DHCPv6 range, NAT66): a guest takes an
#    address from the range by DHCPv6 (dhclient -6) and reaches the internet;
#  - the two networks' guests cannot reach each other over IPv6, while the
#    host reaches both;
#  - spoofed IPv6 sources are dropped.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

command -v dhclient >/dev/null || fail "missing tool 'dhclient' (package isc-dhcp-client; run scripts/deps.sh)"
command -v dig >/dev/null || fail "missing tool 'dig' (package dnsutils; run scripts/deps.sh)"

nat_topology
guest_add 2
[[ -e /proc/sys/net/ipv6 ]] || skip "this kernel has no IPv6 (CONFIG_IPV6 or ipv6.disable=1)"
# The internet side speaks IPv6 too: H:uplink0 2001:db8:ff::1, I:eth0 ::2.
ip -n "$H" addr add 2001:db8:ff::1/64 dev uplink0 nodad
ip -n "$I" addr add 2001:db8:ff::2/64 dev eth0 nodad
ip -n "$H" -6 route add default via 2001:db8:ff::2
bus_start
daemon_start

forwarding() { in_ns "$H" sysctl -n net.ipv6.conf.all.forwarding; }
assert_eq "$(forwarding)" 0 "IPv6 forwarding in H before any network"

# global_v6 NS PREFIX: the guest's non-tentative global address in PREFIX (the first four groups).
global_v6() {
    ip -n "$1" -j -6 addr show dev eth0 scope global |
        jq -r --arg p "$2" '[(.[0].addr_info // [])[] | select(.local and (.tentative // false) == false) |
            select(.local | startswith($p)) | .local][0] // empty'
}
_has_global_v6() { [[ -n $(global_v6 "$1" "$2") ]]; }
# link_local_ready NS IF: IF has a link-local address that passed DAD.
link_local_ready() {
    [[ -n $(ip -n "$1" -j -6 addr show dev "$2" scope link |
        jq -r '(.[0].addr_info // [])[] | select(.local and (.tentative // false) == false) | .local') ]]
}
# solicit GUESTNS BRIDGE: once the bridge (which gets its link-local address
# only when its first port brings carrier) can send router advertisements,
# make the guest solicit one by taking its link down and up.
solicit() {
    retry 50 link_local_ready "$H" "$2" || fail "$2 has no usable link-local address"
    ip -n "$1" link set eth0 down
    ip -n "$1" link set eth0 up
}
# has_default_route NS: the guest has an IPv6 default route (from an RA).
has_default_route() { [[ -n $(ip -n "$1" -6 route show default) ]]; }
# tcp6_listen NS PORT: a socat IPv6 listener answering with the peer's address.
tcp6_listen() {
    spawn_in_ns "$1" socat "TCP6-LISTEN:$2,reuseaddr,fork,ipv6only=1" 'SYSTEM:echo $SOCAT_PEERADDR' \
        >>"$T/socat.log" 2>&1
    track_pid "$SPAWNED_PID"
    retry 50 _listening "$1" "$2" || fail "IPv6 listener on $1:$2 did not come up"
}
# tcp6_get NS ADDR PORT: connect, print what the server sends, brackets removed
# (socat writes the peer's address in full: 2001:0db8:00ff:0000:...).
tcp6_get() {
    local out
    out=$(in_ns "$1" socat -T 3 - "TCP6:[$2]:$3,connect-timeout=3" </dev/null) || return 1
    out=${out#[}
    echo "${out%]}"
}

log "NAT network with SLAAC and NAT66"
ctl create default --mode nat --bridge kvmbr0 --ipv4 192.168.122.1/24 \
    --dhcp-range 192.168.122.100-192.168.122.199 --dhcp-host 52:54:00:aa:00:09,192.168.122.50,web \
    --domain kvm.lan --ipv6 fd00:1:2:3::1/64 --nat66
assert_eq "$(ctl show default --json | jq -c .config.ipv6)" '{"address":"fd00:1:2:3::1/64","nat66":true,"ra":true}' \
    "ipv6 in Describe"
ctl start default
wait_state default active
gw=$(ip -n "$H" -j -6 addr show dev kvmbr0 scope global | jq -c '[.[0].addr_info[] | select(.local)]')
assert_eq "$(jq -r '.[] | "\(.local)/\(.prefixlen)"' <<<"$gw")" fd00:1:2:3::1/64 "IPv6 addresses on kvmbr0"
assert_eq "$(jq -r '.[0].tentative // false' <<<"$gw")" false "gateway tentative"
assert_eq "$(forwarding)" 1 "IPv6 forwarding in H while a network with ipv6 runs"
ruleset=$(in_ns "$H" nft list table inet kvmnet)
assert_contains "$ruleset" 'iifname @nat66_bridges iifname . ip6 saddr @net6 iifname . ip6 daddr != @net6 masquerade' \
    "NAT66 rule"
assert_contains "$ruleset" '"kvmbr0" . fd00:1:2:3::/64 comment "default"' "the network's IPv6 subnet in @net6"
assert_contains "$ruleset" 'iifname . ip6 saddr != @net6 iifname @drops_spoofed6 counter packets' "IPv6 spoofing rule"
grep -qx enable-ra "$T/run/default/dnsmasq.conf" || fail "dnsmasq.conf lacks enable-ra"

log "a guest configures itself by SLAAC"
guest_plug "$G1" vg1 kvmbr0
solicit "$G1" kvmbr0
retry 75 _has_global_v6 "$G1" fd00:1:2:3: ||
    fail "no SLAAC address in $G1: $(ip -n "$G1" -6 addr show dev eth0)"
g1=$(global_v6 "$G1" fd00:1:2:3:)
log "guest 1 has $g1"
retry 75 has_default_route "$G1" || fail "no default route from the RA in $G1"
assert_contains "$(ip -n "$G1" -6 route show default)" "proto ra" "guest 1's default route"

log "out over IPv6 through NAT66"
retry 10 pings "$G1" 2001:db8:ff::2 || fail "guest 1 cannot ping 2001:db8:ff::2"
tcp6_listen "$I" 9006
seen=$(tcp6_get "$G1" 2001:db8:ff::2 9006) || fail "guest 1 cannot connect to [2001:db8:ff::2]:9006"
assert_eq "$seen" 2001:0db8:00ff:0000:0000:0000:0000:0001 "source address seen by the internet namespace"

log "DNS through the IPv6 gateway"
assert_eq "$(in_ns "$G1" dig +short +tries=1 +time=3 @fd00:1:2:3::1 web.kvm.lan A)" 192.168.122.50 \
    "web.kvm.lan asked at fd00:1:2:3::1"

log "inbound IPv6 is refused"
ip -n "$I" -6 route add fd00:1:2:3::/64 via 2001:db8:ff::1
tcp6_listen "$G1" 9007
assert_eq "$(tcp6_get "$H" "$g1" 9007)" fd00:0001:0002:0003:0000:0000:0000:0001 "host connecting to guest 1"
if out=$(tcp6_get "$I" "$g1" 9007 2>&1); then
    fail "a new connection from the internet namespace to [$g1]:9007 succeeded (got '$out')"
fi

log "an IPv6 port forward: from the internet namespace, and on one host address"
ctl forward add default tcp 8087 "[$g1]:9007"
assert_eq "$(tcp6_get "$I" 2001:db8:ff::1 8087)" 2001:0db8:00ff:0000:0000:0000:0000:0002 \
    "internet -> [2001:db8:ff::1]:8087 reaches guest 1 with the client's address"
ctl forward add default --host-port 8088 --host-address 2001:db8:ff::1 --guest "$g1" --guest-port 9007
assert_eq "$(tcp6_get "$I" 2001:db8:ff::1 8088)" 2001:0db8:00ff:0000:0000:0000:0000:0002 "forward on one address"
# The IPv4 side of the same port is not forwarded: the families are apart.
if out=$(tcp_get "$I" 203.0.113.1 8087 1 2>/dev/null) && [[ -n $out ]]; then
    fail "the IPv6 forward answered on IPv4: $out"
fi
expect_error InvalidArgument forward add default --host-port 8089 --host-address 2001:db8:ff::1 \
    --guest 192.168.122.10 --guest-port 80
assert_contains "$ERR_MSG" "forward.host_address: an IPv6 host address needs an IPv6 guest address" "mixed families"
expect_error InvalidArgument forward add default --host-port 8089 --guest fd00:9::10 --guest-port 80
assert_contains "$ERR_MSG" "forward.guest: fd00:9::10 is not inside the network's IPv6 subnet" "guest outside"
conns=$(ctl forward list default --json | jq -r '.[] | select(.host_port == 8087) | .connections')
((conns >= 1)) || fail "the IPv6 forward counted no connection"
ctl forward remove default tcp '[::]:8087'
ctl forward remove default tcp '[2001:db8:ff::1]:8088'
assert_eq "$(ctl forward list default --json | jq length)" 0 "IPv6 forwards removed"

log "spoofed IPv6 sources are dropped"
spoofed6() { ctl stats default --json | jq '[.drops[] | select(.rule == "spoofed IPv6 source") | .packets] | add'; }
before=$(spoofed6)
ip -n "$G1" addr add fd00:99::5/64 dev eth0 nodad
in_ns "$G1" busybox ping6 -c 2 -W 1 -I fd00:99::5 2001:db8:ff::2 >/dev/null 2>&1 &&
    fail "a spoofed source reached the internet namespace"
after=$(spoofed6)
((after > before)) || fail "the spoofing rule counted no packets for the network ($before -> $after)"
ip -n "$G1" addr del fd00:99::5/64 dev eth0

log "a second NAT network with DHCPv6"
ctl create dh --mode nat --bridge kvmbr1 --ipv4 10.66.0.1/24 --dhcp-range 10.66.0.100-10.66.0.199 \
    --ipv6 fd00:66::1/64 --ipv6-range fd00:66::100-fd00:66::1ff --nat66
ctl start dh
wait_state dh active
grep -qx 'dhcp-range=fd00:66::100,fd00:66::1ff,64,1h' "$T/run/dh/dnsmasq.conf" ||
    fail "no DHCPv6 range in dh's dnsmasq.conf: $(cat "$T/run/dh/dnsmasq.conf")"
guest_plug "$G2" vg2 kvmbr1
solicit "$G2" kvmbr1
# The router advertisement first (it tells the guest to use DHCPv6 and
# carries the default route), then DHCPv6.
retry 75 has_default_route "$G2" || fail "no default route from the RA in $G2: $(ip -n "$G2" -6 route)"
# dhclient needs a usable link-local address.
retry 50 link_local_ready "$G2" eth0 || fail "no link-local address on $G2 eth0"
: >"$T/dhclient6.conf"
# Instead of /sbin/dhclient-script (which would rewrite /etc/resolv.conf):
# put the leased address on the guest's interface and record it. dhclient
# runs it with an environment of its own, so the file name is written in.
cat >"$T/dhclient6.script" <<SCRIPT
#!/bin/sh
case "\$reason" in
BOUND6 | RENEW6 | REBIND6 | REBOOT6)
    [ -n "\$new_ip6_address" ] || exit 0
    ip -6 addr replace "\$new_ip6_address/\${new_ip6_prefixlen:-128}" dev "\$interface" nodad
    echo "\$new_ip6_address/\${new_ip6_prefixlen:-128}" >"$T/lease6.$G2"
    ;;
esac
exit 0
SCRIPT
chmod 755 "$T/dhclient6.script"
spawn_in_ns "$G2" dhclient -6 -d -v -cf "$T/dhclient6.conf" -sf "$T/dhclient6.script" \
    -lf "$T/dhclient6.leases" -pf "$T/dhclient6.pid" eth0 >"$T/dhclient6.log" 2>&1
dhclient_pid=$SPAWNED_PID
track_pid "$dhclient_pid"
retry 75 test -s "$T/lease6.$G2" || fail "no DHCPv6 lease in $G2: $(cat "$T/dhclient6.log")"
lease6=$(cat "$T/lease6.$G2")
g2=${lease6%/*}
log "guest 2 leased $lease6"
[[ $g2 == fd00:66::1[0-9a-f][0-9a-f] ]] || fail "DHCPv6 address $g2 outside fd00:66::100-fd00:66::1ff"
# The RA of a DHCPv6 network is "managed": no SLAAC address besides the lease.
assert_eq "$(ip -n "$G2" -j -6 addr show dev eth0 scope global | jq -r '[.[0].addr_info[] | select(.local) | .local] | join(" ")')" \
    "$g2" "global addresses of guest 2"
retry 10 pings "$G2" 2001:db8:ff::2 || fail "guest 2 cannot ping 2001:db8:ff::2"
assert_eq "$(tcp6_get "$G2" 2001:db8:ff::2 9006)" 2001:0db8:00ff:0000:0000:0000:0000:0001 \
    "guest 2's source seen by the internet namespace"
retry 25 grep -q "$g2" "$T/run/dh/dnsmasq.leases" || fail "dnsmasq did not record the DHCPv6 lease of $g2"
lease=$(ctl leases dh --json | jq -c --arg ip "$g2" '.[] | select(.ip == $ip)')
[[ -n $lease ]] || fail "kvmnetctl leases does not list the DHCPv6 lease of $g2: $(ctl leases dh --json)"
assert_eq "$(jq -r '.family, .type' <<<"$lease" | paste -sd' ')" "ipv6 dynamic" "family and type of the DHCPv6 lease"
[[ $(jq -r .duid <<<"$lease") =~ ^[0-9a-f]{2}(:[0-9a-f]{2})+$ ]] || fail "DHCPv6 lease without a DUID: $lease"
jq -e '.iaid | type == "number"' <<<"$lease" >/dev/null || fail "DHCPv6 lease without an IAID: $lease"
assert_contains "$(ctl leases dh)" "$g2" "leases table: the DHCPv6 lease"

log "IPv6 isolation between the networks"
pings "$H" "$g1" || fail "host cannot ping guest 1 ($g1)"
pings "$H" "$g2" || fail "host cannot ping guest 2 ($g2)"
if pings "$G1" "$g2"; then fail "guest 1 reached guest 2 ($g2) across networks"; fi
if pings "$G2" "$g1"; then fail "guest 2 reached guest 1 ($g1) across networks"; fi
tcp6_listen "$G2" 9008
if out=$(tcp6_get "$G1" "$g2" 9008 2>&1); then fail "guest 1 connected to guest 2's [$g2]:9008 (got '$out')"; fi

log "stop puts everything back"
stop_pid "$dhclient_pid"
ctl stop dh
wait_state dh inactive
assert_eq "$(forwarding)" 1 "IPv6 forwarding while default still runs"
ctl stop default
wait_state default inactive
assert_eq "$(forwarding)" 0 "IPv6 forwarding in H after the last network stopped"
if ip -n "$H" link show kvmbr0 >/dev/null 2>&1; then fail "kvmbr0 still exists after stop"; fi
if in_ns "$H" nft list table inet kvmnet >/dev/null 2>&1; then fail "table inet kvmnet still exists"; fi

daemon_stop
assert_eq "$DAEMON_EXIT" 0 "kvmnetd exit status after SIGTERM"
log PASS
