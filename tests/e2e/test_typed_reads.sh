#!/usr/bin/env bash
# E2E: the typed D-Bus reads and properties, through a Python Gio client
# (tests/e2e/typed_client.py) as an applet would use them, with no JSON
# parsing on its side:
#  - LeasesTyped lists a guest's lease with each key in its documented
#    D-Bus type (expires x, ...) and the same values as the JSON Leases;
#  - ListForwardsTyped walks the forwards page by page (host_port q,
#    port ranges as host_port/host_port_end); ListPortsTyped and
#    StatisticsTyped answer with their documented types;
#  - the properties LeaseCount, PortCount, ForwardCount, IPv4Address,
#    IPv6Address, DhcpRanges and Domain, and PropertiesChanged for
#    LeaseCount (a guest takes a lease) and ForwardCount (forward add);
#  - StateReasonCode (and its PropertiesChanged) while the daemon repairs a
#    bridge set down behind its back;
#  - Autostart set through org.freedesktop.DBus.Properties.Set: root may,
#    nobody (uid 65534) gets AccessDenied and the document is unchanged.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PY=/usr/bin/python3
"$PY" -c 'import gi; gi.require_version("Gio", "2.0")' 2>/dev/null ||
    skip "python3-gi (PyGObject with GLib's Gio) is needed for the applet-style client"
command -v setpriv >/dev/null || skip "setpriv (util-linux) is needed to run a command as another user"
client() { "$PY" "$SRCDIR/tests/e2e/typed_client.py" "$@"; }
NOBODY=65534
# The script goes in on stdin: nobody may not be able to read the source tree.
client_as_nobody() {
    setpriv --reuid=$NOBODY --regid=$NOBODY --clear-groups "$PY" - "$@" <"$SRCDIR/tests/e2e/typed_client.py"
}

nat_topology
bus_start
daemon_start

ctl create typed --mode nat --bridge kvmbr0 --ipv4 192.168.150.1/24 \
    --dhcp-range 192.168.150.100-192.168.150.199 --domain typed.lan \
    --dhcp-host 52:54:00:15:00:05,192.168.150.5,web
ctl start typed
wait_state typed active

# The watcher (tracked) prints one line per changed property: NAME VALUE.
: >"$T/watch.log"
"$PY" "$SRCDIR/tests/e2e/typed_client.py" watch typed >"$T/watch.log" 2>"$T/watch.err" &
track_pid $!
retry 50 grep -q '^watching$' "$T/watch.log" || fail "the Gio watcher did not start: $(cat "$T/watch.err")"

log "properties of a running network"
props=$(client props typed)
assert_eq "$(jq -c '.LeaseCount' <<<"$props")" '["u",0]' "LeaseCount before any guest"
assert_eq "$(jq -c '.PortCount' <<<"$props")" '["u",0]' "PortCount"
assert_eq "$(jq -c '.ForwardCount' <<<"$props")" '["u",0]' "ForwardCount before any forward"
assert_eq "$(jq -c '.IPv4Address' <<<"$props")" '["s","192.168.150.1/24"]' "IPv4Address"
assert_eq "$(jq -c '.IPv6Address' <<<"$props")" '["s",""]' "IPv6Address without ipv6"
assert_eq "$(jq -c '.DhcpRanges' <<<"$props")" '["as",["192.168.150.100-192.168.150.199"]]' "DhcpRanges"
assert_eq "$(jq -c '.Domain' <<<"$props")" '["s","typed.lan"]' "Domain"
assert_eq "$(jq -c '.Autostart' <<<"$props")" '["b",false]' "Autostart"

