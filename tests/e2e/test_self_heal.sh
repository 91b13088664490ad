#!/usr/bin/env bash
# E2E: self-healing. A running NAT network (IPv4 + IPv6, a port forward) with
# a guest that has a DHCP lease and reaches the "internet" namespace; then,
# one at a time, what other tools do to it behind the daemon's back:
#   nft flush ruleset, nft delete table inet kvmnet, nft flush chain,
#   nft delete rule, nft delete element (the network's subnet in @net4,
#   then in @net4_p24),
#   ip link set BR down, ip addr del (IPv4 and IPv6 gateway),
#   ip link del BR (the guest re-plugs afterwards), kill -9 dnsmasq
#   (also a dnsmasq adopted after a daemon restart).
# Each time the daemon must repair it by itself: the kernel state (links,
# addresses, table inet kvmnet) is back to the snapshot taken before, the
# guest's traffic flows, a Repaired signal was emitted on the bus, the
# network is active again, and the daemon logged exactly one repair for the
# disruption (no repair storm, no loop on its own changes).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

nat_topology
bus_start
signal_monitor_start "$T/signals"
daemon_start
# kvmnetctl monitor too: it must print each Repaired signal (it runs long
# before the first disruption, and survives the daemon restart below).
"$KVMNETCTL" monitor --json >"$T/monitor.jsonl" 2>"$T/monitor.err" &
CTL_MONITOR_PID=$!
track_pid "$CTL_MONITOR_PID"

ctl create default --mode nat --bridge kvmbr0 --ipv4 192.168.122.1/24 \
    --dhcp-range 192.168.122.100-192.168.122.254 --ipv6 fd00:1:2:3::1/64 --nat66
ctl start default
wait_state default active
ctl forward add default tcp 8080 192.168.122.50:80
guest_plug "$G1" vg1 kvmbr0
read -r gaddr _ <<<"$(guest_dhcp "$G1")"
log "guest lease $gaddr"
in_ns "$G1" busybox ping -c 1 -W 2 203.0.113.2 >/dev/null || fail "guest cannot ping 203.0.113.2 before any disruption"

# The parts of the state that a repair must restore exactly. IPv6 link-local
# addresses are the kernel's, not configuration: a bridge set down and up
# again derives a new one from its current MAC.
snapshot() { kernel_snapshot "$H" | grep -v '"local": "fe80::'; }
nft_state() { kernel_snapshot "$H" | sed -n '/^## nft$/,$p'; }
addr_state() { ip -n "$H" -j addr show dev kvmbr0 | jq -S '.[0].addr_info | map(select(.scope == "global")) |
    map({family, local, prefixlen}) | sort_by(.local)'; }
full_before=$(snapshot)
nft_before=$(nft_state)
addr_before=$(addr_state)

# same_as EXPECTED ACTUAL WHAT: fails with a diff.
same_as() {
    [[ $1 == "$2" ]] || fail "$3 differs from before: $({ diff -u <(echo "$1") <(echo "$2") || true; } | head -n 40)"
}
repairs_logged() { grep -c 'default: repaired ' "$T/kvmnetd.log" || true; }
repaired_signals() { grep -c 'member=Repaired' "$T/signals" || true; }
_count_above() { (($("$1") > $2)); }
guest_pings() { in_ns "$G1" busybox ping -c 1 -W 1 203.0.113.2 >/dev/null 2>&1; }

# expect_repair WHAT [full|nft]: after a disruption, waits for the repair,
# then checks the signal, the state, the kernel and the guest's traffic.
expect_repair() {
    local what=$1 compare=${2:-full} n last
    retry 50 _count_above repairs_logged "$LOGGED" ||
        fail "$what: no repair logged; state: $(ctl show default --json | jq -c .status)"
    retry 50 _count_above repaired_signals "$SIGNALS" || fail "$what: no Repaired signal on the bus"
    wait_state default active
    retry 25 guest_pings || fail "$what: guest cannot reach 203.0.113.2 after the repair"
    case $compare in
    full) same_as "$full_before" "$(snapshot)" "$what: kernel state after the repair" ;;
    nft) same_as "$nft_before" "$(nft_state)" "$what: table inet kvmnet after the repair" ;;
    esac
    assert_eq "$(addr_state)" "$addr_before" "$what: gateway addresses on kvmbr0 after the repair"
    # Anything looping would show more repairs after a moment: exactly one.
    sleep 1
    n=$(repairs_logged)
    assert_eq "$((n - LOGGED))" 1 "$what: repairs logged for one disruption"
    assert_contains "$(ctl show default --json | jq -r .status.state)" active "$what: state"
    last=$(dbus-send --system --print-reply --dest=org.kvmnet1 /org/kvmnet1/network/default \
        org.freedesktop.DBus.Properties.Get string:org.kvmnet1.Network string:LastRepair)
    [[ $last =~ Z\ [a-z]+: ]] || fail "$what: LastRepair property without a repair: $last"
    log "$what: repaired ($(grep 'default: repaired ' "$T/kvmnetd.log" | tail -n1 | sed 's/.*repaired //'))"
}
mark() {
    LOGGED=$(repairs_logged)
    SIGNALS=$(repaired_signals)
}

