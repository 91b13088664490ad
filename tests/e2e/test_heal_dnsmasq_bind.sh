#!/usr/bin/env bash
# E2E: an IPv4-only network's dnsmasq binds to its bridge once
# (bind-interfaces, so that it does not re-read every address of the host
# whenever another network starts). Its sockets belong to the bridge they were
# made on (the DNS socket to the gateway's address, DHCP to port 67 of the
# bridge's name), so what takes the bridge or its address away must leave
# DHCP and DNS working afterwards, with the same dnsmasq:
#   ip addr del of the gateway address (repaired: the address comes back);
#   ip link del BR (repaired: a new bridge of the same name and address).
# Each time a guest gets a lease again and resolves a static host's name
# through the gateway.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
command -v dig >/dev/null || fail "missing tool 'dig' (package dnsutils; run scripts/deps.sh)"

nat_topology
bus_start
daemon_start

ctl create default --mode nat --bridge kvmbr0 --ipv4 192.168.122.1/24 \
    --dhcp-range 192.168.122.100-192.168.122.254 --domain example.test
ctl host add default 52:54:00:aa:bb:01 192.168.122.10 web
ctl start default
wait_state default active
grep -qx 'bind-interfaces' "$T/run/default/dnsmasq.conf" || fail "dnsmasq.conf does not bind-interfaces: $(cat "$T/run/default/dnsmasq.conf")"
guest_plug "$G1" vg1 kvmbr0

# serves WHEN: a lease for the guest and web.example.test through the gateway.
serves() {
    local lease answer
    read -r lease _ <<<"$(guest_dhcp "$G1")"
    [[ $lease == 192.168.122.* ]] || fail "$1: guest lease '$lease' is not in the network"
    answer=$(in_ns "$G1" dig +short +tries=2 +time=2 @192.168.122.1 web.example.test A) || true
    assert_eq "$answer" 192.168.122.10 "$1: web.example.test through the gateway"
    log "$1: lease $lease, DNS answers"
}
serves "before any disruption"
pid_before=$(dnsmasq_pid default)

log "ip addr del 192.168.122.1/24"
ip -n "$H" addr del 192.168.122.1/24 dev kvmbr0
_address_back() { ip -n "$H" -4 -o addr show dev kvmbr0 | grep -q ' 192.168.122.1/24'; }
retry 50 _address_back || fail "gateway address not repaired"
wait_state default active
serves "gateway address repaired"
assert_eq "$(dnsmasq_pid default)" "$pid_before" "dnsmasq after an address repair (its sockets stay)"

log "ip link del kvmbr0"
ip -n "$H" link del kvmbr0
_bridge_back() { ip -n "$H" -4 -o addr show dev kvmbr0 2>/dev/null | grep -q ' 192.168.122.1/24'; }
retry 50 _bridge_back || fail "bridge not repaired"
# The guest's veth was released with the bridge; the guest re-plugs.
guest_plug "$G1" vg1 kvmbr0
wait_state default active
serves "bridge recreated"
assert_eq "$(dnsmasq_pid default)" "$pid_before" "dnsmasq after the bridge's repair"
log "ok"
