#!/usr/bin/env bash
# E2E: a Stop's bridge deletion does not hold the daemon (issue 12, "a loop
# that never blocks"). The kernel's deletion of a bridge waits tens of ms
# (rcu_barrier); kvmnetd runs it on its worker thread and replies to Stop
# once it is done, answering other calls meanwhile. call_order.py sends
# calls on one connection without waiting, so the daemon reads them in that
# order, and prints the replies in the order they arrive.
#  - Stop, then GetAll and Manager.Describe: the reads are answered before
#    the Stop (a daemon that deletes the bridge on its loop answers the
#    Stop first, since it reads the next call only after);
#  - after the Stop: the network is inactive, its bridge and runtime
#    directory are gone, and the deletion was not taken for drift (no
#    repair recreated the bridge, LastRepair is empty); the other network runs;
#  - Stop then Start: the Start waits for the deletion and succeeds (the
#    bridge is there again, the network active); Stop, Stop: both succeed;
#    Stop then DeleteNetwork: the deletion waits, the network is gone;
#  - a Reload that finds the document of a network being stopped gone
#    answers the Stop, then removes the network;
#  - a daemon that exits (SIGTERM) leaves nothing half stopped.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

nat_topology
bus_start
daemon_start

ORDER=$SRCDIR/tests/e2e/call_order.py
ctl create a --mode nat --bridge kvmbr0 --ipv4 192.168.122.1/24 --dhcp-range 192.168.122.100-192.168.122.200
ctl create b --mode nat --bridge kvmbr1 --ipv4 192.168.123.1/24 --dhcp-range 192.168.123.100-192.168.123.200
ctl start a
ctl start b
wait_state a active
wait_state b active

log "reads sent after a Stop are answered before it"
out=$("$ORDER" stop:a getall:b describe)
log "replies in order: $(tr '\n' ',' <<<"$out")"
assert_eq "$(wc -l <<<"$out")" 3 "replies"
assert_not_contains "$out" error "the replies"
assert_eq "$(sed -n 3p <<<"$out")" "stop:a ok" "the last reply (the Stop's, after its bridge deletion)"
assert_eq "$(net_state a)" inactive "a after the Stop"
ip -n "$H" link show kvmbr0 >/dev/null 2>&1 && fail "bridge kvmbr0 is still there after the Stop's reply"
[[ ! -e $T/run/a ]] || fail "runtime directory of a left behind: $(ls "$T/run/a")"
# The repairs come 100 ms after a mark: past that, the deletion's link
# notification must not have brought the bridge back.
sleep 0.5
ip -n "$H" link show kvmbr0 >/dev/null 2>&1 && fail "a repair recreated bridge kvmbr0 of the stopped network"
assert_eq "$(net_state a)" inactive "a after the repair delay"
assert_eq "$(busctl --json=short get-property org.kvmnet1 /org/kvmnet1/network/a org.kvmnet1.Network LastRepair |
    jq -r .data)" "" "LastRepair of a"
assert_eq "$(net_state b)" active "b after a stopped"
ip -n "$H" link show kvmbr1 >/dev/null || fail "bridge kvmbr1 of b is gone"

log "a Start asked while the Stop's deletion runs waits for it"
ctl start a
wait_state a active
out=$("$ORDER" stop:a start:a)
assert_eq "$out" $'stop:a ok\nstart:a ok' "Stop then Start"
assert_eq "$(net_state a)" active "a after Stop then Start"
ip -n "$H" link show kvmbr0 >/dev/null || fail "bridge kvmbr0 missing after Stop then Start"
is_dnsmasq "$(dnsmasq_pid a)" || fail "no dnsmasq for a after Stop then Start"

log "a second Stop joins the first"
out=$("$ORDER" stop:a stop:a)
assert_eq "$out" $'stop:a ok\nstop:a ok' "Stop, Stop"
assert_eq "$(net_state a)" inactive "a after Stop, Stop"

log "a DeleteNetwork asked while the Stop's deletion runs waits for it"
ctl start a
wait_state a active
out=$("$ORDER" stop:a delete:a describe)
assert_eq "$(sed -n 1p <<<"$out")" "describe ok" "the first reply (Describe, while the bridge goes)"
assert_contains "$out" "stop:a ok" "the Stop's reply"
assert_contains "$out" "delete:a ok" "the DeleteNetwork's reply"
ctl list --json | jq -e 'map(.name) | index("a") == null' >/dev/null || fail "network a still listed"
ip -n "$H" link show kvmbr0 >/dev/null 2>&1 && fail "bridge kvmbr0 left after the deletion"
[[ ! -e $T/state/networks/a.json ]] || fail "the document of a is still stored"

log "DeleteNetwork of a running network replies once its bridge is gone"
ctl create c --mode nat --bridge kvmbr2 --ipv4 192.168.124.1/24 --dhcp-range 192.168.124.100-192.168.124.200
ctl start c
wait_state c active
out=$("$ORDER" delete:c getall:b)
assert_eq "$out" $'getall:b ok\ndelete:c ok' "DeleteNetwork then GetAll"
ip -n "$H" link show kvmbr2 >/dev/null 2>&1 && fail "bridge kvmbr2 left after the deletion"

log "a Reload that finds a stopping network's document gone answers the Stop first"
ctl create d --mode nat --bridge kvmbr3 --ipv4 192.168.125.1/24 --dhcp-range 192.168.125.100-192.168.125.200
ctl start d
wait_state d active
rm -f "$T"/state/networks/d.json "$T"/state/networks/d.forwards*
# A Stop dropped with its network would never be answered: the call's own
# timeout is 60 s, the test's 20.
out=$(timeout 20 "$ORDER" stop:d reload) || fail "Stop then Reload: not every call was answered (got: $out)"
assert_contains "$out" "stop:d ok" "the Stop's reply"
assert_contains "$out" "reload ok" "the Reload's reply"
ctl list --json | jq -e 'map(.name) | index("d") == null' >/dev/null || fail "network d still listed after the Reload"
ip -n "$H" link show kvmbr3 >/dev/null 2>&1 && fail "bridge kvmbr3 left after Stop and Reload"
[[ ! -e $T/run/d ]] || fail "runtime directory of d left: $(ls "$T/run/d")"
assert_eq "$(net_state b)" active "b after the Reload"

log "a daemon that exits right after a Stop leaves nothing half stopped"
"$ORDER" stop:b >"$T/stopb.out" 2>&1 &
stopb=$!
track_pid "$stopb"
retry 50 _state_is b inactive || fail "b never became inactive"
daemon_stop
assert_eq "$DAEMON_EXIT" 0 "kvmnetd exit status"
wait "$stopb" || true
ip -n "$H" link show kvmbr1 >/dev/null 2>&1 && fail "bridge kvmbr1 left by a daemon that exited during its Stop"
[[ ! -e $T/run/b ]] || fail "runtime directory of b left: $(ls "$T/run/b")"
log "PASS"
