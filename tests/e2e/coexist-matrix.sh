#!/usr/bin/env bash
# The coexistence matrix of docs/firewalls.md: runs each cell's e2e test
# (each is also a meson test of its own) and prints one line per cell and
# "cells passing / total"; fails unless every cell passes. Needs KVMNETD and
# KVMNETCTL like every e2e test.
# Usage: bash tests/e2e/coexist-matrix.sh
set -uo pipefail
here=$(dirname "${BASH_SOURCE[0]}")

cells=(
    "(a) no other firewall|test_nat_basic"
    "(b) firewalld (real firewalld)|test_coexist_firewalld"
    "(c) Docker (real dockerd)|test_coexist_docker"
    "(d) ufw, default policies (exact diagnosis)|test_coexist_ufw"
    "(e) foreign table, forward policy drop (exact diagnosis)|test_diagnose"
)
passed=0
lines=()
for cell in "${cells[@]}"; do
    name=${cell%%|*} test=${cell#*|}
    bash "$here/$test.sh" >"/tmp/kvmnet-matrix-$test.log" 2>&1
    case $? in
    0) result=PASS passed=$((passed + 1)) ;;
    77) result=SKIP ;;
    *) result="FAIL (log: /tmp/kvmnet-matrix-$test.log)" ;;
    esac
    [[ $result == FAIL* ]] || rm -f "/tmp/kvmnet-matrix-$test.log"
    lines+=("$(printf '%-58s %-23s %s' "$name" "$test" "$result")")
done
echo "coexistence matrix"
printf '%s\n' "${lines[@]}"
echo "cells passing: $passed / ${#cells[@]}"
((passed == ${#cells[@]}))
