# shellcheck shell=bash
# Sourced by the recovery benchmarks (coexist-recovery.sh,
# firewalld-recovery.sh) after tests/e2e/lib.sh.

now_ms() { echo $(($(date +%s%N) / 1000000)); }
# p50 and max of the numbers on stdin.
stats() { sort -n | awk '{ v[NR] = $1 } END { printf "p50 %d ms, max %d ms (%d runs)", v[int((NR + 1) / 2)], v[NR], NR }'; }
