#!/usr/bin/env bash
# VM check (full kernel): per-port 802.1Q VLANs through bridge VLAN filtering,
# which the CI kernel lacks (there test_ports.sh and ports_adapter_check see
# `Unsupported`). An isolated network "lab" (kvmbr0, 10.20.0.1/24, DHCP) with
# five guests, all addressed in the same IPv4 subnet so only VLANs separate
# them: G1, G2 --vlan 10; G3 --vlan 20; G4 a trunk (--vlan-tagged 10,20, with
# 802.1Q links eth0.10 and eth0.20 inside); G5 without VLANs. Proves:
#  - the bridge has vlan_filtering 1 and each port exactly its VLANs;
#  - G1 and G2 reach each other, G3 reaches neither (and they not G3);
#  - the trunk reaches G1 through eth0.10 and G3 through eth0.20, not G1
#    through eth0.20; tcpdump on the trunk's eth0 sees G1's frames tagged
#    "vlan 10", on G1's eth0 they are untagged;
#  - G5 (VLAN 1, like the bridge) still gets a DHCP lease and reaches none
#    of the VLAN guests;
#  - `port attach` without --vlan puts G3 back in VLAN 1 (it then reaches G5);
#  - after a daemon restart the VLANs are still in place and still separate.
# Runs inside the VM (tests/vm/in-vm.sh); also runs on any host whose kernel
# has bridge VLAN filtering and 8021q.
set -euo pipefail
source "$SRCDIR/tests/e2e/lib.sh"
command -v tcpdump >/dev/null || fail "missing tool 'tcpdump' (run scripts/deps.sh)"

ok() { echo "ok: $*"; }

H=${PFX}h
ns_create "$H"
for n in 1 2 3 4 5; do guest_add "$n"; done
bus_start
daemon_start

ctl create lab --mode isolated --bridge kvmbr0 --ipv4 10.20.0.1/24 --dhcp-range 10.20.0.100-10.20.0.200
ctl start lab
wait_state lab active

ctl port attach lab vg1 --vlan 10
ctl port attach lab vg2 --vlan 10
ctl port attach lab vg3 --vlan 20
ctl port attach lab vg4 --vlan-tagged 10,20
ctl port attach lab vg5
problems=$(ctl port list lab --json | jq -c '[.[] | select(.problem != null and .problem != "") | {name, problem}]')
assert_eq "$problems" "[]" "ports with a problem"
ok "attached vg1, vg2 --vlan 10; vg3 --vlan 20; vg4 --vlan-tagged 10,20; vg5 plain; no port has a problem"

assert_eq "$(link_json "$H" kvmbr0 | jq -r .linkinfo.info_data.vlan_filtering)" 1 "kvmbr0 vlan_filtering"
# vlans PORT: its VLANs as [[id, flags...]...] from bridge(8).
vlans() {
    in_ns "$H" bridge -j vlan show dev "$1" |
        jq -c '[.[] | select(.ifname == "'"$1"'") | .vlans[] | [.vlan] + ((.flags // []) | sort)]'
}
declare -A WANT=(
    [vg1]='[[10,"Egress Untagged","PVID"]]'
    [vg2]='[[10,"Egress Untagged","PVID"]]'
    [vg3]='[[20,"Egress Untagged","PVID"]]'
    [vg4]='[[10],[20]]'
    [vg5]='[[1,"Egress Untagged","PVID"]]'
)
for p in vg1 vg2 vg3 vg4 vg5; do
    assert_eq "$(vlans "$p")" "${WANT[$p]}" "VLANs of $p (bridge -j vlan show)"
done
ok "kvmbr0 vlan_filtering 1; bridge vlan show: vg1/vg2 10 pvid untagged, vg3 20, vg4 10+20 tagged, vg5 1"

ip -n "$G1" addr add 10.20.0.11/24 dev eth0
ip -n "$G2" addr add 10.20.0.12/24 dev eth0
ip -n "$G3" addr add 10.20.0.13/24 dev eth0
for v in 10 20; do
    ip -n "$G4" link add link eth0 name "eth0.$v" type vlan id "$v"
    ip -n "$G4" link set "eth0.$v" up
done
ip -n "$G4" addr add 10.20.0.14/24 dev eth0.10
ip -n "$G4" addr add 10.20.0.24/24 dev eth0.20
[[ $(link_json "$G4" eth0.10 | jq -c '.linkinfo.info_data | {protocol, id}') == '{"protocol":"802.1Q","id":10}' ]] ||
    fail "eth0.10 in the trunk guest is not an 802.1Q link: $(link_json "$G4" eth0.10)"

# reaches NS ADDR [IFACE]: ping succeeds (a few tries: ARP and TCG are slow).
reaches() {
    local dev=()
    [[ -n ${3:-} ]] && dev=(-I "$3")
    retry 10 in_ns "$1" busybox ping -c 1 -W 1 "${dev[@]}" "$2" >/dev/null 2>&1
}
# unreachable NS ADDR [IFACE]: two pings of 1 s both get no answer.
unreachable() {
    local dev=()
    [[ -n ${3:-} ]] && dev=(-I "$3")
    ! in_ns "$1" busybox ping -c 2 -W 1 "${dev[@]}" "$2" >/dev/null 2>&1
}

