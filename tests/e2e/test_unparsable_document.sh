#!/usr/bin/env bash
# E2E: a stored document that does not parse never tears down or orphans
# its running network (issue 11, items 4 and 8). n1 (with a forward) and n2
# run; n1.json gains an unknown field by hand.
#  1. SIGHUP and `kvmnetctl reload`: n1's bridge, addresses, rules and
#     dnsmasq stay exactly as they were; reload fails naming the file; n1
#     shows degraded with the parse error; n2 is untouched.
#  2. daemon restart with the file still broken: n1 is adopted from the
#     last document kvmnet stored (rules kept, same dnsmasq), degraded with
#     the parse error; changing n2 keeps n1's rules; n1 can be stopped.
#  3. the file fixed and reloaded: n1 is managed normally (start, forward).
#  4. broken again with no copy of the last document left, restarted: n1
#     is adopted as failed, start, forward add and port attach are refused (the file
#     stays as it is), stop removes what ran; fixed
#     and reloaded it starts normally.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

nat_topology
bus_start
daemon_start

ctl create n1 --mode nat --bridge kvmbr1 --ipv4 10.77.0.1/24 --dhcp-range 10.77.0.100-10.77.0.200
ctl create n2 --mode nat --bridge kvmbr2 --ipv4 10.78.0.1/24 --dhcp-range 10.78.0.100-10.78.0.200
ctl forward add n1 tcp 8080 10.77.0.10:80
ctl start n1
ctl start n2
wait_state n1 active
wait_state n2 active
doc=$T/state/networks/n1.json
good=$(cat "$doc")
break_doc() { jq '. + {"bogus_field": 1}' <<<"$good" >"$doc"; }
snapshot() { kernel_snapshot "$H"; }
before=$(snapshot)
pid1=$(dnsmasq_pid n1)
is_dnsmasq "$pid1" || fail "no dnsmasq for n1"
reason() { ctl show "$1" --json | jq -r .status.state_reason; }
n1_rules() { in_ns "$H" nft list table inet kvmnet | grep -c kvmbr1 || true; }

log "1. reload with an unknown field in n1.json leaves n1 as it is"
break_doc
kill -HUP "$DAEMON_PID"
retry 25 grep -q "bogus_field" "$T/kvmnetd.log" || fail "SIGHUP: no error about the bad field logged"
_pid_alive "$DAEMON_PID" || fail "kvmnetd exited after SIGHUP"
assert_eq "$(snapshot)" "$before" "kernel after SIGHUP with a broken n1.json"
expect_error InvalidArgument reload
assert_contains "$ERR_MSG" "n1.json" "reload error"
assert_contains "$ERR_MSG" "bogus_field" "reload error"
assert_eq "$(snapshot)" "$before" "kernel after reload with a broken n1.json"
assert_eq "$(dnsmasq_pid n1)" "$pid1" "dnsmasq of n1 after reload"
is_dnsmasq "$pid1" || fail "dnsmasq of n1 stopped by reload"
assert_eq "$(net_state n1)" degraded "state of n1 after reload"
assert_contains "$(reason n1)" "bogus_field" "state reason of n1"
assert_eq "$(net_state n2)" active "state of n2 after reload"
assert_eq "$(ctl forward list n1 --json | jq -c '[.[].host_port]')" "[8080]" "forwards of n1"

log "2. restart with n1.json still broken: n1 adopted, rules kept"
daemon_stop
daemon_start
wait_state n1 degraded
assert_contains "$(reason n1)" "bogus_field" "state reason of n1 after the restart"
assert_eq "$(snapshot)" "$before" "kernel after a restart with a broken n1.json"
assert_eq "$(dnsmasq_pid n1)" "$pid1" "dnsmasq of n1 after the restart (adopted)"
ctl forward add n2 tcp 9090 10.78.0.10:80
(($(n1_rules) > 0)) || fail "n1's rules dropped when n2 changed"
ctl stop n1
wait_state n1 inactive
if ip -n "$H" link show kvmbr1 >/dev/null 2>&1; then fail "kvmbr1 still there after stop"; fi
retry 25 not is_dnsmasq "$pid1" || fail "dnsmasq of n1 still running after stop"
assert_eq "$(n1_rules)" 0 "rules naming kvmbr1 after stop"

log "3. fixed and reloaded: managed normally"
printf '%s\n' "$good" >"$doc"
ctl reload
ctl start n1
wait_state n1 active
assert_eq "$(reason n1)" "" "state reason of n1 once fixed"
ctl forward add n1 tcp 8081 10.77.0.10:81
assert_eq "$(ctl forward list n1 --json | jq -c '[.[].host_port] | sort')" "[8080,8081]" "forwards of n1"

log "4. broken again without a copy of the last document: adopted as failed, can be stopped"
good=$(cat "$doc")
break_doc
rm -f "$T/run/.stored/n1.json"
pid1=$(dnsmasq_pid n1)
daemon_stop
daemon_start
wait_state n1 failed
assert_contains "$(reason n1)" "bogus_field" "state reason of n1 without a document"
ip -n "$H" link show kvmbr1 >/dev/null || fail "kvmbr1 deleted at start although n1 was running"
expect_error Conflict start n1
broken=$(cat "$doc")
expect_error Conflict forward add n1 tcp 8082 10.77.0.10:82
expect_error Conflict port attach n1 vg1
assert_eq "$(cat "$doc")" "$broken" "n1.json after calls refused while n1 has no document"
ctl stop n1
wait_state n1 inactive
if ip -n "$H" link show kvmbr1 >/dev/null 2>&1; then fail "kvmbr1 still there after stop"; fi
retry 25 not is_dnsmasq "$pid1" || fail "dnsmasq of n1 still running after stop"
printf '%s\n' "$good" >"$doc"
ctl reload
ctl start n1
wait_state n1 active
assert_eq "$(ctl forward list n1 --json | jq -c '[.[].host_port] | sort')" "[8080,8081]" "forwards of n1 at the end"
assert_eq "$(net_state n2)" active "state of n2 at the end"

daemon_stop
assert_eq "$DAEMON_EXIT" 0 "kvmnetd exit status after SIGTERM"
log "PASS"
