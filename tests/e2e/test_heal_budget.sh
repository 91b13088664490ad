#!/usr/bin/env bash
# E2E: the repair budget (20 repairs per network and minute) slows repairs
# down but never ends them, and link and firewall repairs have budgets of
# their own (issue 11 item 2).
#   1. `nft flush ruleset` 21 times, waiting for each repair: the 21st is
#      over the firewall budget; it is retried after a backoff (State is
#      `degraded` naming the budget meanwhile) and the table comes back.
#   2. Then `ip link del BR`: recreated at once (the firewall repairs did
#      not use up the link budget).
#   3. `ip link del BR` 20 more times: the 21st link repair is deferred the
#      same way and still happens.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

nat_topology
bus_start
signal_monitor_start "$T/signals"
daemon_start

ctl create default --mode nat --bridge kvmbr0 --ipv4 192.168.122.1/24 \
    --dhcp-range 192.168.122.100-192.168.122.254
ctl start default
wait_state default active

repairs_logged() { grep -c "default: repaired $1" "$T/kvmnetd.log" || true; }
_count_above() { (($(repairs_logged "$1") > $2)); }
has_table() { in_ns "$H" nft list table inet kvmnet >/dev/null 2>&1; }
has_bridge() { [[ $(ip -n "$H" -j link show kvmbr0 2>/dev/null | jq -r '.[0].ifalias') == kvmnet:default ]]; }
budget_reasons() { grep -c 'repair budget' "$T/signals" || true; }

log "nft flush ruleset x21"
for i in $(seq 1 21); do
    before=$(repairs_logged firewall)
    in_ns "$H" nft flush ruleset
    # Beyond the budget the retry waits for its backoff (seconds, not minutes).
    retry 150 _count_above firewall "$before" || fail "flush #$i: table not repaired; state: $(ctl show default --json | jq -c '.status | {state, state_reason}')"
    has_table || fail "flush #$i: table inet kvmnet missing after the repair"
done
(($(budget_reasons) > 0)) || fail "State never said the firewall repair waits for the repair budget"
wait_state default active
log "firewall: 21 repairs, the 21st after a backoff"

log "ip link del kvmbr0 after the firewall budget is used up"
before=$(repairs_logged bridge)
ip -n "$H" link del kvmbr0
retry 50 _count_above bridge "$before" || fail "bridge not recreated after 21 firewall repairs (link repairs starved)"
has_bridge || fail "kvmbr0 missing after its repair"
wait_state default active

log "ip link del kvmbr0 x20 more"
seen=$(budget_reasons)
for i in $(seq 2 21); do
    before=$(repairs_logged bridge)
    ip -n "$H" link del kvmbr0
    retry 150 _count_above bridge "$before" || fail "bridge deletion #$i: not recreated; state: $(ctl show default --json | jq -c '.status | {state, state_reason}')"
    has_bridge || fail "bridge deletion #$i: kvmbr0 missing after its repair"
done
(($(budget_reasons) > seen)) || fail "State never said the link repair waits for the repair budget"
wait_state default active
has_table || fail "table inet kvmnet missing at the end"

daemon_stop
assert_eq "$DAEMON_EXIT" 0 "kvmnetd exit status after SIGTERM"
log "PASS"
