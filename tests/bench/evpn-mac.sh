#!/usr/bin/env bash
# Benchmark (not a test: it asserts no times), issue 15 "Measured": how long
# a new guest's MAC takes to be known on the other hosts of an EVPN overlay
# network (`bridge fdb show dev kvx-VNI` has it as extern_learn, installed
# by FRR from the type-2 route), from the guest's first frame on its host.
# The set-up is test_overlay_evpn's: three host namespaces (hosts_topology),
# each with its own FRR (zebra + bgpd, started and stopped here by PID) and
# kvmnetd. RUNS new guests (default 10), on hosts 1, 2, 3 in turn: each
# guest's port comes up, it pings the gateway once, and the other two hosts'
# FDBs are polled every 10 ms (evpn_mac_wait). Then each guest moves to the
# next host (host_guest_move) and pings from there: the time until the
# other two hosts put its MAC behind the new host (MAC mobility, what EVPN
# adds to a live migration's gap). Prints p50 and max over all (guest,
# other host) pairs with the load average at each run.
# Usage: bash tests/bench/evpn-mac.sh [RUNS]   (KVMNETD, KVMNETCTL as for the
# e2e tests). About a minute here.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../e2e/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/../e2e/lib-frr.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib-recovery.sh"
RUNS=${1:-10}

frr_require
[[ -d /sys/module/vxlan ]] || modprobe vxlan 2>/dev/null ||
    skip "no VXLAN support in this kernel (module vxlan)"

hosts_topology 3
for k in 1 2 3; do frr_start "$k"; done
for k in 1 2 3; do host_daemon_start "$k" --frr-vty-socket "$T/h$k/frr"; done
for k in 1 2 3; do
    neighbors=$(for p in 1 2 3; do ((p == k)) || echo "\"10.99.0.$p\""; done | paste -sd,)
    on_host "$k" ctl create emac --file - >/dev/null <<JSON
{"name": "emac", "mode": "nat", "bridge": "kvmbr4", "uplink": "uplink0",
 "ipv4": {"address": "10.81.0.1/24", "dhcp": {"ranges": ["10.81.0.10-10.81.0.99"]}},
 "overlay": {"vni": 500, "local": "10.99.0.$k", "dhcp_slice": {"index": $((k - 1)), "count": 3},
             "evpn": {"asn": 65000, "neighbors": [$neighbors]}}}
JSON
    on_host "$k" ctl start emac >/dev/null
done
# Active once a BGP session is up (degraded evpn-session before).
for k in 1 2 3; do on_host "$k" wait_state emac active 200; done
sleep 2 # every session up, not only the first

: >"$T/ms"
loads=()
for ((i = 1; i <= RUNS; i++)); do
    k=$(((i - 1) % 3 + 1))
    others=()
    for p in 1 2 3; do ((p == k)) || others+=("$p"); done
    mac=$(printf '52:54:00:16:00:%02x' "$i")
    host_guest_add "e$i" "$k"
    ip -n "${PFX}e$i" link set eth0 address "$mac"
    ip -n "${PFX}e$i" addr add "10.81.0.$((150 + i))/24" dev eth0
    ip -n "${HOSTS[k]}" link set "v-e$i" master kvmbr4
    loads+=("$(cut -d' ' -f1 /proc/loadavg)")
    t0=$EPOCHREALTIME
    ip -n "${HOSTS[k]}" link set "v-e$i" up
    pings "${PFX}e$i" 10.81.0.1 || true
    ms=$(evpn_mac_wait "$t0" "$mac" kvx-500 30 "${others[@]}") || fail "run $i: $mac never reached hosts ${others[*]}: $ms"
    read -r a b <<<"$ms"
    echo "$a" >>"$T/ms"
    echo "$b" >>"$T/ms"
    echo "run $i: guest on host $k, MAC known on host ${others[0]} after $a ms, host ${others[1]} after $b ms," \
        "load ${loads[-1]}"
done
# The same guests move to the next host (their cable: same MAC and
# address, as a migrated guest), each pings the gateway there at once: from
# the move until the other two hosts' FDB puts the MAC behind the new host
# (FRR's MAC mobility: a type-2 route with a higher sequence number). What
# EVPN adds to a live migration's gap.
: >"$T/move"
mloads=()
for ((i = 1; i <= RUNS; i++)); do
    k=$(((i - 1) % 3 + 1))
    to=$((k % 3 + 1))
    others=()
    for p in 1 2 3; do ((p == to)) || others+=("$p"); done
    mac=$(printf '52:54:00:16:00:%02x' "$i")
    mloads+=("$(cut -d' ' -f1 /proc/loadavg)")
    t0=$EPOCHREALTIME
    host_guest_move "e$i" "$k" "$to" kvmbr4
    pings "${PFX}e$i" 10.81.0.1 || true
    ms=$(evpn_mac_wait "$t0" "$mac dst 10.99.0.$to" kvx-500 30 "${others[@]}") ||
        fail "move $i: $mac never moved behind host $to on hosts ${others[*]}: $ms"
    read -r a b <<<"$ms"
    echo "$a" >>"$T/move"
    echo "$b" >>"$T/move"
    echo "move $i: guest from host $k to host $to, behind host $to on host ${others[0]} after $a ms," \
        "host ${others[1]} after $b ms, load ${mloads[-1]}"
done
for k in 1 2 3; do on_host "$k" ctl stop emac >/dev/null; done
for k in 3 2 1; do frr_stop "$k"; done
echo "----- EVPN: a new guest's MAC on the other hosts' VXLAN FDB, from its first frame"
echo "new guest: $(stats <"$T/ms") (pairs of guest and other host); load ${loads[*]}"
echo "guest moved to another host: $(stats <"$T/move") (pairs); load ${mloads[*]}"
