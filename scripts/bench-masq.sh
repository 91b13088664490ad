#!/usr/bin/env bash
# Where the cost of kvmnet's NAT masquerade goes (issue 17, item 4): iperf3
# from a guest to the "internet" namespace through one hand-made router
# (guest -- veth -- bridge -- routing -- veth -- internet, as a kvmnet NAT
# host), the same hops for every variant, each variant its own copy of that
# router (three namespaces) with its ruleset loaded once, all variants
# alternating in one run (run 1 of each, run 2, ...):
#   routed       no ruleset at all (no conntrack, no NAT): the ceiling
#   conntrack    one forward rule `ct state established accept` (conntrack
#                on every packet, nothing else)
#   masquerade   conntrack and one `oifname uplink0 masquerade`: what any
#                masquerading router pays
#   kvmnet       kvmnet's ruleset for the network (plan::build_ruleset,
#                committed by kvmnet's adapter: kvmnet-bench nft-dnat)
#   kvmnet-VARIANT  that ruleset with one part changed (see VARIANTS below)
# Writes RESULTS/masq.csv (figure,variant,n,unit,value; n = streams) and
# RESULTS/masq.md (the marked section "masq" of docs/performance.md).
#
# Usage: sudo scripts/bench-masq.sh RESULTS-DIR [RUNS] [SECONDS]
# Everything runs in namespaces this script creates (tests/e2e/lib.sh's
# guards); iperf3 traffic flows only between them.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RESULTS=${1:?usage: bench-masq.sh RESULTS-DIR [RUNS] [SECONDS]}
RUNS=${2:-5}
SECONDS_=${3:-3}
mkdir -p "$RESULTS"
RESULTS=$(cd "$RESULTS" && pwd)
BENCH=${KVMNET_BENCH:-$ROOT/build/tests/bench/kvmnet-bench}
[[ -x $BENCH ]] || { echo "bench-masq.sh: not built: $BENCH" >&2; exit 1; }

export SRCDIR=$ROOT
KVMNET_LIB_MODE=demo # read by lib.sh
# shellcheck source=../tests/e2e/lib.sh
source "$ROOT/tests/e2e/lib.sh"
PFX=kvmm$$-
# iperf3 runs only inside this run's namespaces (in_ns), as in bench.sh.
iperf3() { _guard_refuse iperf3 "$@"; }

CSV=$RESULTS/masq.csv
echo "figure,variant,n,unit,value" >"$CSV"
cut -d' ' -f1-3 /proc/loadavg >"$RESULTS/masq-load-start.txt"

# router K: lib.sh's plain_router in namespaces ${PFX}K{i,h,g}, with a route
# back to the guest subnet.
router() {
    plain_router "${PFX}$1i" "${PFX}$1h" "${PFX}$1g"
    # Replies to the routed variants (no masquerade) find the guest this way.
    ip -n "${PFX}$1i" route add 192.168.170.0/24 via 203.0.113.1
}
router 0
PH=${PFX}0h
# kvmnet's ruleset for this network, as text, the base of the variants.
in_ns "$PH" "$BENCH" nft-dnat --forwards 1 --host-address 203.0.113.1 --port 8080 --bridge br0 \
    --subnet-prefix 192.168.170 --guest 192.168.170.10 --guest-port 8080 2>/dev/null
in_ns "$PH" nft list ruleset >"$T/base.nft"
in_ns "$PH" nft flush ruleset

