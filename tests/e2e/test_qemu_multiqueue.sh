#!/usr/bin/env bash
# E2E: a multiqueue guest port. `port attach --tap --queues 4` makes a
# persistent IFF_MULTI_QUEUE tap owned by uid 65534; an unprivileged QEMU
# (TCG, 4 vCPUs) opens it with -netdev tap,queues=4; the guest's virtio-net
# uses 4 queue pairs (what `ethtool -l eth0` reports as 4 current combined
# channels), takes a lease and pings the gateway; `port list` shows the
# queues and, while QEMU runs, the 4 queues open on the tap.
# Then: a tap deleted while the network is stopped comes back multiqueue at
# start, and bad --queues are refused with the field named.
# Skips (77) as test_qemu_guest.sh does.
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=tests/e2e/guest/guest.sh
source "$(dirname "${BASH_SOURCE[0]}")/guest/guest.sh"

TAP="tap-mq0"
MAC=52:54:00:12:34:57
GUEST_QUEUES=4

guest_prepare

nat_topology
bus_start
daemon_start

log "create + start default"
ctl create default --mode nat --bridge kvmbr0 --ipv4 192.168.122.1/24 \
    --dhcp-range 192.168.122.100-192.168.122.254
ctl start default
wait_state default active
retry 25 test -s "$T/run/default/dnsmasq.pid" || fail "no $T/run/default/dnsmasq.pid"

log "bad --queues are refused, nothing is created"
for bad in 0 257; do
    if ctl port attach default "$TAP" --tap --owner "$GUEST_UID" --queues "$bad" 2>"$T/bad.err"; then
        fail "port attach --queues $bad succeeded"
    fi
    grep -q 'port.queues: must be an integer between 1 and 256' "$T/bad.err" ||
        fail "port attach --queues $bad: unexpected error: $(cat "$T/bad.err")"
    not ip -n "$H" link show "$TAP" >/dev/null 2>&1 || fail "$TAP exists after a refused attach"
done

log "port attach $TAP --queues $GUEST_QUEUES (tap owned by uid $GUEST_UID)"
ctl port attach default "$TAP" --tap --owner "$GUEST_UID" --queues "$GUEST_QUEUES" 2>"$T/attach.err" ||
    fail "port attach default $TAP failed: $(cat "$T/attach.err")"
tap_json=$(ip -n "$H" -j -d link show "$TAP") || fail "$TAP missing in the host namespace after port attach"
assert_eq "$(jq -r '.[0].linkinfo.info_data.type' <<<"$tap_json")" tap "$TAP tun type"
assert_eq "$(jq -r '.[0].linkinfo.info_data.multi_queue' <<<"$tap_json")" true "$TAP multi_queue (ip -d)"
assert_eq "$(jq -r '.[0].master' <<<"$tap_json")" kvmbr0 "$TAP master"
port=$(ctl port list default --json | jq -c --arg n "$TAP" '.[] | select(.name == $n)')
assert_eq "$(jq -r .queues <<<"$port")" "$GUEST_QUEUES" "queues of $TAP in port list"
assert_eq "$(jq -r .multi_queue <<<"$port")" true "multi_queue of $TAP in port list"
assert_eq "$(jq -r .open_queues <<<"$port")" 0 "open queues of $TAP before QEMU"
ctl port list default | grep -q "queues $GUEST_QUEUES(0 open)" ||
    fail "port list table lacks 'queues $GUEST_QUEUES(0 open)': $(ctl port list default)"

log "boot the guest (QEMU, TCG, $GUEST_QUEUES vCPUs, queues=$GUEST_QUEUES, uid $GUEST_UID, in $H)"
# boot_guest waits for QEMU to end, so the queues QEMU holds open are read by
# a watcher of this test's own (tracked, so cleanup stops it on failure); the
# guest holds on after its pings so that the watcher sees them.
(
    for ((i = 0; i < 1200; i++)); do
        n=$(ip -n "$H" -j -d link show "$TAP" 2>/dev/null | jq -r '.[0].linkinfo.info_data.numqueues // 0' || true)
        if [[ $n == "$GUEST_QUEUES" ]]; then
            "$KVMNETCTL" port list default --json >"$T/ports-open.json" 2>&1 || true
            exit 0
        fi
        sleep 0.1
    done
) &
watcher=$!
track_pid "$watcher"
boot_guest "$TAP" "$MAC" "kvmnet.hold=8"
wait "$watcher" || true
assert_eq "$(guest_field "$(guest_lines "$GUEST_CONSOLE" eth0)" mac)" "$MAC" "guest eth0 MAC"
queues=$(guest_lines "$GUEST_CONSOLE" queues)
log "guest: $queues"
assert_eq "$(guest_field "$queues" rx)" "$GUEST_QUEUES" "guest eth0 rx queues (ethtool -l: combined)"
assert_eq "$(guest_field "$queues" tx)" "$GUEST_QUEUES" "guest eth0 tx queues (ethtool -l: combined)"
assert_guest_lease "$GUEST_CONSOLE" 192.168.122.100-192.168.122.254 192.168.122.1
assert_guest_ping "$GUEST_CONSOLE" 192.168.122.1

log "port list showed the $GUEST_QUEUES queues QEMU opened"
[[ -s $T/ports-open.json ]] || fail "the tap never had $GUEST_QUEUES queues open while QEMU ran"
assert_eq "$(jq -r --arg n "$TAP" '.[] | select(.name == $n) | .open_queues' "$T/ports-open.json")" \
    "$GUEST_QUEUES" "open queues of $TAP while QEMU ran"
port=$(ctl port list default --json | jq -c --arg n "$TAP" '.[] | select(.name == $n)')
jq -e '.rx_bytes > 0 and .tx_bytes > 0' <<<"$port" >/dev/null ||
    fail "$TAP counters should show the guest's DHCP and ping traffic: $port"

log "a deleted tap comes back multiqueue at the next start"
ctl stop default
wait_state default inactive
ip -n "$H" link del "$TAP"
ctl start default
wait_state default active
retry 25 ip -n "$H" link show "$TAP" >/dev/null 2>&1 || fail "$TAP not recreated at start"
assert_eq "$(ip -n "$H" -j -d link show "$TAP" | jq -r '.[0].linkinfo.info_data.multi_queue')" true \
    "$TAP multi_queue after it was recreated"

log "port detach"
ctl port detach default "$TAP"
retry 25 not ip -n "$H" link show "$TAP" >/dev/null 2>&1 ||
    fail "$TAP still exists after port detach (the daemon created it)"

log "stop + delete"
ctl stop default
wait_state default inactive
ctl delete default
daemon_stop
assert_eq "$DAEMON_EXIT" 0 "kvmnetd exit status after SIGTERM"
log "PASS"
