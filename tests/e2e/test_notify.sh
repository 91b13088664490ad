#!/usr/bin/env bash
# E2E: what systemd sees of kvmnetd, without systemd. A listener on a unix
# datagram socket plays systemd's notify socket (NOTIFY_SOCKET,
# WATCHDOG_USEC as systemd sets them):
#  1. READY=1 arrives only once the autostart network is up (the listener
#     looks at the bridge when READY=1 comes), also when another autostart
#     network fails to start (it is `failed`, the daemon still gets ready);
#     STATUS= counts the networks; WATCHDOG=1 keeps coming from the loop.
#  2. SIGTERM leaves running networks up; with --stop-networks-on-exit they
#     are stopped (bridge and dnsmasq gone), still stored, and come back at
#     the next start (autostart).
#  3. SIGHUP and, separately, Reload() over the bus apply documents edited
#     on disk: a new file appears (and autostarts), a changed one is
#     restarted with its new content, a removed one is torn down and gone.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
command -v python3 >/dev/null || fail "missing python3 (run scripts/deps.sh)"

nat_topology
bus_start

ctl_quiet() { ctl "$@" >/dev/null; }

log "setup: autostart networks a (will work) and b (will fail)"
daemon_start
ctl_quiet create a --mode nat --bridge kvmbr1 --ipv4 10.81.0.1/24 --dhcp-range 10.81.0.10-10.81.0.20 --autostart
ctl_quiet create b --mode nat --bridge kvmbr2 --ipv4 10.82.0.1/24 --dhcp-range 10.82.0.10-10.82.0.20 --autostart
daemon_stop
# b's bridge name is now taken by a link kvmnet does not own: its start fails.
ip -n "$H" link add kvmbr2 type veth peer name kvmbr2p

# notify_listen: datagrams on $T/notify.sock, one per line, into
# $T/notify.log; when READY=1 arrives it records whether kvmbr1 exists and
# is up at that moment.
notify_listen() {
    rm -f "$T/notify.sock"
    : >"$T/notify.log"
    python3 -u - "$T/notify.sock" "$H" >"$T/notify.log" 2>&1 <<'PY' &
import os, socket, subprocess, sys
path, ns = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
os.chmod(path, 0o666)  # as systemd's: a daemon run as another user (confined-kvmnetd.sh) may send
print("LISTENING", flush=True)
while True:
    for line in s.recv(4096).decode().splitlines():
        print(line, flush=True)
        if line == "READY=1":
            out = subprocess.run(["ip", "-n", ns, "-j", "link", "show", "dev", "kvmbr1"],
                                 capture_output=True, text=True).stdout
            print("AT-READY kvmbr1 " + ("up" if '"UP"' in out else "missing-or-down"), flush=True)
PY
    NOTIFY_PID=$!
    track_pid "$NOTIFY_PID"
    retry 50 grep -q LISTENING "$T/notify.log" || fail "notify listener did not start: $(cat "$T/notify.log")"
}
count_lines() { grep -c -x "$1" "$T/notify.log" || true; }
at_least() { (($(count_lines "$1") >= $2)); }

log "1. READY=1 after autostart, despite b failing; STATUS=; watchdog pings"
notify_listen
export NOTIFY_SOCKET=$T/notify.sock WATCHDOG_USEC=1000000
daemon_start
unset NOTIFY_SOCKET WATCHDOG_USEC
retry 50 grep -qx READY=1 "$T/notify.log" || fail "no READY=1: $(cat "$T/notify.log")"
retry 25 grep -q '^AT-READY' "$T/notify.log"
assert_eq "$(grep '^AT-READY' "$T/notify.log")" "AT-READY kvmbr1 up" "kvmbr1 when READY=1 arrived"
assert_eq "$(net_state a)" active "state of a"
assert_eq "$(net_state b)" failed "state of b (its bridge name belongs to a dummy link)"
assert_contains "$(grep '^STATUS=' "$T/notify.log" | head -n1)" "STATUS=2 networks, 1 running, 1 failed" "first STATUS="
# Pings every WATCHDOG_USEC/2 from the event loop, for as long as it runs.
retry 50 at_least WATCHDOG=1 3 || fail "fewer than 3 WATCHDOG=1: $(cat "$T/notify.log")"
ctl_quiet stop a
retry 25 grep -qx 'STATUS=2 networks, 0 running, 1 failed' "$T/notify.log" ||
    fail "STATUS= did not follow the stop: $(grep STATUS= "$T/notify.log")"
