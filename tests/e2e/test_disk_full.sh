#!/usr/bin/env bash
# E2E: a forward added after a disk-full episode survives a restart (issue
# 11, item 6). The state directory is a 64 KiB tmpfs of the test's own.
#  1. the state dir is filled up; an AddForwards of a long batch fails (its
#     journal line does not fit: a short write) and adds nothing.
#  2. space is freed; `forward add --host-port 7777` succeeds, every journal
#     line is whole JSON.
#  3. after a daemon restart 7777 is still there (and in the kernel), the
#     failed batch is not.
set -euo pipefail
if [[ -z ${KVMNET_E2E_MOUNTNS:-} ]] && ((EUID == 0)); then
    KVMNET_E2E_MOUNTNS=1 exec unshare --mount --propagation private bash "$0" "$@"
fi
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

nat_topology
bus_start
state_tmpfs 64k
daemon_start

ctl create n1 --mode nat --bridge kvmbr1 --ipv4 10.77.0.1/24 --dhcp-range 10.77.0.100-10.77.0.200
ctl start n1
wait_state n1 active
ctl forward add n1 tcp 8001 10.77.0.10:80
journal=$T/state/networks/n1.forwards
[[ -s $journal ]] || fail "no forwards journal after forward add"
forward_ports() { ctl forward list n1 --json | jq -c '[.[].host_port] | sort'; }
kernel_has_port() { in_ns "$H" nft -j list table inet kvmnet | jq -e --argjson p "$1" '[.. | numbers] | index($p)' >/dev/null; }

log "1. the state dir is full: a batch whose journal line does not fit fails"
dd if=/dev/zero of="$T/state/filler" bs=4k 2>/dev/null || true
description=$(printf 'x%.0s' {1..120})
jq -n --arg d "$description" '[range(9000; 9200) | {proto: "tcp", host_port: ., guest: "10.77.0.10",
    guest_port: 22, description: $d}]' >"$T/batch.json"
expect_error Kernel forward add n1 --file "$T/batch.json"
log "AddForwards failed as expected: $ERR_MSG"
assert_eq "$(forward_ports)" "[8001]" "forwards after the failed batch"
if kernel_has_port 9100; then fail "an element of the failed batch is in table inet kvmnet"; fi

log "2. space again: one more forward succeeds"
rm -f "$T/state/filler"
ctl forward add n1 --host-port 7777 --guest 10.77.0.10 --guest-port 22
assert_eq "$(forward_ports)" "[7777,8001]" "forwards after forward add 7777"
while IFS= read -r line; do
    jq -e . >/dev/null 2>&1 <<<"$line" || fail "journal line is not JSON: ${line:0:200}"
done <"$journal"

log "3. restart: 7777 is still there"
daemon_stop
daemon_start
wait_state n1 active
assert_eq "$(forward_ports)" "[7777,8001]" "forwards after the restart"
assert_not_contains "$(cat "$T/kvmnetd.log")" "line skipped" "daemon log"
kernel_has_port 7777 || fail "forward 7777 not in table inet kvmnet after the restart"

daemon_stop
assert_eq "$DAEMON_EXIT" 0 "kvmnetd exit status after SIGTERM"
log "PASS"
