#!/usr/bin/env bash
# E2E: static DHCPv6 hosts (ipv6.dhcp.hosts) with the real dnsmasq and real
# DHCPv6 clients (ISC dhclient -6) in guest namespaces:
#  - guest 2 is reserved by its MAC in the document the network is created
#    with; its dhclient (DUID-LLT, the default) gets exactly that address,
#    not one of the range, and the lease is listed as static;
#  - guest 3 is reserved by its DUID (dhclient -D LL: DUID-LL from its MAC)
#    with `kvmnetctl host add` on the running network: dnsmasq re-reads its
#    hosts (same pid, no restart) and guest 3 gets that address (a static
#    lease); the name
#    resolves (AAAA) through the gateway; `host list` shows both hosts;
#  - bad hosts are refused naming the field, nothing changes; `host remove`
#    by DUID and by MAC empties the list.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

command -v dhclient >/dev/null || fail "missing tool 'dhclient' (package isc-dhcp-client; run scripts/deps.sh)"
command -v dig >/dev/null || fail "missing tool 'dig' (package dnsutils; run scripts/deps.sh)"

nat_topology
guest_add 2
guest_add 3
[[ -e /proc/sys/net/ipv6 ]] || skip "this kernel has no IPv6 (CONFIG_IPV6 or ipv6.disable=1)"
bus_start
daemon_start

mac_of() { ip -n "$1" -j link show dev eth0 | jq -r '.[0].address'; }
# link_local_ready NS IF: IF has a link-local address that passed DAD.
link_local_ready() {
    [[ -n $(ip -n "$1" -j -6 addr show dev "$2" scope link |
        jq -r '(.[0].addr_info // [])[] | select(.local and (.tentative // false) == false) | .local') ]]
}
has_default_route() { [[ -n $(ip -n "$1" -6 route show default) ]]; }
mac2=$(mac_of "$G2")
mac3=$(mac_of "$G3")
duid3=00:03:00:01:$mac3

# dhcp6 N [DHCLIENT-ARGS...]: dhclient -6 in guest N; its address lands in
# $T/lease6.N (the script puts it on eth0, as test_ipv6.sh does).
dhcp6() {
    local n=$1 ns
    shift
    ns=${PFX}g$n
    retry 50 link_local_ready "$ns" eth0 || fail "no link-local address on $ns eth0"
    : >"$T/dhclient6.$n.conf"
    cat >"$T/dhclient6.$n.script" <<SCRIPT
#!/bin/sh
case "\$reason" in
BOUND6 | RENEW6 | REBIND6 | REBOOT6)
    [ -n "\$new_ip6_address" ] || exit 0
    ip -6 addr replace "\$new_ip6_address/\${new_ip6_prefixlen:-128}" dev "\$interface" nodad
    echo "\$new_ip6_address" >"$T/lease6.$n"
    ;;
esac
exit 0
SCRIPT
    chmod 755 "$T/dhclient6.$n.script"
    spawn_in_ns "$ns" dhclient -6 -d -v "$@" -cf "$T/dhclient6.$n.conf" -sf "$T/dhclient6.$n.script" \
        -lf "$T/dhclient6.$n.leases" -pf "$T/dhclient6.$n.pid" eth0 >"$T/dhclient6.$n.log" 2>&1
    DHCLIENT_PID=$SPAWNED_PID
    track_pid "$DHCLIENT_PID"
    retry 75 test -s "$T/lease6.$n" || fail "no DHCPv6 lease in guest $n: $(cat "$T/dhclient6.$n.log")"
}

log "a network whose document reserves fd00:67::10 for guest 2's MAC"
cat >"$T/s6.json" <<EOF
{"name": "s6", "mode": "nat", "bridge": "kvmbr1", "ipv4": {"address": "10.67.0.1/24"},
 "dns": {"domain": "six.test"},
 "ipv6": {"address": "fd00:67::1/64", "dhcp": {"ranges": ["fd00:67::100-fd00:67::1ff"],
          "hosts": [{"mac": "$mac2", "ip": "fd00:67::10", "name": "byMac"}]}}}
EOF
ctl create s6 --file "$T/s6.json"
assert_eq "$(ctl export s6 | jq -c .ipv6.dhcp.hosts)" "[{\"ip\":\"fd00:67::10\",\"mac\":\"$mac2\",\"name\":\"byMac\"}]" "exported hosts"
ctl start s6
wait_state s6 active
assert_eq "$(cat "$T/run/s6/dnsmasq.hosts")" "$mac2,[fd00:67::10],byMac" "dnsmasq.hosts"
grep -qx "dhcp-hostsfile=$T/run/s6/dnsmasq.hosts" "$T/run/s6/dnsmasq.conf" ||
    fail "no dhcp-hostsfile in dnsmasq.conf: $(cat "$T/run/s6/dnsmasq.conf")"

guest_plug "$G2" vg2 kvmbr1
guest_plug "$G3" vg3 kvmbr1
retry 50 link_local_ready "$H" kvmbr1 || fail "kvmbr1 has no usable link-local address"
for g in "$G2" "$G3"; do
    ip -n "$g" link set eth0 down
    ip -n "$g" link set eth0 up
