#!/usr/bin/env bash
# E2E: `kvmnetctl forward add --file` and AddForwardsTyped (issue 17, item 1):
# the file's forwards (a JSON array, or one object; "-" reads stdin) go to
# the daemon as structs, no JSON on the bus.
#  - good input: a range, a named static host, a host address, a rate and a
#    description come back from `export` as written, their elements
#    are in the kernel's forward map, and a connection through one reaches
#    the guest;
#  - bad input, each refused naming the entry (index and field) with
#    nothing changed (forward maps, document, journal, revision): a bad
#    entry in the file (refused by kvmnetctl before the bus), a guest
#    outside the subnet and a clash (refused by the daemon), and bad
#    entries sent raw to AddForwardsTyped with busctl (port 0, an unknown
#    protocol, a reversed range, a guest range past 65535).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

nat_topology
bus_start
daemon_start

cat >"$T/default.json" <<'EOF2'
{"name": "default", "mode": "nat", "bridge": "kvmbr0",
 "ipv4": {"address": "192.168.122.1/24",
          "dhcp": {"hosts": [{"mac": "52:54:00:00:00:0a", "ip": "192.168.122.10", "name": "web"}]}}}
EOF2
ctl create default --file "$T/default.json"
ctl start default
wait_state default active
ctl port attach default vg1 >/dev/null
guest_static "$G1" 192.168.122.10/24 192.168.122.1
listen_tcp "$G1" 80 'echo web'

forward_state() {
    in_ns "$H" nft list table inet kvmnet | sed -n '/map fwd4/,/^\t}/p' | sed -E 's/packets [0-9]+ bytes [0-9]+//g'
    jq -S .forwards "$T/state/networks/default.json"
    cat "$T/state/networks/default.forwards" 2>/dev/null || true
    ctl show default --json | jq -r .status.revision
}
# The forwards' own fields (no counters), in one order.
fields() { jq -c 'map({proto, host_port, host_address, guest, guest_port, description, rate}) | sort_by(.host_port | tostring)'; }

log "good input: an array from a file, one object from stdin"
cat >"$T/good.json" <<'EOF2'
[{"proto": "tcp", "host_port": "9000-9002", "guest": "192.168.122.10", "guest_port": "7000-7002"},
 {"proto": "both", "host_port": 9100, "host_address": "203.0.113.1", "guest": "web", "guest_port": 80,
  "description": "web \"site\"", "rate": 50}]
EOF2
ctl forward add default --file "$T/good.json" >/dev/null
echo '{"proto": "udp", "host_port": 5000, "guest": "192.168.122.10", "guest_port": 5353}' >"$T/one.json"
ctl forward add default --file - <"$T/one.json" >/dev/null
assert_eq "$(ctl export default | jq .forwards | fields)" "$(jq -s '.[0] + [.[1]]' "$T/good.json" "$T/one.json" | fields)" \
    "the stored forwards are the file's"
assert_eq "$(ctl forward list default --json | jq length)" 3 "forward list"
map=$(in_ns "$H" nft list table inet kvmnet | sed -n '/map fwd4/,/^\t}/p')
assert_contains "$map" "tcp . 203.0.113.1 . 9100 limit rate 50/second" "the named guest's forward on one address (tcp)"
assert_contains "$map" "udp . 203.0.113.1 . 9100 limit rate 50/second" "the named guest's forward on one address (udp)"
assert_contains "$map" "udp . 5000 counter packets 0 bytes 0 comment \"default\" : 192.168.122.10 . 5353" "the forward from stdin"
assert_eq "$(tcp_get "$I" 203.0.113.1 9100)" "web" "a connection through a forward added from the file"

log "bad input: refused naming the entry, nothing changed"
before=$(forward_state)
cat >"$T/bad_port.json" <<'EOF2'
[{"proto": "tcp", "host_port": 9200, "guest": "192.168.122.10", "guest_port": 80},
 {"proto": "tcp", "host_port": 9201, "guest": "192.168.122.10", "guest_port": 80},
 {"proto": "tcp", "host_port": "92x", "guest": "192.168.122.10", "guest_port": 80}]
