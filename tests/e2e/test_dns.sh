#!/usr/bin/env bash
# E2E: DNS of a NAT network with a local domain (kvm.lan).
#  - two guests take DHCP leases sending host names; each resolves the other
#    as NAME and NAME.kvm.lan against the gateway;
#  - a static host's name resolves before any guest has its address, and
#    one added with `host add` resolves at once (no dnsmasq restart);
#  - unknown names get an answer at once (NXDOMAIN inside the domain and for
#    plain names; nothing is forwarded without forwarders);
#  - the Dnsmasq property: running, restarting after dnsmasq is killed,
#    running again;
#  - with a forwarder (a dnsmasq this test runs in the "internet" namespace)
#    names outside the domain are answered through it, names inside are not
#    sent to it.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

command -v dig >/dev/null || fail "missing tool 'dig' (package dnsutils; run scripts/deps.sh)"

nat_topology
guest_add 2
bus_start
daemon_start

GW=192.168.122.1
# query NS NAME: dig against the gateway, one try; prints "STATUS ANSWER...".
query() {
    local out status answer
    out=$(in_ns "$1" dig +tries=1 +time=3 @"$GW" "$2" A) || return 1
    status=$(sed -n 's/.*status: \([A-Z]*\),.*/\1/p' <<<"$out")
    answer=$(in_ns "$1" dig +short +tries=1 +time=3 @"$GW" "$2" A | tr '\n' ' ')
    echo "$status ${answer% }"
}
# expect_name NS NAME ADDR: NAME resolves to exactly ADDR.
expect_name() {
    local got
    got=$(query "$1" "$2") || fail "no DNS answer for $2 from $GW in $1"
    assert_eq "$got" "NOERROR $3" "DNS answer for $2 in $1"
}
_answers() { [[ $(query "$1" "$2" 2>/dev/null) == "NOERROR $3" ]]; }
dnsmasq_property() {
    dbus-send --system --print-reply=literal --dest=org.kvmnet1 /org/kvmnet1/network/default \
        org.freedesktop.DBus.Properties.Get string:org.kvmnet1.Network string:Dnsmasq | awk '{print $NF}'
}
_dnsmasq_property_is() { [[ $(dnsmasq_property 2>/dev/null) == "$1" ]]; }

ctl create default --mode nat --bridge kvmbr0 --ipv4 192.168.122.1/24 \
    --dhcp-range 192.168.122.100-192.168.122.199 --dhcp-host 52:54:00:aa:00:09,192.168.122.50,web --domain kvm.lan
assert_contains "$(ctl show default)" "DNS domain:    kvm.lan" "show"
assert_eq "$(ctl show default --json | jq -c .config.dns)" '{"domain":"kvm.lan"}' "dns in Describe"
assert_eq "$(dnsmasq_property)" stopped "Dnsmasq property before start"
ctl start default
wait_state default active
assert_eq "$(dnsmasq_property)" running "Dnsmasq property after start"
# The daemon's dnsmasq still has no upstream of its own.
grep -q '^no-resolv$' "$T/run/default/dnsmasq.conf" || fail "dnsmasq.conf lacks no-resolv"
if grep -q '^server=' "$T/run/default/dnsmasq.conf"; then fail "dnsmasq.conf has a server= line without forwarders"; fi

