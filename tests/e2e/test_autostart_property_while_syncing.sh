#!/usr/bin/env bash
# E2E: setting the Autostart property (org.freedesktop.DBus.Properties.Set)
# while the state directory's disk cannot sync does not stop the daemon
# answering everyone else (issue 12: "the loop never waits on a disk").
# A property setter answers as it returns (sdbus-c++ 1.2), so it cannot
# wait for the fsync as SetAutostart does without holding the event loop:
#  - on lib.sh's slow_disk, frozen (disk_freeze), `busctl set-property ...
#    Autostart b true` returns, the value is in effect (Get, show, Describe)
#    and other reads are answered, while the document on disk is still the
#    old one;
#  - thawed, the document reaches the disk and survives a daemon restart.
# Before, the setter waited for the fsync on the event loop: it, and every
# read behind it, hung until the disk thawed.
set -euo pipefail
if [[ -z ${KVMNET_E2E_MOUNTNS:-} ]] && ((EUID == 0)); then
    KVMNET_E2E_MOUNTNS=1 exec unshare --mount --propagation private bash "$0" "$@"
fi
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

slow_disk "$T/state"

nat_topology
bus_start
daemon_start

ctl create n1 --mode isolated --bridge kvmbr1 --ipv4 10.77.0.1/24 >/dev/null
ctl create n2 --mode isolated --bridge kvmbr2 --ipv4 10.78.0.1/24 >/dev/null
document=$T/state/networks/n1.json
assert_eq "$(jq -r .autostart "$document")" false "autostart of n1 on disk at first"

log "1. the state directory's disk is frozen: fsyncs there wait"
disk_freeze

log "2. Set Autostart returns, and reads are answered"
busctl set-property org.kvmnet1 /org/kvmnet1/network/n1 org.kvmnet1.Network Autostart b true \
    >"$T/set.out" 2>&1 &
setter=$!
track_pid "$setter"
getall=$(busctl --json=short call org.kvmnet1 /org/kvmnet1/network/n2 org.freedesktop.DBus.Properties GetAll s \
    org.kvmnet1.Network | jq -c '.data[0]') || fail "GetAll of n2 got no answer while n1's Autostart was set"
assert_eq "$(jq -r .Name.data <<<"$getall")" n2 "Name of n2 in GetAll while n1's Autostart is set"
retry 50 not _pid_alive "$setter" || fail "Set Autostart did not return while the state directory could not be synced"
wait "$setter" || fail "Set Autostart failed: $(cat "$T/set.out")"
assert_eq "$(busctl --json=short get-property org.kvmnet1 /org/kvmnet1/network/n1 org.kvmnet1.Network Autostart |
    jq -r .data)" true "the Autostart property after Set"
assert_eq "$(ctl show n1 --json | jq -r .config.autostart)" true "autostart of n1 in show"
describe=$(busctl --json=short call org.kvmnet1 /org/kvmnet1 org.kvmnet1.Manager Describe | jq -r '.data[0]')
assert_eq "$(jq -r '.networks[] | select(.name == "n1") | .autostart' <<<"$describe")" true \
    "autostart of n1 in Manager.Describe"
ctl list >/dev/null
assert_eq "$(jq -r .autostart "$document")" false "autostart of n1 on disk while its fsync waits"

log "3. thawed: the document reaches the disk"
disk_thaw
_on_disk() { [[ $(jq -r .autostart "$document") == true ]]; }
retry 50 _on_disk || fail "autostart of n1 never reached the disk after the thaw"
leftovers=$(find "$T/state/networks" -name '*.tmp*')
assert_eq "$leftovers" "" "temporary files left in the state directory"

log "4. a restart reads it back"
daemon_stop
assert_eq "$DAEMON_EXIT" 0 "kvmnetd exit status after SIGTERM"
daemon_start
assert_eq "$(ctl show n1 --json | jq -r .config.autostart)" true "autostart of n1 after a restart"
log "PASS"
