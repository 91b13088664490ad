#!/usr/bin/env bash
# E2E, coexistence cell (e6): cell (e) over IPv6. Another program's `ip6`
# table whose forward chain has policy drop cuts a NAT66 network's guests
# off: the network is degraded (foreign-firewall) naming that chain, and
# diagnose prints the commands that let them through. The test RUNS the
# printed commands (not its own): the network is active again by itself,
# and the guest (SLAAC from the bridge's router advertisements) reaches the
# "internet" namespace over IPv6 (ping, TCP) and is reached through an IPv6
# port forward; diagnose warns no more.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

command -v dig >/dev/null || fail "missing tool 'dig' (package dnsutils; run scripts/deps.sh)"

nat_topology
[[ -e /proc/sys/net/ipv6 ]] || skip "this kernel has no IPv6 (CONFIG_IPV6 or ipv6.disable=1)"
ip -n "$H" addr add 2001:db8:ff::1/64 dev uplink0 nodad
ip -n "$I" addr add 2001:db8:ff::2/64 dev eth0 nodad
ip -n "$H" -6 route add default via 2001:db8:ff::2
bus_start
daemon_start

ctl create default --mode nat --bridge kvmbr0 --ipv4 192.168.122.1/24 \
    --dhcp-range 192.168.122.100-192.168.122.254 --dhcp-host 52:54:00:aa:00:09,192.168.122.50,web --domain kvm.lan \
    --ipv6 fd00:1:2:3::1/64 --nat66
ctl start default
wait_state default active

log "guest: SLAAC from the bridge's router advertisements"
guest_plug "$G1" vg1 kvmbr0
retry 50 ready_v6 "$H" kvmbr0 link || fail "kvmbr0 has no usable link-local address"
ip -n "$G1" link set eth0 down
ip -n "$G1" link set eth0 up
retry 75 ready_v6 "$G1" eth0 global || fail "no SLAAC address in $G1: $(ip -n "$G1" -6 addr show dev eth0)"
g6=$(ip -n "$G1" -j -6 addr show dev eth0 scope global | jq -r '[.[0].addr_info[] | select(.local) | .local][0]')
log "guest has $g6"
retry 10 pings "$G1" 2001:db8:ff::2 || fail "guest cannot ping 2001:db8:ff::2 before the foreign table (premise)"

log "a foreign ip6 table whose forward chain drops by policy"
in_ns "$H" nft add table ip6 foreignfw6
in_ns "$H" nft add chain ip6 foreignfw6 FORWARD '{ type filter hook forward priority 0; policy drop; }'
if pings "$G1" 2001:db8:ff::2; then
    fail "the foreign drop policy did not drop the guest's IPv6 traffic (test premise)"
fi
wait_state default degraded 25
assert_eq "$(busctl --system get-property org.kvmnet1 /org/kvmnet1/network/default org.kvmnet1.Network \
    StateReasonCode)" 's "foreign-firewall"' "StateReasonCode while the guests are cut off over IPv6"
assert_contains "$(ctl show default --json | jq -r .status.state_reason)" \
    "chain ip6 foreignfw6 FORWARD (hook forward, policy drop)" "StateReason names the ip6 chain"

status_of() { jq -r --arg c "$2" '.checks[] | select(.check == $c) | .status + ": " + .detail' <<<"$1"; }
report=$(ctl diagnose default --json) || fail "a warning must not fail diagnose: $report"
detail=$(status_of "$report" foreign-firewall)
log "diagnose: $detail"
assert_contains "$detail" "warn: chain ip6 foreignfw6 FORWARD (hook forward, policy drop) drops guests' forwarded traffic" \
    "diagnose names the ip6 chain"
mapfile -t printed < <(grep -o 'nft insert rule [^;]*' <<<"$detail")
((${#printed[@]} > 0)) || fail "diagnose printed no nft command: $detail"
for c in "${printed[@]}"; do
    log "running what diagnose printed: $c"
    read -ra words <<<"$c"
    in_ns "$H" "${words[@]}" || fail "the printed command failed: '$c'"
done
wait_state default active 25
retry 10 pings "$G1" 2001:db8:ff::2 || fail "the printed commands did not let the guest's IPv6 through"
spawn_in_ns "$I" socat TCP6-LISTEN:9006,reuseaddr,fork,ipv6only=1 'SYSTEM:echo internet6' >>"$T/socat.log" 2>&1
track_pid "$SPAWNED_PID"
retry 50 _listening "$I" 9006 || fail "IPv6 listener in $I did not come up"
assert_eq "$(in_ns "$G1" socat -T 3 - "TCP6:[2001:db8:ff::2]:9006,connect-timeout=3" </dev/null)" internet6 \
    "guest's TCP over IPv6 beside the foreign table"
spawn_in_ns "$G1" socat TCP6-LISTEN:9007,reuseaddr,fork,ipv6only=1 'SYSTEM:echo guest6' >>"$T/socat.log" 2>&1
track_pid "$SPAWNED_PID"
retry 50 _listening "$G1" 9007 || fail "IPv6 listener in $G1 did not come up"
ctl forward add default tcp 8087 "[$g6]:9007"
assert_eq "$(in_ns "$I" socat -T 3 - "TCP6:[2001:db8:ff::1]:8087,connect-timeout=3" </dev/null)" guest6 \
    "IPv6 port forward beside the foreign table"
assert_eq "$(in_ns "$G1" dig +short +tries=1 +time=3 @fd00:1:2:3::1 web.kvm.lan A)" 192.168.122.50 \
    "DNS at the IPv6 gateway beside the foreign table"
report=$(ctl diagnose default --json) || fail "diagnose after the commands: $report"
assert_not_contains "$(status_of "$report" foreign-firewall)" "warn:" "diagnose once the foreign table lets the guests through"

in_ns "$H" nft delete table ip6 foreignfw6
ctl stop default
daemon_stop
assert_eq "$DAEMON_EXIT" 0 "kvmnetd exit status"
log PASS
