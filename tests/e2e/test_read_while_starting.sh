#!/usr/bin/env bash
# E2E: the daemon answers while a network's start waits for dnsmasq (issue 12,
# "a loop that never blocks"). kvmnetd runs with --dnsmasq pointing at a
# wrapper (lib.sh's held_dnsmasq) that, for networks "slow", "slow2" and
# "slow3" only, waits for a release file before it execs the real dnsmasq
# (same pid: the daemon supervises the wrapper's pid).
#  - while `start slow` waits: Manager.Describe and GetAll on another network
#    (busctl) and `kvmnetctl show` answer, and what they show is "slow"
#    still activating with its start call still waiting;
#  - a second `start slow` joins the first: both return once dnsmasq is ready;
#  - `stop` of a network whose start waits cancels it: the start fails with
#    Conflict, the network is inactive and no dnsmasq (nor wrapper) is left;
#  - other changes of a starting network are refused with Busy;
#  - a daemon that exits (SIGTERM) while a start waits rolls that start
#    back (no bridge, no dnsmasq, no runtime directory left) and leaves the
#    running networks in place.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

nat_topology
bus_start

daemon_start --dnsmasq "$(held_dnsmasq slow slow2 slow3)"

ctl create fast --mode nat --bridge kvmbr0 --ipv4 192.168.122.1/24 --dhcp-range 192.168.122.100-192.168.122.200
ctl start fast
wait_state fast active
ctl create slow --mode nat --bridge kvmbr1 --ipv4 192.168.123.1/24 --dhcp-range 192.168.123.100-192.168.123.200
ctl create slow2 --mode nat --bridge kvmbr2 --ipv4 192.168.124.1/24 --dhcp-range 192.168.124.100-192.168.124.200

log "reads are answered while the start of 'slow' waits for dnsmasq"
"$KVMNETCTL" start slow >"$T/start1.out" 2>&1 &
start1=$!
track_pid "$start1"
retry 50 test -s "$T/waiting.slow" || fail "the wrapper of slow's dnsmasq never ran"
# No timeout of ours: on a daemon that blocks while a start waits, these
# answer only once the start is over (dnsmasq's 10 s readiness limit), and
# then show it failed and the start call returned.
describe=$(busctl --json=short call org.kvmnet1 /org/kvmnet1 org.kvmnet1.Manager Describe | jq -r '.data[0]')
assert_eq "$(jq -r '.networks[] | select(.name == "slow") | .state' <<<"$describe")" activating \
    "state of slow in Manager.Describe while its start waits"
_pid_alive "$start1" || fail "start slow returned before its dnsmasq was released: $(cat "$T/start1.out")"
getall=$(busctl --json=short call org.kvmnet1 /org/kvmnet1/network/fast org.freedesktop.DBus.Properties GetAll s \
    org.kvmnet1.Network | jq -c '.data[0]')
assert_eq "$(jq -r .State.data <<<"$getall")" active "State of fast in GetAll while slow starts"
assert_eq "$(ctl show slow --json | jq -r .status.state)" activating "show slow while it starts"
assert_eq "$(busctl --json=short get-property org.kvmnet1 /org/kvmnet1/network/slow org.kvmnet1.Network Dnsmasq |
    jq -r .data)" starting "Dnsmasq property of slow while it starts"
_pid_alive "$start1" || fail "start slow returned before its dnsmasq was released: $(cat "$T/start1.out")"

log "a change of the starting network is Busy; a second start joins the first"
expect_error Busy set slow dns.domain=kvm.lan
"$KVMNETCTL" start slow >"$T/start2.out" 2>&1 &
start2=$!
track_pid "$start2"
: >"$T/release.slow"
wait "$start1" || fail "first start of slow failed: $(cat "$T/start1.out")"
wait "$start2" || fail "second start of slow failed: $(cat "$T/start2.out")"
assert_eq "$(net_state slow)" active "slow after its dnsmasq is ready"
is_dnsmasq "$(dnsmasq_pid slow)" || fail "no dnsmasq for slow"

log "a stop cancels a start that waits"
"$KVMNETCTL" start slow2 >"$T/start3.out" 2>&1 &
start3=$!
track_pid "$start3"
retry 50 test -s "$T/waiting.slow2" || fail "the wrapper of slow2's dnsmasq never ran"
wrapper=$(cat "$T/waiting.slow2")
is_dnsmasq "$wrapper" || _pid_alive "$wrapper" || fail "no wrapper process for slow2 (pid '$wrapper')"
ctl stop slow2
if wait "$start3"; then
    fail "start of slow2 succeeded although it was stopped: $(cat "$T/start3.out")"
fi
assert_contains "$(cat "$T/start3.out")" "Conflict" "the cancelled start's error"
assert_eq "$(net_state slow2)" inactive "slow2 after the stop"
retry 25 not _pid_alive "$wrapper" || fail "slow2's dnsmasq (wrapper pid $wrapper) survived the stop"
assert_eq "$(net_state fast)" active "fast after all this"
assert_eq "$(net_state slow)" active "slow after all this"

log "a daemon that exits while a start waits rolls that start back"
ctl create slow3 --mode nat --bridge kvmbr3 --ipv4 192.168.125.1/24 --dhcp-range 192.168.125.100-192.168.125.200
"$KVMNETCTL" start slow3 >"$T/start4.out" 2>&1 &
start4=$!
track_pid "$start4"
retry 50 test -s "$T/waiting.slow3" || fail "the wrapper of slow3's dnsmasq never ran"
wrapper=$(cat "$T/waiting.slow3")
daemon_stop
assert_eq "$DAEMON_EXIT" 0 "kvmnetd exit status"
if wait "$start4"; then
    fail "start of slow3 succeeded although the daemon exited: $(cat "$T/start4.out")"
fi
retry 25 not _pid_alive "$wrapper" || fail "slow3's dnsmasq (wrapper pid $wrapper) survived the daemon"
ip -n "$H" link show kvmbr3 >/dev/null 2>&1 && fail "bridge kvmbr3 of the rolled-back start is still there"
[[ ! -e $T/run/slow3 ]] || fail "runtime directory of slow3 left behind: $(ls "$T/run/slow3")"
# The networks that were up keep running for the next daemon.
ip -n "$H" link show kvmbr1 >/dev/null || fail "bridge kvmbr1 of the running network slow is gone"
log "PASS"
