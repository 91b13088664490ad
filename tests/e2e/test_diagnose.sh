#!/usr/bin/env bash
# E2E: `kvmnetctl diagnose` tells what keeps guests off the network.
#  1. a healthy NAT network with a guest: every check passes (exit 0).
#  2. another program's forward-hook chain with policy drop (as Docker's
#     iptables FORWARD DROP): the guest really loses the internet, and
#     diagnose names that chain (warn, exit 0).
#  3. a gateway address removed and ip_forward turned off outside kvmnet:
#     both named as failures (exit 1); diagnose changed nothing.
#  4. an unprivileged user may diagnose.
#  5. a stopped network whose bridge was left behind: warned.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

nat_topology
bus_start
daemon_start

ctl create diag --mode nat --bridge kvmbr7 --ipv4 10.47.0.1/24 --dhcp-range 10.47.0.100-10.47.0.200
ctl start diag
wait_state diag active
guest_plug "$G1" vg1 kvmbr7
guest_dhcp "$G1" >/dev/null
in_ns "$G1" busybox ping -c 1 -W 2 203.0.113.2 >/dev/null || fail "guest cannot reach 203.0.113.2"

status_of() { jq -r --arg c "$2" '.checks[] | select(.check == $c) | .status + ": " + .detail' <<<"$1"; }

log "1. healthy"
report=$(ctl diagnose diag --json) || fail "diagnose of a healthy network exited non-zero: $report"
assert_eq "$(jq -r .verdict <<<"$report")" pass "verdict of a healthy network ($report)"
for check in bridge ipv4-address ip-forward dnsmasq firewall; do
    assert_contains "$(status_of "$report" "$check")" "pass: " "check $check"
done
ctl diagnose diag | grep -q '^PASS  bridge' || fail "human output lacks 'PASS  bridge': $(ctl diagnose diag)"

log "2. a foreign forward chain with policy drop"
in_ns "$H" nft add table ip foreignfw
in_ns "$H" nft add chain ip foreignfw FORWARD '{ type filter hook forward priority 0; policy drop; }'
if in_ns "$G1" busybox ping -c 1 -W 1 203.0.113.2 >/dev/null 2>&1; then
    fail "the foreign drop policy did not drop the guest's traffic (test premise)"
fi
report=$(ctl diagnose diag --json) || fail "a warning must not fail diagnose: $report"
assert_eq "$(jq -r .verdict <<<"$report")" warn "verdict with a foreign drop chain"
assert_contains "$(status_of "$report" foreign-firewall)" "warn: chain ip foreignfw FORWARD (hook forward, policy drop)" \
    "foreign-firewall check"
# The exact commands it prints let the guests through (coexistence cell e).
assert_contains "$(status_of "$report" foreign-firewall)" \
    "let them through with: nft insert rule ip foreignfw FORWARD iifname kvmbr7 accept; nft insert rule ip foreignfw FORWARD oifname kvmbr7 accept" \
    "foreign-firewall command"
in_ns "$H" nft insert rule ip foreignfw FORWARD iifname kvmbr7 accept
in_ns "$H" nft insert rule ip foreignfw FORWARD oifname kvmbr7 accept
in_ns "$G1" busybox ping -c 1 -W 2 203.0.113.2 >/dev/null || fail "the printed commands did not let the guest through"
in_ns "$H" nft delete table ip foreignfw
log "2b. a foreign input chain with policy drop (DHCP and DNS)"
in_ns "$H" nft add table ip foreignin
in_ns "$H" nft add chain ip foreignin INPUT '{ type filter hook input priority 0; policy drop; }'
report=$(ctl diagnose diag --json) || fail "a warning must not fail diagnose: $report"
assert_contains "$(status_of "$report" foreign-firewall)" \
    "warn: chain ip foreignin INPUT (hook input, policy drop) drops guests' DHCP and DNS" "foreign input chain"
in_ns "$H" nft delete table ip foreignin
in_ns "$G1" busybox ping -c 1 -W 2 203.0.113.2 >/dev/null || fail "guest still cut off after the foreign table went"

log "3. address removed, ip_forward off"
in_ns "$H" sysctl -qw net.ipv4.ip_forward=0
ip -n "$H" addr del 10.47.0.1/24 dev kvmbr7
set +e
report=$(ctl diagnose diag --json)
rc=$?
set -e
# The daemon may already have repaired what it repairs by itself (the
# address after 100 ms, ip_forward at its next check, within 2 s);
# whatever is still broken at the moment of the call must be named.
if ((rc == 0)); then
    assert_eq "$(in_ns "$H" sysctl -n net.ipv4.ip_forward)" 1 "ip_forward after a diagnose that passed"
    log "both were repaired before diagnose ran"
else
    assert_eq "$rc" 1 "diagnose exit status when a check fails"
    assert_eq "$(jq -r .verdict <<<"$report")" fail "verdict"
fi
addr_now=$(ip -n "$H" -j addr show dev kvmbr7 | jq -r '[.[0].addr_info[] | select(.local == "10.47.0.1")] | length')
if ((addr_now == 0)); then
    assert_contains "$(status_of "$report" ipv4-address)" "fail: 10.47.0.1/24 is missing from kvmbr7" "ipv4-address check"
fi
if [[ $(in_ns "$H" sysctl -n net.ipv4.ip_forward) == 0 ]]; then
    assert_contains "$(status_of "$report" ip-forward)" "fail: net.ipv4.ip_forward is 0" "ip-forward check"
fi
in_ns "$H" sysctl -qw net.ipv4.ip_forward=1
ip -n "$H" addr replace 10.47.0.1/24 dev kvmbr7
report=$(ctl diagnose diag --json) || fail "diagnose after the fix: $report"
assert_eq "$(jq -r .verdict <<<"$report")" pass "verdict after the fix"

log "4. reading is open to every user"
if command -v setpriv >/dev/null; then
    as_nobody=$(setpriv --reuid=65534 --regid=65534 --clear-groups "$KVMNETCTL" diagnose diag --json) ||
        fail "diagnose as nobody failed: $as_nobody"
    assert_eq "$(jq -r .verdict <<<"$as_nobody")" pass "verdict as nobody"
else
    log "setpriv missing: unprivileged diagnose not checked"
fi

log "5. stopped network with a leftover bridge"
ctl stop diag
wait_state diag inactive
assert_eq "$(ctl diagnose diag --json | jq -r .verdict)" pass "verdict of a cleanly stopped network"
ip -n "$H" link add kvmbr7 type bridge
ip -n "$H" link set kvmbr7 alias kvmnet:diag
report=$(ctl diagnose diag --json) || fail "a warning must not fail diagnose: $report"
assert_contains "$(status_of "$report" bridge)" "warn: kvmbr7 is left over" "bridge check of a stopped network"
ip -n "$H" link del kvmbr7

ctl delete diag
daemon_stop
assert_eq "$DAEMON_EXIT" 0 "kvmnetd exit status"
log PASS
