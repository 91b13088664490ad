#!/usr/bin/env bash
# E2E: kvmnetctl reports a network deleted while it was using it as NotFound
# naming the network, never as a raw org.freedesktop.DBus.Error.UnknownObject
# (issue 11, item 13). `kvmnetctl show lab-1` looks the network up (GetNetwork)
# and then calls Describe on its object; a DeleteNetwork in between removes
# the object. The interleaving is made deterministic, without sleeps: the
# daemon is stopped (SIGSTOP) while kvmnetctl's GetNetwork and then the
# DeleteNetwork queue up on its bus socket (their arrival seen in the
# socket's receive queue), so on SIGCONT it answers GetNetwork, deletes lab-1,
# and only then gets kvmnetctl's Describe.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

nat_topology
bus_start
daemon_start
ctl create lab-1 --mode isolated --bridge kvmbr1 --ipv4 10.1.0.1/24

# queued: bytes waiting in the receive queues of the daemon's sockets. kvmnetd
# subscribes to no signals, so while it is stopped only calls to it queue up.
queued() {
    in_ns "$H" ss -H -x -p | awk -v p="pid=$DAEMON_PID," 'index($0, p) { q += $3 } END { print q + 0 }'
}
_queued_over() { (($(queued) > $1)); }

kill -STOP "$DAEMON_PID"
"$KVMNETCTL" show lab-1 >"$T/show.out" 2>"$T/show.err" &
SHOW_PID=$!
track_pid "$SHOW_PID"
retry 50 _queued_over 0 || { kill -CONT "$DAEMON_PID"; fail "kvmnetctl's GetNetwork never reached the daemon"; }
before=$(queued)
dbus-send --system --print-reply --dest=org.kvmnet1 /org/kvmnet1 org.kvmnet1.Manager.DeleteNetwork \
    string:lab-1 >"$T/delete.out" 2>&1 &
DELETE_PID=$!
track_pid "$DELETE_PID"
retry 50 _queued_over "$before" || { kill -CONT "$DAEMON_PID"; fail "DeleteNetwork never reached the daemon"; }
kill -CONT "$DAEMON_PID"

wait "$DELETE_PID" || fail "DeleteNetwork failed: $(cat "$T/delete.out")"
wait "$SHOW_PID" && rc=0 || rc=$?
err=$(cat "$T/show.err")
log "kvmnetctl show lab-1 (deleted meanwhile): exit $rc: $err"
assert_eq "$rc" 1 "exit status of kvmnetctl show"
assert_not_contains "$err" "UnknownObject" "kvmnetctl's error"
assert_contains "$err" "kvmnetctl: NotFound: " "kvmnetctl's error"
assert_contains "$err" "'lab-1'" "kvmnetctl's error (names the network)"

log "a network that never existed: the daemon's own NotFound"
expect_error NotFound show nosuch
assert_contains "$ERR_MSG" "no network named 'nosuch'" "error for show nosuch"

daemon_stop
assert_eq "$DAEMON_EXIT" 0 "kvmnetd exit status after SIGTERM"
log "PASS"