EOF2
expect_error InvalidArgument forward add default --file "$T/bad_port.json"
assert_contains "$ERR_MSG" "forwards[2].host_port: expected a port" "a bad port in the file"
echo '[{"proto": "tcp", "host_port": 9200, "guest": "192.168.122.10", "guest_port": 80, "colour": "red"}]' >"$T/bad_key.json"
expect_error InvalidArgument forward add default --file "$T/bad_key.json"
assert_contains "$ERR_MSG" "forwards[0].colour" "an unknown key in the file"
echo '[{"proto": "tcp", "host_port": 9200' >"$T/not_json.json"
expect_error InvalidArgument forward add default --file "$T/not_json.json"
assert_contains "$ERR_MSG" "forwards: not valid JSON" "a file that is not JSON"
cat >"$T/outside.json" <<'EOF2'
[{"proto": "tcp", "host_port": 9200, "guest": "192.168.122.10", "guest_port": 80},
 {"proto": "tcp", "host_port": 9201, "guest": "10.9.9.9", "guest_port": 80}]
EOF2
expect_error InvalidArgument forward add default --file "$T/outside.json"
assert_contains "$ERR_MSG" "forwards[1].guest: 10.9.9.9 is not inside the network's subnet" "a guest outside the subnet"
cat >"$T/clash.json" <<'EOF2'
[{"proto": "tcp", "host_port": 9200, "guest": "192.168.122.10", "guest_port": 80},
 {"proto": "tcp", "host_port": 9201, "guest": "192.168.122.10", "guest_port": 80},
 {"proto": "udp", "host_port": 9100, "guest": "192.168.122.10", "guest_port": 80}]
EOF2
expect_error Conflict forward add default --file "$T/clash.json"
assert_contains "$ERR_MSG" "forwards[2]: udp *:9100 is already forwarded by this network" "a clash with a forward there"
assert_contains "$ERR_MSG" "(both 203.0.113.1:9100)" "the forward it clashes with"

# typed ENTRY...: AddForwardsTyped through busctl, each entry 8 words.
typed() {
    local out rc
    out=$(busctl --system call org.kvmnet1 /org/kvmnet1/network/default org.kvmnet1.Network \
        AddForwardsTyped 'a(ssqqsqsu)' "$(($# / 8))" "$@" 2>&1) && rc=0 || rc=$?
    ((rc != 0)) || fail "AddForwardsTyped $*: accepted: $out"
    echo "$out"
}
assert_contains "$(typed tcp "" 9200 0 192.168.122.10 80 "" 0 tcp "" 0 0 192.168.122.10 80 "" 0)" \
    "forwards[1].host_port: must be between 1 and 65535" "typed: port 0"
assert_contains "$(typed sctp "" 9200 0 192.168.122.10 80 "" 0)" "forwards[0].proto: unknown protocol 'sctp'" \
    "typed: an unknown protocol"
assert_contains "$(typed tcp "" 9200 0 192.168.122.10 80 "" 0 tcp "" 9210 9205 192.168.122.10 80 "" 0)" \
    "forwards[1].host_port: range 9210-9205 is reversed" "typed: a reversed range"
assert_contains "$(typed tcp "" 9300 9310 192.168.122.10 65530 "" 0)" "forwards[0].guest_port: guest ports 65530-65540" \
    "typed: a guest range past 65535"
assert_contains "$(typed tcp "" 9200 0 web 80 "" 0 tcp "" 9201 0 192.168.122.10 80 "" 2000000)" "forwards[1].rate" \
    "typed: a rate too high"
assert_eq "$(forward_state)" "$before" "forward maps, document, journal and revision after the refusals"

log "typed: a good request is accepted as the file's would be"
busctl --system call org.kvmnet1 /org/kvmnet1/network/default org.kvmnet1.Network \
    AddForwardsTyped 'a(ssqqsqsu)' 1 tcp "" 9400 9401 web 8400 "typed" 0 >/dev/null
assert_eq "$(ctl export default | jq -c '.forwards[] | select(.host_port == "9400-9401") | [.guest, .guest_port, .description]')" \
    '["web","8400-8401","typed"]' "the typed forward stored"

log "PASS"
