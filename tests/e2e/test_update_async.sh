#!/usr/bin/env bash
# E2E: an Update that restarts dnsmasq does not hold the daemon (issue 12,
# "a loop that never blocks"). Its stop of the old run (dnsmasq's SIGTERM and
# wait, the bridge's deletion) runs on the worker thread as a Stop's does;
# the call is answered once the network is up again, other calls meanwhile.
# call_order.py sends the calls on one connection without waiting.
#  - dnsmasq of the network is stopped (SIGSTOP), so its SIGTERM-and-wait
#    takes the whole 2 s before the SIGKILL: an Update setting dns.domain,
#    then GetAll of the same network and Manager.Describe. The reads come
#    back first, and the GetAll still sees the restart's stop under way
#    (State inactive); a daemon that stops dnsmasq on its loop reads the
#    GetAll only after dnsmasq is gone and the start queued (activating);
#  - afterwards: the new document applies, dnsmasq is a new process and the
#    network is active (test_update_keeps_leases.sh checks the leases);
#  - a Stop asked while the restart's stop runs waits for it, then stops
#    the network (the Update's document stays); nothing is left running.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

nat_topology
bus_start
daemon_start
default_network_running
a=default
ORDER=$SRCDIR/tests/e2e/call_order.py

log "reads sent after a restarting Update are answered while its stop runs"
ctl export "$a" | jq '.dns = ((.dns // {}) + {domain: "kvm.lan"})' >"$T/a-domain.json"
old=$(dnsmasq_pid "$a")
is_dnsmasq "$old" || fail "no dnsmasq for $a (pid '$old')"
kill -STOP "$old"
out=$("$ORDER" "update:$a:$T/a-domain.json" "state:$a" describe)
log "replies in order: $(tr '\n' ',' <<<"$out")"
assert_eq "$(wc -l <<<"$out")" 3 "replies"
assert_not_contains "$out" error "the replies"
assert_eq "$(sed -n 1p <<<"$out")" "state:$a ok inactive" "the first reply (GetAll, while the old run stops)"
assert_eq "$(sed -n 3p <<<"$out")" "update:$a ok" "the last reply (the Update's, once a is up again)"
assert_eq "$(net_state "$a")" active "a after the Update"
assert_eq "$(ctl show "$a" --json | jq -r .config.dns.domain)" kvm.lan "dns.domain after the Update"
new=$(dnsmasq_pid "$a")
is_dnsmasq "$new" || fail "no dnsmasq after the Update (pid '$new')"
[[ $new != "$old" ]] || fail "dnsmasq was not restarted (pid $old)"
is_dnsmasq "$old" && fail "the old dnsmasq $old still runs"

log "a Stop asked while a restarting Update stops the old run waits, then stops"
ctl export "$a" | jq '.dns.domain = "kvm2.lan"' >"$T/a-domain2.json"
old=$(dnsmasq_pid "$a")
kill -STOP "$old"
out=$(timeout 20 "$ORDER" "update:$a:$T/a-domain2.json" "stop:$a") ||
    fail "Update then Stop: not every call was answered (got: $out)"
log "replies in order: $(tr '\n' ',' <<<"$out")"
assert_contains "$out" "stop:$a ok" "the Stop's reply"
assert_contains "$out" "update:$a" "the Update's reply"
assert_eq "$(net_state "$a")" inactive "a after Update then Stop"
assert_eq "$(ctl show "$a" --json | jq -r .config.dns.domain)" kvm2.lan "the Update's document stays"
is_dnsmasq "$old" && fail "the old dnsmasq $old still runs"
ip -n "$H" link show kvmbr0 >/dev/null 2>&1 && fail "bridge kvmbr0 left after Update then Stop"
[[ ! -e $T/run/$a ]] || fail "runtime directory of a left: $(ls "$T/run/$a")"
log "PASS"
