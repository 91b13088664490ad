#!/usr/bin/env bash
# E2E: bulk AddForwards (issue 17, item 2) through the CLI and D-Bus.
#  - 10,000 forwards in one `forward add --file` land as one batch of map
#    elements: `forward list` and the kernel's forward map count them;
#  - a request of 10,000 with one bad element at index 5,000 (a guest outside
#    the subnet, then a clash with an existing forward) is refused naming
#    forwards[5000], and changes neither the forward list, the kernel's map
#    nor the document's revision;
#  - one forward added and removed again at 10,000 existing brings the
#    revision back (the revision's forwards part is kept per add and remove,
#    and Export gives the same revision as the Revision property).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

nat_topology
bus_start
daemon_start --log-level info

ctl create bulk --mode nat --bridge kvmbr0 --ipv4 192.168.150.1/24 >/dev/null
ctl start bulk >/dev/null
wait_state bulk active

# gen N [BAD-INDEX BAD-JSON]: N forwards as a JSON array, entry BAD-INDEX replaced.
gen() {
    awk -v n="$1" -v bad="${2:--1}" -v badjson="${3:-}" 'BEGIN {
        printf "["
        for (i = 0; i < n; i++) {
            if (i) printf ","
            if (i == bad) { printf "%s", badjson; continue }
            printf "{\"proto\":\"tcp\",\"host_address\":\"203.0.113.%d\",\"host_port\":%d,\"guest\":\"192.168.150.%d\",\"guest_port\":80}",
                11 + int(i / 50000), 10000 + i % 50000, 10 + i % 200
        }
        printf "]\n"
    }'
}
map_elements() {
    in_ns "$H" nft -j list table inet kvmnet |
        jq '[.nftables[] | select(.map != null and (.map.name | startswith("fwd4"))) | (.map.elem // []) | length] | add'
}
revision() { ctl show bulk --json | jq -r .status.revision; } # Export's

log "10,000 forwards in one request"
gen 10000 >"$T/ok.json"
ctl forward add bulk --file "$T/ok.json" >/dev/null
assert_eq "$(ctl forward list bulk --json | jq length)" 10000 "forwards listed"
assert_eq "$(map_elements)" 10000 "elements in the kernel's forward map"
before_rev=$(revision)
before_map=$(in_ns "$H" nft list table inet kvmnet | sed -E 's/packets [0-9]+ bytes [0-9]+//g' | md5sum)

log "a bad guest at index 5,000 of 10,000: InvalidArgument naming it, nothing changed"
gen 10000 5000 '{"proto":"tcp","host_port":61000,"guest":"10.9.9.9","guest_port":80}' | sed 's/203\.0\.113\.11"/203.0.113.20"/g' >"$T/bad.json"
expect_error InvalidArgument forward add bulk --file "$T/bad.json"
assert_contains "$ERR_MSG" "forwards[5000].guest: 10.9.9.9 is not inside the network's subnet" "the bad element named"
assert_eq "$(ctl forward list bulk --json | jq length)" 10000 "forward list unchanged"
assert_eq "$(in_ns "$H" nft list table inet kvmnet | sed -E 's/packets [0-9]+ bytes [0-9]+//g' | md5sum)" \
    "$before_map" "kernel table unchanged"
assert_eq "$(revision)" "$before_rev" "revision unchanged"

log "a clash at index 5,000 of 10,000 new ones: Conflict naming it, nothing changed"
gen 10000 5000 '{"proto":"tcp","host_port":10007,"host_address":"203.0.113.11","guest":"192.168.150.10","guest_port":80}' |
    sed 's/203\.0\.113\.11",\("host_port":[0-9]*,"guest":"192\.168\.150\.[0-9]*","guest_port":80}\)/203.0.113.21",\1/g' >"$T/clash.json"
expect_error Conflict forward add bulk --file "$T/clash.json"
assert_contains "$ERR_MSG" "forwards[5000]: tcp 203.0.113.11:10007 is already forwarded by this network" "the clash named"
assert_eq "$(ctl forward list bulk --json | jq length)" 10000 "forward list unchanged"
assert_eq "$(map_elements)" 10000 "kernel map unchanged"
assert_eq "$(revision)" "$before_rev" "revision unchanged"

log "one forward added and removed again: the revision comes back"
ctl forward add bulk --proto tcp --host-port 9000 --guest 192.168.150.10 --guest-port 80 >/dev/null
added_rev=$(revision)
[[ $added_rev != "$before_rev" ]] || fail "the revision did not change with a forward added"
ctl forward remove bulk tcp 9000 >/dev/null
assert_eq "$(revision)" "$before_rev" "revision after add and remove"
property=$(busctl --system get-property org.kvmnet1 /org/kvmnet1/network/bulk \
    org.kvmnet1.Network Revision)
assert_eq "$property" "s \"$before_rev\"" "the Revision property is Export's revision"

log "PASS"
