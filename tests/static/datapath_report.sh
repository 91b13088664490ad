#!/usr/bin/env bash
# scripts/bench-datapath-report.sh on a made-up results directory: ratios
# are taken round by round (not as the ratio of the medians), their median
# and spread reported; a path that was not measured says so; the section's
# markers are the ones docs/performance.md has, so `bench.sh --datapath-only`
# replaces §2's table in place. Needs neither root nor a build.
# Usage: datapath_report.sh SRCROOT
set -euo pipefail
src=${1:?usage: datapath_report.sh SRCROOT}
report=$src/scripts/bench-datapath-report.sh
R=$(mktemp -d)
trap 'rm -rf "$R"' EXIT
failures=0
check() { # WHAT HAYSTACK NEEDLE
    if [[ $2 != *"$3"* ]]; then
        echo "FAIL: $1: no '$3' in:" >&2
        head -c 4000 <<<"$2" >&2
        failures=$((failures + 1))
    fi
}

echo "3 3" >"$R/datapath-runs.txt"
echo "1.00 1.00 1.00" >"$R/datapath-load-start.txt"
echo "2.00 2.00 2.00" >"$R/datapath-load-end.txt"
printf 'abc1234\nclean\n19\n' >"$R/datapath-commit.txt"
# Round by round, nat-forward ÷ routed-no-nat is 0.5, 1.0, 0.9 (median 90 %);
# the medians' ratio would be 10 ÷ 12 (83.3 %). 4 streams: 100 % each round.
# Per CPU-second (the last column), 0.8 every round at 1 stream.
{
    echo "round,streams,variant,gbps,gbps_per_cpu_s"
    echo "0,1,raw-veth,20,10"
    echo "0,1,routed-no-nat,20,10"
    echo "0,1,nat-forward,10,8"
    echo "1,1,raw-veth,20,10"
    echo "1,1,routed-no-nat,10,10"
    echo "1,1,nat-forward,10,8"
    echo "2,1,raw-veth,20,10"
    echo "2,1,routed-no-nat,12,10"
    echo "2,1,nat-forward,10.8,8"
    for r in 0 1 2; do
        echo "$r,4,raw-veth,30,10"
        echo "$r,4,routed-no-nat,$((20 + r)),10"
        echo "$r,4,nat-forward,$((20 + r)),10"
    done
} >"$R/datapath.csv"

out=$(bash "$report" "$R")
check "the markers of docs/performance.md's section" "$out" \
    "<!-- datapath: rendered by scripts/bench-datapath-report.sh; scripts/bench.sh --datapath-only replaces it -->"
check "the end marker" "$out" "<!-- /datapath -->"
check "what was measured" "$out" "commit \`abc1234\`, niceness 19: 3 rounds"
check "the loads" "$out" "1.00 1.00 1.00"
check "the medians ÷ the routed path" "$out" "| nat-forward | 10.0 | 50.0 % | 83.3 % | 21.0 | 70.0 % | 100.0 % |"
check "the per-round ratios, 1 stream" "$out" \
    "| nat-forward ÷ routed-no-nat (NAT's own cost, like for like: the issue's target) | **90.0 %** (50.0 – 100.0 %) | 80.0 % | **100.0 %** (100.0 – 100.0 %) | 100.0 % |"
check "a path not measured" "$out" "| nat-masquerade | not measured | — | — | not measured | — | — |"
check "a ratio of a path not measured" "$out" \
    "| nat-masquerade ÷ routed-upload (like for like) | not measured | not measured | not measured | not measured |"
ratio=$(bash "$report" "$R" --ratio nat-forward routed-no-nat 1)
[[ $ratio == 0.9 ]] || {
    echo "FAIL: --ratio nat-forward routed-no-nat 1 printed '$ratio', not 0.9" >&2
    failures=$((failures + 1))
}
ratio=$(bash "$report" "$R" --ratio nat-masquerade routed-upload 1)
[[ -z $ratio ]] || {
    echo "FAIL: --ratio of a path not measured printed '$ratio', not nothing" >&2
    failures=$((failures + 1))
}

doc=$(cat "$src/docs/performance.md")
check "docs/performance.md has the section to replace" "$doc" "$(head -n 1 <<<"$out")"
check "... and its end" "$doc" "<!-- /datapath -->"

((failures == 0)) || exit 1
echo "bench-datapath-report.sh: per-round ratios, spreads, not-measured paths and the doc's markers as expected"
