#!/usr/bin/env bash
# E2E: the records kvmnetd keeps in its runtime directory never make the
# event loop wait for the disk (issue 12: "the loop never waits on a disk").
# The runtime directory is on lib.sh's slow_disk and frozen (disk_freeze):
# writes into its page cache go on, every fsync there waits. Meanwhile
#  - `start n1 --confirm-timeout` (NAT) records ip_forward's previous value
#    (RUNTIME/ip_forward.saved) and the confirmation deadline
#    (RUNTIME/n1/confirm-deadline), which `confirm` removes;
#  - `start lan --confirm-timeout` (bridge mode) records the takeover
#    (RUNTIME/lan/takeover.json);
#  - `delete n2` (stopped) records RUNTIME/n2.deleting;
# and each returns, with reads answered meanwhile. The records are in place
# before the kernel changes they guard (a crash in between finds them:
# test_crash, test_restart, test_bridge_rollback), a rename needs no fsync
# for that, and RUNTIME does not outlive a reboot. Before, each was fsynced
# on the event loop: the calls and every read hung until the disk thawed.
# Not here: a restart (RUNTIME/NAME.restarting) or the stop of a running
# network. On ext4 a rename over a file whose writeback the frozen disk
# holds waits for that writeback (the kernel's, nothing kvmnetd asks for),
# and by then RUNTIME/nftables.committed, replaced at every table commit,
# is such a file; and dnsmasq fsyncs its lease file as it exits. On the
# tmpfs RUNTIME is meant to be (/run) neither waits.
set -euo pipefail
if [[ -z ${KVMNET_E2E_MOUNTNS:-} ]] && ((EUID == 0)); then
    KVMNET_E2E_MOUNTNS=1 exec unshare --mount --propagation private bash "$0" "$@"
fi
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

slow_disk "$T/run"

lan_topology
bus_start
daemon_start

ctl create n1 --mode nat --bridge kvmbr1 --ipv4 10.77.0.1/24 >/dev/null
ctl create lan --mode bridge --uplink uplink0 --bridge br0 >/dev/null
ctl create n2 --mode isolated --bridge kvmbr2 --ipv4 10.78.0.1/24 >/dev/null

# returns_while_frozen WHAT CTL-ARGS...: the call must return, with success,
# while the runtime directory cannot be synced, and reads are answered
# meanwhile.
returns_while_frozen() {
    local what=$1 call
    shift
    "$KVMNETCTL" "$@" >"$T/call.out" 2>&1 &
    call=$!
    track_pid "$call"
    ctl list >/dev/null || fail "list got no answer during $what"
    busctl --json=short call org.kvmnet1 /org/kvmnet1 org.kvmnet1.Manager Describe >/dev/null ||
        fail "Manager.Describe got no answer during $what"
    retry 50 not _pid_alive "$call" ||
        fail "$what did not return while the runtime directory could not be synced"
    wait "$call" || fail "$what failed: $(cat "$T/call.out")"
}

log "1. the runtime directory's disk is frozen: fsyncs there wait"
disk_freeze

log "2. a NAT start with a confirmation deadline returns, and its confirmation"
returns_while_frozen "start n1 --confirm-timeout 600" start n1 --confirm-timeout 600
[[ -s $T/run/ip_forward.saved ]] || fail "RUNTIME/ip_forward.saved missing after n1 started"
[[ -s $T/run/n1/confirm-deadline ]] || fail "RUNTIME/n1/confirm-deadline missing after n1 started"
assert_eq "$(ctl show n1 --json | jq -r .status.awaiting_confirmation)" true "n1 awaits its confirmation"
returns_while_frozen "confirm n1" confirm n1
[[ ! -e $T/run/n1/confirm-deadline ]] || fail "RUNTIME/n1/confirm-deadline left after confirm"

log "3. a bridge-mode start (a takeover) returns"
returns_while_frozen "start lan --confirm-timeout 600" start lan --confirm-timeout 600
[[ -s $T/run/lan/takeover.json ]] || fail "RUNTIME/lan/takeover.json missing after lan started"
returns_while_frozen "confirm lan" confirm lan
wait_state lan active

log "4. a delete returns"
returns_while_frozen "delete n2" delete n2
[[ ! -e $T/run/n2.deleting ]] || fail "RUNTIME/n2.deleting left after the delete finished"

log "5. thawed: a restarted daemon adopts n1 and lan as they run"
disk_thaw
daemon_stop
assert_eq "$DAEMON_EXIT" 0 "kvmnetd exit status after SIGTERM"
daemon_start
wait_state n1 active
wait_state lan active
expect_error NotFound show n2
ctl stop lan >/dev/null
assert_eq "$(ip -n "$H" -j addr show dev uplink0 | jq -r '.[0].addr_info[] | select(.family == "inet") | .local')" \
    192.0.2.10 "the uplink's address, given back by the takeover record"
log "PASS"
