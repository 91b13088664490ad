#!/usr/bin/env bash
# E2E: one NAT network spanning three hosts over VXLAN with static peers.
# Three host namespaces joined by an underlay namespace (hosts_topology),
# each running its own kvmnetd with the same network "span" (same name,
# subnet and VNI; each its own overlay.local and the others as peers).
# Checks: bad sections and a foreign overlay.local refused with typed errors
# and nothing left behind; the VXLAN device (VNI, port, master, MTU 1450 from the underlay's
# 1500) and its flood list; the same gateway MAC on every host; guests on
# hosts 1 and 3 get leases from their own host's DHCP slice, ping each
# other (also 1422-byte payloads: a full 1450-byte packet) and the gateway,
# and reach the "internet" through their own host's NAT (the internet sees
# each host's uplink address); a deleted VXLAN device is recreated with its
# flood list and traffic flows again; the VXLAN port keeps learning on (static
# peers); IPv6 neighbour solicitations for the gateway stay on their host;
# `kvmnetctl overlay status` shows the flood entries, reachability and remote
# MACs per peer; a forward on host 1 reaches its guest,
# one to host 3's guest is refused; a guest whose cable moves to host 2
# keeps its address and still reaches the other guest and the internet; a
# restart of one host's daemon changes nothing. Each host has an address of
# its own on the bridge (the source of what the host itself sends to
# guests): host 1 pings and connects to a guest on host 3 from it, and the
# guest answers host 1's own MAC, never the gateway's.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ -d /sys/module/vxlan ]] || modprobe vxlan 2>/dev/null ||
    skip "no VXLAN support in this kernel (module vxlan)"

hosts_topology 3
for k in 1 2 3; do host_daemon_start "$k"; done

# document K: the network as host K defines it.
document() {
    local k=$1 peers
    peers=$(for p in 1 2 3; do ((p == k)) || echo "\"10.99.0.$p\""; done | paste -sd,)
    cat <<EOF
{"name": "span", "mode": "nat", "bridge": "kvmbr7", "uplink": "uplink0",
 "ipv4": {"address": "10.77.0.1/24", "dhcp": {"ranges": ["10.77.0.10-10.77.0.99"]}},
 "ipv6": {"address": "fd00:77::1/64"},
 "overlay": {"vni": 100, "local": "10.99.0.$k", "peers": [$peers]}}
EOF
}

log "bad overlays are refused, and nothing changes"
on_host 1 expect_error InvalidArgument create bad --mode nat --ipv4 10.78.0.1/24 --vni 0 --local 10.99.0.1
assert_contains "$ERR_MSG" "overlay.vni" "error for VNI 0"
on_host 1 expect_error InvalidArgument create bad --mode nat --ipv4 10.78.0.1/24 --vni 5 --local 10.99.0.1 \
    --peer 10.99.0.1
assert_contains "$ERR_MSG" "overlay.peers" "error for a peer that is this host"
# 10.99.0.9 is nobody's address: the start fails before any link is made.
on_host 1 ctl create far --mode nat --bridge kvmbr9 --ipv4 10.78.0.1/24 --vni 101 --local 10.99.0.9 >/dev/null
on_host 1 expect_error InvalidArgument start far
assert_contains "$ERR_MSG" "overlay.local: 10.99.0.9 is not an address of this host" "error for a foreign local"
not ip -n "${HOSTS[1]}" link show kvmbr9 >/dev/null 2>&1 || fail "kvmbr9 left behind by the failed start"
not ip -n "${HOSTS[1]}" link show kvx-101 >/dev/null 2>&1 || fail "kvx-101 left behind by the failed start"
on_host 1 ctl delete far >/dev/null
document 1 | jq -c '.name = "bad" | .bridge = "kvmbr9" | .overlay.vni = 102 | .overlay.host_address = "10.77.0.50"' \
    >"$T/bad-host.json"
