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
# Writes RESULTS/masq.csv (figure,variant,n,unit,value,round; n = streams)
# and RESULTS/masq.md (the marked section "masq" of docs/performance.md):
# medians, and the spread of the per-round ratio variant ÷ routed (the two
# measured back to back in the same round, which cancels most of what the
# other users of a shared machine do to both).
#
# Usage: sudo scripts/bench-masq.sh RESULTS-DIR [RUNS] [SECONDS]
# RUNS rounds (default 7) of SECONDS per iperf3 run (default 4, after 1 s
# left out for the ramp-up): about 7.5 min for the 6 variants. MASQ_PIN=1
# pins the iperf3 client (and so the forwarding path, which runs in its
# softirq context) to CPU 0 and the server to CPU 1.
# Everything runs in namespaces this script creates (tests/e2e/lib.sh's
# guards); iperf3 traffic flows only between them.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RESULTS=${1:?usage: bench-masq.sh RESULTS-DIR [RUNS] [SECONDS]}
RUNS=${2:-7}
SECONDS_=${3:-4}
PIN=${MASQ_PIN:-0}
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
echo "figure,variant,n,unit,value,round" >"$CSV"
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

# Variants of kvmnet's ruleset, each one change (awk/sed on `nft list` text):
#   est-first    a plain `ct state established,related accept` first in the
#                forward chain: no lookup at all before it (the floor of rule
#                order; kvmnet's own established accepts check the bridges'
#                subnets)
#   pipapo       kvmnet's established accepts with their subnet checks in the
#                interval set (`iifname . ip saddr @net4`, the kernel's pipapo
#                set) instead of the hash sets of one prefix length
#                (`iifname . ip saddr & 255.255.255.0 @net4_p24`): the form
#                before issue 17's hash lookups, for comparison
variant_file() {
    local v=$1 out=$T/$1.nft
    case $v in
    routed) : >"$out" ;;
    conntrack) printf 'table inet m {\n chain f { type filter hook forward priority filter; ct state established accept; }\n}\n' >"$out" ;;
    masquerade) printf 'table inet m {\n chain f { type filter hook forward priority filter; ct state established accept; }\n chain p { type nat hook postrouting priority srcnat; oifname "uplink0" masquerade; }\n}\n' >"$out" ;;
    kvmnet) cp "$T/base.nft" "$out" ;;
    kvmnet-est-first)
        awk '{ print } /chain guest_forward \{/ { getline; print; print "\t\tct state established,related accept" }' \
            "$T/base.nft" >"$out"
        ;;
    kvmnet-pipapo)
        sed -e '/comment "established, /s/ \(ip6\{0,1\} [sd]addr\) & [0-9a-f:.]* @net\([46]\)_p[0-9]*/ \1 @net\2/g' \
            "$T/base.nft" >"$out"
        ;;
    *) fail "unknown variant $v" ;;
    esac
    # A variant that edits a shape the ruleset no longer has would measure
    # kvmnet's ruleset under another name.
    if [[ $v == kvmnet-* ]] && cmp -s "$out" "$T/base.nft"; then
        fail "variant $v does not change kvmnet's ruleset (its edit no longer applies)"
    fi
}
CLIENT_PIN=() SERVER_PIN=()
if ((PIN)); then CLIENT_PIN=(taskset -c 0) SERVER_PIN=(taskset -c 1); fi
VARIANTS=(routed conntrack masquerade kvmnet kvmnet-est-first kvmnet-pipapo)
log "${#VARIANTS[@]} routers, one per variant"
for k in "${!VARIANTS[@]}"; do
    v=${VARIANTS[k]}
    variant_file "$v"
    ((k == 0)) || router "$k"
    in_ns "${PFX}${k}h" nft -f "$T/$v.nft" || fail "variant $v does not load"
    spawn_in_ns "${PFX}${k}i" "${SERVER_PIN[@]}" iperf3 -s -B 203.0.113.2 -p 5201 >>"$T/iperf3-server.log" 2>&1
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
            in_ns "${PFX}${k}g" "${CLIENT_PIN[@]}" iperf3 -c 203.0.113.2 -p 5201 -t "$SECONDS_" -O 1 -P "$streams" -J \
                >"$T/iperf3.json" 2>&1 ||
                fail "iperf3 $v: $(tail -5 "$T/iperf3.json")"
            # Throughput depends on the CPU share the run gets on a shared machine;
            # the bits moved per CPU-second of both iperf3 processes (system time
            # includes the forwarding path, which runs in the sender's softirq
            # context on veth) depends less on it.
            jq -r --arg v "$v" --arg n "$streams" --arg r "$r" '.end as $e |
                "masq,\($v),\($n),Gbit/s,\($e.sum_received.bits_per_second / 1e9),\($r)",
                "masq-cpu,\($v),\($n),Gbit/CPU-s,\(($e.sum_received.bits_per_second / 1e9) /
                    (($e.cpu_utilization_percent.host_total + $e.cpu_utilization_percent.remote_total) / 100)),\($r)"' \
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
# spread VARIANT STREAMS: the ratio VARIANT ÷ routed of each round (the two
# run back to back), as "median (min-max)" in percent.
spread() {
    awk -F, -v v="$1" -v n="$2" '$1 == "masq" && $3 == n && $2 == "routed" { r[$6] = $5 }
        $1 == "masq" && $3 == n && $2 == v { x[$6] = $5 }
        END { for (k in x) if (k in r && r[k] > 0) print 100 * x[k] / r[k] }' "$CSV" | sort -g | awk '
        { x[NR] = $1 }
        END { if (NR) printf "%.1f %% (%.1f-%.1f)\n", NR % 2 ? x[(NR + 1) / 2] : (x[NR / 2] + x[NR / 2 + 1]) / 2, x[1], x[NR] }'
}
describe() {
    case $1 in
    routed) echo "no ruleset (no conntrack, no NAT)" ;;
    conntrack) echo "one forward rule \`ct state established accept\`" ;;
    masquerade) echo "conntrack and one \`oifname uplink0 masquerade\`" ;;
    kvmnet) echo "kvmnet's ruleset for the network (\`plan::build_ruleset\`)" ;;
    kvmnet-est-first) echo "kvmnet's, a plain \`ct state established,related accept\` first in its forward chain (no lookup before it)" ;;
    kvmnet-pipapo) echo "kvmnet's, its established accepts' subnet checks in the interval set (\`iifname . ip saddr @net4\`, pipapo) instead of the hash sets per prefix length: the form before" ;;
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
all variants alternating in one run, $RUNS rounds of ${SECONDS_} s (after 1 s left out) per variant and
stream count$( ((PIN)) && echo ", the iperf3 client pinned to CPU 0 and the server to CPU 1"). "÷ routed" divides the
medians; "per round" is the median of each round's ratio to the routed run just before it,
with its smallest and largest. Load average (1, 5, 15 min) $(cat "$RESULTS/masq-load-start.txt") at the start,
$(cat "$RESULTS/masq-load-end.txt") at the end, on 2 shared cores; the run under \`nice -n 19\`.

Throughput is what the run got of the CPUs; "per CPU-second" divides it by the CPU time
both iperf3 processes used (iperf3's own figure; the forwarding path runs in the sender's
softirq context on veth, so it is counted there), which depends less on the share.

| Variant | Ruleset | 1 stream, Gbit/s | ÷ routed | per round (min-max) | per CPU-s, ÷ routed | 4 streams, Gbit/s | ÷ routed | per round (min-max) | per CPU-s, ÷ routed |
|---|---|---|---|---|---|---|---|---|---|
MD
    r1=$(median routed 1)
    r4=$(median routed 4)
    c1=$(median routed 1 masq-cpu)
    c4=$(median routed 4 masq-cpu)
    for v in "${VARIANTS[@]}"; do
        a=$(median "$v" 1)
        b=$(median "$v" 4)
        echo "| $v | $(describe "$v") | $a | $(pct "$a" "$r1") | $(spread "$v" 1) | $(pct "$(median "$v" 1 masq-cpu)" "$c1") |" \
            "$b | $(pct "$b" "$r4") | $(spread "$v" 4) | $(pct "$(median "$v" 4 masq-cpu)" "$c4") |"
    done
    echo
    echo "Raw samples: \`masq.csv\` in the results directory."
    echo "<!-- /masq -->"
} >"$RESULTS/masq.md"
log "wrote $RESULTS/masq.md"
