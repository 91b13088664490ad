#!/usr/bin/env bash
# E2E: the D-Bus signals an applet relies on. A bus monitor records every
# signal from the daemon while a network is created, started, has its bridge
# deleted behind the daemon's back (and repaired by it), is stopped and
# deleted; the test then checks NetworkAdded/InterfacesAdded, the State
# sequence inactive → activating → active (twice, with a stop to inactive
# between), degraded with a reason naming the bridge, Repaired, active again,
# inactive, and NetworkRemoved/InterfacesRemoved, in that order.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

nat_topology
bus_start
daemon_start

signal_monitor_start "$T/signals.log"
monitor_pid=$MONITOR_PID

ctl create sig --mode nat --bridge kvmbr7 --ipv4 10.55.0.1/24 --dhcp-range 10.55.0.10-10.55.0.20
ctl start sig
wait_state sig active
ctl stop sig
wait_state sig inactive
ctl start sig
wait_state sig active

log "delete the bridge behind the daemon's back: degraded, then repaired"
ip -n "$H" link del kvmbr7
# Self-healing recreates it within about 0.1 s, so the degraded state is
# seen on the bus rather than by polling.
retry 50 grep -q 'member=Repaired' "$T/signals.log" || fail "no Repaired signal after the bridge was deleted"
wait_state sig active
grep -q 'string "bridge kvmbr7 was deleted outside kvmnet"' "$T/signals.log" ||
    fail "no StateReason naming the deleted bridge on the bus"

ctl stop sig
ctl delete sig
sleep 0.5
stop_pid "$monitor_pid"

# One line per event of interest, in the order the bus delivered them.
events=$(awk '
    /member=NetworkAdded/      { print "NetworkAdded" }
    /member=NetworkRemoved/    { print "NetworkRemoved" }
    /member=InterfacesAdded/   { print "InterfacesAdded" }
    /member=InterfacesRemoved/ { print "InterfacesRemoved" }
    /member=Repaired/          { print "Repaired" }
    /member=PropertiesChanged/ { pc = 1; next }
    pc && /string "State"$/    { want = 1; next }
    want && /string "/         { match($0, /string "[^"]*"/); print "State=" substr($0, RSTART + 8, RLENGTH - 9); want = 0; pc = 0 }
' "$T/signals.log")
log "events: $(tr '\n' ' ' <<<"$events")"

expected="InterfacesAdded
NetworkAdded
State=activating
State=active
State=inactive
State=activating
State=active
State=degraded
Repaired
State=active
State=inactive
InterfacesRemoved
NetworkRemoved"
assert_eq "$events" "$expected" "signal sequence"

grep -q 'path=/org/kvmnet1/network/sig' "$T/signals.log" || fail "no signal from /org/kvmnet1/network/sig"
log PASS
