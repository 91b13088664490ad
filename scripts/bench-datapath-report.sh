#!/usr/bin/env bash
# Renders the datapath's bulk throughput of a scripts/bench.sh run (the full
# run or --datapath-only) as the marked section "datapath" of
# docs/performance.md, on stdout. Reads RESULTS/datapath.csv (round, streams,
# path, Gbit/s, Gbit/s per CPU-second of both iperf3 processes; written by
# bench.sh's iperf_all), datapath-runs.txt and datapath-load-{start,end}.txt.
# Ratios are taken round by round (paths measured in the same round, minutes
# apart at most) and their median and spread reported, beside the ratio of
# the medians. Only arithmetic on what was measured: a missing path is
# "not measured".
# Usage: scripts/bench-datapath-report.sh RESULTS-DIR
#        scripts/bench-datapath-report.sh RESULTS-DIR --ratio A B STREAMS
#   --ratio  only the median of the per-round ratios A ÷ B (a fraction;
#            nothing when not measured), for scripts/bench-report.sh's Targets
set -euo pipefail

R=${1:?usage: bench-datapath-report.sh RESULTS-DIR [--ratio A B STREAMS]}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CSV=$R/datapath.csv
[[ -f $CSV ]] || {
    echo "bench-datapath-report.sh: no $CSV" >&2
    exit 1
}
read -r RUNS SECS <"$R/datapath-runs.txt"

# samples PATH STREAMS [COLUMN]: one value a line (COLUMN 4: Gbit/s, 5: per CPU-second).
samples() { awk -F, -v v="$1" -v n="$2" -v c="${3:-4}" 'NR > 1 && $3 == v && $2 == n { print $c }' "$CSV"; }
# per_round A B STREAMS [COLUMN]: A ÷ B of every round that has both.
per_round() {
    awk -F, -v a="$1" -v b="$2" -v n="$3" -v c="${4:-4}" '
        NR > 1 && $2 == n && $3 == a { x[$1] = $c }
        NR > 1 && $2 == n && $3 == b { y[$1] = $c }
        END { for (r in x) if ((r in y) && y[r] > 0) print x[r] / y[r] }' "$CSV"
}
# stats: "median min max" of the numbers on stdin (of an even count the
# median is the mean of the middle two), nothing for none.
stats() {
    sort -g | awk '{ x[NR] = $1 } END {
        if (NR) printf "%s %s %s\n", NR % 2 ? x[(NR + 1) / 2] : (x[NR / 2] + x[NR / 2 + 1]) / 2, x[1], x[NR] }'
}
median() { stats | cut -d' ' -f1; }
if [[ ${2:-} == --ratio ]]; then
    per_round "${3:?--ratio A B STREAMS}" "${4:?--ratio A B STREAMS}" "${5:?--ratio A B STREAMS}" | median
    exit 0
fi
gbps() {
    local v
    v=$(samples "$1" "$2" | median)
    if [[ -n $v ]]; then awk -v x="$v" 'BEGIN { printf "%.1f", x }'; else echo "not measured"; fi
}
# pct_of A B STREAMS: the medians' ratio, as a percentage.
pct_of() {
    local a b
    a=$(samples "$1" "$3" | median)
    b=$(samples "$2" "$3" | median)
    if [[ -z $a || -z $b ]]; then echo "—"; else awk -v a="$a" -v b="$b" 'BEGIN { printf "%.1f %%", 100 * a / b }'; fi
}
# spread A B STREAMS: "median (min – max)" of the per-round ratios, and the
# median per CPU-second, as two table cells.
spread() {
    local s c
    s=$(per_round "$1" "$2" "$3" | stats)
    c=$(per_round "$1" "$2" "$3" 5 | median)
    if [[ -z $s ]]; then
        echo "not measured | not measured"
        return
    fi
    awk -v s="$s" -v c="$c" 'BEGIN { split(s, x, " ")
        printf "**%.1f %%** (%.1f – %.1f %%) | %.1f %%", 100 * x[1], 100 * x[2], 100 * x[3], 100 * c }'
}
# routed_for PATH: the routed path of the same direction.
routed_for() {
    case $1 in
    nat-masquerade | routed-upload) echo routed-upload ;;
    *) echo routed-no-nat ;;
    esac
}

