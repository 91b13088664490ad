#!/usr/bin/env bash
# Every tests/unit/test_X.cpp keeps its code in `namespace unit_test_X { ... }`
# (opened after its #include lines, closed at its end), so that the unity
# build of unit_tests (-Dunit_unity=true, scripts/test.sh) can put several
# files in one translation unit without their helpers colliding.
# Usage: unit_namespaces.sh TESTS_UNIT_DIR
set -euo pipefail
dir=${1:?usage: unit_namespaces.sh TESTS_UNIT_DIR}
bad=0 checked=0
for f in "$dir"/test_*.cpp; do
    stem=$(basename "$f" .cpp)
    checked=$((checked + 1))
    if ! grep -q "^namespace unit_${stem} {\$" "$f"; then
        echo "$f: no 'namespace unit_${stem} {' line" >&2
        bad=$((bad + 1))
    elif ! tail -n 1 "$f" | grep -q "^}  // namespace unit_${stem}\$"; then
        echo "$f: does not end with '}  // namespace unit_${stem}'" >&2
        bad=$((bad + 1))
    fi
done
if ((checked == 0)); then
    echo "no test_*.cpp found in $dir" >&2
    exit 1
fi
echo "$checked files checked, $bad without their namespace"
((bad == 0))
