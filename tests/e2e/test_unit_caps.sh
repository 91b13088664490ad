#!/usr/bin/env bash
# E2E: kvmnetd confined the way systemd/kvmnetd.service.in confines it, as
# far as that can be done without systemd (tests/e2e/confined-kvmnetd.sh:
# a non-root user, the unit's ambient capabilities as the only ones,
# NoNewPrivileges=, UMask=, state and runtime directories owned by the user).
#  1. Everything that needs a privilege works: a NAT network with DHCP and
#     IPv6 router advertisements (dnsmasq, as the same user, inherits the
#     capabilities), IPv4 forwarding on (a /proc/sys/net write), a tap port
#     (/dev/net/tun), a static host added on the fly (SIGHUP to dnsmasq),
#     the guest gets a lease and reaches the "internet", a daemon restart
#     adopts the running dnsmasq, stop ends it.
#  2. The set is the smallest: without any one of the capabilities, the
#     start fails.
# Every other e2e test can run against such a daemon too
# (KVMNETD=tests/e2e/confined-kvmnetd.sh KVMNETD_REAL=...).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
command -v setpriv >/dev/null || skip "setpriv (util-linux) missing"

unit=$SRCDIR/systemd/kvmnetd.service.in
setting() { sed -n "s/^$1=//p" "$unit"; }
ambient=$(setting AmbientCapabilities)
[[ -n $ambient && -n $(setting UMask) ]] || fail "$unit: no AmbientCapabilities= or UMask="
assert_eq "$(setting CapabilityBoundingSet)" "$ambient" "CapabilityBoundingSet= (expected to equal AmbientCapabilities=)"
[[ -n $(setting User) && $(setting User) != root ]] || fail "$unit: User= should name a system user"
read -r -a cap_list <<<"$ambient"
log "unit: User=$(setting User) AmbientCapabilities=${cap_list[*]} UMask=$(setting UMask)"
uid=65534
export KVMNETD_REAL=$KVMNETD CONFINED_UID=$uid
KVMNETD=$SRCDIR/tests/e2e/confined-kvmnetd.sh

nat_topology
bus_start

log "1. the unit's capabilities are enough"
daemon_start
status=$(cat "/proc/$DAEMON_PID/status")
assert_contains "$status" "NoNewPrivs:	1" "kvmnetd's no_new_privs"
assert_eq "$(awk '/^Uid:/ {print $2}' <<<"$status")" "$uid" "kvmnetd's uid"
ctl create c --mode nat --bridge kvmbr4 --ipv4 10.84.0.1/24 --dhcp-range 10.84.0.10-10.84.0.20 \
    --ipv6 fd00:84::1/64 >/dev/null
ctl start c >/dev/null
wait_state c active
ctl port attach c tap-c1 --tap --owner 65534 >/dev/null
assert_eq "$(ip -n "$H" -j link show tap-c1 | jq -r '.[0].ifname')" tap-c1 "tap made through /dev/net/tun"
retry 25 test -s "$T/run/c/dnsmasq.pid" || fail "no dnsmasq pid file"
dpid=$(dnsmasq_pid c)
is_dnsmasq "$dpid" || fail "dnsmasq not running"
assert_eq "$(awk '/^Uid:/ {print $2}' "/proc/$dpid/status")" "$uid" "dnsmasq's uid (the daemon's user)"
assert_eq "$(in_ns "$H" cat /proc/sys/net/ipv4/ip_forward)" 1 "ip_forward (a /proc/sys/net write)"
ctl host add c 52:54:00:84:00:02 10.84.0.5 h2 >/dev/null
grep -q '10.84.0.5' "$T/run/c/dnsmasq.hosts" || fail "hosts file not rewritten"
assert_eq "$(dnsmasq_pid c)" "$dpid" "dnsmasq kept (re-read through SIGHUP) after host add"
guest_plug "$G1" vg1 kvmbr4
lease=$(guest_dhcp "$G1")
assert_contains "$lease" "10.84.0." "guest lease"
pings "$G1" 203.0.113.2 || fail "guest cannot reach 203.0.113.2 through NAT"
daemon_stop
daemon_start
wait_state c active
assert_eq "$(dnsmasq_pid c)" "$dpid" "dnsmasq adopted after restart"
ctl stop c >/dev/null
retry 25 not is_dnsmasq "$dpid" || fail "dnsmasq ($dpid) survived the stop"
daemon_stop

# try_daemon_start: daemon_start, except that a daemon exiting during
# start-up returns 1 instead of failing the test.
try_daemon_start() {
    local i
    spawn_in_ns "$H" "$KVMNETD" --state-dir "$T/state" --runtime-dir "$T/run" \
        --log-level debug >>"$T/kvmnetd.log" 2>&1
    DAEMON_PID=$SPAWNED_PID
    for ((i = 0; i < 50; i++)); do
        if ! _pid_alive "$DAEMON_PID"; then
            wait "$DAEMON_PID" || true
            DAEMON_PID=""
            return 1
        fi
        if _bus_name_owned; then return 0; fi
        sleep 0.2
    done
    fail "kvmnetd neither took the bus name nor exited within 10 s"
}

log "2. without any one of them, something breaks"
for cap in "${cap_list[@]}"; do
    rest=()
    for c in "${cap_list[@]}"; do [[ $c == "$cap" ]] || rest+=("$c"); done
    if ! CONFINED_CAPS="${rest[*]}" try_daemon_start; then
        # Without CAP_NET_ADMIN the nftables monitor cannot subscribe.
        log "without $cap: kvmnetd does not start: $(tail -n 1 "$T/kvmnetd.log")"
        continue
    fi
    if ctl start c >/dev/null 2>"$T/start.err"; then
        fail "network c started without $cap: $cap looks unneeded"
    fi
    log "without $cap: $(head -c 200 "$T/start.err")"
    daemon_stop
done
log PASS
