#!/usr/bin/env bash
# E2E: EVPN through FRR across three hosts on one machine (issue 15, item
# 4). hosts_topology's three host namespaces, each running its own FRR
# (zebra + bgpd, every path explicit and in this test's temp dir, a private
# /var/tmp; started and stopped by the test by PID, never by kvmnet) and
# its own kvmnetd (--frr-vty-socket to its host's FRR), with the same EVPN
# network. Checks:
#  - kvmnet's fragment is in each FRR (peer group "kvmnet", l2vpn evpn),
#    beside the administrator's own neighbour; the iBGP sessions establish
#    and EvpnState, Describe and diagnose say so;
#  - kvmnet's duplicate-address threshold (migrations are no duplicate),
#    never a freeze;
#  - guests on different hosts get addresses from their own host's slice
#    and ping each other; the remote guests' MACs are in the VXLAN FDB as
#    extern_learn (installed by FRR from type-2 routes: no static peers),
#    and Describe names the host (VTEP) a remote guest is on;
#  - a new guest's MAC reaches the other two hosts' FDB (the time from its
#    first frame is printed; only a MAC that never comes fails);
#  - the per-host address with EVPN: host 1's derived one and host 3's
#    host_address are the source of their routes to the guests; each host
#    pings and connects to a guest on another host from it, and the guest
#    knows host 1's address at a MAC of host 1's own, not the gateway's;
#  - the VXLAN device's bridge port has neigh_suppress on and learning off
#    (as FRR expects); reset with `bridge link set`, it is put back;
#  - `kvmnetctl overlay status` lists the BGP sessions (established, with
#    uptime and prefixes) and per VTEP the remote guests' MACs; Leases()
#    names the host (vtep) of another host's guest;
#  - host 2's FRR stopped: host 2 is degraded (evpn-session) and its
#    diagnose fails with "not established" (FRR does not answer), host 1's
#    names the session with host 2 and says OverlayChanged, and the guests
#    on hosts 1 and 3 keep talking; FRR back, host 2 is active again;
#  - FRR started again without configuration: kvmnet puts its part back;
#  - the network stopped: kvmnet's part (its duplicate-address threshold
#    too) leaves FRR, the administrator's neighbour stays.
# Skips when FRR is not installed (scripts/deps-overlay.sh installs it).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib-frr.sh"

frr_require
[[ -d /sys/module/vxlan ]] || modprobe vxlan 2>/dev/null ||
    skip "no VXLAN support in this kernel (module vxlan)"

NET=evpn
VNI=100
VX=kvx-$VNI
BR=kvmbr8

# describe K: the network's Describe JSON on host K; evpn_state K: its EvpnState.
describe() {
    on_host "$1" dbus-send --system --print-reply=literal --dest=org.kvmnet1 "/org/kvmnet1/network/$NET" \
        org.kvmnet1.Network.Describe
}
evpn_state() {
    on_host "$1" dbus-send --system --print-reply=literal --dest=org.kvmnet1 "/org/kvmnet1/network/$NET" \
        org.freedesktop.DBus.Properties.Get string:org.kvmnet1.Network string:EvpnState |
        sed -E 's/^ *variant +//; s/ *$//'
}
_evpn_state_is() { [[ $(evpn_state "$1") == "$2" ]]; }

hosts_topology 3
for k in 1 2 3; do frr_start "$k"; done
# The administrator's own neighbour on host 1, which kvmnet must leave alone.
vty 1 -c 'configure terminal' -c 'router bgp 65000' -c 'neighbor 10.99.0.77 remote-as 65000' >/dev/null
for k in 1 2 3; do host_daemon_start "$k" --frr-vty-socket "$T/h$k/frr"; done

