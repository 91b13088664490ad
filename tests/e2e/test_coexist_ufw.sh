#!/usr/bin/env bash
# E2E, coexistence cell (d): ufw (Debian's, over iptables-nft) enabled with
# its default policies in the test's host namespace. ufw offers no place
# for another program's rules, so kvmnet does not add any: `kvmnetctl
# diagnose` must name ufw's chains (forward and input, policy drop) and
# print the exact ufw commands, and running exactly those lets the guest
# get a lease, resolve a name through the network's dnsmasq, reach the
# "internet" namespace and be reached through a port forward. While ufw
# cuts the guests off the network is degraded (StateReasonCode
# foreign-firewall); the commands typed, it is active again by itself, and
# diagnose names the rule that dropped the DHCP request (by its counter).
# ufw runs only inside the host namespace and a mount namespace per call
# whose /etc/ufw and /etc/default/ufw are private copies under $T (with
# no sysctl file), so the machine's ufw configuration is never written.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

command -v ufw >/dev/null || skip "ufw not installed (run scripts/deps-coexist.sh)"
command -v dig >/dev/null || fail "missing tool 'dig' (package dnsutils; run scripts/deps.sh)"

nat_topology
bus_start

U=$T/ufw
mkdir -p "$U"
cp -a /etc/ufw "$U/etc"
cp /etc/default/ufw "$U/default"
: >"$U/sysctl.conf"
sed -i "s|^IPT_SYSCTL=.*|IPT_SYSCTL=$U/sysctl.conf|" "$U/default"
ufw_ns() {
    in_ns "$H" unshare --mount --propagation private sh -c \
        'mount --bind "$1" /etc/ufw && mount --bind "$2" /etc/default/ufw && shift 2 && exec ufw "$@"' \
        ufw "$U/etc" "$U/default" "$@"
}
host_ufw_before=$(cat /etc/ufw/ufw.conf)

daemon_start
ctl create default --mode nat --bridge kvmbr0 --ipv4 192.168.122.1/24 \
    --dhcp-range 192.168.122.100-192.168.122.254 --dhcp-host 52:54:00:aa:00:09,192.168.122.50,web --domain kvm.lan
ctl start default
wait_state default active

log "ufw enable (default policies) in $H"
ufw_ns --force enable >/dev/null
assert_contains "$(ufw_ns status verbose)" "deny (routed)" "ufw's routed policy"
assert_eq "$(cat /etc/ufw/ufw.conf)" "$host_ufw_before" "the machine's /etc/ufw/ufw.conf"

log "the guest is cut off, the network degraded, and diagnose says what to type"
wait_state default degraded 25
code=$(busctl --system get-property org.kvmnet1 /org/kvmnet1/network/default org.kvmnet1.Network StateReasonCode)
assert_eq "$code" 's "foreign-firewall"' "StateReasonCode beside ufw"
guest_plug "$G1" vg1 kvmbr0
if in_ns "$G1" timeout 10 busybox udhcpc -n -q -f -t 2 -T 1 -i eth0 -s /bin/true >/dev/null 2>&1; then
    fail "the guest got a DHCP lease through ufw's input policy drop: the test proves nothing"
fi
status_of() { jq -r --arg c "$2" '.checks[] | select(.check == $c) | .status + ": " + .detail' <<<"$1"; }
report=$(ctl diagnose default --json) || fail "a warning must not fail diagnose: $report"
log "diagnose: $(jq -c '[.checks[] | select(.check == "foreign-firewall")]' <<<"$report")"
assert_contains "$(status_of "$report" foreign-firewall)" \
    "warn: chain ip filter FORWARD (hook forward, policy drop) is ufw's and drops guests' forwarded traffic; let them through with: ufw route allow in on kvmbr0; ufw route allow out on kvmbr0" \
    "diagnose of ufw's forward chain"
assert_contains "$(status_of "$report" foreign-firewall)" \
    "warn: chain ip filter INPUT (hook input, policy drop) is ufw's and drops guests' DHCP and DNS; let them through with: ufw allow in on kvmbr0 to any port 67 proto udp; ufw allow in on kvmbr0 to any port 53" \
    "diagnose of ufw's input chain"
# ufw sends DHCP requests to its policy through ufw-skip-to-policy-input's
# drop rule, which counted the guest's.
assert_contains "$(status_of "$report" foreign-firewall)" \
    "to any port 53; dropped by rule ip filter ufw-skip-to-policy-input handle" "the rule that dropped the DHCP request"

log "the printed commands let the guest through"
ufw_ns route allow in on kvmbr0 >/dev/null
ufw_ns route allow out on kvmbr0 >/dev/null
ufw_ns allow in on kvmbr0 to any port 67 proto udp >/dev/null
ufw_ns allow in on kvmbr0 to any port 53 >/dev/null
wait_state default active 25
read -r gaddr _ <<<"$(guest_dhcp "$G1")"
gip=${gaddr%/*}
log "lease $gip"
dns=$(in_ns "$G1" dig +short +tries=1 +time=3 @192.168.122.1 web.kvm.lan A) || fail "no DNS reply through ufw"
assert_eq "$dns" 192.168.122.50 "web.kvm.lan through the network's dnsmasq beside ufw"
listen_tcp "$I" 9000 'echo $SOCAT_PEERADDR'
assert_eq "$(tcp_get "$G1" 203.0.113.2 9000)" 203.0.113.1 "guest's TCP to the internet namespace beside ufw"
listen_tcp "$G1" 9001 'echo guest'
ctl forward add default tcp 8080 "$gip:9001"
assert_eq "$(tcp_get "$I" 203.0.113.1 8080)" guest "port forward beside ufw"
assert_eq "$(cat /etc/ufw/ufw.conf)" "$host_ufw_before" "the machine's /etc/ufw/ufw.conf"

ctl stop default
daemon_stop
log "PASS"