on_host 1 expect_error InvalidArgument create bad --file "$T/bad-host.json"
assert_contains "$ERR_MSG" "overlay.host_address: 10.77.0.50 is in the DHCP range 10.77.0.10-10.77.0.99" \
    "error for a host address in the DHCP range"

log "the same network on three hosts"
# Host 2 from kvmnetctl's options, the others from a document.
document 1 | on_host 1 ctl create span --file - >/dev/null
on_host 2 ctl create span --mode nat --bridge kvmbr7 --uplink uplink0 --ipv4 10.77.0.1/24 \
    --dhcp-range 10.77.0.10-10.77.0.99 --ipv6 fd00:77::1/64 --vni 100 --local 10.99.0.2 --peer 10.99.0.1 --peer 10.99.0.3 >/dev/null
document 3 | on_host 3 ctl create span --file - >/dev/null
assert_eq "$(on_host 2 ctl export span | jq -c .overlay)" \
    '{"local":"10.99.0.2","peers":["10.99.0.1","10.99.0.3"],"port":4789,"vni":100}' "host 2's overlay section"
# has_link_local NS DEV: DEV has a link-local address (tentative or not).
has_link_local() { [[ -n $(ip -n "$1" -j -6 addr show dev "$2" scope link | jq -r '(.[0].addr_info // [])[].local') ]]; }
for k in 1 2 3; do
    on_host "$k" ctl start span >/dev/null
    # The gateway's link-local address (the same on every host) answers
    # from the moment the kernel makes it (when the tunnel port's carrier
    # reaches the bridge, up to a second after the start): no duplicate
    # address detection holding it tentative for a second or two more, in
    # which a guest's first neighbour solicitation went unanswered.
    retry 25 has_link_local "${HOSTS[k]}" kvmbr7 || fail "host $k's bridge has no link-local address"
    ready_v6 "${HOSTS[k]}" kvmbr7 link ||
        fail "host $k's gateway link-local address is tentative: $(ip -n "${HOSTS[k]}" -6 addr show dev kvmbr7 scope link)"
done
for k in 1 2 3; do on_host "$k" wait_state span active; done

log "VXLAN device, flood list, MTU, gateway MAC"
gwmacs=()
for k in 1 2 3; do
    h=${HOSTS[k]}
    vx=$(link_json "$h" kvx-100)
    assert_eq "$(jq -r .linkinfo.info_kind <<<"$vx")" vxlan "host $k kvx-100 kind"
    assert_eq "$(jq -r .linkinfo.info_data.id <<<"$vx")" 100 "host $k VNI"
    assert_eq "$(jq -r .linkinfo.info_data.port <<<"$vx")" 4789 "host $k VXLAN port"
    assert_eq "$(jq -r .linkinfo.info_data.local <<<"$vx")" "10.99.0.$k" "host $k VXLAN local"
    assert_eq "$(jq -r .master <<<"$vx")" kvmbr7 "host $k kvx-100 master"
    # Static peers: the bridge learns remote MACs from the tunnel's traffic.
    port=$(in_ns "$h" bridge -d link show dev kvx-100)
    assert_contains "$port" "neigh_suppress off" "host $k kvx-100 port flags"
    assert_contains "$port" "learning on" "host $k kvx-100 port flags"
    assert_eq "$(jq -r .mtu <<<"$vx")" 1450 "host $k kvx-100 MTU"
    assert_eq "$(jq -r .mtu <<<"$(link_json "$h" kvmbr7)")" 1450 "host $k bridge MTU"
    fdb=$(in_ns "$h" bridge fdb show dev kvx-100)
    for p in 1 2 3; do
        ((p == k)) && continue
        assert_contains "$fdb" "00:00:00:00:00:00 dst 10.99.0.$p" "host $k flood list"
    done
    gwmacs[k]=$(jq -r .address <<<"$(link_json "$h" kvmbr7)")
    grep -qx 'dhcp-option=option:mtu,1450' "$T/h$k/run/span/dnsmasq.conf" ||
        fail "host $k: dnsmasq offers no MTU 1450: $(cat "$T/h$k/run/span/dnsmasq.conf")"
