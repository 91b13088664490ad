#!/usr/bin/env bash
# E2E: the daemon does not repair its own change (issue 11 item 9), and
# does not even hear of its own large element batches (issue 17):
#  - a big AddForwards is one nftables transaction of one element per
#    forward. The daemon leaves the monitor's notification group around it
#    (core::NotificationPause), so the kernel builds no notifications: no
#    overrun, no repair, the table's sets kept. Before that the batch's
#    notifications (one per element) overflowed the monitor socket.
#  - a start whose table update carries those forwards' elements is not
#    paused: its notifications overflow the socket (ENOBUFS), but the
#    kernel's ruleset generation still equals the one the commit record
#    (core/committed_table.cpp) took right after the daemon's own commit,
#    so nothing else changed: no Repaired, no degraded state.
#  - a foreign change afterwards is still repaired (the monitor listens
#    again after the paused batch).
# The monitor's receive buffer is shrunk with --nft-monitor-rcvbuf (the
# kernel's minimum is about 2 KiB) so that a few thousand forwards overflow
# it; at the default 8 MiB it takes about 100,000 (FORWARDS=... overrides
# the count, NFT_RCVBUF=0 keeps the default buffer).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
forwards=${FORWARDS:-4000}
rcvbuf=${NFT_RCVBUF:-4096}

nat_topology
bus_start
args=()
((rcvbuf > 0)) && args=(--nft-monitor-rcvbuf "$rcvbuf")
daemon_start "${args[@]}"
default_network_running
ctl forward add default tcp 8080 192.168.122.50:80 >/dev/null

repairs() { grep -c 'default: repaired ' "$T/kvmnetd.log" || true; }
drifts() { grep -c 'changed outside kvmnet' "$T/kvmnetd.log" || true; }
overruns() { grep -c 'nftables notifications were lost' "$T/kvmnetd.log" || true; }
set_handle() { in_ns "$H" nft -a list table inet kvmnet | grep -m1 -o 'set [a-z0-9_]* { # handle [0-9]*' || true; }
handle_before=$(set_handle)
lost_before=$(overruns) # the network's start may have overflowed the small buffer already

log "AddForwards of $forwards forwards"
jq -n --argjson n "$forwards" '[range(0; $n) | {proto: (if . % 2 == 0 then "tcp" else "udp" end),
    host_port: (10000 + (. / 2 | floor)), guest: "192.168.122.60", guest_port: 80}]' >"$T/many.json"
ctl forward add default --file "$T/many.json" >/dev/null
assert_eq "$(ctl forward list default --json | jq length)" "$((forwards + 1))" "forwards after the batch"
sleep 1 # any repair would have been scheduled and run by now (100 ms debounce)
assert_eq "$(overruns)" "$lost_before" "overruns of the monitor socket by the daemon's own (paused) batch"
assert_eq "$(repairs)" 0 "repairs after the daemon's own batch"
assert_eq "$(drifts)" 0 "drift reported for the daemon's own batch"
assert_eq "$(net_state default)" active "state after the batch"
assert_eq "$(set_handle)" "$handle_before" "the table's sets were not re-created"

log "a foreign change after it is still repaired (the monitor listens again)"
in_ns "$H" nft flush ruleset
_repaired() { (($(repairs) > 0)); }
retry 50 _repaired || fail "nft flush ruleset not repaired"
wait_state default active
assert_eq "$(ctl forward list default --json | jq length)" "$((forwards + 1))" "forwards after the repair"
repaired=$(repairs) drifted=$(drifts)

log "a start with those forwards: its table update overflows the monitor socket"
lost_before=$(overruns)
ctl stop default
ctl start default
wait_state default active
sleep 1
(($(overruns) > lost_before)) || skip "the start did not overflow the monitor socket here (rcvbuf $rcvbuf, $forwards forwards)"
log "the monitor lost notifications $(($(overruns) - lost_before)) time(s)"
assert_eq "$(repairs)" "$repaired" "repairs after the daemon's own start"
assert_eq "$(drifts)" "$drifted" "drift reported for the daemon's own start"
assert_eq "$(net_state default)" active "state after the start"

daemon_stop
assert_eq "$DAEMON_EXIT" 0 "kvmnetd exit status after SIGTERM"
log PASS
