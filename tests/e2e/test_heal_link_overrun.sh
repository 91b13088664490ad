#!/usr/bin/env bash
# E2E: lost link notifications (ENOBUFS on the rtnetlink monitor) keep every
# network converged (issue 17: with hundreds of networks a busy loop met a
# burst of notifications). The monitor's receive buffer is shrunk with
# --link-monitor-rcvbuf and the daemon is paused (SIGSTOP) while 300 other
# links are made and then one network's bridge is deleted, so the deletion's
# own notification is certainly among the lost ones. After SIGCONT the
# daemon logs the overrun once per burst, re-checks every running network
# from its own bridge, and the deleted bridge is back with its address.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
rcvbuf=${LINK_RCVBUF:-4096}
dummies=${DUMMIES:-300}

nat_topology
bus_start
daemon_start --link-monitor-rcvbuf "$rcvbuf"
for i in 1 2 3; do
    ctl create "ovr$i" --mode nat --bridge "kvo$i" --ipv4 "10.61.$i.1/24" >/dev/null
    ctl start "ovr$i" >/dev/null
done

overruns() { grep -c 'link notifications were lost' "$T/kvmnetd.log" || true; }
bridge_back() { ip -n "$H" -4 -o addr show dev kvo2 2>/dev/null | grep -q ' 10.61.2.1/24'; }

log "pausing the daemon; $dummies other links (bridges), then bridge kvo2 deleted"
kill -STOP "$DAEMON_PID"
for ((i = 0; i < dummies; i++)); do echo "link add ovrd$i type bridge"; done >"$T/dummies.batch"
ip -n "$H" -batch "$T/dummies.batch"
ip -n "$H" link del kvo2
kill -CONT "$DAEMON_PID"

retry 100 bridge_back || fail "bridge kvo2 was not put back after the lost notifications"
(($(overruns) > 0)) || fail "the monitor did not overflow (rcvbuf $rcvbuf, $dummies links); the test proves nothing"
log "the monitor lost notifications $(overruns) time(s)"
for i in 1 2 3; do wait_state "ovr$i" active; done
assert_contains "$(grep 'ovr2: repaired' "$T/kvmnetd.log" || true)" "kvo2" "ovr2's repair names its bridge"

for ((i = 0; i < dummies; i++)); do echo "link del ovrd$i"; done >"$T/dummies.batch"
ip -n "$H" -batch "$T/dummies.batch"
for i in 1 2 3; do ctl stop "ovr$i" >/dev/null; done
daemon_stop
assert_eq "$DAEMON_EXIT" 0 "kvmnetd exit status after SIGTERM"
log PASS