done
assert_eq "${gwmacs[2]}" "${gwmacs[1]}" "gateway MAC of host 2"
assert_eq "${gwmacs[3]}" "${gwmacs[1]}" "gateway MAC of host 3"

log "guests on hosts 1 and 3 get leases from their own host's slice"
# 90 addresses in three slices: .10-.39, .40-.69, .70-.99.
host_guest_add ga 1
host_guest_add gc 3
ip -n "${HOSTS[1]}" link set v-ga master kvmbr7 up
ip -n "${HOSTS[3]}" link set v-gc master kvmbr7 up
read -r aaddr arouter <<<"$(guest_dhcp "${PFX}ga")"
read -r caddr crouter <<<"$(guest_dhcp "${PFX}gc")"
aip=${aaddr%/*}
cip=${caddr%/*}
log "ga: $aaddr via $arouter, gc: $caddr via $crouter"
assert_eq "$arouter" 10.77.0.1 "ga's router"
assert_eq "$crouter" 10.77.0.1 "gc's router"
((${aip##*.} >= 10 && ${aip##*.} <= 39)) || fail "ga's address $aip is not in host 1's slice 10.77.0.10-39"
((${cip##*.} >= 70 && ${cip##*.} <= 99)) || fail "gc's address $cip is not in host 3's slice 10.77.0.70-99"

log "guests reach each other over the overlay, and their own gateway"
retry 10 pings "${PFX}ga" "$cip" || fail "ga cannot ping gc ($cip) across the overlay"
pings "${PFX}gc" "$aip" || fail "gc cannot ping ga ($aip) across the overlay"
in_ns "${PFX}ga" busybox ping -c 1 -W 2 -s 1422 "$cip" >/dev/null ||
    fail "a 1450-byte packet does not cross the overlay"
pings "${PFX}ga" 10.77.0.1 || fail "ga cannot ping its gateway"
pings "${PFX}gc" 10.77.0.1 || fail "gc cannot ping its gateway"
agw=$(ip -n "${PFX}ga" -j neigh show 10.77.0.1 | jq -r '.[0].lladdr')
cgw=$(ip -n "${PFX}gc" -j neigh show 10.77.0.1 | jq -r '.[0].lladdr')
assert_eq "$agw" "${gwmacs[1]}" "ga's gateway MAC"
assert_eq "$cgw" "${gwmacs[1]}" "gc's gateway MAC"

log "the gateway and DHCP stay on each host"
for k in 1 2 3; do
    in_ns "${HOSTS[k]}" nft list table bridge kvmnet-kvx-100 >/dev/null ||
        fail "host $k has no table bridge kvmnet-kvx-100"
done
# ga's ARP request for the gateway (and its DHCP) never reached hosts 2 and
# 3: their kernels would have made a neighbour entry for ga's address.
for k in 2 3; do
    heard=$(ip -n "${HOSTS[k]}" -j neigh show dev kvmbr7 | jq -r --arg ip "$aip" '.[] | select(.dst == $ip) | .dst')
    assert_eq "$heard" "" "host $k's neighbour entry for ga (a guest of host 1)"
done

# IPv6: ga's neighbour solicitations for the gateway (its address and the
# link-local address routers advertise from, the same on every host) stay
# on host 1: hosts 2 and 3 never note ga's addresses, and only host 1's
# gateway answers ga.
# (The guests of these tests make no link-local address of their own.)
ip -n "${PFX}ga" addr add fd00:77::a/64 dev eth0 nodad
ip -n "${PFX}ga" addr add fe80::a/64 dev eth0 nodad
# link_local NS DEV: the link-local address of DEV.
link_local() { ip -n "$1" -6 addr show dev "$2" scope link | awk '$1 == "inet6" { sub("/.*", "", $2); print $2 }'; }
gwll=$(link_local "${HOSTS[1]}" kvmbr7)
[[ $gwll == fe80::* ]] || fail "host 1's bridge has no link-local address: $(ip -n "${HOSTS[1]}" -6 addr show dev kvmbr7)"
for k in 2 3; do
    assert_eq "$(link_local "${HOSTS[k]}" kvmbr7)" "$gwll" "host $k's gateway link-local address"
done
ip -n "${PFX}ga" -6 neigh flush dev eth0
pings "${PFX}ga" fd00:77::1 || fail "ga cannot ping its IPv6 gateway"
# One try: the first neighbour solicitation is answered (no DAD on the
# overlay bridge).
in_ns "${PFX}ga" busybox ping6 -c 1 -W 1 "$gwll%eth0" >/dev/null || fail "ga cannot ping its gateway's $gwll"
assert_eq "$(ip -n "${PFX}ga" -j -6 neigh show fd00:77::1 dev eth0 | jq -r '.[0].lladdr')" "${gwmacs[1]}" \
    "ga's IPv6 gateway MAC"
for k in 2 3; do
    heard=$(ip -n "${HOSTS[k]}" -j -6 neigh show dev kvmbr7 |
        jq -r '.[] | select(.dst == "fd00:77::a" or .dst == "fe80::a") | .dst')
    assert_eq "$heard" "" "host $k's IPv6 neighbour entries for ga (a guest of host 1)"
done

log "overlay status: flood entries, reachability and remote MACs per peer"
cmac=$(ip -n "${PFX}gc" -j link show dev eth0 | jq -r '.[0].address')
st=$(on_host 1 ctl overlay status span --json)
assert_eq "$(jq -r '[.peers[] | select(.flood) | .vtep] | join(",")' <<<"$st")" "10.99.0.2,10.99.0.3" \
    "host 1's peers with flood entries"
assert_eq "$(jq -r .control <<<"$st")" static "host 1's overlay control"
reach=$(jq -r '.peers[] | select(.vtep == "10.99.0.3") | .reachability' <<<"$st")
[[ $reach == reachable || $reach == stale ]] || fail "host 3's reachability from host 1: $reach"
assert_contains "$(jq -r '.peers[] | select(.vtep == "10.99.0.3") | .remote_macs | join(",")' <<<"$st")" "$cmac" \
    "gc's MAC behind host 3 in host 1's overlay status"
assert_contains "$(on_host 1 ctl overlay status span)" "flood entry yes" "overlay status text"
on_host 1 expect_error NotFound overlay status nosuch

log "each host has an address of its own; host 1 reaches a guest on host 3 from it"
# Derived: host k (k-th of the sorted underlay addresses) takes the k-th free
# address from the top of the subnet.
for k in 1 2 3; do
    own=$(ip -n "${HOSTS[k]}" -j addr show dev kvmbr7 |
        jq -r '.[0].addr_info[] | select(.family == "inet" and .prefixlen == 32) | .local')
    assert_eq "$own" "10.77.0.$((255 - k))" "host $k's own address on kvmbr7"
done
assert_contains "$(ip -n "${HOSTS[1]}" route show 10.77.0.0/24)" "src 10.77.0.254" "host 1's route to the guests"
retry 10 pings "${HOSTS[1]}" "$cip" || fail "host 1 cannot ping gc, a guest on host 3"
listen_tcp "${PFX}gc" 7001 'echo $SOCAT_PEERADDR'
assert_eq "$(tcp_get "${HOSTS[1]}" "$cip" 7001)" 10.77.0.254 "host 1's TCP connection to gc, as gc sees it"
pings "${HOSTS[3]}" "$aip" || fail "host 3 cannot ping ga, a guest on host 1"
pings "${HOSTS[1]}" "$aip" || fail "host 1 cannot ping its own guest ga"
# gc answered host 1 at a MAC of host 1's own, never at the gateway's; the
# gateway's MAC is still unknown behind host 3's tunnel port.
host1mac=$(ip -n "${PFX}gc" -j neigh show 10.77.0.254 | jq -r '.[0].lladdr')
[[ -n $host1mac && $host1mac != null && $host1mac != "${gwmacs[1]}" ]] ||
    fail "gc's neighbour entry for host 1's address: '$host1mac' (the gateway MAC is ${gwmacs[1]})"
assert_not_contains "$(in_ns "${HOSTS[3]}" bridge fdb show br kvmbr7 | grep -v permanent)" "${gwmacs[1]}" \
    "host 3's learnt FDB entries (the gateway MAC must not cross the overlay)"

log "each guest reaches the internet through its own host's NAT"
listen_tcp "$I" 8080 'echo $SOCAT_PEERADDR'
assert_eq "$(tcp_get "${PFX}ga" 203.0.113.254 8080)" 203.0.113.1 "ga's source address at the internet"
assert_eq "$(tcp_get "${PFX}gc" 203.0.113.254 8080)" 203.0.113.3 "gc's source address at the internet"

log "forwards: to a guest of this host's slice, not to another host's"
listen_tcp "${PFX}ga" 7000 'echo from-ga'
on_host 1 ctl forward add span --host-port 8081 --guest "$aip" --guest-port 7000 >/dev/null
assert_eq "$(tcp_get "$I" 203.0.113.1 8081)" from-ga "the internet through host 1's forward to ga"
on_host 1 expect_error InvalidArgument forward add span --host-port 8082 --guest "$cip" --guest-port 7000
assert_contains "$ERR_MSG" "is not in this host's DHCP slice" "error for a forward to host 3's guest"

log "a deleted VXLAN device heals"
ip -n "${HOSTS[1]}" link del kvx-100
_overlay_back() {
    local vx fdb
    vx=$(link_json "${HOSTS[1]}" kvx-100 2>/dev/null) || return 1
    [[ $(jq -r .master <<<"$vx") == kvmbr7 && $(jq -r .mtu <<<"$vx") == 1450 ]] || return 1
    fdb=$(in_ns "${HOSTS[1]}" bridge fdb show dev kvx-100)
    [[ $fdb == *"dst 10.99.0.2"* && $fdb == *"dst 10.99.0.3"* ]]
}
retry 50 _overlay_back || fail "kvx-100 not recreated on host 1: $(ip -n "${HOSTS[1]}" -d link show kvx-100 2>&1)"
retry 10 pings "${PFX}ga" "$cip" || fail "ga cannot ping gc after the heal"
on_host 1 wait_state span active

log "a guest moving to host 2 keeps its address"
host_guest_move gc 3 2 kvmbr7
retry 10 pings "${PFX}gc" "$aip" || fail "gc (moved to host 2) cannot ping ga"
pings "${PFX}ga" "$cip" || fail "ga cannot ping gc on host 2"
pings "${PFX}gc" 10.77.0.1 || fail "gc (moved) cannot ping its gateway"
assert_eq "$(tcp_get "${PFX}gc" 203.0.113.254 8080)" 203.0.113.2 "gc's source address after the move"

log "a restart of host 1's daemon changes nothing"
vx_before=$(ifindex "${HOSTS[1]}" kvx-100)
host_daemon_stop 1
pings "${PFX}ga" "$cip" || fail "ga cannot ping gc while host 1's daemon is down"
host_daemon_start 1
on_host 1 wait_state span active
assert_eq "$(ifindex "${HOSTS[1]}" kvx-100)" "$vx_before" "kvx-100's ifindex after the restart (not recreated)"
pings "${PFX}ga" "$cip" || fail "ga cannot ping gc after host 1's daemon restarted"

log "stop removes the VXLAN device"
on_host 1 ctl stop span >/dev/null
retry 25 not ip -n "${HOSTS[1]}" link show kvx-100 >/dev/null 2>&1 || fail "kvx-100 left behind on host 1"

log "ok"
