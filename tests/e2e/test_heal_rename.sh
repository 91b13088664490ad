#!/usr/bin/env bash
# E2E: renaming a running network's bridge behind the daemon's back
# (`ip link set BR name X`) does not make a second bridge with the same
# gateway: the daemon recognises its bridge by its owner mark (ifalias
# kvmnet:NAME), renames it back (a `link` repair), and after a stop no
# bridge of the network is left under either name (issue 11 item 12).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

nat_topology
bus_start
daemon_start
default_network_running
guest_plug "$G1" vg1 kvmbr0
guest_dhcp "$G1" >/dev/null
index=$(ifindex "$H" kvmbr0)

owned() { ip -n "$H" -j link show type bridge | jq -r '.[] | select(.ifalias == "kvmnet:default") | .ifname' | sort | tr '\n' ' '; }
with_gateway() { ip -n "$H" -j addr show | jq -r '.[] | select(any(.addr_info[]; .local == "192.168.122.1")) | .ifname' | sort | tr '\n' ' '; }
_renamed_back() { [[ $(owned) == "kvmbr0 " ]] && [[ $(ifindex "$H" kvmbr0 2>/dev/null) == "$index" ]]; }
_logged() { grep -q 'default: repaired link: renamed bridge kvmbr-x back to kvmbr0' "$T/kvmnetd.log"; }

log "ip link set kvmbr0 name kvmbr-x"
ip -n "$H" link set kvmbr0 name kvmbr-x
retry 50 _logged || fail "no rename repair logged; bridges of the network: $(owned); state: $(ctl show default --json | jq -c '.status | {state, state_reason}')"
retry 25 _renamed_back || fail "bridge not renamed back: owned bridges '$(owned)', kvmbr0's index $(ifindex "$H" kvmbr0 2>&1) (was $index)"
assert_eq "$(with_gateway)" "kvmbr0 " "interfaces carrying the gateway address"
wait_state default active
assert_eq "$(ip -n "$H" -j link show dev vg1 | jq -r '.[0].master')" kvmbr0 "the guest's port stays on the bridge"
guest_dhcp "$G1" >/dev/null

log "renamed and set down: repaired too"
ip -n "$H" link set kvmbr0 down
ip -n "$H" link set kvmbr0 name kvmbr-x
retry 50 _renamed_back || fail "bridge not renamed back the second time: $(owned)"
retry 25 _state_is default active || fail "state $(ctl show default --json | jq -c '.status | {state, state_reason}')"
assert_eq "$(ip -n "$H" -j link show dev kvmbr0 | jq -r '.[0].flags | index("UP") != null')" true "bridge up"
assert_eq "$(with_gateway)" "kvmbr0 " "interfaces carrying the gateway address after the second rename"

log "stop leaves nothing"
ip -n "$H" link set kvmbr0 name kvmbr-x
ctl stop default >/dev/null
assert_eq "$(owned)" "" "bridges of the network after stop"
assert_eq "$(with_gateway)" "" "interfaces carrying the gateway address after stop"

daemon_stop
assert_eq "$DAEMON_EXIT" 0 "kvmnetd exit status after SIGTERM"
log PASS
