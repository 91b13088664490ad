#!/usr/bin/env bash
# E2E: DHCP leases and static hosts on a running NAT network.
#  - `kvmnetctl monitor` (in the background) prints NetworkAdded, the State
#    changes and a LeaseChanged "added" line within ~2 s of a guest's lease;
#  - `kvmnetctl leases` lists the lease (JSON, with expiry and expires_at in
#    RFC 3339 UTC, and table), dynamic from a range, static for the guest
#    with a static host's MAC;
#  - `host list` (table and --json) lists the static hosts;
#  - `host add` on the running network: dnsmasq keeps its pid, the first
#    guest keeps its lease, a second guest with that MAC gets exactly the
#    reserved address; refusals (InvalidArgument, Conflict, NotFound) change
#    nothing; `host remove` works;
#  - the guest releasing its lease (udhcpc, SIGUSR2) shows as "released".
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

nat_topology
guest_add 2
bus_start
daemon_start

: >"$T/monitor.log"
"$KVMNETCTL" monitor >"$T/monitor.log" 2>"$T/monitor.err" &
monitor_pid=$!
track_pid "$monitor_pid"
retry 25 grep -q '^Monitoring' "$T/monitor.log" || fail "monitor did not start: $(cat "$T/monitor.err")"

ctl create default --mode nat --bridge kvmbr0 --ipv4 192.168.122.1/24 \
    --dhcp-range 192.168.122.100-192.168.122.254
ctl start default
wait_state default active
retry 10 grep -q ' NetworkAdded default$' "$T/monitor.log" || fail "no NetworkAdded line: $(cat "$T/monitor.log")"
retry 10 grep -q ' PropertiesChanged default .*State="active"' "$T/monitor.log" ||
    fail "no State=active line: $(cat "$T/monitor.log")"

