#!/usr/bin/env bash
# E2E, coexistence cells (c) and (c6): a real dockerd (Debian docker.io
# 20.10, iptables-nft) confined to the test's host namespace
# (lib-docker.sh). Started before kvmnetd with forwarding off, it sets the
# FORWARD policy of table ip filter to DROP and creates DOCKER-USER. A NAT
# network's guest still gets a lease, resolves a name through the
# network's dnsmasq, reaches the "internet" namespace and is reached
# through a port forward, over IPv4 and IPv6 (SLAAC, DNS at the IPv6
# gateway, NAT66, an IPv6 forward), because kvmnet puts its accept rules
# into DOCKER-USER (marked "kvmnet:<network>"); a second network with
# "firewall_integration": false shows Docker's drop would cut it off (and
# is degraded, StateReasonCode foreign-firewall, while it is).
# Two TCP connections held open (one out to the "internet" namespace, one
# in through a port forward) carry data both ways across: DOCKER-USER
# flushed (the rules come back), a plain dockerd restart (Docker keeps
# DOCKER-USER, so one copy of the rules), and a dockerd start over a filter
# table emptied with FORWARD policy DROP (degraded meanwhile; Docker
# creates DOCKER-USER afresh and kvmnetd puts its rules back); after each
# restart a new connection works, and the test prints how long after
# dockerd was ready. The last two fail on a kvmnetd that does not re-add
# its rules. dockerd with --ip6tables (experimental in 20.10) sets ip6
# filter FORWARD to DROP with no DOCKER-USER there: the network is degraded
# and diagnose prints the ip6tables commands; typed, IPv6 flows again. An
# ip6 DOCKER-USER chain as later Docker versions make it (made with
# ip6tables-nft) gets kvmnet's rules. On
# stop kvmnet's rules go, and Docker's own rule stays.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

source "$(dirname "${BASH_SOURCE[0]}")/lib-docker.sh"
command -v dig >/dev/null || fail "missing tool 'dig' (package dnsutils; run scripts/deps.sh)"

nat_topology
G2=${PFX}g2
ns_create "$G2"
veth_pair "$H" vg2 "$G2" eth0
[[ -e /proc/sys/net/ipv6 ]] || skip "this kernel has no IPv6 (CONFIG_IPV6 or ipv6.disable=1)"
# The internet side speaks IPv6 too: H:uplink0 2001:db8:ff::1, I:eth0 ::2.
ip -n "$H" addr add 2001:db8:ff::1/64 dev uplink0 nodad
ip -n "$I" addr add 2001:db8:ff::2/64 dev eth0 nodad
ip -n "$H" -6 route add default via 2001:db8:ff::2
bus_start

log "dockerd in the host namespace $H, as Debian runs it (no --ip6tables)"
dockerd_start
assert_contains "$(in_ns "$H" iptables-nft -S FORWARD)" "-P FORWARD DROP" "Docker's FORWARD policy"

daemon_start

log "networks: one integrated, one opted out"
ctl create default --mode nat --bridge kvmbr0 --ipv4 192.168.122.1/24 \
    --dhcp-range 192.168.122.100-192.168.122.254 --dhcp-host 52:54:00:aa:00:09,192.168.122.50,web --domain kvm.lan \
    --ipv6 fd00:1:2:3::1/64 --nat66
jq -n '{name: "manual", mode: "nat", bridge: "kvmbr1", firewall_integration: false,
        ipv4: {address: "192.168.123.1/24", dhcp: {ranges: ["192.168.123.100-192.168.123.254"]}}}' >"$T/manual.json"
ctl create manual --file "$T/manual.json"
assert_eq "$(ctl export manual | jq -r .firewall_integration)" false "manual's firewall_integration"
ctl start default
ctl start manual
wait_state default active
# Docker's FORWARD drop cuts the opted-out network's guests off: degraded
# with that reason (issue 14 item 3), the integrated one stays active.
wait_state manual degraded
assert_eq "$(busctl --system get-property org.kvmnet1 /org/kvmnet1/network/manual org.kvmnet1.Network \
    StateReasonCode)" 's "foreign-firewall"' "StateReasonCode of the opted-out network"
