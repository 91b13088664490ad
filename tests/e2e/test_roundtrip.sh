#!/usr/bin/env bash
# E2E: configuration that round-trips, through kvmnetctl on a running daemon.
#  - `export` prints what `create --file` takes: a network with DHCP ranges
#    and hosts, IPv6, DNS, bridge options, ports, forwards and limits is
#    exported, deleted, created again from the export (under the name the
#    argument gives, whatever the file says) and exports identically;
#  - `show` keeps config and status apart (--json: {"config", "status"}),
#    forwards and limits included;
#  - `set`/`unset` merge by path and never lose a sibling (the issue's
#    `set st 'ipv4={"address":...}'` kept no DHCP ranges), errors name the
#    path and change nothing; concurrent `set`s all land;
#  - UpdateIfRevision from a stale revision gets Conflict and changes nothing;
#  - `edit` applies the editor's result as one update; on bad JSON or a change
#    made meanwhile it fails, keeps the text in a named file, and the network
#    is unchanged.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

nat_topology
bus_start
daemon_start

cat >"$T/rt.json" <<'EOF'
{"name": "rt", "mode": "nat", "bridge": "kvmbr7", "autostart": true,
 "ipv4": {"address": "10.70.0.1/24",
          "dhcp": {"ranges": ["10.70.0.100-10.70.0.120", "10.70.0.130-10.70.0.140"],
                   "hosts": [{"mac": "52:54:00:70:00:0a", "ip": "10.70.0.10", "name": "web"},
                             {"mac": "52:54:00:70:00:0b", "ip": "10.70.0.11"}]}},
 "ipv6": {"address": "fd00:70::1/64", "nat66": true, "dhcp": {"ranges": ["fd00:70::100-fd00:70::1ff"]}},
 "dns": {"domain": "rt.lan", "forwarders": ["203.0.113.53"]},
 "stp": true, "forward_delay": 4, "hello_time": 2, "max_age": 12, "priority": 4096,
 "multicast_snooping": false, "mtu": 1400,
 "ports": [{"name": "rt-tap0", "tap": true, "owner": 1000, "mac": "52:54:00:70:00:0a", "isolated": true}],
 "forwards": [{"proto": "tcp", "host_port": 8080, "guest": "web", "guest_port": 80, "description": "web", "rate": 5},
              {"proto": "udp", "host_port": "5000-5010", "guest": "10.70.0.11", "guest_port": "6000-6010"}],
 "limits": {"connections_per_source": 64, "new_connections_per_second": 100}}
EOF

log "export prints what create --file takes"
ctl create rt --file "$T/rt.json"
ctl export rt >"$T/export1.json"
assert_eq "$(jq -c '[(.forwards | length), .limits.connections_per_source, (.ipv4.dhcp.ranges | length),
    .ipv6.dhcp.ranges[0], .dns.forwarders[0], .priority, .ports[0].name]' "$T/export1.json")" \
    '[2,64,2,"fd00:70::100-fd00:70::1ff","203.0.113.53",4096,"rt-tap0"]' "the export holds everything"
shown=$(ctl show rt --json)
assert_eq "$(jq -c 'keys' <<<"$shown")" '["config","status"]' "show --json keys"
assert_eq "$(jq -S . <<<"$shown" | jq -S .config)" "$(jq -S . "$T/export1.json")" "show --json .config is the export"
assert_eq "$(jq -c '.status | keys' <<<"$shown")" \
    '["awaiting_confirmation","dnsmasq","last_repair","revision","state","state_reason"]' "show --json status keys"
assert_eq "$(jq -r .status.state <<<"$shown")" inactive "status.state"
text=$(ctl show rt)
assert_contains "$text" "Config (revision $(jq -r .status.revision <<<"$shown")" "show: config with revision"
assert_contains "$text" 'Forward:       tcp *:8080 -> web:80 rate 5/s "web"' "show: a forward"
assert_contains "$text" "Forward:       udp *:5000-5010 -> 10.70.0.11:6000-6010" "show: a forward range"
assert_contains "$text" "Limit:         connections_per_source 64" "show: a limit"
assert_contains "$text" "Status:" "show: status apart"