# document K: the network as host K defines it (its own underlay address and
# DHCP slice, the other two hosts as BGP neighbours; host 3 names its own
# per-host address, hosts 1 and 2 derive theirs: .254 and .253).
document() {
    local k=$1 neighbors host=""
    neighbors=$(for p in 1 2 3; do ((p == k)) || echo "\"10.99.0.$p\""; done | paste -sd,)
    ((k != 3)) || host='"host_address": "10.78.0.240", '
    cat <<EOF
{"name": "$NET", "mode": "nat", "bridge": "$BR", "uplink": "uplink0",
 "ipv4": {"address": "10.78.0.1/24", "dhcp": {"ranges": ["10.78.0.10-10.78.0.99"]}},
 "overlay": {"vni": $VNI, "local": "10.99.0.$k", "dhcp_slice": {"index": $((k - 1)), "count": 3}, $host
             "evpn": {"asn": 65000, "neighbors": [$neighbors]}}}
EOF
}

log "the same EVPN network on three hosts"
for k in 1 2 3; do
    document "$k" | on_host "$k" ctl create "$NET" --file - >/dev/null
    on_host "$k" ctl start "$NET" >/dev/null
done
# Degraded (evpn-session) until a BGP session is up: the sessions take ~6 s.
for k in 1 2 3; do on_host "$k" wait_state "$NET" active 200; done

log "kvmnet's fragment is in each FRR, EVPN only, beside the administrator's neighbour"
for k in 1 2 3; do
    run=$(vty "$k" -c 'show running-config')
    assert_contains "$run" "neighbor kvmnet peer-group" "host $k: kvmnet's peer group"
    assert_contains "$run" "neighbor kvmnet update-source 10.99.0.$k" "host $k: the underlay address"
    assert_contains "$run" "advertise-all-vni" "host $k: advertise-all-vni"
    # Migrations back and forth are no duplicate address (FRR's default: 5 moves in 180 s).
    assert_contains "$run" "dup-addr-detection max-moves 20 time 180" "host $k: kvmnet's duplicate-address threshold"
    assert_not_contains "$run" "freeze" "host $k: no freeze"
    [[ -s $T/h$k/run/frr-evpn.conf ]] || fail "host $k: no RUNTIME/frr-evpn.conf"
done
assert_contains "$(vty 1 -c 'show running-config')" "neighbor 10.99.0.77 remote-as 65000" \
    "the administrator's neighbour on host 1"

log "the iBGP sessions establish; EvpnState, Describe and diagnose say so"
for k in 1 2 3; do
    retry 150 _evpn_state_is "$k" established ||
        fail "host $k: EvpnState '$(evpn_state "$k")': $(describe "$k" | jq -c .evpn)"
done
d=$(describe 1)
assert_eq "$(jq -r '.evpn.sessions | map(select(.established)) | map(.neighbor) | join(",")' <<<"$d")" \
    "10.99.0.2,10.99.0.3" "host 1's established sessions in Describe"
assert_eq "$(jq -r .evpn.vni_known_to_frr <<<"$d")" true "FRR learned VNI $VNI from the kernel"
assert_eq "$(on_host 1 ctl diagnose "$NET" --json | jq -r '.checks[] | select(.check == "evpn") | .status')" \
    pass "host 1's diagnose evpn check"

log "the VXLAN port: neigh_suppress on, learning off; put back when reset"
_port_flags_evpn() {
    local out
    out=$(in_ns "${HOSTS[$1]}" bridge -d link show dev "$VX")
    [[ $out == *"neigh_suppress on"* && $out == *"learning off"* ]]
}
for k in 1 2 3; do
    _port_flags_evpn "$k" || fail "host $k: $VX port flags: $(in_ns "${HOSTS[k]}" bridge -d link show dev "$VX")"
done
in_ns "${HOSTS[1]}" bridge link set dev "$VX" neigh_suppress off learning on
retry 50 _port_flags_evpn 1 ||
    fail "host 1: $VX port flags not put back: $(in_ns "${HOSTS[1]}" bridge -d link show dev "$VX")"
assert_eq "$(on_host 1 ctl overlay status "$NET" --json | jq -c .port_flags)" \
    '{"learning":false,"neigh_suppress":true}' "host 1's overlay status port flags"

