#!/usr/bin/env bash
# E2E: the bridge of a running bridge-mode network is deleted behind the
# daemon's back (issue 12). A repair recreates it as the takeover made it
# (uplink0's MAC, ours by its owner mark), enslaves uplink0 again, puts the
# host's static addresses and routes from the takeover record back on it,
# and enslaves again a guest interface that someone else had enslaved to it
# (libvirt's <interface type='bridge'>): the LAN router reaches the host's
# address, the host reaches the LAN over IPv4 and IPv6, the guest reaches
# the LAN router, State is active again and a Repaired "bridge" signal says
# so. Stop then gives uplink0 back exactly as before the start.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

lan_topology
guest_add 1
bus_start
signal_monitor_start "$T/signals"
daemon_start

uplink_before=$(iface_config "$H" uplink0)
uplink_mac=$(jq -r .mac <<<"$uplink_before")
ctl create lan --mode bridge --uplink uplink0 --bridge br0
ctl start lan
wait_state lan active
retry 50 pings "$L" 192.0.2.10 || fail "the LAN router cannot ping the host through br0"

log "a guest interface enslaved outside kvmnet (ip link set vg1 master br0)"
ip -n "$G1" addr add 192.0.2.50/24 dev eth0
guest_plug "$G1" vg1 br0
retry 50 pings "$G1" 192.0.2.1 || fail "the guest cannot ping the LAN router"

master_of() { ip -n "$H" -j link show dev "$1" | jq -r '.[0].master // "none"'; }
br0_config() {
    iface_config "$H" br0 | jq -c '{mac, addresses: [.addresses[] | select(.scope != "link")], routes}'
}
_br0_config_back() { [[ $(br0_config 2>/dev/null) == "$br0_before" ]]; }
_repaired() { grep -q 'lan: repaired bridge: ' "$T/kvmnetd.log"; }
br0_before=$(br0_config)
log "br0 carries: $br0_before"

log "ip link del br0"
ip -n "$H" link del br0
retry 50 _repaired || fail "br0 not recreated; state: $(ctl show lan --json | jq -c '.status | {state, state_reason}')"
wait_state lan active
assert_eq "$(ip -n "$H" -j -d link show dev br0 | jq -r '.[0].ifalias // ""')" kvmnet:lan "br0's owner mark"
assert_eq "$(master_of uplink0)" br0 "uplink0's master after the repair"
assert_eq "$(master_of vg1)" br0 "master of the guest interface enslaved outside kvmnet"
retry 25 _br0_config_back || fail "br0 after the repair: $(br0_config), expected $br0_before"
retry 50 pings "$L" 192.0.2.10 || fail "the LAN router cannot ping the host after the repair"
retry 50 pings "$H" 192.0.2.1 || fail "the host cannot ping the LAN router after the repair"
retry 50 pings "$H" 2001:db8:1::1 || fail "the host cannot ping the LAN router over IPv6 after the repair"
retry 50 pings "$G1" 192.0.2.1 || fail "the guest cannot ping the LAN router after the repair"
retry 25 grep -q 'string "bridge"' "$T/signals" || fail "no Repaired signal for the bridge"
repair=$(grep 'lan: repaired bridge: ' "$T/kvmnetd.log")
assert_contains "$repair" "recreated bridge br0" "the repair log"
assert_contains "$repair" "vg1" "the repair names the interface it enslaved again"
assert_contains "$(ctl show lan --json | jq -r .status.last_repair)" "recreated bridge br0" "LastRepair"

ctl stop lan
wait_state lan inactive
assert_eq "$(iface_config "$H" uplink0 | jq -c 'del(.addresses[] | select(.scope == "link"))')" \
    "$(jq -c 'del(.addresses[] | select(.scope == "link"))' <<<"$uplink_before")" "uplink0 after stop"
assert_eq "$uplink_mac" "$(jq -r .mac <<<"$br0_before")" "br0 carried uplink0's MAC"
stop_pid "$MONITOR_PID"
daemon_stop
assert_eq "$DAEMON_EXIT" 0 "kvmnetd exit status after SIGTERM"
log "PASS"