log "a guest's lease: LeasesTyped and PropertiesChanged LeaseCount"
mac1=52:54:00:15:00:01
ip -n "$G1" link set eth0 address "$mac1"
guest_plug "$G1" vg1 kvmbr0
read -r gaddr _ <<<"$(guest_dhcp "$G1")"
gip=${gaddr%/*}
retry 25 grep -qx 'LeaseCount 1' "$T/watch.log" || fail "no PropertiesChanged LeaseCount 1: $(cat "$T/watch.log")"
leases=$(client leases typed)
assert_eq "$(jq '.items | length' <<<"$leases")" 1 "typed leases"
lease=$(jq -c '.items[0]' <<<"$leases")
assert_eq "$(jq -c '.mac' <<<"$lease")" "[\"s\",\"$mac1\"]" "lease mac"
assert_eq "$(jq -c '.address' <<<"$lease")" "[\"s\",\"$gip\"]" "lease address"
assert_eq "$(jq -c '.family' <<<"$lease")" '["s","ipv4"]' "lease family"
assert_eq "$(jq -c '.type' <<<"$lease")" '["s","dynamic"]' "lease type"
assert_eq "$(jq -r '.expires[0]' <<<"$lease")" x "lease expires type"
assert_eq "$(jq -r '.expires[1]' <<<"$lease")" "$(ctl leases typed --json | jq -r '.[0].expiry')" \
    "lease expires equals the JSON read's expiry"
assert_eq "$(jq -r '.hostname[0]' <<<"$lease")" s "lease hostname type"
assert_eq "$(client props typed | jq -c .LeaseCount)" '["u",1]' "LeaseCount with a lease"

log "forwards: ListForwardsTyped paged, PropertiesChanged ForwardCount"
ctl forward add typed tcp 8080 192.168.150.5:80 --description web >/dev/null
retry 25 grep -qx 'ForwardCount 1' "$T/watch.log" || fail "no PropertiesChanged ForwardCount 1: $(cat "$T/watch.log")"
ctl forward add typed udp 9000-9003 web:7000-7003 >/dev/null
ctl forward add typed tcp 8443 192.168.150.5:443 >/dev/null
retry 25 grep -qx 'ForwardCount 3' "$T/watch.log" || fail "no PropertiesChanged ForwardCount 3: $(cat "$T/watch.log")"
forwards=$(client forwards typed 2)
assert_eq "$(jq '.pages' <<<"$forwards")" 2 "pages of 2 for 3 forwards"
assert_eq "$(jq -c '[.items[] | .host_port]' <<<"$forwards")" '[["q",8080],["q",9000],["q",8443]]' "host_port"
assert_eq "$(jq -c '[.items[] | .host_port_end[1]]' <<<"$forwards")" '[8080,9003,8443]' "host_port_end"
assert_eq "$(jq -c '.items[1] | [.guest, .guest_address, .guest_port, .guest_port_end]' <<<"$forwards")" \
    '[["s","web"],["s","192.168.150.5"],["q",7000],["q",7003]]' "a forward to a named host, ranges"
assert_eq "$(jq -c '.items[0] | [.proto, .host_address, .description, .connections[0], .dropped[0]]' <<<"$forwards")" \
    '[["s","tcp"],["s",""],["s","web"],"t","t"]' "forward keys and types"
assert_eq "$(client props typed | jq -c .ForwardCount)" '["u",3]' "ForwardCount"
out=$(client forwards typed 0 2>&1) && fail "limit 0 accepted: $out"
assert_contains "$out" "org.kvmnet1.Error.InvalidArgument" "limit 0"

log "ports and statistics"
ctl port attach typed tap-typed --tap >/dev/null
retry 25 grep -qx 'PortCount 1' "$T/watch.log" || fail "no PropertiesChanged PortCount 1: $(cat "$T/watch.log")"
ports=$(client ports typed)
assert_eq "$(jq -c '.items[0] | [.name, .tap, .owner[0], .rx_bytes[0], .state[0]]' <<<"$ports")" \
    '[["s","tap-typed"],["b",true],"u","t","s"]' "typed port"
stats=$(client statistics typed)
assert_eq "$(jq -c '[.running, .forward_count]' <<<"$stats")" '[["b",true],["t",3]]' "typed statistics"
assert_eq "$(jq -r '.drops[0]' <<<"$stats")" 'aa{sv}' "statistics drops type"

log "Autostart through Properties.Set: root may, nobody may not"
assert_eq "$(client set-autostart typed true)" ok "root sets Autostart"
assert_eq "$(ctl show typed --json | jq -r .config.autostart)" true "autostart after the root Set"
retry 25 grep -qx 'Autostart true' "$T/watch.log" || fail "no PropertiesChanged Autostart: $(cat "$T/watch.log")"
revision=$(ctl show typed --json | jq -r .status.revision)
out=$(client_as_nobody set-autostart typed false 2>"$T/nobody.err")
assert_eq "$out" org.freedesktop.DBus.Error.AccessDenied "nobody sets Autostart: $(cat "$T/nobody.err")"
assert_contains "$(cat "$T/nobody.err")" "SetAutostart" "the refusal names the method to use instead"
assert_eq "$(ctl show typed --json | jq -r .config.autostart)" true "autostart after nobody's Set"
assert_eq "$(ctl show typed --json | jq -r .status.revision)" "$revision" "revision after nobody's Set"
log "nobody reads the typed reads and properties"
assert_eq "$(client_as_nobody leases typed | jq '.items | length')" 1 \
    "typed leases read by nobody"
assert_eq "$(client_as_nobody props typed | jq -c .LeaseCount)" '["u",1]' \
    "LeaseCount read by nobody"

log "StateReasonCode: none while active, bridge-down while the daemon repairs a downed bridge"
assert_eq "$(client props typed | jq -c '[.StateReasonCode, .StateReason]')" '[["s","none"],["s",""]]' \
    "StateReasonCode of an active network"
ip -n "$H" link set kvmbr0 down
retry 25 grep -qx 'StateReasonCode "bridge-down"' "$T/watch.log" ||
    fail "no PropertiesChanged StateReasonCode bridge-down: $(cat "$T/watch.log")"
retry 25 grep -qx 'StateReasonCode "none"' "$T/watch.log" ||
    fail "no PropertiesChanged StateReasonCode none after the repair: $(cat "$T/watch.log")"
wait_state typed active

ctl stop typed
wait_state typed inactive
assert_eq "$(client props typed | jq -c .LeaseCount)" '["u",0]' "LeaseCount while stopped"

daemon_stop
assert_eq "$DAEMON_EXIT" 0 "kvmnetd exit status after SIGTERM"
log PASS
