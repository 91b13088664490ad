#!/usr/bin/env bash
# E2E: port forwards and connection limits on a NAT network.
#  - forwards from the network document and from `forward add` (options and
#    --file with an array) reach listeners in guest namespaces: from the
#    "internet" namespace (the guest sees the client's own address), from the
#    host itself (127.0.0.1 and its uplink address), and by hairpin from
#    another guest and from the guest itself;
#  - UDP, a port range mapped 1:1, a named static host as the guest;
#  - refusals (Conflict in this and another network, InvalidArgument naming
#    the field) change neither the kernel nor the document; a forward over a
#    local listener is added with a warning;
#  - a forward with a rate of 5/s lets through far fewer than 50 rapid
#    connection attempts, and `forward list` counts the drops;
#  - per-source connection limit; `stats` shows its drops;
#  - forwards survive a daemon restart (journal folded into the document);
#    remove takes a forward away.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

nat_topology
guest_add 2
bus_start
daemon_start

# Guests with fixed addresses (DHCP is covered elsewhere).
guest_static() { # NS HOSTIF ADDRESS
    # A port of the daemon's: NAT ports get hairpin mode, which a guest
    # reaching itself through a forward needs.
    ctl port attach default "$2" >/dev/null
    ip -n "$1" addr add "$3/24" dev eth0
    ip -n "$1" link set eth0 up
    ip -n "$1" route add default via 192.168.122.1
}
# listener NS PORT TEXT: replies "TEXT <peer address>" and closes.
listener() {
    listen_tcp "$1" "$2" "echo $3 \$SOCAT_PEERADDR"
}
# map_snapshot: the forward maps and the document, to compare around refusals.
forward_state() {
    in_ns "$H" nft list table inet kvmnet | sed -n '/map fwd4/,/^\t}/p' | sed -E 's/packets [0-9]+ bytes [0-9]+//g'
    jq -S .forwards "$T/state/networks/default.json"
    cat "$T/state/networks/default.forwards" 2>/dev/null || true
}

log "a network whose document has a forward to a named static host"
cat >"$T/default.json" <<'EOF'
{"name": "default", "mode": "nat", "bridge": "kvmbr0",
 "ipv4": {"address": "192.168.122.1/24",
          "dhcp": {"hosts": [{"mac": "52:54:00:00:00:0a", "ip": "192.168.122.10", "name": "web"}]}},
 "forwards": [{"proto": "tcp", "host_port": 8080, "guest": "web", "guest_port": 80, "description": "web site"}]}
EOF
ctl create default --file "$T/default.json"
ctl start default
wait_state default active
guest_static "$G1" vg1 192.168.122.10
guest_static "$G2" vg2 192.168.122.20
listener "$G1" 80 web1
listener "$G2" 80 web2
assert_eq "$(in_ns "$H" sysctl -n net.ipv4.conf.kvmbr0.route_localnet)" 1 "route_localnet on the NAT bridge"
assert_contains "$(in_ns "$H" bridge -d link show dev vg1)" "hairpin on" "hairpin mode on a NAT port"

log "reached from the internet namespace, with the client's address"
assert_eq "$(tcp_get "$I" 203.0.113.1 8080)" "web1 203.0.113.2" "internet -> 203.0.113.1:8080"
log "reached from the host itself"
assert_eq "$(tcp_get "$H" 127.0.0.1 8080)" "web1 192.168.122.1" "host -> 127.0.0.1:8080"
assert_eq "$(tcp_get "$H" 203.0.113.1 8080)" "web1 203.0.113.1" "host -> 203.0.113.1:8080"
log "hairpin: another guest, and the guest itself, through the host's address"
assert_eq "$(tcp_get "$G2" 203.0.113.1 8080)" "web1 192.168.122.1" "guest 2 -> 203.0.113.1:8080"
assert_eq "$(tcp_get "$G1" 203.0.113.1 8080)" "web1 192.168.122.1" "guest 1 -> itself via 203.0.113.1:8080"
assert_eq "$(tcp_get "$G2" 192.168.122.1 8080)" "web1 192.168.122.1" "guest 2 -> gateway:8080"
log "guests still cannot use loopback addresses through the bridge"
in_ns "$G2" ip route add 127.0.0.0/8 via 192.168.122.1 2>/dev/null || true
if out=$(tcp_get "$G2" 127.0.0.1 8080 1 2>/dev/null) && [[ -n $out ]]; then
    fail "a guest reached 127.0.0.1:8080 of the host: $out"
fi

