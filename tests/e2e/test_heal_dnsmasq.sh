#!/usr/bin/env bash
# E2E: dnsmasq supervision as self-healing (issue 11 item 13).
#  1. `ip link del BR` and `kill -9` of dnsmasq at once: dnsmasq is
#     restarted at once (the first restart after a kill has no delay), but
#     not reported as repaired while its bridge is missing: the bridge's
#     repair comes first (an IPv4-only network's dnsmasq binds to the bridge,
#     so it serves again only once the bridge is back; its restart is
#     reported by the bridge's repair or right after it), and the guest gets
#     a lease again.
#  2. A second kill soon after: restarted after the backoff's first step
#     (1 s), reported as a dnsmasq repair.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

nat_topology
bus_start
daemon_start
default_network_running
guest_plug "$G1" vg1 kvmbr0
guest_dhcp "$G1" >/dev/null

repairs() { grep -E 'default: (repaired |dnsmasq exited)' "$T/kvmnetd.log" || true; }
_new_dnsmasq() { local p; p=$(dnsmasq_pid default); [[ $p != "$1" ]] && is_dnsmasq "$p"; }
_logged() { [[ $(repairs) == *"$1"* ]]; }

log "1. bridge deleted and dnsmasq killed together"
dpid=$(dnsmasq_pid default)
is_dnsmasq "$dpid" || fail "no dnsmasq before the kill"
ip -n "$H" link del kvmbr0
kill -9 "$dpid"
retry 50 _new_dnsmasq "$dpid" || fail "dnsmasq not restarted"
retry 50 _logged "repaired bridge" || fail "bridge not repaired: $(repairs)"
wait_state default active
lines=$(repairs)
assert_contains "$lines" "dnsmasq exited (status 137); restarting now" "the first restart after a kill"
first=$(grep -n 'repaired ' <<<"$lines" | head -n1)
assert_contains "$first" "repaired bridge" \
    "the first repair reported (nothing is repaired while the bridge is missing); repairs: $lines"
retry 50 _logged "restarted dnsmasq as pid $(dnsmasq_pid default)" ||
    fail "the dnsmasq restart is not reported: $(repairs)"
guest_plug "$G1" vg1 kvmbr0
guest_dhcp "$G1" >/dev/null

log "2. killed again: backoff"
dpid=$(dnsmasq_pid default)
kill -9 "$dpid"
retry 50 _new_dnsmasq "$dpid" || fail "dnsmasq not restarted after the second kill"
retry 50 _logged "repaired dnsmasq" || fail "dnsmasq restart not reported: $(repairs)"
assert_contains "$(repairs)" "dnsmasq exited (status 137); restarting in 1 s" "the second restart"
wait_state default active
guest_dhcp "$G1" >/dev/null

daemon_stop
assert_eq "$DAEMON_EXIT" 0 "kvmnetd exit status after SIGTERM"
log PASS