log "guests register their host names"
guest_plug "$G1" vg1 kvmbr0
guest_plug "$G2" vg2 kvmbr0
read -r a1 _ <<<"$(guest_dhcp "$G1" -x hostname:alpha)"
read -r a2 _ <<<"$(guest_dhcp "$G2" -x hostname:beta)"
ip1=${a1%/*}
ip2=${a2%/*}
log "alpha is $ip1, beta is $ip2"
[[ $ip1 != "$ip2" ]] || fail "both guests got $ip1"
retry 25 _answers "$G1" beta "$ip2" || true
expect_name "$G1" beta "$ip2"
expect_name "$G1" beta.kvm.lan "$ip2"
expect_name "$G2" alpha "$ip1"
expect_name "$G2" ALPHA.kvm.lan "$ip1"

log "static hosts resolve without a lease"
expect_name "$G1" web 192.168.122.50
expect_name "$G1" web.kvm.lan 192.168.122.50
pid=$(dnsmasq_pid default)
ctl host add default 52:54:00:aa:00:0a 192.168.122.51 db
assert_eq "$(dnsmasq_pid default)" "$pid" "dnsmasq pid after host add"
retry 10 _answers "$G2" db.kvm.lan 192.168.122.51 || true
expect_name "$G2" db.kvm.lan 192.168.122.51
ctl host remove default 52:54:00:aa:00:0a
retry 10 not _answers "$G2" db.kvm.lan 192.168.122.51 || true
assert_eq "$(query "$G2" db.kvm.lan)" "NXDOMAIN " "db.kvm.lan after host remove"
assert_eq "$(dnsmasq_pid default)" "$pid" "dnsmasq pid after host remove"

log "unknown names are answered at once, nothing goes upstream"
assert_eq "$(query "$G1" nosuch.kvm.lan)" "NXDOMAIN " "unknown name in the domain"
assert_eq "$(query "$G1" nosuch)" "NXDOMAIN " "unknown plain name"
# Outside the domain, with no forwarders: a reply (dnsmasq refuses), not a
# timeout. dig exits 9 when no reply comes.
out=$(query "$G1" www.example.test) || fail "no reply at all for www.example.test (dnsmasq forwarded it?)"
[[ $out == REFUSED* || $out == NXDOMAIN* || $out == SERVFAIL* ]] ||
    fail "www.example.test answered '$out' without any forwarder"

log "the Dnsmasq property follows supervision"
# The first restart after an exit is immediate, so the property is "stopped"
# (then "running") for a moment only, and later restarts are "restarting"
# for their backoff: a poll could miss either, the PropertiesChanged
# signals record them.
signal_monitor_start "$T/signals"
kill -KILL "$pid"
retry 50 _dnsmasq_property_is running || fail "Dnsmasq property after the restart: $(dnsmasq_property)"
_dnsmasq_values() { grep -A1 'string "Dnsmasq"' "$T/signals" | sed -n 's/.*variant *string "\(.*\)"/\1/p' | tr '\n' ' '; }
retry 25 grep -q 'dnsmasq exited' "$T/signals" || fail "no StateReason naming the dnsmasq exit among the signals"
case $(_dnsmasq_values) in
    "stopped running "* | "restarting running "*) ;;
    *) fail "Dnsmasq property changes after the kill: '$(_dnsmasq_values)', expected stopped or restarting, then running" ;;
esac
stop_pid "$MONITOR_PID"
wait_state default active
new_pid=$(dnsmasq_pid default)
is_dnsmasq "$new_pid" || fail "no dnsmasq after the restart (pid '$new_pid')"
[[ $new_pid != "$pid" ]] || fail "dnsmasq pid unchanged after it was killed"
expect_name "$G1" web.kvm.lan 192.168.122.50

log "a forwarder in the internet namespace"
spawn_in_ns "$I" dnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts --user=root \
    --bind-interfaces --interface=eth0 --except-interface=lo --listen-address=203.0.113.2 \
    --host-record=www.example.test,198.51.100.80 --log-queries --log-facility=- \
    --pid-file="$T/forwarder.pid" >"$T/forwarder.log" 2>&1
forwarder_pid=$SPAWNED_PID
track_pid "$forwarder_pid"
retry 50 _udp_listening "$I" 53 || fail "forwarder did not bind UDP port 53: $(cat "$T/forwarder.log")"
# A dns change restarts the network: a new bridge, which the guest's veth
# (not a port of the document) has to be plugged into again.
ctl set default 'dns={"domain":"kvm.lan","forwarders":["203.0.113.2"]}'
wait_state default active
guest_plug "$G1" vg1 kvmbr0
assert_eq "$(ctl show default --json | jq -c .config.dns.forwarders)" '["203.0.113.2"]' "forwarders in Describe"
grep -qx 'server=203.0.113.2' "$T/run/default/dnsmasq.conf" || fail "no server=203.0.113.2 in dnsmasq.conf"
retry 25 _answers "$G1" www.example.test 198.51.100.80 || true
expect_name "$G1" www.example.test 198.51.100.80
grep -q 'query\[A\] www.example.test from 203.0.113.1' "$T/forwarder.log" ||
    fail "the forwarder did not see the query from the host: $(cat "$T/forwarder.log")"
# The local domain and plain names stay local.
assert_eq "$(query "$G1" nosuch.kvm.lan)" "NXDOMAIN " "unknown name in the domain with a forwarder"
assert_eq "$(query "$G1" nosuch)" "NXDOMAIN " "unknown plain name with a forwarder"
expect_name "$G1" web.kvm.lan 192.168.122.50
if grep -q 'kvm.lan\|query\[A\] nosuch from' "$T/forwarder.log"; then
    fail "local names reached the forwarder: $(cat "$T/forwarder.log")"
fi
stop_pid "$forwarder_pid"

ctl stop default
wait_state default inactive
assert_eq "$(dnsmasq_property)" stopped "Dnsmasq property after stop"
ctl delete default
daemon_stop
assert_eq "$DAEMON_EXIT" 0 "kvmnetd exit status after SIGTERM"
log PASS