# datapath-commit.txt: the commit, "dirty" or "clean", the run's niceness
# (bench.sh's iperf_all); the rendering's own commit without it.
if [[ -f $R/datapath-commit.txt ]]; then
    { read -r commit && read -r tree && read -r niceness; } <"$R/datapath-commit.txt"
else
    commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown) tree=unknown niceness=unknown
fi
dirty=""
[[ $tree != dirty ]] || dirty=" (with uncommitted changes)"
ended=$(date -u -r "$R/datapath-load-end.txt" "+%Y-%m-%d at %H:%M UTC")
PATHS=(raw-veth bridge routed-no-nat routed-upload nat-forward nat-masquerade)

cat <<MD
<!-- datapath: rendered by scripts/bench-datapath-report.sh; scripts/bench.sh --datapath-only replaces it -->
### Bulk throughput (iperf3, Gbit/s)

Measured by \`scripts/bench.sh\` (ended $ended), commit \`$commit\`$dirty, niceness $niceness: $RUNS rounds,
in each round every path once with 1 stream and once with 4, $SECS s each (after 1 s
omitted), the paths interleaved round by round so that load from elsewhere on the shared
machine spreads over all of them. Load average (1, 5, 15 min) $(cat "$R/datapath-load-start.txt")
at the start, $(cat "$R/datapath-load-end.txt") at the end, on 2 shared cores.

- raw-veth: two namespaces joined by one veth pair.
- bridge: two namespaces on a Linux bridge in a third (two veth pairs, the bridge).
- routed-no-nat: a kvmnet NAT host's hops without kvmnetd and without any ruleset (lib.sh's
  \`plain_router\`: "internet" -- veth -- routing -- bridge -- veth -- guest; no conntrack),
  from the "internet" to the guest: a forward's direction.
- routed-upload: the same router, from the guest to the "internet": masquerade's direction.
- nat-forward: the "internet" reaching a guest of a kvmnetd NAT network through a port
  forward (the same hops, with kvmnet's ruleset: conntrack, DNAT through the forward map).
- nat-masquerade: that guest sending to the "internet" (conntrack, masquerade).

Medians, and each path ÷ raw veth and ÷ the routed path of its direction (raw veth and
bridge ÷ routed-no-nat):

| Path | 1 stream | ÷ raw veth | ÷ routed | 4 streams | ÷ raw veth | ÷ routed |
|---|---|---|---|---|---|---|
MD
for v in "${PATHS[@]}"; do
    rt=$(routed_for "$v")
    echo "| $v | $(gbps "$v" 1) | $(pct_of "$v" raw-veth 1) | $(pct_of "$v" "$rt" 1) | $(gbps "$v" 4) | $(pct_of "$v" raw-veth 4) | $(pct_of "$v" "$rt" 4) |"
done
cat <<MD

The same ratios round by round (the two paths measured within one round, seconds apart): the median of
the $RUNS per-round ratios, their spread (min – max), and the median per CPU-second of both
iperf3 processes (the forwarding path runs in the sender's softirq context on veth, so it is
counted there; this depends less on the share of the CPUs the run got):

| Ratio | 1 stream | per CPU-s | 4 streams | per CPU-s |
|---|---|---|---|---|
MD
while read -r a b what; do
    echo "| $a ÷ $b ($what) | $(spread "$a" "$b" 1) | $(spread "$a" "$b" 4) |"
done <<'ROWS'
nat-forward routed-no-nat NAT's own cost, like for like: the issue's target
routed-no-nat raw-veth the ceiling of any path on these hops ÷ raw veth
nat-forward raw-veth issue 4's view
nat-masquerade routed-upload like for like
routed-upload raw-veth the ceiling, upload
nat-masquerade raw-veth issue 4's view
ROWS
echo
echo "Raw samples: \`datapath.csv\` in the results directory."
echo "<!-- /datapath -->"
