#!/usr/bin/env bash
# Desktop: kvmnet-applet used as a person would use it. The real kvmnetd
# runs in the test's namespaces on its private bus; the applet runs under
# xvfb-run with the accessibility bus (at-spi-bus-launcher and
# at-spi2-registryd on a private session bus) and is driven through AT-SPI
# by applet_driver.py:
#  - a network created by kvmnetctl appears in the window, and shows
#    active once kvmnetctl starts it (signals, no user action);
#  - a guest takes a lease (udhcpc in a guest namespace): its row appears;
#  - `nft flush ruleset` in the daemon's namespace: the network shows repaired;
#  - a forward typed into the window is in `kvmnetctl forward list`, and the
#    window counts a connection through it (the counters' timer);
#  - the same forward again is refused: the window shows the daemon's
#    message, the same kvmnetctl gets;
#  - a static host added in the window is in `kvmnetctl host list`;
#    "Start with the daemon" sets autostart; Remove removes the forward;
#  - Diagnose names a foreign chain that drops forwarded traffic;
#  - Stop stops the network (as root on the test bus);
#  - kvmnetd stops: the window says so; it starts again: the network is back.
# The "writing your own applet" example of docs/applet.md runs beside it.
# A screenshot of each state goes to KVMNET_SCREENSHOT_DIR (meson:
# build/meson-logs/test_applet).
set -euo pipefail

# Its own X server: xvfb-run starts Xvfb, runs this script again under it,
# and stops Xvfb (by its pid) when the script exits.
if [[ -z ${KVMNET_DESKTOP_XVFB:-} ]]; then
    if ((EUID == 0)) && ! command -v xvfb-run >/dev/null; then
        echo "SKIP: xvfb-run is missing (run scripts/deps-desktop.sh)" >&2
        exit 77
    fi
    if ((EUID == 0)); then
        KVMNET_DESKTOP_XVFB=1 exec xvfb-run -a -s "-screen 0 1100x760x24 -nolisten tcp" bash "$0" "$@"
    fi
fi

source "$(dirname "${BASH_SOURCE[0]}")/../e2e/lib.sh"

APPLET=${KVMNET_APPLET:-$SRCDIR/build/applet/kvmnet-applet}
[[ -x $APPLET ]] || skip "kvmnet-applet is not built (gtkmm-4.0 missing: run scripts/deps-desktop.sh, then meson setup --reconfigure)"
PY=/usr/bin/python3
"$PY" -c 'import gi; gi.require_version("Atspi", "2.0"); gi.require_version("Gio", "2.0")' 2>/dev/null ||
    skip "Python's AT-SPI binding is missing (gir1.2-atspi-2.0, python3-gi: run scripts/deps-desktop.sh)"
for _tool in /usr/libexec/at-spi-bus-launcher /usr/libexec/at-spi2-registryd; do
    [[ -x $_tool ]] || skip "$_tool is missing (at-spi2-core: run scripts/deps-desktop.sh)"
done
command -v import >/dev/null || skip "ImageMagick's import is missing (run scripts/deps-desktop.sh)"
[[ -n ${DISPLAY:-} ]] || fail "no DISPLAY although running under xvfb-run"