# Variants of kvmnet's ruleset, each one change (awk on `nft list` text):
#   no-raw       without the raw-priority prerouting chain (guest_prerouting:
#                the loopback guards: two set lookups per packet)
#   est-first    a plain `ct state established,related accept` first in the
#                forward chain: no lookup at all before it (the floor of rule
#                order; kvmnet's own established accepts check the source)
#   no-dnat      without the port-forward chains (nat_prerouting, nat_output)
#   zone         `ct zone set 1` first in the raw prerouting chain (every
#                packet in conntrack zone 1)
#   est-nosrc    kvmnet's established accepts without their source check
#                (`iifname . ip saddr @net4`, a pipapo interval lookup): what
#                that one lookup costs a guest's upload (a diagnosis, not a
#                ruleset to ship: it drops the spoof check of open connections)
variant_file() {
    local v=$1 out=$T/$1.nft
    case $v in
    routed) : >"$out" ;;
    conntrack) printf 'table inet m {\n chain f { type filter hook forward priority filter; ct state established accept; }\n}\n' >"$out" ;;
    masquerade) printf 'table inet m {\n chain f { type filter hook forward priority filter; ct state established accept; }\n chain p { type nat hook postrouting priority srcnat; oifname "uplink0" masquerade; }\n}\n' >"$out" ;;
    kvmnet) cp "$T/base.nft" "$out" ;;
    kvmnet-no-raw) drop_chain guest_prerouting <"$T/base.nft" >"$out" ;;
    kvmnet-no-dnat) drop_chain nat_prerouting <"$T/base.nft" | drop_chain nat_output >"$out" ;;
    kvmnet-est-first)
        awk '{ print } /chain guest_forward \{/ { getline; print; print "\t\tct state established,related accept" }' \
            "$T/base.nft" >"$out"
        ;;
    kvmnet-est-nosrc)
        sed -e '/established, from guests"/s/iifname \. ip saddr @net4 //' \
            -e '/established, between guests"/s/iifname \. ip saddr @net4 //' "$T/base.nft" >"$out"
        ;;
    kvmnet-zone)
        awk '{ print } /chain guest_prerouting \{/ { getline; print; print "\t\tct zone set 1" }' "$T/base.nft" >"$out"
        ;;
    *) fail "unknown variant $v" ;;
    esac
    # A variant that edits a shape the ruleset no longer has would measure
    # kvmnet's ruleset under another name.
    if [[ $v == kvmnet-* ]] && cmp -s "$out" "$T/base.nft"; then
        fail "variant $v does not change kvmnet's ruleset (its edit no longer applies)"
    fi
}
# drop_chain NAME: the ruleset text without chain NAME.
drop_chain() { awk -v c="$1" '$1 == "chain" && $2 == c { skip = 1 } !skip { print } skip && /^\t}$/ { skip = 0 }'; }

VARIANTS=(routed conntrack masquerade kvmnet kvmnet-no-raw kvmnet-est-first kvmnet-est-nosrc kvmnet-zone kvmnet-no-dnat)
log "${#VARIANTS[@]} routers, one per variant"
for k in "${!VARIANTS[@]}"; do
    v=${VARIANTS[k]}
    variant_file "$v"
    ((k == 0)) || router "$k"
    in_ns "${PFX}${k}h" nft -f "$T/$v.nft" || fail "variant $v does not load"
    spawn_in_ns "${PFX}${k}i" iperf3 -s -B 203.0.113.2 -p 5201 >>"$T/iperf3-server.log" 2>&1
    track_pid "$SPAWNED_PID"
done
for k in "${!VARIANTS[@]}"; do
    retry 50 _listening "${PFX}${k}i" 5201 || fail "iperf3 server of ${VARIANTS[k]} did not come up"
done

log "${#VARIANTS[@]} variants, $RUNS runs of ${SECONDS_} s, 1 and 4 streams, alternating"
for ((r = 0; r < RUNS; r++)); do
    for streams in 1 4; do
        for k in "${!VARIANTS[@]}"; do
            v=${VARIANTS[k]}
            in_ns "${PFX}${k}g" iperf3 -c 203.0.113.2 -p 5201 -t "$SECONDS_" -O 1 -P "$streams" -J >"$T/iperf3.json" 2>&1 ||
                fail "iperf3 $v: $(tail -5 "$T/iperf3.json")"
            # Throughput depends on the CPU share the run gets on a shared machine;
            # the bits moved per CPU-second of both iperf3 processes (system time
            # includes the forwarding path, which runs in the sender's softirq
            # context on veth) depends less on it.
            jq -r --arg v "$v" --arg n "$streams" '.end as $e |
                "masq,\($v),\($n),Gbit/s,\($e.sum_received.bits_per_second / 1e9)",
                "masq-cpu,\($v),\($n),Gbit/CPU-s,\(($e.sum_received.bits_per_second / 1e9) /
                    (($e.cpu_utilization_percent.host_total + $e.cpu_utilization_percent.remote_total) / 100))"' \
                "$T/iperf3.json" >>"$CSV"
        done
    done
