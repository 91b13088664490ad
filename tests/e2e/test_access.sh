#!/usr/bin/env bash
# E2E: reading is open to every local user, changing needs root. An
# unprivileged user (nobody) can list and show networks but every changing
# command is refused with AccessDenied and changes nothing.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

command -v setpriv >/dev/null || skip "setpriv (util-linux) is needed to run a command as another user"

nat_topology
bus_start
daemon_start

ctl create acc --mode nat --bridge kvmbr6 --ipv4 10.44.0.1/24 --dhcp-range 10.44.0.10-10.44.0.20
as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$KVMNETCTL" "$@"; }

log "reads work for nobody"
assert_eq "$(as_nobody list --json | jq -r '.[0].name')" acc "list as nobody"
assert_eq "$(as_nobody show acc --json | jq -r .bridge)" kvmbr6 "show as nobody"

before=$(kernel_snapshot "$H")
stored=$(cat "$T/state/networks/acc.json")

log "changes are refused for nobody"
denied() {
    local rc err
    err=$(as_nobody "$@" 2>&1 >/dev/null) && rc=0 || rc=$?
    ((rc == 1)) || fail "kvmnetctl $* as nobody: expected exit 1, got $rc ($err)"
    [[ $err == "kvmnetctl: AccessDenied: "* ]] || fail "kvmnetctl $* as nobody: expected AccessDenied, got: $err"
}
denied start acc
denied stop acc
denied autostart acc on
denied delete acc
denied create other --mode nat --ipv4 10.45.0.1/24

assert_eq "$(kernel_snapshot "$H")" "$before" "kernel state after refused calls"
assert_eq "$(cat "$T/state/networks/acc.json")" "$stored" "stored document after refused calls"
assert_eq "$(ctl list --json | jq -r 'map(.name) | join(",")')" acc "networks after refused calls"
assert_eq "$(net_state acc)" inactive "state after refused calls"

log "root may"
ctl start acc
wait_state acc active
ctl delete acc
log PASS