reaches "$G1" 10.20.0.12 || fail "G1 (VLAN 10) cannot reach G2 (VLAN 10)"
reaches "$G2" 10.20.0.11 || fail "G2 (VLAN 10) cannot reach G1 (VLAN 10)"
ok "VLAN 10: G1 and G2 reach each other"
reaches "$G4" 10.20.0.13 eth0.20 || fail "the trunk's eth0.20 cannot reach G3 (VLAN 20)"
unreachable "$G3" 10.20.0.11 || fail "G3 (VLAN 20) reaches G1 (VLAN 10)"
unreachable "$G3" 10.20.0.12 || fail "G3 (VLAN 20) reaches G2 (VLAN 10)"
unreachable "$G1" 10.20.0.13 || fail "G1 (VLAN 10) reaches G3 (VLAN 20)"
ok "VLAN 20: G3 reaches the trunk's eth0.20 but neither G1 nor G2, and they not G3"

reaches "$G4" 10.20.0.11 eth0.10 || fail "the trunk's eth0.10 cannot reach G1 (VLAN 10)"
unreachable "$G4" 10.20.0.11 eth0.20 || fail "the trunk's eth0.20 (VLAN 20) reaches G1 (VLAN 10)"
ok "trunk: eth0.10 reaches G1, eth0.20 reaches G3, eth0.20 does not reach G1"

# capture NS FILE: tcpdump -e of ICMP on NS's eth0 into FILE, tracked; returns
# once it listens.
capture() {
    spawn_in_ns "$1" timeout 60 tcpdump -i eth0 -e -nn -l -c 4 icmp or '(vlan and icmp)' >"$2" 2>&1
    track_pid "$SPAWNED_PID"
    CAPTURE_PID=$SPAWNED_PID
    retry 100 grep -q 'listening on' "$2" || fail "tcpdump in $1 did not start: $(cat "$2")"
}
capture "$G4" "$T/trunk.pcap.txt"
trunk_pid=$CAPTURE_PID
capture "$G1" "$T/g1.pcap.txt"
g1_pid=$CAPTURE_PID
in_ns "$G1" busybox ping -c 2 -W 1 10.20.0.14 >/dev/null 2>&1 || fail "G1 cannot reach the trunk's eth0.10"
for pid in "$trunk_pid" "$g1_pid"; do
    retry 50 not _pid_alive "$pid" || true
    stop_pid "$pid"
done
trunk=$(grep 'ICMP echo' "$T/trunk.pcap.txt" || true)
g1=$(grep 'ICMP echo' "$T/g1.pcap.txt" || true)
echo "  trunk eth0: $(head -n1 <<<"$trunk")"
echo "  G1 eth0:    $(head -n1 <<<"$g1")"
assert_contains "$trunk" "vlan 10, p 0, ethertype IPv4" "frames on the trunk's eth0"
assert_contains "$trunk" "10.20.0.11 > 10.20.0.14: ICMP echo request" "frames on the trunk's eth0"
assert_not_contains "$trunk" "vlan 20" "frames on the trunk's eth0"
assert_contains "$g1" "ethertype IPv4 (0x0800)" "frames on G1's eth0"
assert_not_contains "$g1" "802.1Q" "frames on G1's eth0"
ok "tcpdump: G1's frames arrive on the trunk's eth0 tagged vlan 10, and untagged on G1's eth0"

lease=$(guest_dhcp "$G5")
assert_contains "$lease" "10.20.0." "G5's lease"
ip5=${lease%%/*}
unreachable "$G5" 10.20.0.11 || fail "G5 (VLAN 1) reaches G1 (VLAN 10)"
unreachable "$G5" 10.20.0.13 || fail "G5 (VLAN 1) reaches G3 (VLAN 20)"
ok "untagged G5 (VLAN 1, with the bridge) got a DHCP lease (${lease%% *}) and reaches no VLAN guest"

ctl port attach lab vg3
assert_eq "$(vlans vg3)" '[[1,"Egress Untagged","PVID"]]' "VLANs of vg3 after attach without --vlan"
reaches "$G3" "$ip5" || fail "G3, back in VLAN 1, cannot reach G5"
unreachable "$G3" 10.20.0.11 || fail "G3, back in VLAN 1, reaches G1 (VLAN 10)"
ok "port attach without --vlan: vg3 back in VLAN 1, G3 reaches G5 and not G1"

daemon_stop
assert_eq "$DAEMON_EXIT" 0 "kvmnetd exit status"
daemon_start
wait_state lab active
for p in vg1 vg2 vg4 vg5; do
    assert_eq "$(vlans "$p")" "${WANT[$p]}" "VLANs of $p after a daemon restart"
done
reaches "$G1" 10.20.0.12 || fail "after a restart G1 cannot reach G2"
unreachable "$G4" 10.20.0.11 eth0.20 || fail "after a restart the trunk's VLAN 20 reaches G1"
ok "after a daemon restart the VLANs are unchanged and still separate"
