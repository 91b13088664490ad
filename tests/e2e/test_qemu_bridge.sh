#!/usr/bin/env bash
# E2E: a real QEMU guest on a bridge-mode network. The host's uplink0 is
# taken over by br0; the daemon makes the guest's tap (`port attach --tap
# --owner 65534 --mac`); the guest (Debian kernel + busybox initramfs, TCG,
# unprivileged) must get its lease from the LAN's own DHCP server — not from
# kvmnet, which runs no dnsmasq in bridge mode — and reach the LAN router
# and the host's address on the bridge. The LAN's lease file must show the
# guest's own MAC: the guest sits on the LAN as a station of its own.
# Skips (77) when QEMU or the guest image is unavailable (see test_qemu_guest).
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=tests/e2e/guest/guest.sh
source "$(dirname "${BASH_SOURCE[0]}")/guest/guest.sh"

TAP=tap-lan0
MAC=52:54:00:65:43:21

guest_prepare

lan_topology
lan_dhcp_start
bus_start
daemon_start

log "create + start the bridge network on uplink0"
ctl create lan --mode bridge --uplink uplink0 --bridge br0
ctl start lan
wait_state lan active
[[ -z $(ip -n "$H" -j link show br0 | jq -r '.[0].flags[] | select(. == "NO-CARRIER")') ]] ||
    fail "br0 has no carrier"
[[ ! -e $T/run/lan/dnsmasq.pid && ! -e $T/run/lan/dnsmasq.conf ]] || fail "bridge mode must not start dnsmasq"

log "port attach $TAP (tap owned by uid $GUEST_UID, guest MAC $MAC)"
ctl port attach lan "$TAP" --tap --owner "$GUEST_UID" --mac "$MAC"
assert_eq "$(jq -r '.[0].master' <<<"$(ip -n "$H" -j link show "$TAP")")" br0 "$TAP master"

log "boot the guest"
boot_guest "$TAP" "$MAC" "kvmnet.ping=192.0.2.10"
log "guest ran ${GUEST_SECONDS} s"
assert_eq "$(guest_field "$(guest_lines "$GUEST_CONSOLE" eth0)" mac)" "$MAC" "guest eth0 MAC"
assert_guest_lease "$GUEST_CONSOLE" 192.0.2.100-192.0.2.150 192.0.2.1
assert_guest_ping "$GUEST_CONSOLE" 192.0.2.1
assert_guest_ping "$GUEST_CONSOLE" 192.0.2.10

log "the LAN's DHCP server leased to the guest's own MAC"
retry 25 grep -q " $MAC $GUEST_IP " "$LAN_LEASES" ||
    fail "no '$MAC $GUEST_IP' in the LAN's leases: $(cat "$LAN_LEASES")"

log "stop + delete"
ctl stop lan
wait_state lan inactive
ctl delete lan
daemon_stop
assert_eq "$DAEMON_EXIT" 0 "kvmnetd exit status after SIGTERM"
log PASS