done
retry 75 has_default_route "$G2" || fail "no default route from the RA in $G2: $(ip -n "$G2" -6 route)"

log "guest 2 (by MAC) gets its static address"
dhcp6 2
pid2=$DHCLIENT_PID
assert_eq "$(cat "$T/lease6.2")" fd00:67::10 "guest 2's DHCPv6 address"
retry 25 grep -q "fd00:67::10" "$T/run/s6/dnsmasq.leases" || fail "dnsmasq did not record guest 2's lease"
lease=$(ctl leases s6 --json | jq -c '.[] | select(.ip == "fd00:67::10")')
[[ -n $lease ]] || fail "kvmnetctl leases does not list fd00:67::10: $(ctl leases s6 --json)"
assert_eq "$(jq -r '.family, .type' <<<"$lease" | paste -sd' ')" "ipv6 static" "family and type of guest 2's lease"
pings "$H" fd00:67::10 || fail "host cannot ping guest 2 at fd00:67::10"

log "refused hosts name the field and change nothing"
before=$(ctl export s6)
pid=$(dnsmasq_pid s6)
expect_error InvalidArgument host add s6 "$duid3" fd00:68::20
assert_eq "$ERR_MSG" "host.ip: fd00:68::20 is not a free host address inside fd00:67::/64" "a host outside the prefix"
expect_error InvalidArgument host add s6 00:03:00:01:5z:54:00 fd00:67::20
assert_contains "$ERR_MSG" "host.duid: '00:03:00:01:5z:54:00' is not a DUID" "a bad DUID"
expect_error Conflict host add s6 "$duid3" fd00:67::10
assert_eq "$ERR_MSG" "host.ip: fd00:67::10 is already reserved for $mac2" "a taken address"
expect_error InvalidArgument set s6 "ipv6.dhcp.hosts[0].duid=\"$duid3\""
assert_contains "$ERR_MSG" "ipv6.dhcp.hosts[0].duid: give either mac or duid, not both" "a host with mac and duid"
assert_eq "$(ctl export s6)" "$before" "the document after refused hosts"

log "guest 3 reserved by its DUID on the running network: no dnsmasq restart"
ctl host add s6 "$duid3" fd00:67::20 byDuid
assert_eq "$(cat "$T/run/s6/dnsmasq.hosts")" "$mac2,[fd00:67::10],byMac
id:$duid3,[fd00:67::20],byDuid" "dnsmasq.hosts after host add"
assert_eq "$(dnsmasq_pid s6)" "$pid" "dnsmasq pid after host add"
assert_eq "$(ctl host list s6 --json | jq -r 'map(.mac // .duid) | join(" ")')" "$mac2 $duid3" "host list --json"
assert_contains "$(ctl host list s6)" "$duid3  fd00:67::20" "host list table"
# DUID-LL: type 3, hardware type 1, the MAC.
dhcp6 3 -D LL
pid3=$DHCLIENT_PID
assert_eq "$(cat "$T/lease6.3")" fd00:67::20 "guest 3's DHCPv6 address"
retry 25 grep -q "fd00:67::20" "$T/run/s6/dnsmasq.leases" || fail "dnsmasq did not record guest 3's lease"
assert_eq "$(ctl leases s6 --json | jq -r '.[] | select(.ip == "fd00:67::20") | .duid, .type' | paste -sd' ')" \
    "$duid3 static" "DUID and type of guest 3's lease"
assert_eq "$(in_ns "$G2" dig +short +time=2 +tries=3 @fd00:67::1 AAAA bydiud.six.test)" "" "an unknown name"
assert_eq "$(in_ns "$G2" dig +short +time=2 +tries=3 @fd00:67::1 AAAA byduid.six.test)" fd00:67::20 "AAAA of byduid.six.test"
assert_eq "$(in_ns "$G3" dig +short +time=2 +tries=3 @fd00:67::1 AAAA bymac.six.test)" fd00:67::10 "AAAA of bymac.six.test"

log "host remove by DUID and by MAC"
ctl host remove s6 "$duid3"
ctl host remove s6 "$mac2"
assert_eq "$(ctl export s6 | jq -c '.ipv6.dhcp.hosts // []')" "[]" "hosts after remove"
assert_eq "$(cat "$T/run/s6/dnsmasq.hosts")" "" "dnsmasq.hosts after remove"
assert_eq "$(dnsmasq_pid s6)" "$pid" "dnsmasq pid after host remove"
expect_error NotFound host remove s6 "$mac2"
assert_contains "$ERR_MSG" "has no static host with MAC $mac2 or DUID" "removing a removed host"

stop_pid "$pid2"
stop_pid "$pid3"
ctl stop s6
wait_state s6 inactive
ctl delete s6
daemon_stop
assert_eq "$DAEMON_EXIT" 0 "kvmnetd exit status after SIGTERM"
log PASS
