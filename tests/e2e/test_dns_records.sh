#!/usr/bin/env bash
# E2E: DNS records of a network (dns.hosts, dns.srv, dns.txt) answered by
# its dnsmasq, asked with dig from a guest namespace:
#  - A and AAAA records of dns.hosts (several names per address, both
#    families), an SRV and a TXT record;
#  - dns.hosts changed on the running network (kvmnetctl set): answered at
#    once, dnsmasq keeps its pid (addn-hosts re-read on SIGHUP);
#  - an SRV change restarts the network (dnsmasq reads SRV records from its
#    configuration only) and is answered;
#  - bad records are refused with InvalidArgument naming the field, nothing
#    changed.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

command -v dig >/dev/null || fail "missing tool 'dig' (package dnsutils; run scripts/deps.sh)"

nat_topology
bus_start
daemon_start

GW=192.168.122.1
# answer NAME TYPE: the records dig gets from the gateway, one per line, sorted.
answer() { in_ns "$G1" dig +short +tries=1 +time=3 @"$GW" "$1" "$2" | sort; }

cat >"$T/net.json" <<'JSON'
{"name": "default", "mode": "nat", "bridge": "kvmbr0",
 "ipv4": {"address": "192.168.122.1/24", "dhcp": {"ranges": ["192.168.122.100-192.168.122.199"]}},
 "dns": {"domain": "kvm.lan",
         "hosts": [{"ip": "192.168.122.20", "names": ["db", "pg.kvm.lan"]},
                   {"ip": "fd00:1::20", "names": ["db"]}],
         "srv": [{"service": "ldap", "proto": "tcp", "target": "db.kvm.lan", "port": 389, "priority": 10,
                  "weight": 5}],
         "txt": [{"name": "kvm.lan", "value": "v=spf1 -all"}]}}
JSON
ctl create default --file "$T/net.json"
ctl start default
wait_state default active
guest_plug "$G1" vg1 kvmbr0
read -r gaddr _ <<<"$(guest_dhcp "$G1")"
log "guest has $gaddr"

log "A, AAAA, SRV and TXT records"
retry 10 test -n "$(answer db.kvm.lan A)" || fail "no A answer for db.kvm.lan"
assert_eq "$(answer db.kvm.lan A)" 192.168.122.20 "A of db.kvm.lan"
assert_eq "$(answer db A)" 192.168.122.20 "A of db"
assert_eq "$(answer pg.kvm.lan A)" 192.168.122.20 "A of the second name pg.kvm.lan"
assert_eq "$(answer db.kvm.lan AAAA)" fd00:1::20 "AAAA of db.kvm.lan"
assert_eq "$(answer _ldap._tcp.kvm.lan SRV)" "10 5 389 db.kvm.lan." "SRV of _ldap._tcp.kvm.lan"
assert_eq "$(answer kvm.lan TXT)" '"v=spf1 -all"' "TXT of kvm.lan"

log "dns.hosts changed while running: no dnsmasq restart"
pid=$(dnsmasq_pid default)
is_dnsmasq "$pid" || fail "no dnsmasq for default (pid '$pid')"
ctl set default 'dns.hosts+={"ip": "192.168.122.21", "names": ["cache", "redis.kvm.lan"]}'
assert_eq "$(dnsmasq_pid default)" "$pid" "dnsmasq pid after adding a dns host"
is_dnsmasq "$pid" || fail "dnsmasq $pid is gone after adding a dns host"
retry 10 test "$(answer redis.kvm.lan A)" = 192.168.122.21 ||
    fail "redis.kvm.lan not answered after set: '$(answer redis.kvm.lan A)'"
ctl unset default 'dns.hosts[0]'
assert_eq "$(dnsmasq_pid default)" "$pid" "dnsmasq pid after removing a dns host"
retry 10 test -z "$(answer pg.kvm.lan A)" || fail "pg.kvm.lan still answered after unset: '$(answer pg.kvm.lan A)'"
assert_eq "$(answer db.kvm.lan AAAA)" fd00:1::20 "AAAA of db.kvm.lan after removing its A record"

log "an SRV change restarts dnsmasq"
ctl set default 'dns.srv+={"service": "sip", "proto": "udp", "domain": "voice.lan", "target": "pbx.voice.lan", "port": 5060}'
wait_state default active
# The restart made the bridge anew; the test's guest is not one of its ports.
guest_plug "$G1" vg1 kvmbr0
retry 25 test "$(answer _sip._udp.voice.lan SRV)" = "0 0 5060 pbx.voice.lan." ||
    fail "no SRV answer for _sip._udp.voice.lan: '$(answer _sip._udp.voice.lan SRV)'"
assert_eq "$(answer _ldap._tcp.kvm.lan SRV)" "10 5 389 db.kvm.lan." "first SRV record after the change"

log "bad records are refused and change nothing"
before=$(ctl export default | jq -c .dns)
expect_error InvalidArgument set default 'dns.hosts+={"ip": "192.168.122.22", "names": ["bad_name"]}'
assert_contains "$ERR_MSG" "dns.hosts[2].names[0]" "bad host name"
expect_error InvalidArgument set default 'dns.srv+={"service": "x", "proto": "tcp", "target": "a", "port": 70000}'
assert_contains "$ERR_MSG" "dns.srv[2].port" "bad SRV port"
expect_error InvalidArgument set default 'dns.txt+={"name": "t.kvm.lan", "value": "a\"b"}'
assert_contains "$ERR_MSG" "dns.txt[1].value" "TXT value with a quote"
assert_eq "$(ctl export default | jq -c .dns)" "$before" "dns after refusals"

ctl stop default
wait_state default inactive
daemon_stop
assert_eq "$DAEMON_EXIT" 0 "kvmnetd exit status after SIGTERM"
log PASS
