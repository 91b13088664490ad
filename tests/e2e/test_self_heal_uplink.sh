#!/usr/bin/env bash
# E2E: self-healing of a bridge-mode network. The uplink (a veth to the LAN
# router L) disappears: the network turns degraded with a reason naming the
# uplink. It comes back (a new device under the same name): the daemon
# attaches it to the bridge again by itself, the network returns to active,
# a Repaired signal says so, and H reaches the LAN through the bridge again.
# A bridge set down behind the daemon's back is set up again, with the
# static addresses and routes the kernel dropped with it.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

lan_topology
bus_start
signal_monitor_start "$T/signals"
daemon_start

ctl create lan --mode bridge --uplink uplink0 --bridge br0
ctl start lan
wait_state lan active
retry 50 pings "$H" 192.0.2.1 || fail "H cannot ping the LAN router through br0"
reason() { ctl show lan --json | jq -r .status.state_reason; }
master_of() { ip -n "$H" -j link show dev "$1" | jq -r '.[0].master // ""'; }

log "the uplink disappears"
ip -n "$H" link del uplink0
wait_state lan degraded
assert_contains "$(reason)" "uplink uplink0" "reason while the uplink is gone"
grep -q 'member=Repaired' "$T/signals" && fail "a Repaired signal before anything was repaired"

log "the uplink comes back"
veth_pair "$H" uplink0 "$L" eth0
ip -n "$L" addr add 192.0.2.1/24 dev eth0
ip -n "$L" addr add 2001:db8:1::1/64 dev eth0 nodad
wait_state lan active
assert_eq "$(master_of uplink0)" br0 "uplink0's master after it came back"
retry 50 pings "$H" 192.0.2.1 || fail "H cannot ping the LAN router after the uplink came back"
retry 25 grep -q 'string "uplink"' "$T/signals" || fail "no Repaired signal for the uplink"
assert_contains "$(grep 'lan: repaired ' "$T/kvmnetd.log")" "attached uplink uplink0 to br0 again" "repair log"

# What the takeover put on br0 (static addresses and routes), which the
# kernel drops in part when the link goes down: IPv6 addresses, routes.
br0_config() { iface_config "$H" br0 | jq -c '{addresses: [.addresses[] | select(.scope != "link")], routes}'; }
_br0_config_back() { [[ $(br0_config) == "$br0_before" ]]; }
br0_before=$(br0_config)
log "br0 carries: $br0_before"

log "the bridge is set down"
ip -n "$H" link set br0 down
retry 50 grep -q 'string "link"' "$T/signals" || fail "no Repaired signal for the downed bridge"
wait_state lan active
assert_contains "$(ip -n "$H" -j link show dev br0 | jq -c '.[0].flags')" '"UP"' "br0 flags after the repair"
retry 50 pings "$H" 192.0.2.1 || fail "H cannot ping the LAN router after br0 was set up again"
retry 25 _br0_config_back || fail "br0 after the repair: $(br0_config), expected $br0_before"
retry 50 pings "$H" 2001:db8:1::1 || fail "H cannot ping the LAN router over IPv6 after br0 was set up again"
assert_contains "$(grep 'lan: repaired ' "$T/kvmnetd.log" | tail -n1)" "re-added route default via 192.0.2.1" \
    "the repair names the routes it put back"
sleep 1
assert_eq "$(grep -c 'lan: repaired ' "$T/kvmnetd.log")" 2 "repairs logged (uplink, bridge up)"

ctl stop lan
wait_state lan inactive
assert_eq "$(master_of uplink0)" "" "uplink0 released at stop"
stop_pid "$MONITOR_PID"
daemon_stop
assert_eq "$DAEMON_EXIT" 0 "kvmnetd exit status after SIGTERM"
log "PASS"