log "forward add: options, UDP, a port range from a file"
ctl forward add default udp 5000 192.168.122.20:5353
spawn_in_ns "$G2" socat UDP-RECVFROM:5353,fork 'SYSTEM:echo udp2' >>"$T/socat.log" 2>&1
track_pid "$SPAWNED_PID"
retry 50 _udp_listening "$G2" 5353 || fail "UDP listener did not come up"
# UDP may lose the first datagram while neighbours resolve: ask a few times.
_udp_answer() { [[ $(echo hi | in_ns "$I" socat -T 1 - UDP:203.0.113.1:5000 2>/dev/null) == udp2 ]]; }
retry 5 _udp_answer || fail "internet -> udp 5000: no answer from the guest"
cat >"$T/range.json" <<'EOF'
[{"proto": "tcp", "host_port": "9000-9002", "guest": "192.168.122.20", "guest_port": "7000-7002"},
 {"proto": "both", "host_port": 9100, "host_address": "203.0.113.1", "guest": "web", "guest_port": 80}]
EOF
ctl forward add default --file "$T/range.json"
for p in 7000 7001 7002; do listen_tcp "$G2" "$p" "echo port $p"; done
assert_eq "$(tcp_get "$I" 203.0.113.1 9001)" "port 7001" "range: 9001 -> 7001"
assert_eq "$(tcp_get "$I" 203.0.113.1 9002)" "port 7002" "range: 9002 -> 7002"
assert_eq "$(tcp_get "$I" 203.0.113.1 9100)" "web1 203.0.113.2" "forward on one host address"
list=$(ctl forward list default --json)
assert_eq "$(jq length <<<"$list")" 4 "forwards listed"
assert_eq "$(jq -r '.[] | select(.host_port == 8080) | .guest_address' <<<"$list")" 192.168.122.10 \
    "named guest's address"
conns=$(jq -r '.[] | select(.host_port == 8080) | .connections' <<<"$list")
((conns >= 6)) || fail "forward 8080 counted $conns connections, expected at least 6: $list"
table=$(ctl forward list default)
assert_contains "$table" "web site" "forward list table: description"
assert_contains "$table" "9000-9002" "forward list table: range"

log "refusals change nothing"
before=$(forward_state)
expect_error Conflict forward add default --host-port 8080 --guest 192.168.122.20 --guest-port 81
assert_contains "$ERR_MSG" "forward: tcp *:8080 is already forwarded by this network" "same port"
expect_error Conflict forward add default --proto both --host-port 9002 --host-address 203.0.113.1 \
    --guest 192.168.122.20 --guest-port 1
assert_contains "$ERR_MSG" "forward: both 203.0.113.1:9002 is already forwarded by this network" "overlapping range"
expect_error InvalidArgument forward add default --host-port 8081 --guest 10.0.0.5 --guest-port 80
assert_contains "$ERR_MSG" "forward.guest: 10.0.0.5 is not inside the network's subnet" "guest outside"
expect_error InvalidArgument forward add default --host-port 0 --guest 192.168.122.20 --guest-port 80
assert_contains "$ERR_MSG" "forward.host_port" "port 0"
expect_error InvalidArgument forward add default --host-port 70000 --guest 192.168.122.20 --guest-port 80
assert_contains "$ERR_MSG" "forward.host_port" "port 70000"
expect_error InvalidArgument forward add default --host-port 9010-9005 --guest 192.168.122.20 --guest-port 80
assert_contains "$ERR_MSG" "forward.host_port" "reversed range"
expect_error InvalidArgument forward add default --host-port 9010-9012 --guest 192.168.122.20 --guest-port 80-81
assert_contains "$ERR_MSG" "forward.guest_port" "range length mismatch"
# An array is all or nothing: the first entry is fine, the second clashes.
echo '[{"proto":"tcp","host_port":9500,"guest":"192.168.122.20","guest_port":80},
       {"proto":"udp","host_port":5000,"guest":"192.168.122.20","guest_port":80}]' >"$T/half.json"
expect_error Conflict forward add default --file "$T/half.json"
assert_contains "$ERR_MSG" "forwards[1]: udp *:5000" "array entry named"
ctl create other --mode nat --bridge kvmbr1 --ipv4 10.77.0.1/24
expect_error Conflict forward add other --host-port 9001 --guest 10.77.0.5 --guest-port 80
assert_contains "$ERR_MSG" "already forwarded by network 'default'" "clash with another network"
expect_error InvalidArgument forward add other --file "$T/range.json"
assert_contains "$ERR_MSG" "forwards[0].guest" "guest of another subnet"
assert_eq "$(forward_state)" "$before" "forward maps and document after refusals"
assert_eq "$(tcp_get "$I" 203.0.113.1 8080)" "web1 203.0.113.2" "forward still works after refusals"

