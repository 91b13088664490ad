#!/usr/bin/env bash
# E2E, coexistence cell (c): a real dockerd (Debian docker.io, iptables-nft)
# runs confined to the test's host namespace and a mount namespace of its
# own (its own --data-root, --exec-root, --pidfile and unix socket; a
# cgroup2 mount private to it, since this machine's hybrid cgroup v1 tree is
# not one dockerd accepts). At start it sets the FORWARD policy of table ip
# filter to DROP and creates DOCKER-USER. A NAT network's guest still gets
# a lease, resolves a name through the network's dnsmasq, reaches the
# "internet" namespace and is reached through a port forward, because kvmnet
# puts its accept rules into DOCKER-USER (marked "kvmnet:<network>"); a
# second network with "firewall_integration": false shows Docker's drop
# would cut it off (and is degraded, StateReasonCode foreign-firewall,
# while it is). The rules come back when DOCKER-USER is flushed (what a
# Docker restart over a flushed table does), and a TCP connection open
# across that survives, as it does a real restart of dockerd; on stop they
# go, and Docker's own rule stays.
# Packages: scripts/deps-coexist.sh (docker.io, never started by the
# machine).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

command -v dockerd >/dev/null || skip "dockerd not installed (run scripts/deps-coexist.sh)"
command -v iptables-nft >/dev/null || skip "iptables-nft not installed"
command -v dig >/dev/null || fail "missing tool 'dig' (package dnsutils; run scripts/deps.sh)"

nat_topology
G2=${PFX}g2
ns_create "$G2"
veth_pair "$H" vg2 "$G2" eth0
bus_start

log "dockerd in the host namespace $H"
D=$T/docker
mkdir -p "$D"
docker_chain() { in_ns "$H" iptables-nft -S DOCKER-USER 2>/dev/null; }
_dockerd_listening() { (($(grep -c "API listen on" "$T/dockerd.log") >= $1)); }
dockerd_start() {
    spawn_in_ns "$H" unshare --mount --propagation private sh -c \
        'mount -t cgroup2 none /sys/fs/cgroup && exec "$@"' dockerd \
        dockerd --data-root "$D/data" --exec-root "$D/exec" --pidfile "$D/dockerd.pid" \
        -H "unix://$D/docker.sock" --iptables=true --ip6tables=false --containerd-namespace "$PFX" \
        >>"$T/dockerd.log" 2>&1
    DOCKERD_PID=$SPAWNED_PID
    track_pid "$DOCKERD_PID"
    _dockerd_starts=$((${_dockerd_starts:-0} + 1))
    # dockerd's own containerd: stopped by the test by its pid too.
    retry 100 test -s "$D/exec/containerd/containerd.pid" || {
        tail -20 "$T/dockerd.log" >&2
        fail "dockerd did not start its containerd"
    }
    track_pid "$(cat "$D/exec/containerd/containerd.pid")"
    retry 100 _dockerd_listening "$_dockerd_starts" || {
        tail -20 "$T/dockerd.log" >&2
        fail "dockerd did not finish starting"
    }
    docker_chain >/dev/null || fail "dockerd did not create DOCKER-USER"
}
dockerd_start
assert_contains "$(in_ns "$H" iptables-nft -S FORWARD)" "-P FORWARD DROP" "Docker's FORWARD policy"

daemon_start

log "networks: one integrated, one opted out"
ctl create default --mode nat --bridge kvmbr0 --ipv4 192.168.122.1/24 \
    --dhcp-range 192.168.122.100-192.168.122.254 --dhcp-host 52:54:00:aa:00:09,192.168.122.50,web --domain kvm.lan
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

log "DOCKER-USER flushed (Docker recreating it): the rules come back, an open connection survives"
# A long-lived connection: the guest keeps a socat open to the internet
# namespace's echo server.
spawn_in_ns "$I" socat -u TCP-LISTEN:9100,reuseaddr "OPEN:$T/conn.echo,creat,append" >/dev/null 2>&1
track_pid "$SPAWNED_PID"
retry 25 _listening "$I" 9100
mkfifo "$T/conn.in"
spawn_in_ns "$G1" socat -u "OPEN:$T/conn.in" TCP:203.0.113.2:9100 >"$T/conn.out" 2>&1
CONN_PID=$SPAWNED_PID
track_pid "$CONN_PID"
exec 7>"$T/conn.in"
echo before >&7
in_ns "$H" iptables-nft -F DOCKER-USER
in_ns "$H" iptables-nft -A DOCKER-USER -j RETURN
_rules_back() { [[ $(docker_chain) == *'"kvmnet:default" -j ACCEPT'*'"kvmnet:default" -j ACCEPT'* ]]; }
retry 50 _rules_back || fail "kvmnet's rules not back in DOCKER-USER: $(docker_chain)"
assert_eq "$(docker_chain | grep -c 'kvmnet:default')" 2 "kvmnet's rules after the flush"
echo after >&7
_pid_alive "$CONN_PID" || fail "the guest's open TCP connection died"
assert_eq "$(tcp_get "$G1" 203.0.113.2 9000)" 203.0.113.1 "a new connection after the flush"

log "dockerd restarted: still one copy of kvmnet's rules, the connection survives"
stop_pid "$DOCKERD_PID" 15
rm -f "$D/exec/containerd/containerd.pid"
dockerd_start
retry 50 _rules_back || fail "kvmnet's rules not in DOCKER-USER after Docker's restart: $(docker_chain)"
assert_eq "$(docker_chain | grep -c 'kvmnet:default')" 2 "kvmnet's rules after Docker's restart"
wait_state default active
echo restarted >&7
_pid_alive "$CONN_PID" || fail "the guest's open TCP connection died across Docker's restart"
assert_eq "$(tcp_get "$G1" 203.0.113.2 9000)" 203.0.113.1 "a new connection after Docker's restart"
exec 7>&-
retry 25 grep -qx restarted "$T/conn.echo" || fail "the echo server did not get all lines over the one connection: $(cat "$T/conn.echo")"
stop_pid "$CONN_PID"

log "stop: kvmnet's rules go, Docker's stay"
ctl stop default
wait_state default inactive
rules=$(docker_chain)
assert_not_contains "$rules" kvmnet "DOCKER-USER after stop"
assert_contains "$rules" "-A DOCKER-USER -j RETURN" "Docker's own rule after stop"
ctl stop manual

daemon_stop
stop_pid "$DOCKERD_PID"
log "PASS"
