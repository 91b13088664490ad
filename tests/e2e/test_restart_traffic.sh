#!/usr/bin/env bash
# E2E: restarting kvmnetd (SIGTERM, then SIGKILL) while guests have traffic
# flowing disturbs nothing:
#  - a long-lived TCP connection from a guest through NAT to the "internet"
#    namespace, and a connection from the internet through a port forward to
#    a server in the guest, both carrying data both ways, stay the same
#    connections (same 4-tuples, same socat processes, no RST sent or
#    received anywhere) and keep transferring after each restart;
#  - the nftables table is never written during adoption: `nft monitor`,
#    running in the host namespace across both restarts, sees no table,
#    chain, rule or set event (so in particular no "delete table"), and the
#    forward's connection counter survives; it does see a later element
#    change, which shows it was listening;
#  - dnsmasq is adopted (same pid) and a DHCP renew after each restart
#    gets the same lease;
#  - after a foreign nftables commit (another table) while the daemon is
#    down, the restarted daemon replaces its table in one transaction (one
#    generation in nft monitor) and the connections carry on.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

nat_topology
bus_start
daemon_start

ctl create net --mode nat --bridge kvmbr1 --ipv4 10.80.0.1/24 --dhcp-range 10.80.0.100-10.80.0.200
ctl start net
wait_state net active
guest_plug "$G1" vg1 kvmbr1
lease=$(guest_dhcp "$G1")
gip=${lease%%/*}
log "guest lease: $lease"
ctl forward add net tcp 8022 "$gip:7100"

# pump NS FILE: socat's SYSTEM side: a line every 0.1 s into the connection,
# everything received appended to FILE.
pump() { echo "(while sleep 0.1; do echo $1-\$(date +%s%N); done) & exec cat >>$2"; }

spawn_in_ns "$I" socat TCP-LISTEN:7000,reuseaddr SYSTEM:"$(pump i "$T/i.recv")" >>"$T/socat.log" 2>&1
track_pid "$SPAWNED_PID"
nat_server=$SPAWNED_PID
spawn_in_ns "$G1" socat TCP-LISTEN:7100,reuseaddr SYSTEM:"$(pump g "$T/g.fwd.recv")" >>"$T/socat.log" 2>&1
track_pid "$SPAWNED_PID"
fwd_server=$SPAWNED_PID
retry 50 _listening "$I" 7000 || fail "server in I did not come up"
retry 50 _listening "$G1" 7100 || fail "server in the guest did not come up"

spawn_in_ns "$G1" socat TCP:203.0.113.2:7000 SYSTEM:"$(pump g "$T/g.recv")" >>"$T/socat.log" 2>&1
track_pid "$SPAWNED_PID"
nat_client=$SPAWNED_PID
spawn_in_ns "$I" socat TCP:203.0.113.1:8022 SYSTEM:"$(pump i "$T/i.fwd.recv")" >>"$T/socat.log" 2>&1
track_pid "$SPAWNED_PID"
fwd_client=$SPAWNED_PID

size() { stat -c %s "$1" 2>/dev/null || echo 0; }
# Bytes received at each of the four ends.
sizes() { echo "$(size "$T/i.recv") $(size "$T/g.recv") $(size "$T/g.fwd.recv") $(size "$T/i.fwd.recv")"; }
# grown BEFORE: every end received more than in BEFORE.
grown() {
    local -a a b
    read -ra a <<<"$1"
    read -ra b <<<"$(sizes)"
    local i
    for i in 0 1 2 3; do ((b[i] > a[i])) || return 1; done
}
retry 50 grown "0 0 0 0" || fail "the streams did not start: $(sizes)"

# The established connections of a namespace, as "local peer" pairs.
conns() { in_ns "$1" ss -Htn state established | awk '{print $3, $4}' | sort; }
# Tcp OutRsts and EstabResets of a namespace (/proc/net/snmp is per namespace).
resets() { in_ns "$1" awk '/^Tcp:/ { if (h) { print $15, $9 } else h = 1 }' /proc/net/snmp; }
guest_conns=$(conns "$G1")
inet_conns=$(conns "$I")
assert_eq "$(wc -l <<<"$guest_conns")" 2 "established connections in the guest (NAT client, forward server)"
assert_eq "$(wc -l <<<"$inet_conns")" 2 "established connections in I (NAT server, forward client)"
assert_contains "$inet_conns" "203.0.113.1:8022" "I's forwarded connection"
assert_contains "$guest_conns" "203.0.113.2:7000" "the guest's NAT connection"
resets_g=$(resets "$G1")
resets_i=$(resets "$I")
resets_h=$(resets "$H")
log "guest connections: $(tr '\n' ';' <<<"$guest_conns") resets g/i/h: $resets_g / $resets_i / $resets_h"

fwd_conns() { ctl forward list net --json | jq -r '.[] | select(.host_port == 8022) | .connections'; }
conns_before=$(fwd_conns)
((conns_before >= 1)) || fail "the forward counted no connection ($conns_before)"
dnsmasq_before=$(dnsmasq_pid net)
table_before=$(kernel_snapshot "$H" | sed -n '/^## nft json$/,$p')

spawn_in_ns "$H" nft monitor >"$T/monitor.log" 2>&1
monitor=$SPAWNED_PID
track_pid "$monitor"
sleep 0.5 # nft monitor subscribes right after it starts

daemon_kill9() {
    kill -KILL "$DAEMON_PID"
    wait "$DAEMON_PID" 2>/dev/null || true
    DAEMON_PID=""
    retry 25 _bus_name_free || fail "org.kvmnet1 still owned after kvmnetd was killed"
}

for how in TERM KILL; do
    log "daemon stopped with SIG$how while traffic flows, then started again"
    before=$(sizes)
    if [[ $how == TERM ]]; then
        daemon_stop
        assert_eq "$DAEMON_EXIT" 0 "kvmnetd exit status after SIGTERM"
    else
        daemon_kill9
    fi
    retry 50 grown "$before" || fail "traffic stopped while the daemon was down: $before -> $(sizes)"
    daemon_start
    wait_state net active
    before=$(sizes)
    retry 50 grown "$before" || fail "traffic stopped after the restart (SIG$how): $before -> $(sizes)"
    for p in "$nat_server" "$nat_client" "$fwd_server" "$fwd_client"; do
        _pid_alive "$p" || fail "socat $p exited: its connection broke (SIG$how restart)"
    done
    assert_eq "$(conns "$G1")" "$guest_conns" "the guest's connections after the SIG$how restart (same 4-tuples)"
    assert_eq "$(conns "$I")" "$inet_conns" "I's connections after the SIG$how restart (same 4-tuples)"
    assert_eq "$(resets "$G1")" "$resets_g" "guest Tcp OutRsts/EstabResets after the SIG$how restart"
    assert_eq "$(resets "$I")" "$resets_i" "I's Tcp OutRsts/EstabResets after the SIG$how restart"
    assert_eq "$(resets "$H")" "$resets_h" "host Tcp OutRsts/EstabResets after the SIG$how restart"
    assert_eq "$(dnsmasq_pid net)" "$dnsmasq_before" "dnsmasq pid after the SIG$how restart (adopted)"
    assert_eq "$(guest_dhcp "$G1")" "$lease" "DHCP renew after the SIG$how restart"
    conns_now=$(fwd_conns)
    ((conns_now >= conns_before)) ||
        fail "the forward's connection counter went from $conns_before to $conns_now: the table was replaced"
    assert_eq "$(kernel_snapshot "$H" | sed -n '/^## nft json$/,$p')" "$table_before" \
        "nftables table after the SIG$how restart"
done

# The monitor was listening: an element change shows up.
ctl forward add net tcp 8023 "$gip:7101"
retry 25 grep -qE "(add|create) element inet kvmnet" "$T/monitor.log" ||
    fail "nft monitor saw no element change; it was not listening: $(cat "$T/monitor.log")"
stop_pid "$monitor"
events=$(grep -E "^(add|delete|flush|replace) (table|chain|rule|set|map)" "$T/monitor.log" || true)
[[ -z $events ]] || fail "the table was written while the daemon restarted: $events"
log "nft monitor across both restarts: $(wc -l <"$T/monitor.log") line(s), none but the element change"
log "bytes received (I, guest, guest via forward, I via forward): $(sizes)"

# Someone else commits to nftables while the daemon is away (another table):
# the daemon can no longer vouch for its table and replaces it, in one
# transaction, and the connections do not notice.
log "a foreign nftables commit while the daemon is down: the table is replaced in one transaction"
daemon_kill9
in_ns "$H" nft add table ip kvmnet_test_foreign
: >"$T/monitor.replaced.log"
spawn_in_ns "$H" nft monitor >"$T/monitor.replaced.log" 2>&1
monitor2=$SPAWNED_PID
track_pid "$monitor2"
sleep 0.5
before=$(sizes)
daemon_start
wait_state net active
retry 50 grown "$before" || fail "traffic stopped after the table was replaced: $before -> $(sizes)"
assert_eq "$(conns "$G1")" "$guest_conns" "the guest's connections after the table was replaced"
assert_eq "$(conns "$I")" "$inet_conns" "I's connections after the table was replaced"
assert_eq "$(resets "$G1")" "$resets_g" "guest Tcp OutRsts/EstabResets after the table was replaced"
assert_eq "$(resets "$I")" "$resets_i" "I's Tcp OutRsts/EstabResets after the table was replaced"
retry 25 grep -q "^add table inet kvmnet" "$T/monitor.replaced.log" ||
    fail "the daemon did not rewrite its table after a foreign commit: $(cat "$T/monitor.replaced.log")"
stop_pid "$monitor2"
# One transaction: everything the monitor saw (the old table's deletion, the
# new one) came with a single "new generation" line.
assert_contains "$(cat "$T/monitor.replaced.log")" "delete table inet kvmnet" "nft monitor after the foreign commit"
assert_eq "$(grep -c "^# new generation" "$T/monitor.replaced.log")" 1 \
    "transactions the restarted daemon committed (nft monitor)"
in_ns "$H" nft delete table ip kvmnet_test_foreign

# The socats, then their pump shells (everything left in the guest and I).
for p in "$nat_client" "$fwd_client" "$nat_server" "$fwd_server"; do stop_pid "$p" 2; done
for ns in "$G1" "$I"; do
    for p in $(command ip netns pids "$ns"); do stop_pid "$p" 2; done
done
# The adopted network stops like any other: its (adopted) dnsmasq goes too.
ctl stop net
retry 25 not is_dnsmasq "$dnsmasq_before" || fail "dnsmasq $dnsmasq_before still runs after stop"
daemon_stop
assert_eq "$DAEMON_EXIT" 0 "kvmnetd exit status after SIGTERM"
log "PASS"
