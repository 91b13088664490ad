#!/usr/bin/env bash
# E2E: a real QEMU guest on a NAT network. Creates and starts "default"
# (kvmbr0, 192.168.122.1/24), has the daemon make the guest's tap
# (`port attach --tap --owner 65534`), boots a Debian kernel + busybox
# initramfs under QEMU (TCG) inside the host namespace as uid 65534, and
# checks from the guest's serial console that it got a lease from dnsmasq,
# pinged the gateway and reached the "internet" namespace through masquerade;
# then that dnsmasq recorded the lease with the guest's MAC, the port shows
# the guest's traffic, and detach removes the tap.
# Skips (77) when QEMU is missing and cannot be installed, or the guest image
# (tests/e2e/guest/build-guest.sh) cannot be built.
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=tests/e2e/guest/guest.sh
source "$(dirname "${BASH_SOURCE[0]}")/guest/guest.sh"

TAP="tap-guest0"
MAC=52:54:00:12:34:56

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

log "port attach $TAP (tap owned by uid $GUEST_UID)"
ctl port attach default "$TAP" --tap --owner "$GUEST_UID" 2>"$T/attach.err" ||
    fail "port attach default $TAP failed: $(cat "$T/attach.err")"
tap_json=$(ip -n "$H" -j -d link show "$TAP") || fail "$TAP missing in the host namespace after port attach"
assert_eq "$(jq -r '.[0].linkinfo.info_kind' <<<"$tap_json")" tun "$TAP kind"
assert_eq "$(jq -r '.[0].linkinfo.info_data.type' <<<"$tap_json")" tap "$TAP tun type"
# ip prints the owner's user name when it has one.
owner=$(jq -r '.[0].linkinfo.info_data.user' <<<"$tap_json")
[[ $owner =~ ^[0-9]+$ ]] || owner=$(id -u "$owner")
assert_eq "$owner" "$GUEST_UID" "$TAP owner uid"
assert_eq "$(jq -r '.[0].master' <<<"$tap_json")" kvmbr0 "$TAP master"
ports=$(ctl port list default --json)
assert_eq "$(jq -r --arg n "$TAP" '.[] | select(.name == $n) | .state' <<<"$ports")" attached \
    "state of $TAP in port list"

log "boot the guest (QEMU, TCG, uid $GUEST_UID, in $H)"
boot_guest "$TAP" "$MAC" "kvmnet.ping=203.0.113.2"
log "guest ran ${GUEST_SECONDS} s; QEMU uids (real,effective,saved,fs): ${GUEST_QEMU_UID:-not seen}"
if [[ -n $GUEST_QEMU_UID ]]; then
    assert_eq "$GUEST_QEMU_UID" "$GUEST_UID,$GUEST_UID,$GUEST_UID,$GUEST_UID" "QEMU's uids"
fi
assert_eq "$(guest_field "$(guest_lines "$GUEST_CONSOLE" eth0)" mac)" "$MAC" "guest eth0 MAC"
assert_guest_lease "$GUEST_CONSOLE" 192.168.122.100-192.168.122.254 192.168.122.1
assert_guest_ping "$GUEST_CONSOLE" 192.168.122.1
assert_guest_ping "$GUEST_CONSOLE" 203.0.113.2

log "dnsmasq recorded the lease"
retry 25 grep -q " $MAC $GUEST_IP " "$T/run/default/dnsmasq.leases" ||
    fail "no '$MAC $GUEST_IP' in $T/run/default/dnsmasq.leases: $(cat "$T/run/default/dnsmasq.leases" 2>&1)"

log "port list shows the guest's traffic"
port=$(ctl port list default --json | jq -c --arg n "$TAP" '.[] | select(.name == $n)')
[[ -n $port ]] || fail "$TAP not in port list: $(ctl port list default --json)"
assert_eq "$(jq -r .state <<<"$port")" attached "state of $TAP after the guest ran"
jq -e '.rx_bytes > 0 and .tx_bytes > 0' <<<"$port" >/dev/null ||
    fail "$TAP counters should show the guest's DHCP and ping traffic: $port"

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
