#!/usr/bin/env bash
# E2E: reads are answered while a write waits for its fsync, and the write's
# reply waits for it (issue 12, item 4: "reads never wait behind an fsync").
# The state directory is an ext4 of the test's own whose image lives on a
# second ext4 of the test's own (two loop devices, in a private mount
# namespace). Freezing the outer one (fsfreeze) lets writes into the state
# directory's page cache go on but holds every fsync there, for as long as
# the test wants: a real slow disk, no test hook in the daemon.
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

command -v mkfs.ext4 >/dev/null || skip "mkfs.ext4 (e2fsprogs) is not installed"
command -v fsfreeze >/dev/null || skip "fsfreeze (util-linux) is not installed"
[[ -e /dev/loop-control ]] || skip "no loop devices (/dev/loop-control)"

# Thaw before lib.sh's cleanup stops the daemon: a daemon (or the kernel's
# writeback) waiting on the frozen file system would not stop otherwise.
OUTER=$T/outer
FROZEN=0
thaw() {
    if ((FROZEN)); then
        fsfreeze -u "$OUTER" 2>/dev/null || true
        FROZEN=0
    fi
}
# cleanup reads the exit status from $?: give it back (as a status of an
# && list, which neither errexit nor the ERR trap acts on).
_status() { return "$1"; }
trap 'rc=$?; thaw; { _status "$rc" && cleanup; } || cleanup' EXIT

mkdir -p "$OUTER" "$T/state"
truncate -s 64M "$T/outer.img"
mkfs.ext4 -q -F "$T/outer.img"
mount -o loop "$T/outer.img" "$OUTER" || skip "cannot mount an ext4 image on a loop device"
MOUNTS+=("$OUTER")
truncate -s 32M "$OUTER/state.img"
mkfs.ext4 -q -F "$OUTER/state.img"
mount -o loop "$OUTER/state.img" "$T/state"
MOUNTS=("$T/state" "${MOUNTS[@]}") # the inner one is unmounted first

nat_topology
bus_start
daemon_start

ctl create n1 --mode isolated --bridge kvmbr1 --ipv4 10.77.0.1/24
ctl create n2 --mode isolated --bridge kvmbr2 --ipv4 10.78.0.1/24
document=$T/state/networks/n1.json
assert_eq "$(jq -r .autostart "$document")" false "autostart of n1 on disk at first"

log "1. the outer file system is frozen: fsyncs in the state directory wait"
sync -f "$T/state"
sync -f "$OUTER"
fsfreeze -f "$OUTER"
FROZEN=1
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
thaw
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
