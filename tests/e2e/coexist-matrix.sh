#!/usr/bin/env bash
# The coexistence matrix of docs/firewalls.md: runs each cell's e2e test
# (each is also a meson test of its own) and prints one line per cell and
# "cells passing / total"; fails unless every cell passes. A test that
# covers several cells runs once. Needs KVMNETD and
# KVMNETCTL like every e2e test.
# Usage: bash tests/e2e/coexist-matrix.sh
set -uo pipefail
here=$(dirname "${BASH_SOURCE[0]}")

cells=(
    "(a) no other firewall|test_nat_basic"
    "(b) firewalld (real firewalld)|test_coexist_firewalld"
    "(c) Docker (real dockerd)|test_coexist_docker"
    "(c6) Docker, IPv6: SLAAC, DNS, NAT66, v6 forward|test_coexist_docker"
    "(d) ufw, default policies (exact diagnosis)|test_coexist_ufw"
    "(d6) ufw, IPv6: DHCPv6, RA, forwarded v6 (exact diagnosis)|test_coexist_ufw6"
    "(e) foreign table, forward policy drop (exact diagnosis)|test_diagnose"
    "(e') foreign table: degraded state and its signals|test_coexist_degraded"
    "(e6) foreign ip6 table, forward policy drop: v6 out, v6 forward|test_coexist_foreign6"
)
passed=0
lines=()
declare -A results
for cell in "${cells[@]}"; do
    name=${cell%%|*} test=${cell#*|}
    if [[ -z ${results[$test]:-} ]]; then
        bash "$here/$test.sh" >"/tmp/kvmnet-matrix-$test.log" 2>&1
        case $? in
        0) results[$test]=PASS ;;
        77) results[$test]=SKIP ;;
        *) results[$test]="FAIL (log: /tmp/kvmnet-matrix-$test.log)" ;;
        esac
        [[ ${results[$test]} == FAIL* ]] || rm -f "/tmp/kvmnet-matrix-$test.log"
    fi
    result=${results[$test]}
    [[ $result != PASS ]] || passed=$((passed + 1))
    lines+=("$(printf '%-58s %-23s %s' "$name" "$test" "$result")")
done
echo "coexistence matrix"
printf '%s\n' "${lines[@]}"
echo "cells passing: $passed / ${#cells[@]}"
((passed == ${#cells[@]}))
