#!/usr/bin/env bash
# E2E, coexistence cell (d) over IPv6: ufw (iptables-nft, both families)
# enabled with its default policies in the test's host namespace beside a
# NAT network with DHCPv6 and NAT66. ufw's ip6 filter drops the guests'
# DNS and DHCPv6 (input) and forwarded IPv6 (forward); it accepts router
# solicitations, so router advertisements still reach the guest. The
# network is degraded (foreign-firewall); diagnose names ufw's ip6 chains
# and prints the exact commands, DHCPv6's included; once they are typed the
# network is active again by itself, and the guest gets a DHCPv6 lease,
# resolves a name over IPv6 through the network's dnsmasq and reaches the
# "internet" namespace over IPv6 (ping, TCP); diagnose then warns no more.
# Not here: an IPv6 port forward into the guest.
# ufw runs as in test_coexist_ufw: a mount namespace per call with private
# copies of /etc/ufw and /etc/default/ufw.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

command -v ufw >/dev/null || skip "ufw not installed (run scripts/deps-coexist.sh)"
command -v dhclient >/dev/null || fail "missing tool 'dhclient' (package isc-dhcp-client; run scripts/deps.sh)"
command -v dig >/dev/null || fail "missing tool 'dig' (package dnsutils; run scripts/deps.sh)"

nat_topology
[[ -e /proc/sys/net/ipv6 ]] || skip "this kernel has no IPv6 (CONFIG_IPV6 or ipv6.disable=1)"
ip -n "$H" addr add 2001:db8:ff::1/64 dev uplink0 nodad
ip -n "$I" addr add 2001:db8:ff::2/64 dev eth0 nodad
ip -n "$H" -6 route add default via 2001:db8:ff::2
bus_start

U=$T/ufw
mkdir -p "$U"
cp -a /etc/ufw "$U/etc"
cp /etc/default/ufw "$U/default"
: >"$U/sysctl.conf"
sed -i "s|^IPT_SYSCTL=.*|IPT_SYSCTL=$U/sysctl.conf|" "$U/default"
grep -qx 'IPV6=yes' "$U/default" || skip "ufw is configured without IPv6 (IPV6=yes in /etc/default/ufw)"
ufw_ns() {
    in_ns "$H" unshare --mount --propagation private sh -c \
        'mount --bind "$1" /etc/ufw && mount --bind "$2" /etc/default/ufw && shift 2 && exec ufw "$@"' \
        ufw "$U/etc" "$U/default" "$@"
}
host_ufw_before=$(cat /etc/ufw/ufw.conf)

daemon_start
ctl create default --mode nat --bridge kvmbr0 --ipv4 192.168.122.1/24 \
    --dhcp-range 192.168.122.100-192.168.122.254 --dhcp-host 52:54:00:aa:00:09,192.168.122.50,web --domain kvm.lan \
    --ipv6 fd00:66::1/64 --ipv6-range fd00:66::100-fd00:66::1ff --nat66
ctl start default
wait_state default active

log "ufw enable (default policies) in $H"
ufw_ns --force enable >/dev/null
assert_contains "$(ufw_ns status verbose)" "deny (routed)" "ufw's routed policy"
wait_state default degraded 25

status_of() { jq -r --arg c "$2" '.checks[] | select(.check == $c) | .status + ": " + .detail' <<<"$1"; }
report=$(ctl diagnose default --json) || fail "a warning must not fail diagnose: $report"
log "diagnose: $(jq -c '[.checks[] | select(.check == "foreign-firewall")]' <<<"$report")"
assert_contains "$(status_of "$report" foreign-firewall)" \
    "warn: chain ip6 filter FORWARD (hook forward, policy drop) is ufw's and drops guests' forwarded traffic; let them through with: ufw route allow in on kvmbr0; ufw route allow out on kvmbr0" \
    "diagnose of ufw's ip6 forward chain"
assert_contains "$(status_of "$report" foreign-firewall)" \
    "warn: chain ip6 filter INPUT (hook input, policy drop) is ufw's and drops guests' DNS and DHCPv6; let them through with: ufw allow in on kvmbr0 to any port 53; ufw allow in on kvmbr0 to any port 547 proto udp" \
    "diagnose of ufw's ip6 input chain"

