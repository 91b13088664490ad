#!/usr/bin/env bash
# E2E: D-Bus activation, with dbus-daemon's own activation (no systemd).
# A private bus whose <servicedir> holds an org.kvmnet1.service like the one
# installed (dbus/org.kvmnet1.service.in) but whose Exec= runs the built
# kvmnetd in the test's host namespace:
#  1. the name is activatable and not owned; the first kvmnetctl call starts
#     the daemon and succeeds; the owner is kvmnetd, running in $H.
#  2. an autostart network is created and started; the daemon is stopped
#     (SIGTERM, by the PID the bus reports): the network keeps running.
#  3. the next call activates the daemon again, which adopts the network.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

nat_topology

# The installed activation file must name the bus name and the unit alias
# systemd starts it through.
activation=$SRCDIR/dbus/org.kvmnet1.service.in
grep -qx 'Name=org.kvmnet1' "$activation" || fail "$activation: no Name=org.kvmnet1"
grep -qx 'SystemdService=dbus-org.kvmnet1.service' "$activation" || fail "$activation: no SystemdService="
grep -qx 'Alias=dbus-org.kvmnet1.service' "$SRCDIR/systemd/kvmnetd.service.in" ||
    fail "kvmnetd.service.in lacks Alias=dbus-org.kvmnet1.service"

# dbus-daemon execs Exec= itself (no <servicehelper>, so no setuid launch
# helper and no systemd). kvmnetd finds the bus through
# DBUS_SYSTEM_BUS_ADDRESS; `exec` keeps the pid the bus reports that of
# kvmnetd.
mkdir -p "$T/services"
cat >"$T/services/org.kvmnet1.service" <<SERVICE
[D-BUS Service]
Name=org.kvmnet1
Exec=/bin/sh -c 'exec env DBUS_SYSTEM_BUS_ADDRESS=unix:path=$T/bus ip netns exec $H $KVMNETD --state-dir $T/state --runtime-dir $T/run --log-level debug >>$T/kvmnetd.log 2>&1'
User=root
SystemdService=dbus-org.kvmnet1.service
SERVICE
bus_launch <<CONF
  <servicedir>$T/services</servicedir>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
CONF

bus_call() { dbus-send --system --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus "$@"; }
# owner_pid: the pid of org.kvmnet1's owner, as the bus daemon knows it.
owner_pid() { bus_call org.freedesktop.DBus.GetConnectionUnixProcessID string:org.kvmnet1 | awk '/uint32/ {print $2}'; }
in_host_ns() { [[ " $(command ip netns pids "$H" | tr '\n' ' ') " == *" $1 "* ]]; }

log "1. first call activates the daemon"
assert_contains "$(bus_call org.freedesktop.DBus.ListActivatableNames)" '"org.kvmnet1"' "activatable names"
_bus_name_owned && fail "org.kvmnet1 owned before any call"
list=$(ctl list --json) || fail "kvmnetctl list did not activate the daemon: $(cat "$T/dbus.log")"
assert_eq "$list" "[]" "kvmnetctl list on the activated daemon"
_bus_name_owned || fail "org.kvmnet1 not owned after the activating call"
DAEMON_PID=$(owner_pid)
[[ $DAEMON_PID =~ ^[0-9]+$ ]] || fail "no pid for org.kvmnet1's owner"
assert_contains "$(proc_cmdline "$DAEMON_PID")" "$KVMNETD --state-dir $T/state" "command line of the activated daemon"
in_host_ns "$DAEMON_PID" || fail "activated kvmnetd ($DAEMON_PID) does not run in $H"
log "activated kvmnetd pid $DAEMON_PID"

log "2. a running autostart network outlives the daemon"
ctl create act --mode nat --bridge kvmbr5 --ipv4 10.66.0.1/24 --dhcp-range 10.66.0.10-10.66.0.20 --autostart
ctl start act
wait_state act active
retry 25 test -s "$T/run/act/dnsmasq.pid" || fail "no dnsmasq pid file for act"
dnsmasq_before=$(dnsmasq_pid act)
first_pid=$DAEMON_PID
stop_pid "$DAEMON_PID"
DAEMON_PID=""
retry 25 _bus_name_free || fail "org.kvmnet1 still owned after kvmnetd exited"
ip -n "$H" link show kvmbr5 >/dev/null || fail "kvmbr5 went away with the daemon"
is_dnsmasq "$dnsmasq_before" || fail "dnsmasq of act died with the daemon"

log "3. the next call activates a new daemon, which adopts the network"
assert_eq "$(net_state act)" active "state of act from the re-activated daemon"
DAEMON_PID=$(owner_pid)
[[ $DAEMON_PID =~ ^[0-9]+$ && $DAEMON_PID != "$first_pid" ]] ||
    fail "expected a new kvmnetd, got pid '$DAEMON_PID' (first was $first_pid)"
in_host_ns "$DAEMON_PID" || fail "re-activated kvmnetd ($DAEMON_PID) does not run in $H"
assert_eq "$(dnsmasq_pid act)" "$dnsmasq_before" "dnsmasq of act after re-activation (adopted)"
stop_pid "$DAEMON_PID"
DAEMON_PID=""
log PASS
