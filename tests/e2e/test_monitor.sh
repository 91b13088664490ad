#!/usr/bin/env bash
# E2E: `kvmnetctl monitor [NET] [--event KIND]... [--count N] [--timeout S]`
# (as virsh net-event --network --event --loop --timeout) on a running
# daemon:
#  - usage errors exit 2 before any bus connection (the bus address points
#    nowhere, which would be exit 1);
#  - `monitor a` prints only the signals about network a, none of b's;
#  - `--event NetworkAdded --event networkremoved` prints only those kinds;
#  - `--json monitor a --event PropertiesChanged`: only a's property
#    changes, each with an RFC 3339 UTC time;
#  - `--count 2` exits 0 by itself after exactly two events;
#  - `--timeout`: exit 1 when nothing came, 0 when an event was printed;
#  - a NET filter keeps the daemon's own stop (DaemonStopped).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

nat_topology
bus_start
daemon_start

log "usage errors, before the bus"
usage_args=("--event Bogus" "--count 0" "--count x" "--count" "--timeout 0" "--timeout -5" "a b" "--frobnicate")
for args in "${usage_args[@]}"; do
    rc=0
    # shellcheck disable=SC2086 # the words of each case are separate arguments
    DBUS_SYSTEM_BUS_ADDRESS=unix:path=$T/no-such-bus "$KVMNETCTL" monitor $args >"$T/usage.out" 2>"$T/usage.err" ||
        rc=$?
    assert_eq "$rc" 2 "exit status of 'monitor $args' ($(cat "$T/usage.err"))"
    [[ ! -s $T/usage.out ]] || fail "'monitor $args' printed on stdout: $(cat "$T/usage.out")"
done
DBUS_SYSTEM_BUS_ADDRESS=unix:path=$T/no-such-bus "$KVMNETCTL" monitor --event Bogus 2>"$T/usage.err" || true
assert_contains "$(cat "$T/usage.err")" "unknown event kind 'Bogus' (kinds: NetworkAdded, NetworkRemoved" \
    "the error of an unknown kind"

# monitor_bg NAME ARGS...: kvmnetctl ARGS in the background, output in
# $T/NAME.out; sets BG_PID.
monitor_bg() {
    local name=$1
    shift
    : >"$T/$name.out"
    "$KVMNETCTL" "$@" >>"$T/$name.out" 2>"$T/$name.err" &
    BG_PID=$!
    track_pid "$BG_PID"
}
# The event lines of a text monitor (the header line left out).
events_of() { grep -v '^Monitoring' "$T/$1.out" || true; }
# wait_exit PID: EXIT_RC is its exit status, once it exited by itself
# (`wait` needs this shell, not a command substitution's).
EXIT_RC=""
_exited() { [[ ! -e /proc/$1 || $(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) == Z ]]; }
wait_exit() {
    retry 50 _exited "$1" || fail "pid $1 ($(proc_cmdline "$1")) did not exit"
    EXIT_RC=0
    wait "$1" || EXIT_RC=$?
}

monitor_bg only_a monitor a
only_a=$BG_PID
monitor_bg kinds monitor --event NetworkAdded --event networkremoved
kinds=$BG_PID
retry 25 grep -q '^Monitoring kvmnetd signals about network a;' "$T/only_a.out" ||
    fail "monitor a did not start: $(cat "$T/only_a.out" "$T/only_a.err")"
retry 25 grep -q '^Monitoring kvmnetd signals;' "$T/kinds.out" ||
    fail "monitor --event did not start: $(cat "$T/kinds.out" "$T/kinds.err")"

ctl create a --mode isolated --bridge kvmbr1 --ipv4 10.61.0.1/24 >/dev/null
# A JSON monitor prints no header: it is known to listen once one of the
# Autostart changes it should show has come.
monitor_bg json_a --json monitor a --event PropertiesChanged
json_a=$BG_PID
_json_listens() {
    ctl autostart a on >/dev/null
    ctl autostart a off >/dev/null
    grep -q Autostart "$T/json_a.out"
}
retry 25 _json_listens || fail "the JSON monitor shows no Autostart change: $(cat "$T/json_a.out" "$T/json_a.err")"

log "events of two networks"
ctl create b --mode isolated --bridge kvmbr2 --ipv4 10.62.0.1/24 >/dev/null
ctl start b >/dev/null
wait_state b active
ctl start a >/dev/null
wait_state a active
ctl stop b >/dev/null
ctl delete b >/dev/null
# The last event, about a: every earlier one has been delivered once it shows.
ctl autostart a on >/dev/null
retry 25 grep -q ' PropertiesChanged a .*Autostart=true' "$T/only_a.out" ||
    fail "monitor a shows no Autostart=true: $(cat "$T/only_a.out")"
