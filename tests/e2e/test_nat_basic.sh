#!/usr/bin/env bash
# E2E: one NAT network end to end. Creates and starts "default"
# (kvmbr0, 192.168.122.1/24), checks the kernel objects it made (bridge,
# address, alias, nftables table with masquerade, ip_forward, dnsmasq), lets a
# guest namespace get a DHCP lease and reach the "internet" namespace through
# masquerade, shows inbound connections to the guest are refused, then stops
# and deletes the network and checks everything is gone.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

nat_topology
bus_start
daemon_start

log "create + start"
ctl create default --mode nat --bridge kvmbr0 --ipv4 192.168.122.1/24 \
    --dhcp-range 192.168.122.100-192.168.122.254
assert_eq "$(net_state default)" inactive "state after create"
[[ -f $T/state/networks/default.json ]] || fail "create did not write $T/state/networks/default.json"
assert_eq "$(jq -r .ipv4.address "$T/state/networks/default.json")" 192.168.122.1/24 "stored ipv4.address"
ctl start default
wait_state default active

log "bridge"
link=$(ip -n "$H" -j -d link show kvmbr0) || fail "bridge kvmbr0 missing in host namespace"
assert_eq "$(jq -r '.[0].linkinfo.info_kind' <<<"$link")" bridge "kvmbr0 kind"
assert_contains "$(jq -c '.[0].flags' <<<"$link")" '"UP"' "kvmbr0 flags"
assert_eq "$(jq -r '.[0].ifalias // ""' <<<"$link")" kvmnet:default "kvmbr0 ifalias"
addrs=$(ip -n "$H" -j addr show dev kvmbr0 |
    jq -r '.[0].addr_info[] | select(.family == "inet") | "\(.local)/\(.prefixlen)"')
assert_eq "$addrs" 192.168.122.1/24 "IPv4 addresses on kvmbr0"

log "nftables + forwarding"
ruleset=$(in_ns "$H" nft -j list table inet kvmnet) || fail "table inet kvmnet missing"
jq -e '[.. | objects | select(has("masquerade"))] | length > 0' <<<"$ruleset" >/dev/null ||
    fail "no masquerade rule in table inet kvmnet: $(in_ns "$H" nft list table inet kvmnet)"
assert_eq "$(in_ns "$H" sysctl -n net.ipv4.ip_forward)" 1 "net.ipv4.ip_forward in host namespace"

log "dnsmasq"
retry 25 test -s "$T/run/default/dnsmasq.pid" || fail "no $T/run/default/dnsmasq.pid"
dpid=$(dnsmasq_pid default)
is_dnsmasq "$dpid" || fail "pid file says $dpid, which is not a running dnsmasq"
[[ -f $T/run/default/dnsmasq.conf ]] || fail "no dnsmasq.conf in $T/run/default"
# No upstream resolvers (on the command line or in the config file): the
# test namespaces must not talk to anything but each other.
[[ $(proc_cmdline "$dpid") == *no-resolv* ]] ||
    grep -q '^no-resolv' "$T/run/default/dnsmasq.conf" ||
    fail "dnsmasq runs without no-resolv (would use the machine's resolvers)"

log "guest DHCP"
guest_plug "$G1" vg1 kvmbr0
lease=$(guest_dhcp "$G1")
log "lease: $lease"
read -r gaddr router <<<"$lease"
gip=${gaddr%/*}
assert_eq "${gaddr#*/}" 24 "lease prefix length"
assert_eq "$router" 192.168.122.1 "lease router"
last=${gip##*.}
[[ $gip == 192.168.122.* && $last -ge 100 && $last -le 254 ]] ||
    fail "lease $gip outside 192.168.122.100-254"
# dnsmasq records the lease; that is what `kvmnetctl leases` will read.
retry 25 grep -q " $gip " "$T/run/default/dnsmasq.leases" ||
    fail "lease $gip not in $T/run/default/dnsmasq.leases"

log "outbound through NAT"
in_ns "$G1" busybox ping -c 2 -W 2 203.0.113.2 >/dev/null || fail "guest cannot ping 203.0.113.2"
listen_tcp "$I" 9000 'echo $SOCAT_PEERADDR'
seen=$(tcp_get "$G1" 203.0.113.2 9000) || fail "guest cannot connect to 203.0.113.2:9000"
# The internet side must see the host's uplink address, not the guest's.
assert_eq "$seen" 203.0.113.1 "source address seen by the internet namespace"

log "inbound is refused"
route_back 192.168.122.0/24
listen_tcp "$G1" 9001 'echo guest'
# Controls: the listener works, and the host itself reaches the guest, so the
# refusal below is the firewall and not a broken path.
assert_eq "$(tcp_get "$G1" "$gip" 9001)" guest "guest connecting to its own listener"
assert_eq "$(tcp_get "$H" "$gip" 9001)" guest "host connecting to the guest"
if out=$(tcp_get "$I" "$gip" 9001 3 2>&1); then
    fail "connection from the internet namespace to $gip:9001 succeeded (got '$out'); NAT guests must not be reachable without a forward"
fi

log "stop"
ctl stop default
wait_state default inactive
if ip -n "$H" link show kvmbr0 >/dev/null 2>&1; then fail "kvmbr0 still exists after stop"; fi
if in_ns "$H" nft list table inet kvmnet >/dev/null 2>&1; then
    fail "table inet kvmnet still exists with no active network: $(in_ns "$H" nft list table inet kvmnet)"
fi
retry 25 not is_dnsmasq "$dpid" || fail "dnsmasq $dpid still running after stop"
# The guest's veth must be left alone: it was never the daemon's.
ip -n "$H" link show vg1 >/dev/null || fail "vg1 (not the daemon's) vanished on stop"

log "delete"
ctl delete default
assert_eq "$(ctl list --json | jq -c .)" "[]" "list after delete"
[[ ! -e $T/state/networks/default.json ]] || fail "default.json still on disk after delete"
expect_error NotFound show default

daemon_stop
assert_eq "$DAEMON_EXIT" 0 "kvmnetd exit status after SIGTERM"
log "PASS"