log "delete, create from the export (the argument names it), identical export"
ctl delete rt
jq '.name = "some-other-name"' "$T/export1.json" >"$T/renamed.json"
ctl create rt --file "$T/renamed.json"
ctl export rt >"$T/export2.json"
assert_eq "$(cat "$T/export2.json")" "$(cat "$T/export1.json")" "export after the round trip"
# From stdin too, as `export A | create B --file -` would.
ctl delete rt
ctl export rt 2>/dev/null && fail "export of a deleted network succeeded"
ctl create rt --file - <"$T/export1.json"
assert_eq "$(ctl export rt)" "$(cat "$T/export1.json")" "export after create --file -"
revision() { ctl show rt --json | jq -r .status.revision; }
rev0=$(revision)
assert_eq "$rev0" "$(jq -r .status.revision <<<"$shown")" "the same document has the same revision"

log "set merges objects: the DHCP ranges survive ipv4={address}"
ctl set rt 'ipv4={"address":"10.70.0.254/24"}'
assert_eq "$(ctl export rt | jq -c .ipv4)" \
    "$(jq -c '.ipv4.address = "10.70.0.254/24"' "$T/export1.json" | jq -c .ipv4)" "ipv4 after set ipv4={address}"
[[ $(revision) != "$rev0" ]] || fail "the revision did not change with the document"
ctl set rt ipv4.address=10.70.0.1/24 dns.domain=other.lan ipv4.dhcp.ranges+=10.70.0.150-10.70.0.160
doc=$(ctl export rt)
assert_eq "$(jq -c .ipv4.dhcp.ranges <<<"$doc")" \
    '["10.70.0.100-10.70.0.120","10.70.0.130-10.70.0.140","10.70.0.150-10.70.0.160"]' "ranges += appends"
assert_eq "$(jq -c .dns <<<"$doc")" '{"domain":"other.lan","forwarders":["203.0.113.53"]}' "dns.domain set, forwarders kept"
ctl set rt 'ipv4.dhcp.hosts[1].name=db' forwards.0.rate=7
doc=$(ctl export rt)
assert_eq "$(jq -c '.ipv4.dhcp.hosts[1]' <<<"$doc")" '{"ip":"10.70.0.11","mac":"52:54:00:70:00:0b","name":"db"}' \
    "an element's field"
assert_eq "$(jq -c '.forwards[0].rate, .forwards[0].description' <<<"$doc" | tr '\n' ' ')" '7 "web" ' "forwards.0.rate"
ctl unset rt dns.forwarders 'ipv4.dhcp.ranges[2]' limits.new_connections_per_second
doc=$(ctl export rt)
assert_eq "$(jq -c '[.dns, .ipv4.dhcp.ranges, .limits]' <<<"$doc")" \
    '[{"domain":"other.lan"},["10.70.0.100-10.70.0.120","10.70.0.130-10.70.0.140"],{"connections_per_source":64}]' \
    "after unset"

log "path errors are typed, name the path and change nothing"
before=$(revision)
expect_error NotFound unset rt dns.forwarders
assert_eq "$ERR_MSG" "dns.forwarders: no such field" "unset of an absent field"
expect_error NotFound unset rt 'ipv4.dhcp.hosts[5]'
assert_contains "$ERR_MSG" "ipv4.dhcp.hosts[5]: no such element" "unset past the end"
expect_error InvalidArgument set rt stp.x=1
assert_eq "$ERR_MSG" "stp.x: stp is a boolean, not an object" "a field of a boolean"
expect_error InvalidArgument set rt ipv4.adress=10.70.0.1/24
assert_contains "$ERR_MSG" "ipv4.adress" "the daemon names an unknown field"
expect_error InvalidArgument set rt 'ipv4.dhcp.ranges+=10.80.0.1-10.80.0.9'
assert_contains "$ERR_MSG" "ipv4.dhcp.ranges[2]" "the daemon names the appended range"
if out=$("$KVMNETCTL" set rt name=x 2>&1); then fail "set name succeeded"; fi
assert_contains "$out" "name cannot be changed" "set name"
assert_eq "$(revision)" "$before" "revision after refused edits"

log "concurrent: a stale UpdateIfRevision gets Conflict; parallel sets all land"
base=$(revision)
path=/org/kvmnet1/network/rt
dbus-send --system --print-reply --dest=org.kvmnet1 "$path" org.kvmnet1.Network.UpdateIfRevision \
    "string:$(ctl export rt | jq -c '.mtu = 1450')" "string:$base" >/dev/null