retry 25 grep -q ' NetworkRemoved b$' "$T/kinds.out" || fail "no NetworkRemoved b line: $(cat "$T/kinds.out")"
_json_last_on() { [[ $(tail -n 1 "$T/json_a.out" | jq -r .properties.Autostart) == true ]]; }
retry 25 _json_last_on ||
    fail "the JSON monitor's last line is not Autostart=true: $(tail -n 3 "$T/json_a.out")"
for pid in "$only_a" "$kinds" "$json_a"; do
    kill -INT "$pid"
    wait_exit "$pid"
    assert_eq "$EXIT_RC" 0 "monitor exit status after SIGINT"
done

lines=$(events_of only_a)
log "monitor a: $(wc -l <<<"$lines") events"
assert_eq "$(awk '{ print $4 }' <<<"$lines" | sort -u)" a "networks in monitor a's lines"
assert_contains "$lines" " NetworkAdded a" "monitor a"
assert_contains "$(grep ' PropertiesChanged a ' <<<"$lines")" 'State="active"' "monitor a's property changes"
[[ ! -s $T/only_a.err ]] || fail "monitor a wrote to stderr: $(cat "$T/only_a.err")"

assert_eq "$(events_of kinds | awk '{ print $3, $4 }')" "NetworkAdded a
NetworkAdded b
NetworkRemoved b" "monitor --event NetworkAdded --event networkremoved"

assert_eq "$(jq -r '"\(.signal) \(.network)"' "$T/json_a.out" | sort -u)" "PropertiesChanged a" \
    "signals and networks of --json monitor a --event PropertiesChanged"
assert_contains "$(jq -r '.properties.State // empty' "$T/json_a.out")" active "the JSON monitor's State changes"
bad_times=$(jq -r '.time' "$T/json_a.out" | grep -cvE '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z$' || true)
assert_eq "$bad_times" 0 "JSON times not in RFC 3339 UTC: $(jq -r .time "$T/json_a.out" | head -n 3)"
# And the time is now, in UTC (the same day, give or take a midnight).
first=$(jq -r .time "$T/json_a.out" | head -n 1)
[[ ${first%%T*} == "$(date -u +%F)" || ${first%%T*} == "$(date -u -d '1 hour ago' +%F)" ]] ||
    fail "JSON time $first is not today's UTC date $(date -u +%F)"

log "--count 2 exits by itself after two events"
monitor_bg count monitor a --count 2
count=$BG_PID
retry 25 grep -q '^Monitoring' "$T/count.out" || fail "monitor --count did not start: $(cat "$T/count.err")"
ctl autostart a off >/dev/null
ctl autostart a on >/dev/null
wait_exit "$count"
assert_eq "$EXIT_RC" 0 "exit status of monitor --count 2"
assert_eq "$(events_of count | wc -l)" 2 "event lines of monitor --count 2: $(cat "$T/count.out")"

log "--timeout"
rc=0
"$KVMNETCTL" monitor nosuch --timeout 1 >"$T/timeout.out" 2>"$T/timeout.err" || rc=$?
assert_eq "$rc" 1 "exit status of monitor --timeout 1 without an event"
assert_eq "$(events_of timeout)" "" "lines of monitor --timeout without an event"
[[ ! -s $T/timeout.err ]] || fail "monitor --timeout wrote to stderr: $(cat "$T/timeout.err")"
# The event comes right after the header; 5 s leave a slow machine room.
monitor_bg timeout_ev monitor a --timeout 5
timeout_ev=$BG_PID
retry 25 grep -q '^Monitoring' "$T/timeout_ev.out" || fail "monitor --timeout did not start: $(cat "$T/timeout_ev.err")"
ctl autostart a off >/dev/null
retry 25 grep -q 'Autostart=false' "$T/timeout_ev.out" || fail "no Autostart=false line: $(cat "$T/timeout_ev.out")"
retry 50 _exited "$timeout_ev" || true # up to 10 s more; wait_exit gives another 10
wait_exit "$timeout_ev"
assert_eq "$EXIT_RC" 0 "exit status of monitor --timeout after an event"

log "a NET filter keeps the daemon's own stop"
monitor_bg daemon_ev monitor a --event DaemonStopped --count 1
daemon_ev=$BG_PID
retry 25 grep -q '^Monitoring' "$T/daemon_ev.out" || fail "monitor did not start: $(cat "$T/daemon_ev.err")"
ctl stop a >/dev/null
daemon_stop
assert_eq "$DAEMON_EXIT" 0 "kvmnetd exit status after SIGTERM"
wait_exit "$daemon_ev"
assert_eq "$EXIT_RC" 0 "exit status of monitor a --event DaemonStopped --count 1"
assert_eq "$(events_of daemon_ev | awk '{ print $3 }')" DaemonStopped "monitor a --event DaemonStopped"
log PASS