SHOTS=${KVMNET_SCREENSHOT_DIR:-$SRCDIR/build/meson-logs/test_applet}
mkdir -p "$SHOTS"
rm -f "$SHOTS"/*.png
shot() {
    import -window root "$SHOTS/$1.png"
    log "screenshot $SHOTS/$1.png"
}
_autostart_is() { [[ $(ctl show desk --json | jq -r .config.autostart) == "$1" ]]; }
drv() { "$PY" -W ignore "$SRCDIR/tests/desktop/applet_driver.py" "$@"; }

# ---------------------------------------------------------------- the desktop

# A private session bus with the accessibility bus on it; every process is
# tracked by its pid (the a11y dbus-daemon is the launcher's child).
_session_name_owned() {
    local reply
    reply=$(dbus-send --session --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \
        org.freedesktop.DBus.NameHasOwner "string:$1" 2>/dev/null) || return 1
    [[ $reply == *"boolean true"* ]]
}
desktop_start() {
    mkdir -m 700 "$T/xdg"
    export XDG_RUNTIME_DIR=$T/xdg # where the launcher puts the a11y bus socket
    export GTK_A11Y=atspi # GTK 4: the AT-SPI backend, whatever the environment says
    # The session bus activates nothing (no service directories): every
    # process on it is one this test starts.
    cat >"$T/session.conf" <<EOF2
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path=$T/session-bus</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
EOF2
    : >"$T/session.addr"
    dbus-daemon --config-file="$T/session.conf" --nofork --nopidfile --print-address=3 \
        3>"$T/session.addr" >"$T/session.log" 2>&1 &
    local session_bus=$!
    track_pid "$session_bus"
    retry 50 test -s "$T/session.addr" || fail "the session bus did not start: $(cat "$T/session.log")"
    DBUS_SESSION_BUS_ADDRESS=$(head -n1 "$T/session.addr")
    export DBUS_SESSION_BUS_ADDRESS
    /usr/libexec/at-spi-bus-launcher --launch-immediately >"$T/atspi.log" 2>&1 &
    local launcher=$!
    track_pid "$launcher"
    retry 50 _session_name_owned org.a11y.Bus || fail "the accessibility bus did not start: $(cat "$T/atspi.log")"
    A11Y_BUS_PIDS=$(cat "/proc/$launcher/task/"*/children 2>/dev/null || true)
    local child
    for child in $A11Y_BUS_PIDS; do track_pid "$child"; done
    /usr/libexec/at-spi2-registryd >"$T/registryd.log" 2>&1 &
    REGISTRYD_PID=$!
    track_pid "$REGISTRYD_PID"
    LAUNCHER_PID=$launcher
    SESSION_BUS_PID=$session_bus
    # On the accessibility bus, which the launcher made.
    retry 50 _a11y_name_owned org.a11y.atspi.Registry || fail "at-spi2-registryd did not start: $(cat "$T/registryd.log")"
}
# desktop_stop: users before what they use, so each parent reaps its child
# (cleanup stops them all the same when the test ends early).
desktop_stop() {
    local pid
    stop_pid "$REGISTRYD_PID"
    for pid in $A11Y_BUS_PIDS; do stop_pid "$pid"; done
    stop_pid "$LAUNCHER_PID"
    stop_pid "$SESSION_BUS_PID"
}
_a11y_name_owned() {
    local address reply
    address=$(dbus-send --session --print-reply=literal --dest=org.a11y.Bus /org/a11y/bus org.a11y.Bus.GetAddress) ||
        return 1
    read -r address <<<"$address" # without the indentation
    reply=$(dbus-send --bus="$address" --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \
        org.freedesktop.DBus.NameHasOwner "string:$1" 2>/dev/null) || return 1
    [[ $reply == *"boolean true"* ]]
}

nat_topology
bus_start
daemon_start
desktop_start

# The example of docs/applet.md, exactly as written there.
sed -n '/^<!-- example: kvmnet_watch.py -->$/,/^<!-- \/example -->$/p' "$SRCDIR/docs/applet.md" |
    sed '1,2d;$d' | sed '$d' >"$T/kvmnet_watch.py"
[[ -s $T/kvmnet_watch.py ]] || fail "no example found in docs/applet.md"

log "the applet, on the test bus given by --bus"
env -u DBUS_SYSTEM_BUS_ADDRESS "$APPLET" --bus "$DBUS_SYSTEM_BUS_ADDRESS" >"$T/applet.log" 2>&1 &
APPLET_PID=$!
track_pid "$APPLET_PID"
drv wait "kvmnetd is running." 20 >/dev/null || fail "the applet did not find kvmnetd: $(cat "$T/applet.log")"

log "a network created and started by kvmnetctl appears, and shows active"
ctl create desk --mode nat --bridge kvmbr0 --ipv4 192.168.160.1/24 \
    --dhcp-range 192.168.160.100-192.168.160.199 >/dev/null
drv wait "nat · bridge kvmbr0 · 192.168.160.1/24 · 0 guests" >/dev/null
assert_eq "$(drv text state)" "State: inactive" "the new network's state in the window"
ctl start desk >/dev/null
wait_state desk active
assert_eq "$(drv text state)" "State: active" "state after kvmnetctl start"
shot 01-network

log "the docs' Python example, watching for two events"
"$PY" "$T/kvmnet_watch.py" 2 >"$T/example.log" 2>&1 &
EXAMPLE_PID=$!
track_pid "$EXAMPLE_PID"
retry 50 grep -qx watching "$T/example.log" || fail "the example did not start: $(cat "$T/example.log")"
assert_contains "$(cat "$T/example.log")" "desk: active 192.168.160.1/24 guests=0" "the example's listing"

