#!/usr/bin/env bash
# E2E, issue 14 item 3: while another program's table drops the guests'
# traffic (and kvmnet has no supported place for its rules there), the
# network's State is "degraded" with StateReasonCode "foreign-firewall"
# and a StateReason naming the chain; PropertiesChanged says so when it
# starts and when it ends, without polling (the nftables monitor sees the
# other table change). Diagnose names what drops: the policy, or the first
# rule that drops (table, chain, handle, rule text, its counter).
#  1. a foreign forward chain with policy drop: degraded; the printed nft
#     commands: active again, guest traffic flows; diagnose passes.
#  2. a policy-accept chain with a counted drop rule for the bridge:
#     degraded; diagnose names that rule with its handle and packets.
#  3. the foreign table deleted: active again.
# ufw's case is test_coexist_ufw (same checks), Docker's with integration
# off test_coexist_docker.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

nat_topology
bus_start
daemon_start

ctl create default --mode nat --bridge kvmbr0 --ipv4 192.168.122.1/24 \
    --dhcp-range 192.168.122.100-192.168.122.254
ctl start default
wait_state default active
guest_plug "$G1" vg1 kvmbr0
guest_dhcp "$G1" >/dev/null
in_ns "$G1" busybox ping -c 1 -W 2 203.0.113.2 >/dev/null || fail "guest cannot reach 203.0.113.2"

# The State changes as PropertiesChanged signals, seen by a monitor.
: >"$T/monitor.out"
"$KVMNETCTL" monitor default --event PropertiesChanged >>"$T/monitor.out" 2>"$T/monitor.err" &
MONITOR_PID=$!
track_pid "$MONITOR_PID"
retry 25 grep -q '^Monitoring kvmnetd signals about network default;' "$T/monitor.out" ||
    fail "monitor did not start: $(cat "$T/monitor.out" "$T/monitor.err")"
signals_with() { grep -c " PropertiesChanged default .*$1" "$T/monitor.out" || true; }

status_of() { jq -r --arg c "$2" '.checks[] | select(.check == $c) | .status + ": " + .detail' <<<"$1"; }
# StateReasonCode, from the bus (kvmnetctl show prints the reason only).
reason_code() {
    busctl --system get-property org.kvmnet1 /org/kvmnet1/network/default org.kvmnet1.Network StateReasonCode |
        sed 's/^s "\(.*\)"$/\1/'
}
reason() { ctl show default --json | jq -r .status.state_reason; }

log "1. a foreign forward chain with policy drop"
in_ns "$H" nft add table ip foreignfw
in_ns "$H" nft add chain ip foreignfw FORWARD '{ type filter hook forward priority 0; policy drop; }'
if in_ns "$G1" busybox ping -c 1 -W 1 203.0.113.2 >/dev/null 2>&1; then
    fail "the foreign drop policy did not drop the guest's traffic (test premise)"
fi
wait_state default degraded 25
assert_eq "$(reason_code)" foreign-firewall "StateReasonCode while the guests are cut off"
assert_eq "$(reason)" \
    "chain ip foreignfw FORWARD (hook forward, policy drop) of another program drops the guests' outgoing forwarded traffic and incoming forwarded traffic (replies, port forwards); kvmnetctl diagnose default says what to type" \
    "StateReason while the guests are cut off"
retry 25 grep -q ' PropertiesChanged default .*State="degraded"' "$T/monitor.out" ||
    fail "no PropertiesChanged with State=degraded: $(cat "$T/monitor.out")"
report=$(ctl diagnose default --json) || fail "a warning must not fail diagnose: $report"
assert_contains "$(status_of "$report" foreign-firewall)" \
    "warn: chain ip foreignfw FORWARD (hook forward, policy drop) drops guests' forwarded traffic" "diagnose"
assert_contains "$(status_of "$report" foreign-firewall)" "; dropped by its policy" "diagnose names the policy"
active_before=$(signals_with 'State="active"')
in_ns "$H" nft insert rule ip foreignfw FORWARD iifname kvmbr0 accept
in_ns "$H" nft insert rule ip foreignfw FORWARD oifname kvmbr0 accept
wait_state default active 25
retry 25 test "$(signals_with 'State="active"')" -gt "$active_before" ||
    fail "no PropertiesChanged with State=active once the guests were let through: $(cat "$T/monitor.out")"
in_ns "$G1" busybox ping -c 1 -W 2 203.0.113.2 >/dev/null || fail "the printed commands did not let the guest through"
report=$(ctl diagnose default --json) || fail "diagnose after the fix: $report"
assert_contains "$(status_of "$report" foreign-firewall)" \
    "pass: chain ip foreignfw FORWARD (hook forward, policy drop) lets the guests' traffic on kvmbr0 through" \
    "diagnose once the foreign chain accepts the bridge"
assert_eq "$(jq -r .verdict <<<"$report")" pass "verdict once the foreign chain accepts the bridge"
in_ns "$H" nft delete table ip foreignfw

log "2. a counted drop rule in a chain whose policy accepts"
in_ns "$H" nft add table inet handmade
in_ns "$H" nft add chain inet handmade forwarding '{ type filter hook forward priority 10; policy accept; }'
in_ns "$H" nft add rule inet handmade forwarding ip daddr 198.51.100.0/24 counter drop
in_ns "$H" nft add rule inet handmade forwarding iifname kvmbr0 counter drop
handle=$(in_ns "$H" nft -a -j list chain inet handmade forwarding |
    jq -r '.nftables[] | select(.rule) | .rule | select(.expr[0].match.right == "kvmbr0") | .handle')
wait_state default degraded 25
assert_eq "$(reason_code)" foreign-firewall "StateReasonCode with a drop rule"
assert_contains "$(reason)" "chain inet handmade forwarding (hook forward, policy accept)" "StateReason with a drop rule"
if in_ns "$G1" busybox ping -c 2 -W 1 203.0.113.2 >/dev/null 2>&1; then
    fail "the foreign drop rule did not drop the guest's traffic (test premise)"
fi
report=$(ctl diagnose default --json) || fail "a warning must not fail diagnose: $report"
log "diagnose: $(status_of "$report" foreign-firewall)"
detail=$(status_of "$report" foreign-firewall)
assert_contains "$detail" \
    "warn: chain inet handmade forwarding (hook forward, policy accept) drops guests' outgoing forwarded traffic; dropped by rule inet handmade forwarding handle $handle: iifname \"kvmbr0\" counter packets " \
    "diagnose names the first rule that drops"
assert_contains "$detail" "; let them through with: nft insert rule inet handmade forwarding iifname kvmbr0 accept" \
    "diagnose's command for the drop rule"
# At least the two pings counted (the guest may have sent more since).
dropped=$(sed -n 's/.*drop (\([0-9]*\) packets so far).*/\1/p' <<<"$detail")
[[ -n $dropped ]] && ((dropped >= 2)) || fail "diagnose gives no count of at least 2 dropped packets: $detail"

log "3. the foreign table deleted"
in_ns "$H" nft delete table inet handmade
wait_state default active 25
in_ns "$G1" busybox ping -c 1 -W 2 203.0.113.2 >/dev/null || fail "guest still cut off after the foreign table went"
assert_eq "$(reason_code)" none "StateReasonCode once the foreign table went"

kill -INT "$MONITOR_PID"
wait "$MONITOR_PID" || true
ctl stop default
daemon_stop
assert_eq "$DAEMON_EXIT" 0 "kvmnetd exit status"
log PASS
