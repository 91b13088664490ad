#!/usr/bin/env bash
# E2E: a daemon killed (SIGKILL) after it spawned a network's dnsmasq but
# before that dnsmasq wrote its pid file leaves no second dnsmasq behind
# (test_crash once found a dnsmasq of a stopped network after a kill during
# `start a`). kvmnetd runs with --dnsmasq pointing at lib.sh's held_dnsmasq
# wrapper, which for networks "a" and "b" waits for a release file before
# it execs the real dnsmasq (same pid, same command line: what the daemon
# spawned), so the kill lands in that window every time. After the kill a new daemon starts
# with the real dnsmasq:
#  - "a" (no autostart): its start was cut off; no process runs its
#    configuration (the waiting one is stopped, not left to exec dnsmasq);
#  - "b" (autostart): it runs with exactly one dnsmasq, the new daemon's.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

nat_topology
bus_start


daemon_start --dnsmasq "$(held_dnsmasq a b)"
ctl create a --mode nat --bridge kvmbr1 --ipv4 192.168.123.1/24 --dhcp-range 192.168.123.100-192.168.123.200
ctl create b --mode nat --bridge kvmbr2 --ipv4 192.168.124.1/24 --dhcp-range 192.168.124.100-192.168.124.200
ctl autostart b on
for n in a b; do
    "$KVMNETCTL" start "$n" >"$T/start.$n.out" 2>&1 &
    track_pid $!
done
retry 50 test -s "$T/waiting.a" || fail "the wrapper of a's dnsmasq never ran"
retry 50 test -s "$T/waiting.b" || fail "the wrapper of b's dnsmasq never ran"
old_a=$(cat "$T/waiting.a")
old_b=$(cat "$T/waiting.b")
log "kvmnetd killed while the dnsmasq it spawned for a ($old_a) and b ($old_b) have no pid file yet"
kill -KILL "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null || true
DAEMON_PID=""
retry 25 not _bus_name_owned || fail "org.kvmnet1 still owned after kvmnetd was killed"
_pid_alive "$old_a" || fail "the spawned process of a ($old_a) died with the daemon: the test shows nothing"

daemon_start
wait_state b active
assert_eq "$(net_state a)" inactive "state of a after the restart"
# Still waiting, a process the new daemon did not stop would exec dnsmasq
# once released: none may be left.
assert_eq "$(dnsmasqs_of a)" "" "processes running a's dnsmasq configuration after the restart"
[[ ! -e $T/run/a ]] || fail "a does not run but $T/run/a exists: $(ls "$T/run/a")"
pid=$(dnsmasq_pid b)
is_dnsmasq "$pid" || fail "b runs but its dnsmasq ($pid) does not"
[[ $pid != "$old_b" ]] || fail "b adopted the process that never became ready"
assert_eq "$(dnsmasqs_of b)" "$pid" "processes running b's dnsmasq configuration after the restart"
touch "$T/release.a" "$T/release.b"
log "neither a stopped nor a restarted network keeps a process its killed daemon spawned"

daemon_stop
assert_eq "$DAEMON_EXIT" 0 "kvmnetd exit status after SIGTERM"
log "PASS"