log "a local listener on the port: added, with a warning"
spawn_in_ns "$H" socat TCP-LISTEN:7777,reuseaddr,fork 'SYSTEM:echo host' >>"$T/socat.log" 2>&1
track_pid "$SPAWNED_PID"
retry 50 _listening "$H" 7777 || fail "host listener did not come up"
ctl forward add default --host-port 7777 --guest 192.168.122.20 --guest-port 7000 2>"$T/warn.err"
assert_contains "$(cat "$T/warn.err")" "a local process listens on tcp 0.0.0.0:7777" "listener warning"
assert_eq "$(tcp_get "$I" 203.0.113.1 7777)" "port 7000" "the forward wins over the local listener"

log "rate limit: 5/s lets far fewer than 50 rapid attempts through"
ctl forward add default tcp 2222 192.168.122.10:80 --rate 5/s
attempts=()
for i in $(seq 1 50); do
    (tcp_get "$I" 203.0.113.1 2222 1 >"$T/rate.$i" 2>/dev/null || true) &
    attempts+=($!)
done
wait "${attempts[@]}"
ok=$(cat "$T"/rate.* | grep -c '^web1' || true)
log "rate limit: $ok of 50 attempts connected"
((ok >= 1)) || fail "no connection got through the rate-limited forward"
((ok < 25)) || fail "$ok of 50 rapid attempts got through a 5/s forward"
dropped=$(ctl forward list default --json | jq -r '.[] | select(.host_port == 2222) | .dropped')
((dropped > 0)) || fail "forward list counts no drops for the rate-limited forward"

log "per-source connection limit"
ctl set default 'limits={"connections_per_source": 2}'
assert_eq "$(ctl forward list default --json | jq length)" 6 "forwards kept by a limits update"
listen_tcp "$G1" 81 "sleep 4"
ctl forward add default --host-port 8181 --guest web --guest-port 81
for i in 1 2; do
    spawn_in_ns "$I" socat -t 10 -T 10 PIPE TCP:203.0.113.1:8181 >/dev/null 2>&1
    track_pid "$SPAWNED_PID"
done
_held() { (($(in_ns "$G1" ss -Htn state established '( sport = :81 )' | wc -l) >= 2)); }
retry 50 _held || fail "the two held connections did not come up"
if out=$(tcp_get "$I" 203.0.113.1 8080 2 2>&1); then
    fail "a third connection from one source got through a limit of 2: $out"
fi
stats=$(ctl stats default --json)
limited=$(jq -r '.drops[] | select(.rule == "connections per source to forwards over the limit") | .packets' \
    <<<"$stats")
((limited > 0)) || fail "stats show no per-source drops: $stats"
ctl unset default limits
assert_eq "$(tcp_get "$I" 203.0.113.1 8080)" "web1 203.0.113.2" "no limit: connects again"
retry 50 not _held || fail "the held connections did not end"

log "forwards survive a daemon restart"
ctl forward add default --host-port 6000 --guest web --guest-port 80
[[ -s $T/state/networks/default.forwards ]] || fail "no forwards journal after forward add"
daemon_stop
daemon_start
wait_state default active
[[ ! -e $T/state/networks/default.forwards ]] || fail "journal not folded into the document at start"
assert_eq "$(jq '.forwards | length' "$T/state/networks/default.json")" 8 "forwards in the document"
assert_eq "$(tcp_get "$I" 203.0.113.1 6000)" "web1 203.0.113.2" "the journalled forward after restart"
assert_eq "$(tcp_get "$I" 203.0.113.1 9001)" "port 7001" "range after restart"

log "remove"
ctl forward remove default tcp 8080
if out=$(tcp_get "$I" 203.0.113.1 8080 1 2>/dev/null) && [[ -n $out ]]; then
    fail "removed forward still answers: $out"
fi
ctl forward remove default both 203.0.113.1:9100
expect_error NotFound forward remove default tcp 8080
assert_eq "$(ctl forward list default --json | jq length)" 6 "forwards after removals"
assert_eq "$(tcp_get "$G2" 203.0.113.1 9000)" "port 7000" "other forwards unaffected"

log "stop removes the forward maps with the table"
ctl stop other 2>/dev/null || true
ctl stop default
wait_state default inactive
if in_ns "$H" nft list table inet kvmnet >/dev/null 2>&1; then fail "table inet kvmnet left after stop"; fi
log "PASS"
