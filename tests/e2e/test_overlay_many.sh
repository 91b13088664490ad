#!/usr/bin/env bash
# E2E: 50 guests spread over the three hosts of one overlay network (issue
# 15, "50 guests spread over the three hosts get 50 distinct addresses").
# hosts_topology's three hosts run the same static-peer network; 50 guest
# namespaces (17, 17 and 16 per host) ask for DHCP leases all at once
# (busybox udhcpc, started in parallel, tracked by PID). Checks: 50 leases,
# each client's within its own tries (none has to start again),
# 50 distinct addresses, each within its own host's DHCP slice, and no
# address or MAC twice in any host's lease file; then a guest on host 1
# pings one on host 3.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ -d /sys/module/vxlan ]] || modprobe vxlan 2>/dev/null ||
    skip "no VXLAN support in this kernel (module vxlan)"

GUESTS=50
hosts_topology 3
for k in 1 2 3; do host_daemon_start "$k"; done

log "the network on three hosts: 150 addresses, slices .10-.59, .60-.109, .110-.159"
for k in 1 2 3; do
    peers=$(for p in 1 2 3; do ((p == k)) || echo "\"10.99.0.$p\""; done | paste -sd,)
    on_host "$k" ctl create many --file - >/dev/null <<EOF
{"name": "many", "mode": "nat", "bridge": "kvmbr6", "uplink": "uplink0",
 "ipv4": {"address": "10.79.0.1/24", "dhcp": {"ranges": ["10.79.0.10-10.79.0.159"]}},
 "overlay": {"vni": 300, "local": "10.99.0.$k", "peers": [$peers]}}
EOF
    on_host "$k" ctl start many >/dev/null
done
for k in 1 2 3; do on_host "$k" wait_state many active; done
# dnsmasq answers once it has bound; a lease now proves it before the crowd.
host_guest_add probe 1
ip -n "${HOSTS[1]}" link set v-probe master kvmbr6 up
guest_dhcp "${PFX}probe" >/dev/null
ip -n "${HOSTS[1]}" link del v-probe

log "$GUESTS guests, round robin over the hosts"
declare -A HOST_OF
for ((g = 1; g <= GUESTS; g++)); do
    k=$(((g - 1) % 3 + 1))
    HOST_OF[$g]=$k
    host_guest_add "m$g" "$k"
    ip -n "${HOSTS[k]}" link set "v-m$g" master kvmbr6 up
done

log "all $GUESTS ask for a lease at once"
t0=$SECONDS
pids=()
for ((g = 1; g <= GUESTS; g++)); do
    UDHCPC_LEASE_FILE=$T/lease.m$g spawn_in_ns "${PFX}m$g" busybox udhcpc -i eth0 -n -q -t 10 -T 3 \
        -s "$SRCDIR/tests/e2e/udhcpc.script" >"$T/udhcpc.m$g.log" 2>&1
    track_pid "$SPAWNED_PID"
    pids[g]=$SPAWNED_PID
done
again=()
for ((g = 1; g <= GUESTS; g++)); do
    wait "${pids[g]}" || again+=("$g")
done
log "$((GUESTS - ${#again[@]})) leases in $((SECONDS - t0)) s"
# Every client within its own 10 tries 3 s apart: dnsmasq pinging each
# offered address went deaf to DHCP for 3 s a ping, and the first clients'
# REQUESTs went unanswered until they gave up (no-ping on overlays).
for g in "${again[@]}"; do
    log "m$g (host ${HOST_OF[$g]}) got no lease: $(tail -n 3 "$T/udhcpc.m$g.log" | paste -sd' ')"
done
((${#again[@]} == 0)) || fail "${#again[@]} of $GUESTS clients of the burst got no lease (${again[*]/#/m})"

log "$GUESTS distinct addresses, each within its host's slice"
declare -A SEEN
lo=(0 10 60 110)
hi=(0 59 109 159)
for ((g = 1; g <= GUESTS; g++)); do
    read -r addr router <"$T/lease.m$g"
    ip=${addr%/*}
    k=${HOST_OF[$g]}
    assert_eq "$router" 10.79.0.1 "m$g's router"
    [[ -z ${SEEN[$ip]:-} ]] || fail "m$g and ${SEEN[$ip]} both have $ip"
    SEEN[$ip]=m$g
    last=${ip##*.}
    ((last >= lo[k] && last <= hi[k])) ||
        fail "m$g (on host $k) has $ip, outside host $k's slice 10.79.0.${lo[k]}-${hi[k]}"
done
assert_eq "${#SEEN[@]}" "$GUESTS" "distinct addresses"

log "no address or MAC twice in any host's lease file"
for k in 1 2 3; do
    f=$T/h$k/run/many/dnsmasq.leases
    retry 25 test -s "$f" || fail "host $k has no lease file $f"
    dup_ip=$(awk '{print $3}' "$f" | sort | uniq -d)
    dup_mac=$(awk '{print $2}' "$f" | sort | uniq -d)
    assert_eq "$dup_ip" "" "addresses twice in host $k's lease file"
    assert_eq "$dup_mac" "" "MACs twice in host $k's lease file"
    while read -r _ _ ip _; do
        last=${ip##*.}
        ((last >= lo[k] && last <= hi[k])) || fail "host $k's lease file has $ip, outside its slice"
    done <"$f"
done

log "guests on different hosts reach each other"
read -r addr _ <"$T/lease.m3" # m3 is on host 3
retry 10 pings "${PFX}m1" "${addr%/*}" || fail "m1 (host 1) cannot ping m3 (host 3) at ${addr%/*}"

log "PASS"
