#!/usr/bin/env bash
# E2E, coexistence cell (b): a real firewalld 1.3 (Debian firewalld,
# nftables backend) runs in the test's host namespace, on the test's private
# bus (it talks to the system bus: DBUS_SYSTEM_BUS_ADDRESS), with a private
# copy of its configuration (--default-config: /usr/lib/firewalld plus
# kvmnet's zone and policies from firewalld/ in the source tree;
# --system-config: a copy of /etc/firewalld) and a private /run (a mount
# namespace of its own). firewalld puts an unknown bridge into its default
# zone (public), which rejects the guests' DHCP and DNS and does not forward
# their traffic; kvmnetd puts the bridge of a running NAT network into the
# zone "kvmnet" through firewalld's D-Bus API, so a guest gets a lease,
# resolves a name through the network's dnsmasq, reaches the "internet"
# namespace and is reached through a port forward, over IPv4 and IPv6
# (SLAAC, NAT66, an IPv6 forward). A second network with
# "firewall_integration": false is cut off, and diagnose names firewalld.
# `firewall-cmd --reload` (Debian's FlushAllOnReload=yes drops run-time
# zone bindings) and a restart of firewalld each put the bridge back (the
# Reloaded signal, NameOwnerChanged), an open TCP connection survives both
# and new ones work; a routed network's guest is reached from outside
# (policy kvmnet-in); while firewalld hangs (SIGSTOP) kvmnetd still answers
# (its calls to firewalld never wait on its loop; diagnose answers within
# its 3 s wait and says firewalld does not answer) and, resumed, the bridge
# ends in the zone; when firewalld loses zone kvmnet (files removed,
# reload) the network is degraded (StateReasonCode firewalld, with
# PropertiesChanged) and active again once the zone is back; on stop the
# bridges leave the zone.
# Packages: scripts/deps-coexist.sh (firewalld, never started by the
# machine). firewalld's confinement: lib-firewalld.sh.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib-firewalld.sh"
command -v dig >/dev/null || fail "missing tool 'dig' (package dnsutils; run scripts/deps.sh)"
command -v busctl >/dev/null || fail "missing tool 'busctl' (package systemd)"

nat_topology
G2=${PFX}g2
G3=${PFX}g3
ns_create "$G2"
ns_create "$G3"
veth_pair "$H" vg2 "$G2" eth0
veth_pair "$H" vg3 "$G3" eth0
[[ -e /proc/sys/net/ipv6 ]] || skip "this kernel has no IPv6 (CONFIG_IPV6 or ipv6.disable=1)"
# The internet side speaks IPv6 too: H:uplink0 2001:db8:ff::1, I:eth0 ::2.
ip -n "$H" addr add 2001:db8:ff::1/64 dev uplink0 nodad
ip -n "$I" addr add 2001:db8:ff::2/64 dev eth0 nodad
ip -n "$H" -6 route add default via 2001:db8:ff::2
bus_start

log "firewalld in the host namespace $H"
firewalld_setup
firewalld_start
in_ns "$H" nft list table inet firewalld >/dev/null || fail "firewalld has no table inet firewalld"
assert_eq "$(fw --get-default-zone)" public "firewalld's default zone"
assert_contains "$(fw --get-zones)" kvmnet "firewalld's zones (kvmnet's from firewalld/)"
assert_contains "$(fw --get-policies)" kvmnet-to-host "firewalld's policies"

daemon_start

log "networks: one integrated, one opted out"
ctl create default --mode nat --bridge kvmbr0 --ipv4 192.168.122.1/24 \
    --dhcp-range 192.168.122.100-192.168.122.254 --dhcp-host 52:54:00:aa:00:09,192.168.122.50,web --domain kvm.lan \
    --ipv6 fd00:1:2:3::1/64 --nat66
jq -n '{name: "manual", mode: "nat", bridge: "kvmbr1", firewall_integration: false,
        ipv4: {address: "192.168.123.1/24", dhcp: {ranges: ["192.168.123.100-192.168.123.254"]}}}' >"$T/manual.json"
ctl create manual --file "$T/manual.json"
ctl start default
ctl start manual
wait_state default active
wait_state manual active

retry 50 _in_zone kvmbr0 || fail "kvmbr0 is not in firewalld's zone kvmnet: '$(zone_of kvmbr0)'"
assert_eq "$(fw --zone=kvmnet --list-interfaces)" kvmbr0 "interfaces of zone kvmnet"
describe() {
    busctl --address="$DBUS_SYSTEM_BUS_ADDRESS" --json=short call org.kvmnet1 /org/kvmnet1 \
        org.kvmnet1.Manager Describe | jq -r '.data[0]' | jq -c --arg n "$1" '.networks[] | select(.name == $n)'
}
assert_eq "$(describe default | jq -r .firewalld_zone)" kvmnet "Describe's firewalld_zone of default"
assert_eq "$(describe manual | jq -r 'has("firewalld_zone")')" false "Describe of the opted-out network"

