#!/usr/bin/env bash
# E2E: restarting kvmnetd does not disturb running networks, and a reboot
# brings back only the autostart ones.
#  1. a (autostart) and b (not) are started; the daemon is stopped: bridges,
#     the nftables table and dnsmasq stay, so guests keep working.
#  2. the daemon comes back and adopts both: active, same dnsmasq pids.
#  3. "reboot": daemon stopped, dnsmasqs killed, bridges and table deleted,
#     runtime dir removed; the daemon brings back a only.
#  4. autostart b on is visible over the bus and on disk.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

nat_topology
bus_start
daemon_start

ctl create a --mode nat --bridge kvmbr1 --ipv4 10.77.0.1/24 \
    --dhcp-range 10.77.0.100-10.77.0.200 --autostart
ctl create b --mode nat --bridge kvmbr2 --ipv4 10.78.0.1/24 \
    --dhcp-range 10.78.0.100-10.78.0.200
assert_eq "$(ctl show a --json | jq -r .config.autostart)" true "a.autostart"
assert_eq "$(ctl show b --json | jq -r .config.autostart)" false "b.autostart"
ctl start a
ctl start b
wait_state a active
wait_state b active

retry 25 test -s "$T/run/a/dnsmasq.pid" || fail "no dnsmasq pid file for a"
retry 25 test -s "$T/run/b/dnsmasq.pid" || fail "no dnsmasq pid file for b"
pid_a=$(dnsmasq_pid a)
pid_b=$(dnsmasq_pid b)
is_dnsmasq "$pid_a" || fail "dnsmasq of a ($pid_a) not running"
is_dnsmasq "$pid_b" || fail "dnsmasq of b ($pid_b) not running"
# A guest on a: its lease must keep working across daemon restarts.
guest_plug "$G1" vg1 kvmbr1
lease=$(guest_dhcp "$G1")
log "guest lease on a: $lease"
in_ns "$G1" busybox ping -c 1 -W 2 203.0.113.2 >/dev/null || fail "guest on a cannot reach 203.0.113.2"
table_before=$(kernel_snapshot "$H" | sed -n '/^## nft$/,/^## nft json$/p')

log "1. daemon stopped: networks keep running"
daemon_stop
assert_eq "$DAEMON_EXIT" 0 "kvmnetd exit status after SIGTERM"
for br in kvmbr1 kvmbr2; do
    ip -n "$H" link show "$br" >/dev/null 2>&1 || fail "$br removed when the daemon stopped"
done
in_ns "$H" nft list table inet kvmnet >/dev/null 2>&1 || fail "table inet kvmnet removed when the daemon stopped"
is_dnsmasq "$pid_a" || fail "dnsmasq of a ($pid_a) died with the daemon"
is_dnsmasq "$pid_b" || fail "dnsmasq of b ($pid_b) died with the daemon"
in_ns "$G1" busybox ping -c 1 -W 2 203.0.113.2 >/dev/null ||
    fail "guest lost connectivity while the daemon was stopped"

log "2. daemon restarted: networks adopted"
daemon_start
wait_state a active
wait_state b active
assert_eq "$(dnsmasq_pid a)" "$pid_a" "dnsmasq pid of a after restart (must be adopted, not restarted)"
assert_eq "$(dnsmasq_pid b)" "$pid_b" "dnsmasq pid of b after restart"
is_dnsmasq "$pid_a" || fail "dnsmasq of a ($pid_a) gone after restart"
# Adoption must not rewrite the guest's world either.
assert_eq "$(ip -n "$H" -j link show vg1 | jq -r '.[0].master')" kvmbr1 "vg1 still a port of kvmbr1"
table_after=$(kernel_snapshot "$H" | sed -n '/^## nft$/,/^## nft json$/p')
assert_eq "$table_after" "$table_before" "nftables table after adoption"
in_ns "$G1" busybox ping -c 1 -W 2 203.0.113.2 >/dev/null || fail "guest lost connectivity after restart"

log "3. reboot: only autostart networks come back"
daemon_stop
for pid in "$pid_a" "$pid_b"; do
    is_dnsmasq "$pid" && kill -TERM "$pid"
    retry 25 not is_dnsmasq "$pid" || fail "dnsmasq $pid did not exit"
done
ip -n "$H" link del kvmbr1
ip -n "$H" link del kvmbr2
in_ns "$H" nft delete table inet kvmnet
rm -rf "$T/run"
daemon_start
wait_state a active
wait_state b inactive
link=$(ip -n "$H" -j -d link show kvmbr1) || fail "kvmbr1 not recreated for autostart network a"
assert_eq "$(jq -r '.[0].ifalias // ""' <<<"$link")" kvmnet:a "kvmbr1 ifalias"
assert_contains "$(jq -c '.[0].flags' <<<"$link")" '"UP"' "kvmbr1 flags"
addrs=$(ip -n "$H" -j addr show dev kvmbr1 |
    jq -r '.[0].addr_info[] | select(.family == "inet") | "\(.local)/\(.prefixlen)"')
assert_eq "$addrs" 10.77.0.1/24 "IPv4 addresses on kvmbr1"
in_ns "$H" nft list table inet kvmnet >/dev/null 2>&1 || fail "table inet kvmnet not recreated"
retry 25 test -s "$T/run/a/dnsmasq.pid" || fail "no dnsmasq pid file for a after reboot"
is_dnsmasq "$(dnsmasq_pid a)" || fail "dnsmasq of a not running after reboot"
if ip -n "$H" link show kvmbr2 >/dev/null 2>&1; then
    fail "kvmbr2 exists although b has no autostart"
fi
# The guest re-plugs (its port went with the old bridge) and works again.
guest_plug "$G1" vg1 kvmbr1
guest_dhcp "$G1" >/dev/null
in_ns "$G1" busybox ping -c 1 -W 2 203.0.113.2 >/dev/null || fail "guest cannot reach 203.0.113.2 after reboot"

log "4. autostart b on"
ctl autostart b on
assert_eq "$(ctl show b --json | jq -r .config.autostart)" true "b.autostart over the bus"
assert_eq "$(jq -r .autostart "$T/state/networks/b.json")" true "b.autostart in b.json"
assert_eq "$(net_state b)" inactive "b state (autostart does not start it)"

daemon_stop
assert_eq "$DAEMON_EXIT" 0 "kvmnetd exit status after SIGTERM"
log "PASS"
