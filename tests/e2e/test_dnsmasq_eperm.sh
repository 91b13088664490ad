#!/usr/bin/env bash
# E2E: upgrading from a kvmnetd that ran as root (its dnsmasq runs as user
# dnsmasq) to one confined as a non-root user (systemd's User=kvmnet): the
# new daemon's kill(pid, 0) on the old dnsmasq gets EPERM, which means
# alive (issue 10, the dnsmasq-upgrade bullet).
#  1. The old dnsmasq serves another configuration: the start fails naming
#     its pid and what to do; no second dnsmasq is started.
#  2. It serves the same configuration: it is adopted (one dnsmasq, the
#     network active).
#     A static host added then cannot reach it (no SIGHUP): `degraded`,
#     naming the pid.
#  3. `stop` cannot signal it: an error naming the pid, never a success
#     while it keeps running.
# The confined daemon runs as uid 65534 (tests/e2e/confined-kvmnetd.sh);
# the root daemon's dnsmasq drops to user dnsmasq, or to a throwaway uid
# when that user does not exist (--dnsmasq-user).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
command -v setpriv >/dev/null || skip "setpriv (util-linux) missing"
confined_uid=65534

nat_topology
bus_start

log "a root daemon starts the network"
daemon_start
default_network_running
dpid=$(dnsmasq_pid default)
is_dnsmasq "$dpid" || fail "no dnsmasq after the start"
track_pid "$dpid"
duid=$(awk '/^Uid:/ {print $2}' "/proc/$dpid/status")
[[ $duid != 0 && $duid != "$confined_uid" ]] ||
    skip "the root daemon's dnsmasq runs as uid $duid, not as a user other than the confined daemon's"
log "dnsmasq pid $dpid runs as uid $duid"
daemon_stop

# What systemd does for StateDirectory= and RuntimeDirectory= when User= changes.
chown -R "$confined_uid:$confined_uid" "$T/state" "$T/run"
export KVMNETD_REAL=$KVMNETD CONFINED_UID=$confined_uid
KVMNETD=$SRCDIR/tests/e2e/confined-kvmnetd.sh
dnsmasqs() { pgrep -c -f -- "--conf-file=$T/run/default/dnsmasq.conf" || true; }

log "1. another configuration: refused, naming the pid"
cp "$T/run/default/dnsmasq.conf" "$T/dnsmasq.conf.orig"
echo "# changed" >>"$T/run/default/dnsmasq.conf"
daemon_start
wait_state default failed
reason=$(ctl show default --json | jq -r .status.state_reason)
assert_contains "$reason" "pid $dpid" "state reason of a start that found an unstoppable dnsmasq"
assert_eq "$(dnsmasqs)" 1 "dnsmasq processes for the network"
is_dnsmasq "$dpid" || fail "the old dnsmasq is gone"
expect_error Kernel start default
assert_contains "$ERR_MSG" "pid $dpid" "start's error"
assert_eq "$(dnsmasqs)" 1 "dnsmasq processes for the network after start"

log "2. the same configuration: adopted"
cp "$T/dnsmasq.conf.orig" "$T/run/default/dnsmasq.conf"
ctl start default >/dev/null
wait_state default active
assert_eq "$(dnsmasq_pid default)" "$dpid" "dnsmasq adopted"
assert_eq "$(dnsmasqs)" 1 "dnsmasq processes for the network"
assert_eq "$(dbus-send --system --print-reply=literal --dest=org.kvmnet1 /org/kvmnet1/network/default org.freedesktop.DBus.Properties.Get string:org.kvmnet1.Network string:Dnsmasq | tr -d " ")" variantrunning "Dnsmasq property"

log "2b. a static host added: the state says the old dnsmasq cannot re-read it"
ctl host add default 52:54:00:00:00:42 192.168.122.42 h42 >/dev/null
wait_state default degraded
assert_contains "$(ctl show default --json | jq -r .status.state_reason)" "pid $dpid" "state reason after host add"

log "3. stop cannot end it: an error naming the pid"
expect_error Kernel stop default
assert_contains "$ERR_MSG" "pid $dpid" "stop's error"
is_dnsmasq "$dpid" || fail "dnsmasq $dpid ended although the stop said it could not"
stop_pid "$dpid"
daemon_stop
assert_eq "$DAEMON_EXIT" 0 "kvmnetd exit status after SIGTERM"
log PASS
