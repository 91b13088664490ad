#!/usr/bin/env bash
# E2E: kvmnetd's log lines reach stderr, in the plain `<PRIORITY>MESSAGE`
# form, whenever journald cannot take them:
#  1. $JOURNAL_STREAM names the daemon's stderr (as systemd sets it for a
#     unit whose stderr is the journal), but no journald listens: the
#     daemon chooses the journal, the journal refuses every record, and each
#     line goes to stderr instead;
#  2. $JOURNAL_STREAM names another file (inherited by a process whose
#     stderr was redirected elsewhere): plain stderr.
# The journal's own fields are checked with a recording sink in the unit
# tests (test_log.cpp, test_manager_log.cpp "Log records ...") and under a real
# journald by tests/system/test_systemd.sh (check `journal`). This test runs
# in a private mount namespace with an empty /run/systemd/journal, so that
# also on a machine running journald nothing reaches the machine's journal.
set -euo pipefail
if [[ -z ${KVMNET_E2E_MOUNTNS:-} ]] && ((EUID == 0)); then
    KVMNET_E2E_MOUNTNS=1 exec unshare --mount --propagation private bash "$0" "$@"
fi
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $(readlink /proc/self/ns/mnt) != "$(readlink /proc/1/ns/mnt)" ]] ||
    skip "needs a private mount namespace (root, unshare)"
if [[ -d /run/systemd/journal ]]; then
    mount -t tmpfs -o size=64k,mode=755 kvmnet-e2e-nojournal /run/systemd/journal
    MOUNTS+=(/run/systemd/journal)
fi
[[ ! -S /run/systemd/journal/socket ]] || fail "journald's socket is still reachable here"

nat_topology
bus_start

log "1. JOURNAL_STREAM names stderr, no journald: the lines go to stderr"
: >>"$T/kvmnetd.log"
JOURNAL_STREAM=$(stat -c '%d:%i' "$T/kvmnetd.log")
export JOURNAL_STREAM
daemon_start
ctl create x --mode isolated --bridge kvmbr3 --ipv4 10.63.0.1/24 >/dev/null
ctl start x >/dev/null
wait_state x active
daemon_stop
assert_eq "$DAEMON_EXIT" 0 "kvmnetd exit status"
grep -qx '<6>network x: created' "$T/kvmnetd.log" || fail "no '<6>network x: created' line in the daemon's stderr"
grep -qx '<6>network x: active' "$T/kvmnetd.log" || fail "no '<6>network x: active' line in the daemon's stderr"
grep -qx '<6>kvmnetd stopping; running networks are left in place' "$T/kvmnetd.log" ||
    fail "no stopping line in the daemon's stderr"

log "2. JOURNAL_STREAM names another file: stderr"
echo "===== other stream =====" >>"$T/kvmnetd.log"
JOURNAL_STREAM=$(stat -c '%d:%i' "$T/bus.conf")
daemon_start
ctl stop x >/dev/null
wait_state x inactive
daemon_stop
unset JOURNAL_STREAM
assert_eq "$DAEMON_EXIT" 0 "kvmnetd exit status"
after=$(sed -n '/^===== other stream =====$/,$p' "$T/kvmnetd.log")
assert_contains "$after" $'\n<6>network x: inactive\n' "the daemon's stderr with another JOURNAL_STREAM"
log PASS