if out=$(dbus-send --system --print-reply --dest=org.kvmnet1 "$path" org.kvmnet1.Network.UpdateIfRevision \
    "string:$(ctl export rt | jq -c '.mtu = 1400 | .priority = 8192')" "string:$base" 2>&1); then
    fail "an update from a stale revision was accepted"
fi
assert_contains "$out" "org.kvmnet1.Error.Conflict" "stale revision"
assert_eq "$(ctl export rt | jq -c '[.mtu, .priority]')" '[1450,4096]' "the first update kept, the stale one not applied"
pids=()
for i in 1 2 3 4; do
    "$KVMNETCTL" set rt "ipv4.dhcp.hosts+={\"mac\":\"52:54:00:70:01:0$i\",\"ip\":\"10.70.0.2$i\"}" \
        >"$T/set$i.out" 2>&1 &
    pids+=($!)
    track_pid "$!"
done
for i in 1 2 3 4; do
    wait "${pids[$((i - 1))]}" || fail "concurrent set $i failed: $(cat "$T/set$i.out")"
done
assert_eq "$(ctl export rt | jq -c '[.ipv4.dhcp.hosts[].ip] | sort')" \
    '["10.70.0.10","10.70.0.11","10.70.0.21","10.70.0.22","10.70.0.23","10.70.0.24"]' "every concurrent set landed"

log "edit"
cat >"$T/editor-mtu" <<'EOF'
#!/bin/sh
jq '.mtu = 1500' "$1" >"$1.new" && mv "$1.new" "$1"
EOF
cat >"$T/editor-bad" <<'EOF'
#!/bin/sh
echo '{"name": "rt", "mode": "nat", "mtu": ' >"$1"
EOF
cat >"$T/editor-race" <<EOF
#!/bin/sh
"$KVMNETCTL" set rt priority=16384 >/dev/null || exit 1
jq '.mtu = 9000' "\$1" >"\$1.new" && mv "\$1.new" "\$1"
EOF
chmod +x "$T"/editor-*
export TMPDIR=$T
EDITOR=$T/editor-mtu ctl edit rt >"$T/edit.out"
assert_contains "$(cat "$T/edit.out")" "Network rt updated." "edit"
assert_eq "$(ctl export rt | jq .mtu)" 1500 "mtu after edit"
[[ -z $(find "$T" -maxdepth 1 -name 'kvmnetctl-edit-*') ]] || fail "a successful edit left its file"
EDITOR=true ctl edit rt >"$T/edit.out"
assert_contains "$(cat "$T/edit.out")" "Network rt unchanged." "edit without a change"

before=$(ctl export rt)
if EDITOR=$T/editor-bad "$KVMNETCTL" edit rt 2>"$T/edit.err"; then fail "edit with bad JSON succeeded"; fi
assert_contains "$(cat "$T/edit.err")" "InvalidArgument: " "bad JSON: the daemon's error"
kept=$(sed -n 's/.*the edited text is kept in //p' "$T/edit.err")
[[ -n $kept && -f $kept ]] || fail "edit did not name an existing file: $(cat "$T/edit.err")"
assert_eq "$(cat "$kept")" '{"name": "rt", "mode": "nat", "mtu": ' "the kept text is the edited one"
rm -f "$kept"
assert_eq "$(ctl export rt)" "$before" "network after a failed edit"

if EDITOR=$T/editor-race "$KVMNETCTL" edit rt 2>"$T/edit.err"; then fail "edit over a concurrent change succeeded"; fi
assert_contains "$(cat "$T/edit.err")" "Conflict: " "edit over a concurrent change"
assert_contains "$(cat "$T/edit.err")" "run edit again" "the hint"
kept=$(sed -n 's/.*the edited text is kept in //p' "$T/edit.err")
assert_eq "$(jq .mtu "$kept")" 9000 "the kept text holds the edit"
rm -f "$kept"
assert_eq "$(ctl export rt | jq -c '[.mtu, .priority]')" '[1500,16384]' "the concurrent set kept, the edit not applied"

log "the edited network still starts"
ctl unset rt ports
ctl start rt
wait_state rt active
assert_eq "$(ctl show rt --json | jq -r .status.dnsmasq)" running "status.dnsmasq"
ctl stop rt
wait_state rt inactive
log "PASS"
