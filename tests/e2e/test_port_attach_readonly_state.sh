#!/usr/bin/env bash
# E2E: AttachPort is all or nothing when the document cannot be stored
# (issue 11, item 7). With the state directory read-only (a read-only bind
# mount of it inside the daemon's own mount namespace, which `ip netns exec`
# made private: nothing outside the test changes):
#  - `port attach --tap` fails, and the tap does not exist afterwards;
#  - attaching the existing vg1 with --mac --isolated fails, and vg1 keeps
#    its MAC and is on no bridge;
# both for the running network "default" and the stopped network "late";
# the port list is unchanged. Once the directory is writable again the same
# attach succeeds, and after a daemon restart disk, memory and kernel agree.
# A detach with the directory read-only fails and leaves both ports attached.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

command -v nsenter >/dev/null || fail "missing tool 'nsenter' (util-linux)"

nat_topology
bus_start
daemon_start

ctl create default --mode nat --bridge kvmbr0 --ipv4 192.168.122.1/24 \
    --dhcp-range 192.168.122.100-192.168.122.254
ctl start default
wait_state default active
ctl create late --mode isolated --bridge kvmbr7 --ipv4 10.7.0.1/24

# in_daemon_mounts CMD...: CMD in the daemon's mount namespace (its own, made
# by `ip netns exec`, so the mounts stay there).
in_daemon_mounts() { nsenter -t "$DAEMON_PID" -m -- "$@"; }
state_readonly() {
    in_daemon_mounts mount --bind "$T/state" "$T/state"
    in_daemon_mounts mount -o remount,bind,ro "$T/state"
}
state_writable() { in_daemon_mounts umount "$T/state"; }
ports_of() { ctl port list "$1" --json | jq -r '[.[].name] | join(",")'; }
link_exists() { ip -n "$H" link show dev "$1" >/dev/null 2>&1; }

mac_before=$(link_json "$H" vg1 | jq -r .address)
state_readonly
for net in default late; do
    log "$net: attach --tap with a read-only state directory"
    expect_error Kernel port attach "$net" tap-ro --tap --mac 52:54:00:00:00:41
    link_exists tap-ro && fail "$net: the tap of a failed attach exists: $(ip -n "$H" -d link show dev tap-ro)"
    assert_eq "$(ports_of "$net")" "" "$net: ports after the failed tap attach"

    log "$net: attach of an existing interface with a read-only state directory"
    expect_error Kernel port attach "$net" vg1 --mac 52:54:00:00:00:42 --isolated
    link=$(link_json "$H" vg1)
    assert_eq "$(jq -r .address <<<"$link"),$(jq -r '.master // ""' <<<"$link")" "$mac_before," \
        "$net: vg1 MAC and master after the failed attach"
    assert_eq "$(ports_of "$net")" "" "$net: ports after the failed attach"
done
state_writable

log "writable again: the same attach succeeds"
ctl port attach default tap-ro --tap --mac 52:54:00:00:00:41
ctl port attach default vg1 --mac 52:54:00:00:00:42 --isolated
assert_eq "$(ports_of default)" tap-ro,vg1 "ports after the attach"
assert_eq "$(link_json "$H" vg1 | jq -r .master)" kvmbr0 "vg1 master"

log "restart: the stored document agrees"
daemon_stop
daemon_start
wait_state default active
assert_eq "$(ports_of default),$(ports_of late)" tap-ro,vg1, "ports after the restart"
wait_port_state default tap-ro attached
wait_port_state default vg1 attached

log "detach with a read-only state directory changes nothing either"
state_readonly
expect_error Kernel port detach default vg1
expect_error Kernel port detach default tap-ro
assert_eq "$(link_json "$H" vg1 | jq -r .master),$(link_json "$H" tap-ro | jq -r .master)" kvmbr0,kvmbr0 \
    "vg1 and tap-ro masters after the failed detaches"
assert_eq "$(ports_of default)" tap-ro,vg1 "ports after the failed detaches"
state_writable
ctl port detach default vg1
ctl port detach default tap-ro
assert_eq "$(link_json "$H" vg1 | jq -r '.address + "," + (.master // "")')" "$mac_before," "vg1 after the detach"
link_exists tap-ro && fail "tap-ro exists after its detach"
assert_eq "$(ports_of default)" "" "ports after the detaches"

daemon_stop
assert_eq "$DAEMON_EXIT" 0 "kvmnetd exit status after SIGTERM"
log "PASS"