done
cut -d' ' -f1-3 /proc/loadavg >"$RESULTS/masq-load-end.txt"
log "wrote $CSV"

# ---------------------------------------------------------------- report

# median VARIANT STREAMS (of an even count: the mean of the middle two)
median() {
    awk -F, -v f="${3:-masq}" -v v="$1" -v n="$2" '$1 == f && $2 == v && $3 == n { print $5 }' "$CSV" | sort -g | awk '
        { x[NR] = $1 } END { if (NR) printf "%.3f\n", NR % 2 ? x[(NR + 1) / 2] : (x[NR / 2] + x[NR / 2 + 1]) / 2 }'
}
pct() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f %%", 100 * a / b }'; }
describe() {
    case $1 in
    routed) echo "no ruleset (no conntrack, no NAT)" ;;
    conntrack) echo "one forward rule \`ct state established accept\`" ;;
    masquerade) echo "conntrack and one \`oifname uplink0 masquerade\`" ;;
    kvmnet) echo "kvmnet's ruleset for the network (\`plan::build_ruleset\`)" ;;
    kvmnet-no-raw) echo "kvmnet's, without the raw prerouting chain (loopback guards)" ;;
    kvmnet-est-first) echo "kvmnet's, a plain \`ct state established,related accept\` first in its forward chain (no lookup before it)" ;;
    kvmnet-no-dnat) echo "kvmnet's, without the port-forward chains (nat prerouting and output)" ;;
    kvmnet-est-nosrc) echo "kvmnet's, its established accepts without their source check (\`iifname . ip saddr @net4\`, a pipapo lookup; a diagnosis, not a ruleset to ship)" ;;
    kvmnet-zone) echo "kvmnet's, \`ct zone set 1\` first in raw prerouting" ;;
    esac
}
commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
{
    cat <<MD
<!-- masq: rendered by scripts/bench-masq.sh; scripts/bench.sh --masq-only replaces it -->
### Masquerade: where the cost goes (issue 17)

Measured by \`scripts/bench-masq.sh\` on $(date -u +%Y-%m-%d), commit \`$commit\`: iperf3 from a
guest namespace to the "internet" namespace through one hand-made router (veth, bridge,
routing, veth: a kvmnet NAT host's hops), the router's ruleset changed between variants,
all variants alternating in one run, $RUNS runs of ${SECONDS_} s each per variant and stream
count (medians). Load average (1, 5, 15 min) $(cat "$RESULTS/masq-load-start.txt") at the start,
$(cat "$RESULTS/masq-load-end.txt") at the end, on 2 shared cores; the run under \`nice -n 19\`.

Throughput is what the run got of the CPUs; "per CPU-second" divides it by the CPU time
both iperf3 processes used (iperf3's own figure; the forwarding path runs in the sender's
softirq context on veth, so it is counted there), which depends less on the share.

| Variant | Ruleset | 1 stream, Gbit/s | ÷ routed | per CPU-s, ÷ routed | 4 streams, Gbit/s | ÷ routed | per CPU-s, ÷ routed |
|---|---|---|---|---|---|---|---|
MD
    r1=$(median routed 1)
    r4=$(median routed 4)
    c1=$(median routed 1 masq-cpu)
    c4=$(median routed 4 masq-cpu)
    for v in "${VARIANTS[@]}"; do
        a=$(median "$v" 1)
        b=$(median "$v" 4)
        echo "| $v | $(describe "$v") | $a | $(pct "$a" "$r1") | $(pct "$(median "$v" 1 masq-cpu)" "$c1") | $b | $(pct "$b" "$r4") | $(pct "$(median "$v" 4 masq-cpu)" "$c4") |"
    done
    echo
    echo "Raw samples: \`masq.csv\` in the results directory."
    echo "<!-- /masq -->"
} >"$RESULTS/masq.md"
log "wrote $RESULTS/masq.md"
