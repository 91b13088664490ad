#!/usr/bin/env bash
# E2E: changing calls that cannot store their result change nothing
# (issue 11, items 3 and 7). The state directory is a tmpfs of the test's
# own, remounted read-only and writable again.
#  1. a live `set stp=on` / `set mtu=1400` on a running network fails: the
#     bridge, `show` and the stored document keep the old values.
#  1b. forward add, host add and an Update fail the same way; the table,
#     dnsmasq.hosts, `show` and the disk are unchanged.
#  2. `delete` fails: the network keeps running, no deletion marker is left;
#     with the state dir writable again a daemon restart keeps the network.
set -euo pipefail
if [[ -z ${KVMNET_E2E_MOUNTNS:-} ]] && ((EUID == 0)); then
    KVMNET_E2E_MOUNTNS=1 exec unshare --mount --propagation private bash "$0" "$@"
fi
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

nat_topology
bus_start
state_tmpfs 1m
daemon_start

ctl create n1 --mode nat --bridge kvmbr1 --ipv4 10.77.0.1/24 --dhcp-range 10.77.0.100-10.77.0.200
ctl start n1
wait_state n1 active
doc=$T/state/networks/n1.json
stored_before=$(cat "$doc")
bridge_stp() { link_json "$H" kvmbr1 | jq -r .linkinfo.info_data.stp_state; }
bridge_mtu() { link_json "$H" kvmbr1 | jq -r .mtu; }
stp_before=$(bridge_stp)
mtu_before=$(bridge_mtu)
assert_eq "$stp_before" 0 "STP of kvmbr1 at start"

log "1. live set with a read-only state dir fails and changes nothing"
state_mode ro
expect_error Kernel set n1 stp=on forward_delay=2
assert_contains "$ERR_MSG" "Read-only file system" "error of set stp=on"
assert_eq "$(bridge_stp)" "$stp_before" "STP of kvmbr1 after the failed set"
assert_eq "$(ctl show n1 --json | jq -r '.config.stp // false')" false "stp shown after the failed set"
expect_error Kernel set n1 mtu=1400
assert_eq "$(bridge_mtu)" "$mtu_before" "MTU of kvmbr1 after the failed set"
assert_eq "$(ctl show n1 --json | jq -r '.config.mtu // 0')" "$(jq -r '.mtu // 0' <<<"$stored_before")" "mtu shown"
assert_eq "$(cat "$doc")" "$stored_before" "stored document after the failed sets"
assert_eq "$(net_state n1)" active "state after the failed sets"

log "1b. forward add, host add and a host's new address fail and change nothing"
nft_table() { in_ns "$H" nft -j list table inet kvmnet | jq -S 'walk(if type == "object" then
    del(.handle, .counter, .packets, .bytes, .expires) else . end)'; }
state_mode rw
ctl host add n1 52:54:00:00:00:10 10.77.0.10 web
ctl forward add n1 --host-port 8080 --guest web --guest-port 80
stored_before=$(cat "$doc")
state_mode ro
table_before=$(nft_table)
hosts_before=$(cat "$T/run/n1/dnsmasq.hosts")
expect_error Kernel forward add n1 tcp 8081 10.77.0.11:80
expect_error Kernel host add n1 52:54:00:00:00:11 10.77.0.11 db
# The host's new address moves the forward that names it: a restart.
moved=$(ctl export n1 | jq -c '.ipv4.dhcp.hosts[0].ip = "10.77.0.12"')
if out=$(dbus-send --system --print-reply --dest=org.kvmnet1 /org/kvmnet1/network/n1 \
    org.kvmnet1.Network.Update "string:$moved" 2>&1); then
    fail "Update of a host's address on a read-only state dir succeeded: $out"
fi
assert_contains "$out" "Read-only file system" "error of the Update"
[[ ! -e $T/run/n1.restarting ]] || fail "a failed Update left $T/run/n1.restarting"
assert_eq "$(nft_table)" "$table_before" "table inet kvmnet after the failed calls"
assert_eq "$(cat "$T/run/n1/dnsmasq.hosts")" "$hosts_before" "dnsmasq.hosts after the failed calls"
assert_eq "$(ctl forward list n1 --json | jq -c '[.[] | [.host_port, .guest]]')" '[[8080,"web"]]' "forwards"
assert_eq "$(ctl show n1 --json | jq -c '[.config.ipv4.dhcp.hosts[].ip]')" '["10.77.0.10"]' "static hosts shown"
assert_eq "$(cat "$doc")" "$stored_before" "stored document after the failed calls"

log "2. delete with a read-only state dir fails and leaves no marker"
expect_error Kernel delete n1
assert_contains "$ERR_MSG" "Read-only file system" "error of delete"
[[ ! -e $T/run/n1.deleting ]] || fail "a failed delete left $T/run/n1.deleting"
assert_eq "$(net_state n1)" active "state after the failed delete (refused before stopping)"
state_mode rw
ctl start n1
wait_state n1 active
daemon_stop
daemon_start
wait_state n1 active
[[ -f $doc ]] || fail "a daemon restart after a failed delete removed $doc"
ip -n "$H" link show kvmbr1 >/dev/null || fail "kvmbr1 gone after the restart"

log "3. with a writable state dir the same calls work"
ctl set n1 stp=on forward_delay=2
assert_eq "$(bridge_stp)" 1 "STP of kvmbr1 after set stp=on"
assert_eq "$(jq -r .stp "$doc")" true "stp stored"
ctl delete n1
[[ ! -e $doc ]] || fail "$doc still there after delete"
if ip -n "$H" link show kvmbr1 >/dev/null 2>&1; then fail "kvmbr1 still there after delete"; fi

daemon_stop
assert_eq "$DAEMON_EXIT" 0 "kvmnetd exit status after SIGTERM"
log "PASS"