log "guest of the integrated network"
guest_plug "$G1" vg1 kvmbr0
# The bridge can send router advertisements once it has a link-local
# address (with its first port); the guest then solicits one by taking its
# link down and up (before DHCP, which would lose its default route).
ready_v6() {
    [[ -n $(ip -n "$1" -j -6 addr show dev "$2" scope "$3" |
        jq -r '(.[0].addr_info // [])[] | select(.local and (.tentative // false) == false) | .local') ]]
}
retry 50 ready_v6 "$H" kvmbr0 link || fail "kvmbr0 has no usable link-local address"
ip -n "$G1" link set eth0 down
ip -n "$G1" link set eth0 up
read -r gaddr _ <<<"$(guest_dhcp "$G1")"
gip=${gaddr%/*}
log "lease $gip"
dns=$(in_ns "$G1" dig +short +tries=1 +time=3 @192.168.122.1 web.kvm.lan A) || fail "no DNS reply from the network's dnsmasq"
assert_eq "$dns" 192.168.122.50 "web.kvm.lan through the network's dnsmasq beside firewalld"
in_ns "$G1" busybox ping -c 2 -W 2 203.0.113.2 >/dev/null || fail "guest cannot ping 203.0.113.2 beside firewalld"
listen_tcp "$I" 9000 'echo $SOCAT_PEERADDR'
assert_eq "$(tcp_get "$G1" 203.0.113.2 9000)" 203.0.113.1 "guest's TCP to the internet namespace beside firewalld"

log "port forward to the guest"
listen_tcp "$G1" 9001 'echo guest'
ctl forward add default tcp 8080 "$gip:9001"
assert_eq "$(tcp_get "$I" 203.0.113.1 8080)" guest "port forward beside firewalld"

log "IPv6: SLAAC, DNS at the IPv6 gateway, out through NAT66, an IPv6 port forward"
retry 75 ready_v6 "$G1" eth0 global || fail "no SLAAC address in $G1: $(ip -n "$G1" -6 addr show dev eth0)"
g6=$(ip -n "$G1" -j -6 addr show dev eth0 scope global | jq -r '[.[0].addr_info[] | select(.local) | .local][0]')
log "guest has $g6"
assert_eq "$(in_ns "$G1" dig +short +tries=1 +time=3 @fd00:1:2:3::1 web.kvm.lan A)" 192.168.122.50 \
    "web.kvm.lan asked at fd00:1:2:3::1 beside firewalld"
retry 10 pings "$G1" 2001:db8:ff::2 || fail "guest cannot ping 2001:db8:ff::2 beside firewalld"
spawn_in_ns "$I" socat TCP6-LISTEN:9006,reuseaddr,fork,ipv6only=1 'SYSTEM:echo internet6' >>"$T/socat.log" 2>&1
track_pid "$SPAWNED_PID"
retry 50 _listening "$I" 9006 || fail "IPv6 listener in $I did not come up"
reply=$(in_ns "$G1" socat -T 3 - "TCP6:[2001:db8:ff::2]:9006,connect-timeout=3" </dev/null) ||
    fail "guest's TCP over IPv6 to the internet namespace failed beside firewalld"
assert_eq "$reply" internet6 "guest's TCP over IPv6 beside firewalld"
spawn_in_ns "$G1" socat TCP6-LISTEN:9007,reuseaddr,fork,ipv6only=1 'SYSTEM:echo guest6' >>"$T/socat.log" 2>&1
track_pid "$SPAWNED_PID"
retry 50 _listening "$G1" 9007 || fail "IPv6 listener in $G1 did not come up"
ctl forward add default tcp 8087 "[$g6]:9007"
reply=$(in_ns "$I" socat -T 3 - "TCP6:[2001:db8:ff::1]:8087,connect-timeout=3" </dev/null) ||
    fail "the IPv6 port forward failed beside firewalld"
assert_eq "$reply" guest6 "IPv6 port forward beside firewalld"

log "control: the opted-out network's guest is cut off by firewalld's default zone"
guest_plug "$G2" vg2 kvmbr1
if UDHCPC_LEASE_FILE="$T/lease.$G2" in_ns "$G2" busybox udhcpc -i eth0 -n -q -t 3 -T 1 \
    -s "$SRCDIR/tests/e2e/udhcpc.script" >"$T/udhcpc.$G2.log" 2>&1; then
    fail "the opted-out network's guest got a lease: firewalld's zone is not in the path, the test proves nothing"
fi

log "diagnose names firewalld"
status_of() { jq -r --arg c "$2" '.checks[] | select(.check == $c) | .status + ": " + .detail' <<<"$1"; }
assert_eq "$(status_of "$(ctl diagnose default --json)" firewalld)" \
    "pass: firewalld runs; bridge kvmbr0 is in its zone kvmnet" "diagnose of the integrated network"
assert_eq "$(status_of "$(ctl diagnose manual --json)" firewalld)" \
    "warn: firewalld runs and bridge kvmbr1 is in no zone: firewalld's default zone applies, which rejects guests' DHCP and DNS and does not forward their traffic (firewall integration is off); let them through with: firewall-cmd --zone=kvmnet --change-interface=kvmbr1" \
    "diagnose of the opted-out network"

# A long-lived connection: the guest keeps a socat open to the internet
# namespace's echo server across firewalld's reload and restart.
spawn_in_ns "$I" socat -u TCP-LISTEN:9100,reuseaddr "OPEN:$T/conn.echo,creat,append" >/dev/null 2>&1
track_pid "$SPAWNED_PID"
retry 25 _listening "$I" 9100
mkfifo "$T/conn.in"
spawn_in_ns "$G1" socat -u "OPEN:$T/conn.in" TCP:203.0.113.2:9100 >"$T/conn.out" 2>&1
CONN_PID=$SPAWNED_PID
track_pid "$CONN_PID"
exec 7>"$T/conn.in"
echo before >&7

log "firewall-cmd --reload: the bridge is back in the zone, traffic flows"
fw --reload >/dev/null
retry 50 _in_zone kvmbr0 || fail "kvmbr0 not back in zone kvmnet after firewalld's reload: '$(zone_of kvmbr0)'"
echo reloaded >&7
_pid_alive "$CONN_PID" || fail "the guest's open TCP connection died across firewalld's reload"
assert_eq "$(tcp_get "$G1" 203.0.113.2 9000)" 203.0.113.1 "a new connection after firewalld's reload"
assert_eq "$(tcp_get "$I" 203.0.113.1 8080)" guest "the port forward after firewalld's reload"

log "firewalld restarted: the bridge is back in the zone, traffic flows"
stop_pid "$FIREWALLD_PID" 15
firewalld_start
retry 50 _in_zone kvmbr0 || fail "kvmbr0 not back in zone kvmnet after firewalld's restart: '$(zone_of kvmbr0)'"
echo restarted >&7
_pid_alive "$CONN_PID" || fail "the guest's open TCP connection died across firewalld's restart"
assert_eq "$(tcp_get "$G1" 203.0.113.2 9000)" 203.0.113.1 "a new connection after firewalld's restart"
dns=$(in_ns "$G1" dig +short +tries=1 +time=3 @192.168.122.1 web.kvm.lan A) || fail "no DNS reply after firewalld's restart"
assert_eq "$dns" 192.168.122.50 "web.kvm.lan after firewalld's restart"
retry 10 pings "$G1" 2001:db8:ff::2 || fail "guest cannot ping 2001:db8:ff::2 after firewalld's restart"
exec 7>&-
retry 25 grep -qx restarted "$T/conn.echo" || fail "the echo server did not get all lines over the one connection: $(cat "$T/conn.echo")"
assert_eq "$(tr '\n' ' ' <"$T/conn.echo")" "before reloaded restarted " "lines over the one connection"
stop_pid "$CONN_PID"

log "routed network: a connection routed in to its guest passes firewalld (policy kvmnet-in)"
ctl create rt --mode routed --bridge kvmbr5 --ipv4 10.62.0.1/24 --dhcp-range 10.62.0.100-10.62.0.200
ctl start rt
wait_state rt active
retry 50 _in_zone kvmbr5 || fail "kvmbr5 is not in firewalld's zone kvmnet: '$(zone_of kvmbr5)'"
guest_plug "$G3" vg3 kvmbr5
read -r gaddr _ <<<"$(guest_dhcp "$G3")"
rip=${gaddr%/*}
route_back 10.62.0.0/24
listen_tcp "$G3" 9002 'echo routed'
reply=$(tcp_get "$I" "$rip" 9002) || fail "no connection routed in to the routed guest: firewalld rejects it"
assert_eq "$reply" routed "a connection routed in to the routed guest beside firewalld"
assert_eq "$(tcp_get "$G3" 203.0.113.2 9000)" "$rip" "the routed guest's own address seen outside"

log "firewalld hangs (SIGSTOP): kvmnetd still answers, diagnose says firewalld does not answer; resumed, the bridge ends in the zone"
# A synchronous call to firewalld would hold kvmnetd's loop until the
# call's own timeout (25 s); answered within 5 s, nothing waits for it.
kill -STOP "$FIREWALLD_PID"
# Diagnose waits up to 3 s for firewalld's answer, asynchronously: calls
# made meanwhile are answered.
timeout 10 "$KVMNETCTL" diagnose rt --json >"$T/diagnose-hung.json" 2>&1 &
DIAG_PID=$!
track_pid "$DIAG_PID"
timeout 2 "$KVMNETCTL" list >/dev/null || fail "kvmnetctl list got no answer while diagnose waits for a hung firewalld"
wait "$DIAG_PID" || fail "kvmnetctl diagnose got no answer while firewalld hangs: $(cat "$T/diagnose-hung.json")"
assert_eq "$(status_of "$(cat "$T/diagnose-hung.json")" firewalld)" \
    "warn: firewalld does not answer: no reply within 3 s when asked for bridge kvmbr5's zone" \
    "diagnose while firewalld hangs"
timeout 5 "$KVMNETCTL" stop rt >/dev/null || fail "kvmnetctl stop rt got no answer while firewalld hangs"
timeout 5 "$KVMNETCTL" start rt >/dev/null || fail "kvmnetctl start rt got no answer while firewalld hangs"
listing=$(timeout 5 "$KVMNETCTL" list) || fail "kvmnetctl list got no answer while firewalld hangs"
assert_contains "$listing" rt "kvmnetctl list while firewalld hangs"
kill -CONT "$FIREWALLD_PID"
wait_state rt active
retry 50 _in_zone kvmbr5 || fail "kvmbr5 not in zone kvmnet after firewalld resumed: '$(zone_of kvmbr5)'"

log "firewalld loses zone kvmnet (files removed, reload): degraded, reason firewalld; back: active"
"$KVMNETCTL" monitor rt --event PropertiesChanged >"$T/monitor.out" 2>"$T/monitor.err" &
MONITOR_PID=$!
track_pid "$MONITOR_PID"
retry 25 grep -q '^Monitoring kvmnetd signals about network rt;' "$T/monitor.out" ||
    fail "kvmnetctl monitor did not start: $(cat "$T/monitor.err")"
mkdir -p "$T/fw-away"
mv "$FW/lib/zones/kvmnet.xml" "$FW/lib/policies/kvmnet-to-host.xml" "$FW/lib/policies/kvmnet-in.xml" "$T/fw-away/"
fw --reload >/dev/null
wait_state rt degraded
reason_code() {
    busctl --system get-property org.kvmnet1 "/org/kvmnet1/network/$1" org.kvmnet1.Network StateReasonCode
}
assert_eq "$(reason_code rt)" 's "firewalld"' "StateReasonCode while firewalld has no zone kvmnet"
assert_contains "$(ctl show rt --json | jq -r .status.state_reason)" \
    "firewalld could not put bridge kvmbr5 into its zone kvmnet (org.fedoraproject.FirewallD1.Exception: INVALID_ZONE" \
    "StateReason while firewalld has no zone kvmnet"
retry 25 grep -q ' PropertiesChanged rt .*State="degraded"' "$T/monitor.out" ||
    fail "no PropertiesChanged with State=degraded: $(cat "$T/monitor.out")"
assert_contains "$(status_of "$(ctl diagnose rt --json)" firewalld)" \
    "firewalld has no zone kvmnet: install kvmnet's zone and policies" "diagnose while firewalld has no zone kvmnet"
mv "$T/fw-away/kvmnet.xml" "$FW/lib/zones/"
mv "$T/fw-away/kvmnet-to-host.xml" "$T/fw-away/kvmnet-in.xml" "$FW/lib/policies/"
fw --reload >/dev/null
wait_state rt active
retry 50 _in_zone kvmbr5 || fail "kvmbr5 not back in zone kvmnet once firewalld has it again: '$(zone_of kvmbr5)'"
retry 25 grep -q ' PropertiesChanged rt .*State="active"' "$T/monitor.out" ||
    fail "no PropertiesChanged with State=active: $(cat "$T/monitor.out")"
# rt was restarted while firewalld hung: its new bridge needs the guest's port again.
guest_plug "$G3" vg3 kvmbr5
assert_eq "$(tcp_get "$I" "$rip" 9002)" routed "a connection routed in to the routed guest once the zone is back"
stop_pid "$MONITOR_PID"

log "stop: the bridges leave the zone"
ctl stop default
wait_state default inactive
retry 50 not _in_zone kvmbr0 || fail "kvmbr0 still in zone kvmnet after stop"
assert_eq "$(fw --zone=kvmnet --list-interfaces)" kvmbr5 "interfaces of zone kvmnet after default's stop"
ctl stop rt
wait_state rt inactive
retry 50 not _in_zone kvmbr5 || fail "kvmbr5 still in zone kvmnet after stop"
assert_eq "$(fw --zone=kvmnet --list-interfaces)" "" "interfaces of zone kvmnet after stop"
ctl stop manual

daemon_stop
stop_pid "$FIREWALLD_PID" 15
log "PASS"