ctl_quiet start a
wait_state a active
daemon_stop
assert_eq "$DAEMON_EXIT" 0 "exit status after SIGTERM"
grep -qx STOPPING=1 "$T/notify.log" || fail "no STOPPING=1 at SIGTERM"
stop_pid "$NOTIFY_PID"
ip -n "$H" link del kvmbr2

log "2. SIGTERM leaves networks running; --stop-networks-on-exit stops them"
ip -n "$H" link show kvmbr1 >/dev/null || fail "kvmbr1 went away with the daemon (plain SIGTERM)"
retry 25 test -s "$T/run/a/dnsmasq.pid" || fail "no dnsmasq pid file for a"
dnsmasq_a=$(dnsmasq_pid a)
is_dnsmasq "$dnsmasq_a" || fail "dnsmasq of a died with the daemon (plain SIGTERM)"
daemon_start --stop-networks-on-exit
wait_state a active
assert_eq "$(dnsmasq_pid a)" "$dnsmasq_a" "dnsmasq of a after restart (adopted)"
wait_state b active # its bridge name is free again
daemon_stop
assert_eq "$DAEMON_EXIT" 0 "exit status after SIGTERM with --stop-networks-on-exit"
for br in kvmbr1 kvmbr2; do
    if ip -n "$H" link show "$br" >/dev/null 2>&1; then fail "$br still there after --stop-networks-on-exit"; fi
done
retry 25 not is_dnsmasq "$dnsmasq_a" || fail "dnsmasq of a ($dnsmasq_a) still running after --stop-networks-on-exit"
test -f "$T/state/networks/a.json" || fail "a's document went away with the stop on exit"
daemon_start
wait_state a active
wait_state b active

log "3a. SIGHUP applies edited documents"
jq '.name = "c" | .bridge = "kvmbr3" | .ipv4.address = "10.83.0.1/24"
    | .ipv4.dhcp.ranges = ["10.83.0.10-10.83.0.20"]' \
    "$T/state/networks/a.json" >"$T/c.json"
mv "$T/c.json" "$T/state/networks/c.json"
kill -HUP "$DAEMON_PID"
wait_state c active
ip -n "$H" link show kvmbr3 >/dev/null || fail "kvmbr3 not created for c after SIGHUP"
jq '.ipv4.dhcp.ranges = ["10.83.0.30-10.83.0.40"]' "$T/state/networks/c.json" >"$T/c.json"
mv "$T/c.json" "$T/state/networks/c.json"
kill -HUP "$DAEMON_PID"
retry 50 grep -q 'dhcp-range=10.83.0.30,10.83.0.40' "$T/run/c/dnsmasq.conf" ||
    fail "c's dnsmasq not restarted with the edited range: $(grep dhcp-range "$T/run/c/dnsmasq.conf" 2>&1)"
wait_state c active
assert_eq "$(ctl show c --json | jq -c '.config.ipv4.dhcp.ranges')" '["10.83.0.30-10.83.0.40"]' "c's range over the bus"

log "3b. Reload() over the bus applies edited documents"
rm "$T/state/networks/c.json"
jq '.autostart = false' "$T/state/networks/b.json" >"$T/b.json"
mv "$T/b.json" "$T/state/networks/b.json"
assert_eq "$(ctl reload)" "Stored networks reloaded." "kvmnetctl reload (Manager.Reload)"
expect_error NotFound show c
if ip -n "$H" link show kvmbr3 >/dev/null 2>&1; then fail "kvmbr3 still there after c's file was removed and Reload()"; fi
assert_eq "$(ctl show b --json | jq -r .config.autostart)" false "b.autostart after Reload()"
assert_eq "$(net_state a)" active "a (unchanged) after Reload()"
daemon_stop
log PASS