log "guests on hosts 1, 2 and 3 get leases from their own host's slice and ping each other"
declare -A GIP
for k in 1 2 3; do
    host_guest_add "g$k" "$k"
    ip -n "${PFX}g$k" link set eth0 address "52:54:00:00:00:0$k"
    ip -n "${HOSTS[k]}" link set "v-g$k" master "$BR" up
    read -r addr _ <<<"$(guest_dhcp "${PFX}g$k")"
    GIP[$k]=${addr%/*}
done
log "leases: ${GIP[1]} ${GIP[2]} ${GIP[3]}"
[[ ${GIP[1]} != "${GIP[2]}" && ${GIP[1]} != "${GIP[3]}" && ${GIP[2]} != "${GIP[3]}" ]] ||
    fail "two hosts handed out one address: ${GIP[*]}"
retry 50 pings "${PFX}g1" "${GIP[3]}" || fail "the guest on host 1 cannot ping the guest on host 3"
retry 50 pings "${PFX}g3" "${GIP[1]}" || fail "the guest on host 3 cannot ping the guest on host 1"
retry 50 pings "${PFX}g2" "${GIP[1]}" || fail "the guest on host 2 cannot ping the guest on host 1"

log "remote guests' MACs reach the VXLAN FDB through FRR (extern_learn), Describe names their host"
_fdb_has() { [[ $(in_ns "${HOSTS[$1]}" bridge fdb show dev "$VX") == *"$2 dst $3 self extern_learn"* ]]; }
retry 50 _fdb_has 1 52:54:00:00:00:03 10.99.0.3 ||
    fail "host 1's FDB lacks guest 3 from FRR: $(in_ns "${HOSTS[1]}" bridge fdb show dev "$VX")"
retry 50 _fdb_has 3 52:54:00:00:00:01 10.99.0.1 ||
    fail "host 3's FDB lacks guest 1 from FRR: $(in_ns "${HOSTS[3]}" bridge fdb show dev "$VX")"
_describe_places_g3() {
    [[ $(describe 1 | jq -r '.evpn.remote_guests[] | select(.mac == "52:54:00:00:00:03") | .vtep') == 10.99.0.3 ]]
}
retry 50 _describe_places_g3 || fail "host 1's Describe does not place guest 3: $(describe 1 | jq -c .evpn)"
log "a new guest's MAC reaches the other hosts' FDB through FRR; the time from its first frame is printed"
host_guest_add g4 1
ip -n "${PFX}g4" link set eth0 address 52:54:00:00:00:04
ip -n "${PFX}g4" addr add 10.78.0.200/24 dev eth0
ip -n "${HOSTS[1]}" link set v-g4 master "$BR"
t0=$EPOCHREALTIME
ip -n "${HOSTS[1]}" link set v-g4 up
pings "${PFX}g4" 10.78.0.1 || true
# 20 s: a generous bound for a loaded machine (issue 15 asks for 2 s; the
# bench tests/bench/evpn-mac.sh measures it), so only a MAC that never comes fails.
ms=$(evpn_mac_wait "$t0" 52:54:00:00:00:04 "$VX" 20 2 3) ||
    fail "guest 4's MAC did not reach hosts 2 and 3 (ms: $ms): $(in_ns "${HOSTS[3]}" bridge fdb show dev "$VX")"
read -r ms2 ms3 <<<"$ms"
log "guest 4's MAC known on host 2 after $ms2 ms, on host 3 after $ms3 ms (from its first frame on host 1)"

log "per-host addresses with EVPN: host 1 (derived) and host 3 (host_address) reach guests on other hosts"
assert_contains "$(ip -n "${HOSTS[1]}" route show 10.78.0.0/24)" "src 10.78.0.254" "host 1's route to the guests"
assert_contains "$(ip -n "${HOSTS[3]}" route show 10.78.0.0/24)" "src 10.78.0.240" "host 3's route to the guests"
retry 10 pings "${HOSTS[1]}" "${GIP[3]}" || fail "host 1 cannot ping guest 3 (on host 3)"
retry 10 pings "${HOSTS[3]}" "${GIP[1]}" || fail "host 3 cannot ping guest 1 (on host 1)"
listen_tcp "${PFX}g3" 7001 'echo $SOCAT_PEERADDR'
assert_eq "$(tcp_get "${HOSTS[1]}" "${GIP[3]}" 7001)" 10.78.0.254 "host 1's TCP connection to guest 3, as guest 3 sees it"
listen_tcp "${PFX}g1" 7001 'echo $SOCAT_PEERADDR'
assert_eq "$(tcp_get "${HOSTS[3]}" "${GIP[1]}" 7001)" 10.78.0.240 "host 3's TCP connection to guest 1, as guest 1 sees it"
gwmac=$(ip -n "${HOSTS[1]}" -j link show "$BR" | jq -r '.[0].address')
h1mac=$(ip -n "${PFX}g3" -j neigh show 10.78.0.254 | jq -r '.[0].lladdr')
[[ -n $h1mac && $h1mac != null && $h1mac != "$gwmac" ]] ||
    fail "guest 3's neighbour entry for host 1's address: '$h1mac' (the gateway MAC is $gwmac)"

log "overlay status: the sessions, the remote MACs per VTEP; Leases() names the other hosts' guests"
st=$(on_host 1 ctl overlay status "$NET" --json)
assert_eq "$(jq -r .control <<<"$st")" evpn "host 1's overlay control"
assert_eq "$(jq -r '[.evpn.sessions[] | select(.established) | .neighbor] | join(",")' <<<"$st")" \
    "10.99.0.2,10.99.0.3" "host 1's established sessions in overlay status"
assert_eq "$(jq -r '.evpn.sessions[0].uptime | type' <<<"$st")" string "a session's uptime"
[[ $(jq -r '.evpn.sessions[0].prefixes_received' <<<"$st") -ge 1 ]] ||
    fail "no prefixes received from 10.99.0.2: $(jq -c .evpn <<<"$st")"
_status_places_g3() {
    [[ $(on_host 1 ctl overlay status "$NET" --json |
        jq -r '.peers[] | select(.vtep == "10.99.0.3") | .remote_macs | join(",")') == *52:54:00:00:00:03* ]]
}
retry 50 _status_places_g3 || fail "host 1's overlay status: $(on_host 1 ctl overlay status "$NET" --json)"
assert_contains "$(on_host 1 ctl overlay status "$NET")" "BGP 10.99.0.2  Established" "overlay status text"
assert_contains "$(on_host 1 ctl show "$NET")" "EVPN established: 2 of 2 BGP sessions established" "show's overlay rows"
# The remote guest's address reaches FRR once host 3 has the guest in its ARP table (type-2 MAC/IP).
pings "${PFX}g3" 10.78.0.1 || fail "guest 3 cannot ping its gateway"
_lease_names_vtep() {
    [[ $(on_host 1 ctl leases "$NET" --json |
        jq -r --arg ip "${GIP[3]}" '.[] | select(.mac == "52:54:00:00:00:03") | "\(.ip) \(.vtep) \(.type)"') == \
        "$ip 10.99.0.3 remote" ]]
}
ip=${GIP[3]}
retry 50 _lease_names_vtep || fail "host 1's leases: $(on_host 1 ctl leases "$NET" --json)"
assert_eq "$(on_host 1 ctl leases "$NET" --json | jq -r '.[] | select(.mac == "52:54:00:00:00:01") | .vtep')" null \
    "host 1's own guest has no vtep"
assert_eq "$(on_host 1 dbus-send --system --print-reply=literal --dest=org.kvmnet1 "/org/kvmnet1/network/$NET" \
    org.freedesktop.DBus.Properties.Get string:org.kvmnet1.Network string:LeaseCount | awk '{print $NF}')" 1 \
    "host 1's LeaseCount (its own guest only)"

# No static peers: the flood list is FRR's, one entry per other host (type-3 routes).
fdb=$(in_ns "${HOSTS[1]}" bridge fdb show dev "$VX")
assert_eq "$(grep -c '^00:00:00:00:00:00' <<<"$fdb")" 2 "host 1's flood entries (from FRR)"

log "host 2's FRR stops: host 2 degraded, diagnose says not established, guests on hosts 1 and 3 keep talking"
DBUS_SYSTEM_BUS_ADDRESS=${HOST_BUS_ADDR[1]} "$KVMNETCTL" --json monitor "$NET" --event OverlayChanged \
    >"$T/overlay-signals.jsonl" 2>"$T/overlay-signals.err" &
OVL_MONITOR_PID=$!
track_pid "$OVL_MONITOR_PID"
sleep 0.5 # subscribed
frr_stop 2
retry 50 _evpn_state_is 2 frr-unreachable || fail "host 2: EvpnState '$(evpn_state 2)'"
on_host 2 wait_state "$NET" degraded
assert_contains "$(on_host 2 ctl show "$NET" --json | jq -r .status.state_reason)" \
    "BGP EVPN not established: FRR does not answer" "host 2's state reason"
assert_eq "$(on_host 2 dbus-send --system --print-reply=literal --dest=org.kvmnet1 "/org/kvmnet1/network/$NET" \
    org.freedesktop.DBus.Properties.Get string:org.kvmnet1.Network string:StateReasonCode | awk '{print $NF}')" \
    evpn-session "host 2's StateReasonCode"
out=$(on_host 2 ctl diagnose "$NET" 2>&1) && fail "host 2's diagnose passed without FRR: $out"
assert_contains "$out" "not established" "host 2's diagnose"
_session_2_down() { [[ $(on_host 1 ctl diagnose "$NET" 2>&1 || true) == *"not established with 10.99.0.2"* ]]; }
retry 50 _session_2_down || fail "host 1's diagnose: $(on_host 1 ctl diagnose "$NET" 2>&1)"
retry 50 _evpn_state_is 1 partial || fail "host 1: EvpnState '$(evpn_state 1)'"
assert_eq "$(on_host 1 ctl show "$NET" --json | jq -r .status.state)" active "host 1 with one session of two up"
_overlay_signal() { grep -q '"detail":"10.99.0.2: Established -> ' "$T/overlay-signals.jsonl"; }
retry 50 _overlay_signal || fail "no OverlayChanged for the session with host 2: $(cat "$T/overlay-signals.jsonl")"
stop_pid "$OVL_MONITOR_PID"
retry 10 pings "${PFX}g1" "${GIP[3]}" || fail "guests on hosts 1 and 3 lost each other when host 2's FRR stopped"

log "host 2's FRR comes back without configuration: kvmnet puts its part back"
frr_start 2
retry 150 _evpn_state_is 2 established || fail "host 2: EvpnState '$(evpn_state 2)' after FRR came back"
on_host 2 wait_state "$NET" active
assert_contains "$(vty 2 -c 'show running-config')" "neighbor 10.99.0.1 peer-group kvmnet" "host 2's FRR again"

log "the network stops: kvmnet's part leaves FRR, the administrator's neighbour stays"
for k in 1 2 3; do on_host "$k" ctl stop "$NET" >/dev/null; done
run=$(vty 1 -c 'show running-config')
assert_not_contains "$run" "kvmnet" "host 1's FRR after the stop"
assert_not_contains "$run" "dup-addr-detection" "host 1's FRR after the stop (FRR's default threshold back)"
assert_contains "$run" "neighbor 10.99.0.77 remote-as 65000" "the administrator's neighbour after the stop"
assert_eq "$(evpn_state 1)" "" "EvpnState of a stopped network"

for k in 3 2 1; do frr_stop "$k"; done
log "PASS"
