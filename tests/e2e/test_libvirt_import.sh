#!/usr/bin/env bash
# E2E: `kvmnetctl import-libvirt` against a running daemon.
#  - --dry-run prints the document and creates nothing; --strict refuses a
#    file with a setting kvmnet cannot keep (the bridge's <mac>), and a file
#    that cannot be converted at all stops every file of the run;
#  - --all --dir imports a libvirt config directory: the network with an
#    autostart/NAME.xml link gets "autostart": true, all are created stopped;
#  - a daemon refusal (a name taken) deletes what the run had created;
#  - the imported NAT network starts, and a guest with the MAC of the XML's
#    <dhcp><host> gets exactly that host's address from kvmnet's dnsmasq.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

nat_topology
bus_start
daemon_start

networks() { ctl list --json | jq -r '[.[].name] | join(" ")'; }

dir=$T/libvirt
mkdir -p "$dir/autostart"
# As libvirt writes a NAT network (virsh net-dumpxml), with a static host.
cat >"$dir/imported.xml" <<'XML'
<network>
  <name>imported</name>
  <uuid>6c0bd1b5-4d1a-4c55-9d7b-9f6a3c1e0b42</uuid>
  <forward dev='uplink0' mode='nat'>
    <interface dev='uplink0'/>
  </forward>
  <bridge name='virbr9' stp='on' delay='0'/>
  <mac address='52:54:00:3c:91:0e'/>
  <domain name='imported.test' localOnly='yes'/>
  <ip address='192.168.150.1' netmask='255.255.255.0'>
    <dhcp>
      <range start='192.168.150.100' end='192.168.150.200'/>
      <host mac='52:54:00:5e:00:01' name='web' ip='192.168.150.10'/>
    </dhcp>
  </ip>
</network>
XML
ln -s ../imported.xml "$dir/autostart/imported.xml"
cat >"$dir/quiet.xml" <<'XML'
<network>
  <name>quiet</name>
  <bridge name='virbr10' stp='off' delay='0'/>
  <ip address='192.168.151.1' prefix='24'/>
</network>
XML

log "--dry-run: the document, nothing created"
out=$(ctl import-libvirt --dry-run "$dir/imported.xml" 2>"$T/notes")
assert_eq "$(jq -c '{name, mode, uplink, bridge, autostart, stp, forward_delay, dns, ipv4}' <<<"$out")" \
    '{"name":"imported","mode":"nat","uplink":"uplink0","bridge":"virbr9","autostart":true,"stp":true,"forward_delay":2,"dns":{"domain":"imported.test"},"ipv4":{"address":"192.168.150.1/24","dhcp":{"hosts":[{"ip":"192.168.150.10","mac":"52:54:00:5e:00:01","name":"web"}],"ranges":["192.168.150.100-192.168.150.200"]}}}' \
    "dry-run document"
assert_contains "$(cat "$T/notes")" "$dir/imported.xml:8: <mac>: " "the unmapped <mac> with its line"
assert_eq "$(networks)" "" "networks after --dry-run"
# --dry-run needs no bus at all; --all prints an array of documents.
out=$(DBUS_SYSTEM_BUS_ADDRESS=unix:path=$T/no-bus ctl import-libvirt --dry-run --all --dir "$dir" 2>/dev/null) ||
    fail "--dry-run --all without a bus failed"
assert_eq "$(jq -c '[.[] | [.name, .mode, .autostart]]' <<<"$out")" '[["imported","nat",true],["quiet","isolated",null]]' \
    "dry-run --all documents"

log "usage errors exit 2"
for args in "" "--all $dir/quiet.xml" "--dir $dir $dir/quiet.xml" "--frobnicate $dir/quiet.xml"; do
    # shellcheck disable=SC2086 # the words of each case on purpose
    ctl import-libvirt $args >/dev/null 2>&1 && rc=0 || rc=$?
    assert_eq "$rc" 2 "exit status of import-libvirt $args"
done

log "--strict refuses the file that loses its <mac>"
ctl import-libvirt --strict --all --dir "$dir" >"$T/out" 2>"$T/err" && fail "--strict imported: $(cat "$T/out")"
assert_contains "$(cat "$T/err")" "--strict: refused" "--strict message"
assert_eq "$(networks)" "" "networks after --strict"

log "a file that cannot be converted stops the whole run"
bad=$T/bad
mkdir -p "$bad"
cp "$dir/quiet.xml" "$bad/"
printf '<network>\n  <name>direct</name>\n  <forward mode="passthrough"/>\n</network>\n' >"$bad/direct.xml"
ctl import-libvirt --all --dir "$bad" >"$T/out" 2>"$T/err" && fail "a passthrough network was imported"
assert_contains "$(cat "$T/err")" "$bad/direct.xml:3: error: <forward>: forward mode 'passthrough'" "refusal"
assert_eq "$(networks)" "" "networks after a refused file"

log "--all: every file, stopped, autostart from libvirt's link"
out=$(ctl import-libvirt --all --dir "$dir" 2>"$T/notes")
assert_contains "$out" "Network imported imported from $dir/imported.xml (stopped; starts with the daemon)." "output"
assert_contains "$out" "Network quiet imported from $dir/quiet.xml (stopped)." "output"
assert_eq "$(networks)" "imported quiet" "networks after --all"
assert_eq "$(net_state imported)" inactive "imported's state"
assert_eq "$(ctl show imported --json | jq -c '.config | [.autostart, .mode, .bridge, .uplink]')" \
    '[true,"nat","virbr9","uplink0"]' "imported's document"
assert_eq "$(ctl show quiet --json | jq -c '.config | [.autostart, .mode]')" '[false,"isolated"]' "quiet's document"

log "a daemon refusal deletes what the run created"
again=$T/again
mkdir -p "$again"
sed -e 's/>quiet</>fresh</' -e 's/virbr10/virbr11/' -e 's/192\.168\.151/192.168.152/' "$dir/quiet.xml" >"$again/a.xml"
cp "$dir/quiet.xml" "$again/b.xml"
ctl import-libvirt --all --dir "$again" >"$T/out" 2>"$T/err" && fail "a second 'quiet' was imported"
assert_contains "$(cat "$T/err")" "$again/b.xml: error: kvmnetd refused the network" "refusal names the file"
assert_contains "$(cat "$T/err")" "kvmnetctl: AlreadyExists: " "the daemon's error"
assert_eq "$(networks)" "imported quiet" "networks after the refused run (fresh deleted again)"

log "the imported network serves the static host's address to a guest"
ctl start imported
wait_state imported active
ip -n "$G1" link set eth0 address 52:54:00:5e:00:01
guest_plug "$G1" vg1 virbr9
# libvirt's stp='on' came along: the port listens and learns (2 x 2 s) first.
_forwarding() { [[ $(in_ns "$H" bridge -j link show dev vg1 | jq -r '.[0].state') == forwarding ]]; }
retry 75 _forwarding || fail "vg1 not forwarding: $(in_ns "$H" bridge -j link show dev vg1)"
read -r gaddr router <<<"$(guest_dhcp "$G1")"
assert_eq "$gaddr" 192.168.150.10/24 "the guest's lease"
assert_eq "$router" 192.168.150.1 "the guest's router"
pings "$G1" 192.168.150.1 || fail "the guest cannot reach its gateway"

ctl stop imported
ctl delete imported
ctl delete quiet
log "PASS"