log "the printed commands let the guest through"
ufw_ns route allow in on kvmbr0 >/dev/null
ufw_ns route allow out on kvmbr0 >/dev/null
ufw_ns allow in on kvmbr0 to any port 67 proto udp >/dev/null
ufw_ns allow in on kvmbr0 to any port 53 >/dev/null
ufw_ns allow in on kvmbr0 to any port 547 proto udp >/dev/null
wait_state default active 25

guest_plug "$G1" vg1 kvmbr0
# The router advertisement (default route, "managed": use DHCPv6), once
# the bridge has a usable link-local address; then DHCPv6.
link_local_ready() {
    [[ -n $(ip -n "$1" -j -6 addr show dev "$2" scope link |
        jq -r '(.[0].addr_info // [])[] | select(.local and (.tentative // false) == false) | .local') ]]
}
retry 50 link_local_ready "$H" kvmbr0 || fail "kvmbr0 has no usable link-local address"
ip -n "$G1" link set eth0 down
ip -n "$G1" link set eth0 up
has_default_route() { [[ -n $(ip -n "$1" -6 route show default) ]]; }
retry 75 has_default_route "$G1" || fail "no default route from the RA beside ufw: $(ip -n "$G1" -6 route)"
retry 50 link_local_ready "$G1" eth0 || fail "no link-local address on $G1 eth0"
: >"$T/dhclient6.conf"
cat >"$T/dhclient6.script" <<SCRIPT
#!/bin/sh
case "\$reason" in
BOUND6 | RENEW6 | REBIND6 | REBOOT6)
    [ -n "\$new_ip6_address" ] || exit 0
    ip -6 addr replace "\$new_ip6_address/\${new_ip6_prefixlen:-128}" dev "\$interface" nodad
    echo "\$new_ip6_address/\${new_ip6_prefixlen:-128}" >"$T/lease6"
    ;;
esac
exit 0
SCRIPT
chmod 755 "$T/dhclient6.script"
spawn_in_ns "$G1" dhclient -6 -d -v -cf "$T/dhclient6.conf" -sf "$T/dhclient6.script" \
    -lf "$T/dhclient6.leases" -pf "$T/dhclient6.pid" eth0 >"$T/dhclient6.log" 2>&1
dhclient_pid=$SPAWNED_PID
track_pid "$dhclient_pid"
retry 75 test -s "$T/lease6" || fail "no DHCPv6 lease beside ufw: $(cat "$T/dhclient6.log")"
g6=$(cut -d/ -f1 "$T/lease6")
log "DHCPv6 lease $g6"
dns=$(in_ns "$G1" dig +short +tries=1 +time=3 @fd00:66::1 web.kvm.lan A) || fail "no DNS reply over IPv6 beside ufw"
assert_eq "$dns" 192.168.122.50 "web.kvm.lan through the network's dnsmasq over IPv6 beside ufw"
retry 10 pings "$G1" 2001:db8:ff::2 || fail "the guest cannot ping 2001:db8:ff::2 beside ufw"
spawn_in_ns "$I" socat "TCP6-LISTEN:9006,reuseaddr,fork,ipv6only=1" 'SYSTEM:echo ok' >>"$T/socat.log" 2>&1
track_pid "$SPAWNED_PID"
retry 50 _listening "$I" 9006 || fail "IPv6 listener did not come up"
assert_eq "$(in_ns "$G1" socat -T 3 - "TCP6:[2001:db8:ff::2]:9006,connect-timeout=3" </dev/null)" ok \
    "the guest's IPv6 TCP to the internet namespace beside ufw"
report=$(ctl diagnose default --json) || fail "diagnose after the commands: $report"
assert_not_contains "$(status_of "$report" foreign-firewall)" "warn:" "diagnose once ufw lets the guests through"
assert_eq "$(cat /etc/ufw/ufw.conf)" "$host_ufw_before" "the machine's /etc/ufw/ufw.conf"

stop_pid "$dhclient_pid"
ctl stop default
daemon_stop
log "PASS"