assert_contains "$(ctl show manual --json | jq -r .status.state_reason)" \
    "chain ip filter FORWARD (hook forward, policy drop) of another program drops the guests' outgoing forwarded traffic" \
    "StateReason of the opted-out network"

rules=$(docker_chain)
log "DOCKER-USER: $rules"
assert_contains "$rules" '-A DOCKER-USER -i kvmbr0 -m comment --comment "kvmnet:default" -j ACCEPT' "DOCKER-USER in"
assert_contains "$rules" '-A DOCKER-USER -o kvmbr0 -m comment --comment "kvmnet:default" -j ACCEPT' "DOCKER-USER out"
assert_not_contains "$rules" kvmbr1 "DOCKER-USER rules of the opted-out network"
assert_eq "$(tail -n1 <<<"$rules")" "-A DOCKER-USER -j RETURN" "Docker's own rule, last"

log "guest of the integrated network"
guest_plug "$G1" vg1 kvmbr0
# The bridge can send router advertisements once it has a link-local
# address (with its first port); the guest then solicits one by taking its
# link down and up (before DHCP, which would lose its default route).
retry 50 ready_v6 "$H" kvmbr0 link || fail "kvmbr0 has no usable link-local address"
ip -n "$G1" link set eth0 down
ip -n "$G1" link set eth0 up
read -r gaddr _ <<<"$(guest_dhcp "$G1")"
gip=${gaddr%/*}
log "lease $gip"
dns=$(in_ns "$G1" dig +short +tries=1 +time=3 @192.168.122.1 web.kvm.lan A) || fail "no DNS reply from the network's dnsmasq"
assert_eq "$dns" 192.168.122.50 "web.kvm.lan through the network's dnsmasq beside Docker"
in_ns "$G1" busybox ping -c 2 -W 2 203.0.113.2 >/dev/null || fail "guest cannot ping 203.0.113.2 beside Docker"
listen_tcp "$I" 9000 'echo $SOCAT_PEERADDR'
assert_eq "$(tcp_get "$G1" 203.0.113.2 9000)" 203.0.113.1 "guest's TCP to the internet namespace beside Docker"

log "port forward to the guest"
listen_tcp "$G1" 9001 'echo guest'
ctl forward add default tcp 8080 "$gip:9001"
assert_eq "$(tcp_get "$I" 203.0.113.1 8080)" guest "port forward beside Docker"

log "IPv6 beside Docker as Debian runs it: SLAAC, DNS over IPv6, out through NAT66, an IPv6 port forward"
retry 75 ready_v6 "$G1" eth0 global || fail "no SLAAC address in $G1: $(ip -n "$G1" -6 addr show dev eth0)"
g6=$(ip -n "$G1" -j -6 addr show dev eth0 scope global | jq -r '[.[0].addr_info[] | select(.local) | .local][0]')
log "guest has $g6"
assert_eq "$(in_ns "$G1" dig +short +tries=1 +time=3 @fd00:1:2:3::1 web.kvm.lan A)" 192.168.122.50 \
    "web.kvm.lan asked at fd00:1:2:3::1 beside Docker"
retry 10 pings "$G1" 2001:db8:ff::2 || fail "guest cannot ping 2001:db8:ff::2 beside Docker"
spawn_in_ns "$I" socat TCP6-LISTEN:9006,reuseaddr,fork,ipv6only=1 'SYSTEM:echo internet6' >>"$T/socat.log" 2>&1
track_pid "$SPAWNED_PID"
retry 50 _listening "$I" 9006 || fail "IPv6 listener in $I did not come up"
tcp6_out() { in_ns "$G1" socat -T 3 - "TCP6:[2001:db8:ff::2]:9006,connect-timeout=3" </dev/null; }
assert_eq "$(tcp6_out)" internet6 "guest's TCP over IPv6 beside Docker"
spawn_in_ns "$G1" socat TCP6-LISTEN:9007,reuseaddr,fork,ipv6only=1 'SYSTEM:echo guest6' >>"$T/socat.log" 2>&1
track_pid "$SPAWNED_PID"
retry 50 _listening "$G1" 9007 || fail "IPv6 listener in $G1 did not come up"
ctl forward add default tcp 8087 "[$g6]:9007"
tcp6_in() { in_ns "$I" socat -T 3 - "TCP6:[2001:db8:ff::1]:8087,connect-timeout=3" </dev/null; }
assert_eq "$(tcp6_in)" guest6 "IPv6 port forward beside Docker"

log "control: the opted-out network's guest is cut off by Docker's FORWARD drop"
guest_plug "$G2" vg2 kvmbr1
guest_dhcp "$G2" >/dev/null
if in_ns "$G2" busybox ping -c 2 -W 2 203.0.113.2 >/dev/null 2>&1; then
    fail "the opted-out network's guest reached 203.0.113.2: Docker's drop is not in the path, the test proves nothing"
fi

log "diagnose names Docker's chain"
status_of() { jq -r --arg c "$2" '.checks[] | select(.check == $c) | .status + ": " + .detail' <<<"$1"; }
assert_contains "$(status_of "$(ctl diagnose default --json)" foreign-firewall)" \
    "pass: chain ip filter FORWARD (hook forward, policy drop) is Docker's; kvmnet's accept rules for kvmbr0 are in its DOCKER-USER chain" \
    "diagnose of the integrated network"
assert_contains "$(status_of "$(ctl diagnose manual --json)" foreign-firewall)" \
    "(firewall integration is off); let them through with: iptables -I DOCKER-USER -i kvmbr1 -j ACCEPT; iptables -I DOCKER-USER -o kvmbr1 -j ACCEPT" \
    "diagnose of the opted-out network"

# Two long-lived connections, data flowing both ways: each server echoes
# every line back (tee keeps a copy), each client sends what the test
# writes to its fifo and keeps what comes back. One goes out from the
# guest to the "internet" namespace, one comes in to the guest through a
# port forward.
# long_conn NAME SERVER-NS PORT CLIENT-NS ADDRESS:PORT; then `say NAME LINE`.
long_conn() {
    local name=$1 sns=$2 port=$3 cns=$4 to=$5
    spawn_in_ns "$sns" socat "TCP-LISTEN:$port,reuseaddr" "SYSTEM:tee -a $T/$name.server" >/dev/null 2>&1
    track_pid "$SPAWNED_PID"
    retry 25 _listening "$sns" "$port" || fail "listener $name on $sns:$port did not come up"
    mkfifo "$T/$name.in"
    spawn_in_ns "$cns" socat "OPEN:$T/$name.in!!OPEN:$T/$name.client,creat,append" "TCP:$to" >"$T/$name.log" 2>&1
    CONN_PIDS[$name]=$SPAWNED_PID
    track_pid "$SPAWNED_PID"
}
declare -A CONN_PIDS
# say NAME LINE: LINE over the connection and back (both directions work).
say() {
    local name=$1 line=$2
    _pid_alive "${CONN_PIDS[$name]}" || fail "the open TCP connection $name died (before '$line')"
    echo "$line" >>"$T/$name.in"
    retry 50 grep -qx "$line" "$T/$name.client" ||
        fail "'$line' did not come back over the open connection $name: sent $(tr '\n' ' ' <"$T/$name.server"), back $(tr '\n' ' ' <"$T/$name.client")"
}
ctl forward add default tcp 8081 "$gip:9101"
long_conn out "$I" 9100 "$G1" 203.0.113.2:9100
long_conn in "$G1" 9101 "$I" 203.0.113.1:8081
# The fifos stay open for writing (fds 7, 8) so the clients never see EOF.
exec 7<>"$T/out.in" 8<>"$T/in.in"
say out before
say in before

log "DOCKER-USER flushed (Docker recreating it): the rules come back, the open connections survive"
in_ns "$H" iptables-nft -F DOCKER-USER
in_ns "$H" iptables-nft -A DOCKER-USER -j RETURN
_rules_back() { [[ $(docker_chain) == *'"kvmnet:default" -j ACCEPT'*'"kvmnet:default" -j ACCEPT'* ]]; }
retry 50 _rules_back || fail "kvmnet's rules not back in DOCKER-USER: $(docker_chain)"
assert_eq "$(docker_chain | grep -c 'kvmnet:default')" 2 "kvmnet's rules after the flush"
say out flushed
say in flushed
assert_eq "$(tcp_get "$G1" 203.0.113.2 9000)" 203.0.113.1 "a new connection after the flush"

# new_connection_after_ready WHAT: a guest's new connection out and one in
# through the forward, tried every 10 ms from dockerd being ready (its API
# listening, i.e. its rules written); prints how long it took (a figure,
# not asserted: tests/bench/docker-recovery.sh measures it).
new_connection_after_ready() {
    local t0=$1 what=$2 t
    until [[ $(in_ns "$G1" socat -T 0.2 - TCP:203.0.113.2:9000,connect-timeout=0.2 </dev/null 2>/dev/null) == 203.0.113.1 ]]; do
        (($(date +%s%N) / 1000000 - t0 < 10000)) || fail "no new connection out 10 s after dockerd was ready ($what)"
        sleep 0.01
    done
    t=$(($(date +%s%N) / 1000000 - t0))
    assert_eq "$(tcp_get "$I" 203.0.113.1 8080)" guest "the port forward after $what"
    log "$what: a guest's new connection worked $t ms after dockerd was ready"
}

log "dockerd restarted: still one copy of kvmnet's rules, the open connections survive"
dockerd_stop
say out "dockerd stopped"
dockerd_start
ready=$(($(date +%s%N) / 1000000))
new_connection_after_ready "$ready" "dockerd's restart"
retry 50 _rules_back || fail "kvmnet's rules not in DOCKER-USER after Docker's restart: $(docker_chain)"
assert_eq "$(docker_chain | grep -c 'kvmnet:default')" 2 "kvmnet's rules after Docker's restart"
wait_state default active
say out restarted
say in restarted

# Docker keeps DOCKER-USER across its own restart, and with forwarding
# already on it leaves FORWARD's policy alone: kvmnet's rules survive a
# plain restart untouched. Over a filter table emptied while Docker was
# down, with FORWARD's policy DROP (what a boot-time `iptables-restore` of
# a saved ruleset leaves before Docker starts), the guests are cut off
# (degraded: no DOCKER-USER, no supported place) until Docker creates
# DOCKER-USER afresh and kvmnetd puts its rules back into it.
log "dockerd restarted over an emptied filter table with FORWARD drop: the rules come back, the open connections survive"
dockerd_stop
in_ns "$H" iptables-nft -F
in_ns "$H" iptables-nft -X
in_ns "$H" iptables-nft -P FORWARD DROP
wait_state default degraded
dockerd_start
ready=$(($(date +%s%N) / 1000000))
new_connection_after_ready "$ready" "dockerd's start over an emptied table"
retry 50 _rules_back || fail "kvmnet's rules not in DOCKER-USER after Docker created it: $(docker_chain)"
assert_eq "$(docker_chain | grep -c 'kvmnet:default')" 2 "kvmnet's rules after Docker created DOCKER-USER"
wait_state default active
say out recreated
say in recreated
exec 7>&- 8>&-
assert_eq "$(tr '\n' ' ' <"$T/out.server")" "before flushed dockerd stopped restarted recreated " \
    "lines over the one outgoing connection"
assert_eq "$(tr '\n' ' ' <"$T/in.server")" "before flushed restarted recreated " \
    "lines over the one connection in through the forward"
stop_pid "${CONN_PIDS[out]}"
stop_pid "${CONN_PIDS[in]}"

log "dockerd with --ip6tables (experimental in 20.10): ip6 FORWARD drop and no DOCKER-USER there, degraded"
# Docker 20.10 sets ip6 filter FORWARD's policy to DROP and makes no
# DOCKER-USER chain in ip6 filter: no supported place for kvmnet's rules,
# so the network is degraded with the exact diagnosis until the printed
# commands are typed.
dockerd_stop
DOCKERD_ARGS=(--experimental --ip6tables) # read by dockerd_start (lib-docker.sh)
dockerd_start
assert_contains "$(in_ns "$H" ip6tables-nft -S FORWARD)" "-P FORWARD DROP" "Docker's ip6 FORWARD policy"
docker6_chain >/dev/null && fail "Docker 20.10 made an ip6 DOCKER-USER chain: $(docker6_chain)"
wait_state default degraded
assert_eq "$(busctl --system get-property org.kvmnet1 /org/kvmnet1/network/default org.kvmnet1.Network \
    StateReasonCode)" 's "foreign-firewall"' "StateReasonCode beside Docker's ip6 FORWARD drop"
assert_contains "$(ctl show default --json | jq -r .status.state_reason)" \
    "chain ip6 filter FORWARD (hook forward, policy drop) of another program drops the guests' outgoing forwarded traffic" \
    "StateReason beside Docker's ip6 FORWARD drop"
diag=$(status_of "$(ctl diagnose default --json)" foreign-firewall)
assert_contains "$diag" \
    "warn: chain ip6 filter FORWARD (hook forward, policy drop) is Docker's (it has no DOCKER-USER chain there) and drops guests' forwarded traffic; let them through with: ip6tables -I FORWARD -i kvmbr0 -j ACCEPT; ip6tables -I FORWARD -o kvmbr0 -j ACCEPT" \
    "diagnose beside Docker's ip6 FORWARD drop"
assert_contains "$diag" "pass: chain ip filter FORWARD (hook forward, policy drop) is Docker's; kvmnet's accept rules for kvmbr0 are in its DOCKER-USER chain" \
    "diagnose of IPv4 beside Docker with --ip6tables"
if tcp6_out >/dev/null 2>&1; then
    fail "the guest's new IPv6 connection passed Docker's ip6 FORWARD drop: the test proves nothing"
fi
assert_eq "$(tcp_get "$G1" 203.0.113.2 9000)" 203.0.113.1 "IPv4 beside Docker with --ip6tables"
log "an ip6 DOCKER-USER chain as later Docker versions make it (made here with ip6tables-nft): kvmnet's rules go there"
in_ns "$H" ip6tables-nft -N DOCKER-USER
in_ns "$H" ip6tables-nft -A DOCKER-USER -j RETURN
in_ns "$H" ip6tables-nft -I FORWARD -j DOCKER-USER
_rules6_back() { [[ $(docker6_chain) == *'"kvmnet:default" -j ACCEPT'*'"kvmnet:default" -j ACCEPT'* ]]; }
retry 50 _rules6_back || fail "kvmnet's rules not in the ip6 DOCKER-USER chain: $(docker6_chain)"
wait_state default active
assert_eq "$(tcp6_out)" internet6 "guest's TCP over IPv6 through the ip6 DOCKER-USER rules"
assert_eq "$(tcp6_in)" guest6 "IPv6 port forward through the ip6 DOCKER-USER rules"
assert_contains "$(status_of "$(ctl diagnose default --json)" foreign-firewall)" \
    "pass: chain ip6 filter FORWARD (hook forward, policy drop) is Docker's; kvmnet's accept rules for kvmbr0 are in its DOCKER-USER chain" \
    "diagnose with an ip6 DOCKER-USER chain"
in_ns "$H" ip6tables-nft -D FORWARD -j DOCKER-USER
in_ns "$H" ip6tables-nft -F DOCKER-USER
in_ns "$H" ip6tables-nft -X DOCKER-USER
wait_state default degraded

log "the printed commands typed: active, IPv6 flows"
in_ns "$H" ip6tables-nft -I FORWARD -i kvmbr0 -j ACCEPT
in_ns "$H" ip6tables-nft -I FORWARD -o kvmbr0 -j ACCEPT
wait_state default active
assert_eq "$(tcp6_out)" internet6 "guest's TCP over IPv6 after the printed commands"
assert_eq "$(tcp6_in)" guest6 "IPv6 port forward after the printed commands"

log "stop: kvmnet's rules go, Docker's stay"
ctl stop default
wait_state default inactive
rules=$(docker_chain)
assert_not_contains "$rules" kvmnet "DOCKER-USER after stop"
assert_contains "$rules" "-A DOCKER-USER -j RETURN" "Docker's own rule after stop"
ctl stop manual

daemon_stop
dockerd_stop
log "PASS"