log "nft flush ruleset"
mark
in_ns "$H" nft flush ruleset
expect_repair "nft flush ruleset"
assert_contains "$(grep 'default: repaired firewall' "$T/kvmnetd.log" | tail -n1)" "by nft (pid" \
    "the repair names who changed the table"

log "nft delete table inet kvmnet"
mark
in_ns "$H" nft delete table inet kvmnet
expect_repair "nft delete table"

log "nft flush chain"
chain=$(in_ns "$H" nft -j list table inet kvmnet | jq -r '[.nftables[] | select(.chain) | .chain.name][0]')
mark
in_ns "$H" nft flush chain inet kvmnet "$chain"
expect_repair "nft flush chain $chain"

log "nft delete rule"
handle=$(in_ns "$H" nft -a -j list chain inet kvmnet "$chain" | jq -r '[.nftables[] | select(.rule) | .rule.handle][0]')
[[ $handle =~ ^[0-9]+$ ]] || fail "no rule handle in chain $chain: $handle"
mark
in_ns "$H" nft delete rule inet kvmnet "$chain" handle "$handle"
expect_repair "nft delete rule"
assert_contains "$(ctl show default)" "Last repair:" "kvmnetctl show after a repair"

# The network is data in the fixed rules' sets: its subnet taken out of
# @net4 would drop its guests' traffic as spoofed.
log "nft delete element (the network's subnet in @net4)"
mark
in_ns "$H" nft delete element inet kvmnet net4 '{ "kvmbr0" . 192.168.122.0/24 }'
expect_repair "nft delete element"

# ... and out of its prefix length's hash set, the established accepts'
# (an open connection of a guest would fall through to the rules of new
# connections).
log "nft delete element (the network's subnet in @net4_p24)"
mark
in_ns "$H" nft delete element inet kvmnet net4_p24 '{ "kvmbr0" . 192.168.122.0 }'
expect_repair "nft delete element of net4_p24"

log "ip link set kvmbr0 down"
mark
ip -n "$H" link set kvmbr0 down
expect_repair "bridge set down"

log "ip addr del 192.168.122.1/24"
mark
ip -n "$H" addr del 192.168.122.1/24 dev kvmbr0
expect_repair "IPv4 gateway removed"

log "ip addr del fd00:1:2:3::1/64"
mark
ip -n "$H" addr del fd00:1:2:3::1/64 dev kvmbr0
expect_repair "IPv6 gateway removed"

log "ip link del kvmbr0"
mark
ip -n "$H" link del kvmbr0
retry 50 _count_above repairs_logged "$LOGGED" || fail "bridge deleted: no repair logged"
# The guest's veth was released with the bridge; the guest re-plugs.
guest_plug "$G1" vg1 kvmbr0
expect_repair "bridge deleted" nft
assert_eq "$(ip -n "$H" -j link show kvmbr0 | jq -r '.[0].ifalias')" kvmnet:default "recreated bridge's alias"
read -r gaddr2 _ <<<"$(guest_dhcp "$G1")"
log "guest lease after the bridge came back: $gaddr2"

log "kill -9 dnsmasq"
dpid=$(dnsmasq_pid default)
is_dnsmasq "$dpid" || fail "no dnsmasq running before the kill ($dpid)"
mark
kill -9 "$dpid"
_new_dnsmasq() { local p; p=$(dnsmasq_pid default); [[ $p != "$dpid" ]] && is_dnsmasq "$p"; }
retry 50 _new_dnsmasq || fail "dnsmasq not restarted after kill -9"
expect_repair "dnsmasq killed" nft
guest_dhcp "$G1" >/dev/null

log "kill -9 of an adopted dnsmasq"
daemon_stop
daemon_start
wait_state default active
grep -q 'adopted dnsmasq' "$T/kvmnetd.log" || fail "the restarted daemon did not adopt dnsmasq"
dpid=$(dnsmasq_pid default)
mark
kill -9 "$dpid"
retry 50 _new_dnsmasq || fail "adopted dnsmasq not restarted after kill -9"
expect_repair "adopted dnsmasq killed" nft
guest_dhcp "$G1" >/dev/null

log "own changes are not repaired"
mark
ctl forward add default tcp 8081 192.168.122.51:80
ctl forward remove default tcp 8081
ctl stop default
ctl start default
wait_state default active
guest_plug "$G1" vg1 kvmbr0
sleep 1
assert_eq "$(repairs_logged)" "$LOGGED" "repairs after the daemon's own changes"

stop_pid "$MONITOR_PID"
stop_pid "$CTL_MONITOR_PID"
assert_eq "$(jq -r 'select(.signal == "Repaired") | .network' "$T/monitor.jsonl" | sort -u)" default \
    "networks in kvmnetctl monitor's Repaired lines"
assert_eq "$(jq -c 'select(.signal == "Repaired")' "$T/monitor.jsonl" | wc -l)" "$(repaired_signals)" \
    "Repaired lines of kvmnetctl monitor vs. Repaired signals on the bus"
assert_contains "$(jq -r 'select(.signal == "Repaired") | "\(.what): \(.detail)"' "$T/monitor.jsonl")" \
    "bridge: recreated bridge kvmbr0" "kvmnetctl monitor's Repaired lines"
daemon_stop
assert_eq "$DAEMON_EXIT" 0 "kvmnetd exit status after SIGTERM"
log "PASS"