log "a guest takes a lease: its row appears"
mac1=52:54:00:16:00:01
ip -n "$G1" link set eth0 address "$mac1"
guest_plug "$G1" vg1 kvmbr0
read -r gaddr _ <<<"$(guest_dhcp "$G1")"
gip=${gaddr%/*}
row=$(drv wait "$mac1  $gip")
assert_contains "$row" "dynamic" "the lease row"
drv wait "1 guest" >/dev/null
shot 02-lease

log "nft flush ruleset: the network shows repaired"
in_ns "$H" nft flush ruleset
drv wait "· repaired " >/dev/null
repair=$(drv text "last repair")
assert_contains "$repair" "firewall" "the last repair"
assert_eq "$(drv text state)" "State: active" "state after the repair"
shot 03-repaired
retry 50 not _pid_alive "$EXAMPLE_PID" || fail "the example saw fewer than 2 events: $(cat "$T/example.log")"
assert_contains "$(cat "$T/example.log")" "LeaseChanged desk added $mac1 $gip" "the example's lease event"
assert_contains "$(cat "$T/example.log")" "Repaired desk firewall" "the example's repair event"

log "Diagnose names another program's firewall chain that drops forwarded traffic"
in_ns "$H" nft add table ip foreignfw
in_ns "$H" nft add chain ip foreignfw FORWARD '{ type filter hook forward priority 0; policy drop; }'
drv press "Diagnose"
drv wait "WARN foreign-firewall: chain ip foreignfw FORWARD (hook forward, policy drop)" >/dev/null
assert_contains "$(drv text "diagnose result")" "Verdict: warn" "the verdict shown"
in_ns "$H" nft delete table ip foreignfw
drv press "Diagnose"
drv wait-gone "WARN foreign-firewall" >/dev/null

log "a forward added in the window is in kvmnetctl forward list, and counts a connection"
drv fill "Host port" 8080
drv fill "Guest" "$gip"
drv fill "Guest port" 80
drv fill "Description" web
drv press "Add forward"
drv wait "Forward added." >/dev/null
assert_contains "$(ctl forward list desk)" "$gip:80" "kvmnetctl forward list after the applet added it"
assert_eq "$(ctl forward list desk --json | jq -c '.[0] | [.proto, .host_port, .guest_port, .description]')" \
    '["tcp",8080,80,"web"]' "the forward the applet added"
listen_tcp "$G1" 80 "echo hello-from-guest"
assert_eq "$(tcp_get "$I" 203.0.113.1 8080)" hello-from-guest "a connection through the forward"
drv wait "tcp *:8080 → $gip:80  connections 1  dropped 0" 20 >/dev/null
shot 04-forward

log "a refused forward: the window shows the daemon's message"
expect_error Conflict forward add desk tcp 8080 "$gip:80"
drv fill "Host port" 8080
drv fill "Guest" "$gip"
drv fill "Guest port" 80
drv press "Add forward"
shown=$(drv wait "$ERR_MSG")
assert_contains "$shown" "AddForwards desk refused: Conflict: $ERR_MSG" "the refusal in the window"
assert_eq "$(ctl forward list desk --json | jq length)" 1 "forwards after the refused add"
shot 05-refused
drv fill "Host port" 99999
drv press "Add forward"
shown=$(drv wait "InvalidArgument: forward.host_port")
assert_contains "$shown" "AddForwards desk refused: InvalidArgument: forward.host_port: " "an invalid port"

log "a static host, autostart and removing the forward"
drv fill "MAC" 52:54:00:16:00:09
drv fill "IP address" 192.168.160.9
drv fill "Host name" db
drv press "Add static host"
drv wait "52:54:00:16:00:09  192.168.160.9  db" >/dev/null
assert_contains "$(ctl host list desk)" "52:54:00:16:00:09" "kvmnetctl host list after the applet added one"
drv press "Start with the daemon"
retry 50 _autostart_is true ||
    fail "autostart not set by the window: $(drv text error 1 2>&1)"
drv press "Remove forward tcp *:8080"
drv wait "No port forwards." >/dev/null
assert_eq "$(ctl forward list desk --json | jq length)" 0 "forwards after Remove"
drv press "Remove static host 52:54:00:16:00:09"
drv wait "No static hosts." >/dev/null

log "Stop in the window stops the network"
drv press "Stop"
wait_state desk inactive
drv wait "State: inactive" >/dev/null
drv wait "No leases (not running)." >/dev/null
diagnosis=$(drv text "diagnose result")
assert_contains "$diagnosis" "Verdict:" "the diagnosis shown"
shot 06-stopped

log "kvmnetd stops and starts again: the window follows"
daemon_stop
drv wait "kvmnetd is not running" >/dev/null
drv wait-gone "nat · bridge kvmbr0" >/dev/null
daemon_start
drv wait "kvmnetd is running." >/dev/null
drv wait "nat · bridge kvmbr0 · 192.168.160.1/24 · 0 guests" >/dev/null
# The window set autostart: the daemon started the network again itself.
drv wait "State: active" >/dev/null
wait_state desk active

stop_pid "$APPLET_PID"
desktop_stop
daemon_stop
assert_eq "$DAEMON_EXIT" 0 "kvmnetd exit status after SIGTERM"
log "screenshots in $SHOTS"
log PASS