log "a guest's lease is listed and signalled"
mac1=52:54:00:aa:00:01
ip -n "$G1" link set eth0 address "$mac1"
guest_plug "$G1" vg1 kvmbr0
read -r gaddr _ <<<"$(guest_dhcp "$G1")"
gip=${gaddr%/*}
[[ $gip == 192.168.122.* ]] || fail "lease $gaddr outside 192.168.122.0/24"
# Within ~2 s of the lease (the daemon reports within about 100 ms).
retry 10 grep -q " LeaseChanged default added $mac1 $gip " "$T/monitor.log" ||
    fail "no LeaseChanged added line for $mac1 $gip: $(cat "$T/monitor.log")"
lease=$(ctl leases default --json | jq -c --arg m "$mac1" '.[] | select(.mac == $m)')
assert_eq "$(jq -r .ip <<<"$lease")" "$gip" "leases --json: address of $mac1"
assert_eq "$(jq -r .type <<<"$lease")" dynamic "leases --json: type of a range lease"
expiry=$(jq -r .expiry <<<"$lease")
now=$(date +%s)
((expiry > now && expiry <= now + 3600 + 5)) || fail "expiry $expiry is not within the 1 h lease from $now"
# The same time in RFC 3339 UTC, as every time in kvmnet's JSON.
assert_eq "$(jq -r .expires_at <<<"$lease")" "$(date -u -d "@$expiry" +%Y-%m-%dT%H:%M:%SZ)" "expires_at of $mac1"
table=$(ctl leases default)
assert_contains "$table" "MAC" "leases table header"
assert_contains "$table" "$mac1" "leases table row"
assert_contains "$table" "$gip" "leases table row"

log "a static host added while running: no dnsmasq restart"
pid=$(dnsmasq_pid default)
is_dnsmasq "$pid" || fail "no dnsmasq for default (pid '$pid')"
mac2=52:54:00:aa:00:02
ctl host add default "$mac2" 192.168.122.50 web2
assert_eq "$(dnsmasq_pid default)" "$pid" "dnsmasq pid after host add"
is_dnsmasq "$pid" || fail "dnsmasq $pid is gone after host add"
assert_eq "$(ctl show default --json | jq -c '.config.ipv4.dhcp.hosts')" \
    '[{"ip":"192.168.122.50","mac":"52:54:00:aa:00:02","name":"web2"}]' "hosts after host add"
assert_eq "$(ctl leases default --json | jq -r --arg m "$mac1" '.[] | select(.mac == $m) | .ip')" "$gip" \
    "first guest's lease after host add"
ip -n "$G2" link set eth0 address "$mac2"
guest_plug "$G2" vg2 kvmbr0
read -r g2addr _ <<<"$(guest_dhcp "$G2")"
assert_eq "$g2addr" 192.168.122.50/24 "lease of the guest with the reserved MAC"
retry 10 grep -q " LeaseChanged default added $mac2 192.168.122.50 " "$T/monitor.log" ||
    fail "no LeaseChanged added line for $mac2: $(cat "$T/monitor.log")"
assert_eq "$(dnsmasq_pid default)" "$pid" "dnsmasq pid after the second guest's lease"
assert_eq "$(ctl leases default --json | jq -r --arg m "$mac2" '.[] | select(.mac == $m) | .type')" static \
    "type of the static host's lease"
assert_eq "$(ctl leases default --json | jq -r --arg m "$mac1" '.[] | select(.mac == $m) | .type')" dynamic \
    "type of the range lease beside a static one"
assert_contains "$(ctl leases default)" "static" "leases table: type column"
assert_eq "$(ctl host list default --json | jq -c .)" \
    '[{"duid":null,"ip":"192.168.122.50","mac":"52:54:00:aa:00:02","name":"web2"}]' "host list --json"
table=$(ctl host list default)
assert_contains "$table" "MAC" "host list header"
assert_contains "$table" "$mac2" "host list row"
assert_contains "$table" "web2" "host list row"

log "refused hosts change nothing"
before=$(ctl show default --json | jq -c .config.ipv4)
hosts_file=$(cat "$T/run/default/dnsmasq.hosts")
expect_error Conflict host add default "$mac2" 192.168.122.51
assert_contains "$ERR_MSG" "host.mac" "duplicate MAC"
expect_error Conflict host add default 52:54:00:aa:00:03 192.168.122.50
assert_contains "$ERR_MSG" "host.ip" "duplicate address"
expect_error Conflict host add default 52:54:00:aa:00:03 "$gip"
assert_contains "$ERR_MSG" "leased to $mac1" "address leased to another guest"
expect_error InvalidArgument host add default 52:54:00:aa:00:03 10.99.0.5
assert_contains "$ERR_MSG" "host.ip" "address outside the subnet"
expect_error InvalidArgument host add default 52:54:00:aa:00:03 192.168.122.51 'bad_name!'
assert_contains "$ERR_MSG" "host.name" "bad host name"
expect_error InvalidArgument host add default not-a-mac 192.168.122.51
assert_contains "$ERR_MSG" "host.mac" "bad MAC"
expect_error NotFound host remove default 52:54:00:aa:00:77
assert_eq "$(ctl show default --json | jq -c .config.ipv4)" "$before" "ipv4 after refusals"
assert_eq "$(cat "$T/run/default/dnsmasq.hosts")" "$hosts_file" "dnsmasq.hosts after refusals"
assert_eq "$(dnsmasq_pid default)" "$pid" "dnsmasq pid after refusals"

log "host remove"
ctl host add default 52:54:00:aa:00:03 192.168.122.51
assert_contains "$(cat "$T/run/default/dnsmasq.hosts")" "52:54:00:aa:00:03,192.168.122.51" "hosts file after add"
ctl host remove default 52:54:00:AA:00:03
assert_eq "$(ctl show default --json | jq -c .config.ipv4)" "$before" "ipv4 after add and remove"
assert_eq "$(cat "$T/run/default/dnsmasq.hosts")" "$hosts_file" "dnsmasq.hosts after add and remove"
assert_eq "$(dnsmasq_pid default)" "$pid" "dnsmasq pid after host remove"

log "a released lease is signalled"
# busybox udhcpc sends a DHCPRELEASE only from a bound state: -q -R quits
# before it gets there and sends none. So a udhcpc stays in the foreground,
# takes the lease (the same address again) and releases it on SIGUSR2.
rm -f "$T/lease.release"
UDHCPC_LEASE_FILE="$T/lease.release" spawn_in_ns "$G1" busybox udhcpc -f -i eth0 -t 5 -T 1 \
    -s "$SRCDIR/tests/e2e/udhcpc.script" >"$T/udhcpc.release.log" 2>&1
udhcpc_pid=$SPAWNED_PID
track_pid "$udhcpc_pid"
retry 50 test -s "$T/lease.release" || fail "udhcpc in $G1 got no lease: $(cat "$T/udhcpc.release.log")"
kill -USR2 "$udhcpc_pid"
retry 10 grep -q " LeaseChanged default released $mac1 $gip " "$T/monitor.log" ||
    fail "no LeaseChanged released line for $mac1: $(cat "$T/monitor.log"; cat "$T/udhcpc.release.log")"
stop_pid "$udhcpc_pid"
assert_eq "$(ctl leases default --json | jq -r --arg m "$mac1" '[.[] | select(.mac == $m)] | length')" 0 \
    "leases of $mac1 after the release"
assert_eq "$(ctl leases default --json | jq -r --arg m "$mac2" '.[] | select(.mac == $m) | .ip')" 192.168.122.50 \
    "second guest's lease after the first one's release"
assert_eq "$(dnsmasq_pid default)" "$pid" "dnsmasq pid at the end"

ctl stop default
wait_state default inactive
assert_eq "$(ctl leases default --json | jq -c .)" "[]" "leases of a stopped network"

log "monitor ends cleanly on SIGINT"
kill -INT "$monitor_pid"
rc=0
wait "$monitor_pid" || rc=$?
assert_eq "$rc" 0 "monitor exit status after SIGINT"
[[ ! -s $T/monitor.err ]] || fail "monitor wrote to stderr: $(cat "$T/monitor.err")"
log "monitor saw: $(grep -c . "$T/monitor.log") lines"

daemon_stop
assert_eq "$DAEMON_EXIT" 0 "kvmnetd exit status after SIGTERM"
log PASS
