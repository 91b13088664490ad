#!/usr/bin/env bash
# E2E (regression, issue 12): a live Update (only bridge options and ports
# change) that fails half way leaves the kernel exactly as the old document
# says. The update turns multicast snooping off and adds vg2 and vh; vh
# carries a host address, so attaching it fails after vg2 was attached. Before the fix the
# rollback re-applied only the old settings and ports: vg2 stayed on the
# bridge. Now the failed update converges back to the old document: the
# error names vh, the document is the old one, and links, addresses and the
# table in H are as before (`ip -d link`, `bridge link`, `nft list`).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

nat_topology
guest_add 2
bus_start
daemon_start

ctl create web --mode nat --bridge kvmbr0 --ipv4 10.80.0.1/24
ctl port attach web vg1 >/dev/null
ctl start web
wait_state web active
ip -n "$H" link add vh type veth peer name vh-peer
ip -n "$H" addr add 10.99.0.1/24 dev vh
ip -n "$H" link set vh up
ip -n "$H" link set vh-peer up
config_before=$(ctl show web --json | jq -S .config)
before=$(kernel_snapshot "$H")
ports_before=$(in_ns "$H" bridge link show)

log "a live update whose third port cannot be attached"
out=$(ctl set web multicast_snooping=false 'ports=[{"name": "vg1"}, {"name": "vg2"}, {"name": "vh"}]' 2>&1) &&
    fail "the update succeeded although vh carries a host address: $out"
log "update failed: $out"
assert_contains "$out" "vh" "update error (must name the port that failed)"
assert_eq "$(jq -r '.master // ""' <<<"$(link_json "$H" vg2)")" "" "vg2's master after the failed update"
assert_eq "$(jq -r '.master // ""' <<<"$(link_json "$H" vg1)")" kvmbr0 "vg1's master after the failed update"
assert_eq "$(in_ns "$H" bridge link show)" "$ports_before" "bridge ports after the failed update"
after=$(kernel_snapshot "$H")
[[ $after == "$before" ]] || fail "H differs from before the failed update:
$(diff <(echo "$before") <(echo "$after"))"
assert_eq "$(ctl show web --json | jq -S .config)" "$config_before" "document after the failed update"
assert_eq "$(net_state web)" active "state after the failed update"

log "the same update without vh applies"
ctl set web multicast_snooping=false 'ports=[{"name": "vg1"}, {"name": "vg2"}]' >/dev/null
assert_eq "$(jq -r '.master // ""' <<<"$(link_json "$H" vg2)")" kvmbr0 "vg2's master after the update"
assert_eq "$(jq -r '.linkinfo.info_data.mcast_snooping' <<<"$(link_json "$H" kvmbr0)")" 0 "multicast snooping after the update"
log "PASS"
