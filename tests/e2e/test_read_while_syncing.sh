#!/usr/bin/env bash
# E2E: reads are answered while a write waits for its fsync, and the write's
# reply waits for it (issue 12, item 4: "reads never wait behind an fsync").
# The state directory is on lib.sh's slow_disk: while it is frozen
# (disk_freeze), writes into its page cache go on but every fsync there
# waits, for as long as the test wants.
#  - while the outer file system is frozen, `autostart n1 on` is called: its
#    reply waits (the call is still running), the document on disk is still
#    the old one;
#  - meanwhile `kvmnetctl show`, Manager.Describe and GetAll answer, with the
#    change already visible in memory;
#  - thawed: the call returns success, the document on disk has it, and it
#    survives a daemon restart.
# Before item 4 the daemon fsynced on its event loop: the reads hung behind
# the frozen fsync and failed with a D-Bus timeout.
set -euo pipefail
if [[ -z ${KVMNET_E2E_MOUNTNS:-} ]] && ((EUID == 0)); then
    KVMNET_E2E_MOUNTNS=1 exec unshare --mount --propagation private bash "$0" "$@"
fi
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

slow_disk "$T/state"

nat_topology
bus_start
daemon_start

ctl create n1 --mode isolated --bridge kvmbr1 --ipv4 10.77.0.1/24
ctl create n2 --mode isolated --bridge kvmbr2 --ipv4 10.78.0.1/24
document=$T/state/networks/n1.json
assert_eq "$(jq -r .autostart "$document")" false "autostart of n1 on disk at first"

log "1. the outer file system is frozen: fsyncs in the state directory wait"
disk_freeze
"$KVMNETCTL" autostart n1 on >"$T/autostart.out" 2>&1 &
writer=$!
track_pid "$writer"

log "2. reads are answered meanwhile, from memory"
# A show that fails (the daemon did not answer within the bus timeout) ends
# the test at once; one that answers may come before the autostart call
# reached the daemon.
autostart_shown() {
    local shown
    shown=$(ctl show n1 --json) || fail "show n1 got no answer while n1's write waits for its fsync"
    [[ $(jq -r .config.autostart <<<"$shown") == true ]]
}
retry 50 autostart_shown || fail "show n1 never showed autostart on while the write waits"
describe=$(busctl --json=short call org.kvmnet1 /org/kvmnet1 org.kvmnet1.Manager Describe | jq -r '.data[0]')
assert_eq "$(jq -r '.networks[] | select(.name == "n1") | .autostart' <<<"$describe")" true \
    "autostart of n1 in Manager.Describe while its write is pending"
getall=$(busctl --json=short call org.kvmnet1 /org/kvmnet1/network/n2 org.freedesktop.DBus.Properties GetAll s \
    org.kvmnet1.Network | jq -c '.data[0]')
assert_eq "$(jq -r .Name.data <<<"$getall")" n2 "Name of n2 in GetAll while n1's write is pending"
ctl list >/dev/null

log "3. the write's reply waits for its fsync"
_pid_alive "$writer" || fail "autostart n1 on returned while the state directory could not be synced: $(cat "$T/autostart.out")"
assert_eq "$(jq -r .autostart "$document")" false "autostart of n1 on disk while its fsync waits"

log "4. thawed: the write returns success and is on disk"
disk_thaw
wait "$writer" || fail "autostart n1 on failed: $(cat "$T/autostart.out")"
assert_eq "$(jq -r .autostart "$document")" true "autostart of n1 on disk after the reply"
leftovers=$(find "$T/state/networks" -name '*.tmp*')
assert_eq "$leftovers" "" "temporary files left in the state directory"

log "5. a restart reads it back"
daemon_stop
assert_eq "$DAEMON_EXIT" 0 "kvmnetd exit status after SIGTERM"
daemon_start
assert_eq "$(ctl show n1 --json | jq -r .config.autostart)" true "autostart of n1 after a restart"
log "PASS"
