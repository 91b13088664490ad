#!/usr/bin/env bash
# THE test command (README and CI): installs dependencies, builds the normal
# and the ASan/UBSan trees, and the release tree exactly as README.md's
# "Installing under systemd" says (build-release), checks formatting, runs
# the unit tests under the sanitizers, every suite but `system` in the
# normal build, then the `system` suite (the release tree installed into a
# Debian root file system booted under systemd-nspawn), then builds the
# libFuzzer target with clang in a fourth tree (build-fuzz) and runs it for
# a bounded time (FUZZ_SECONDS, default 60) on a copy of tests/fuzz/corpus.
# Each step prints how long it took. It ends with one line
# "N passed, N failed, N skipped" summed over all runs (the fuzz run counts
# as one test: a crash, a sanitizer report or a build failure of the fuzz
# tree is one failure; so does a release build that fails).
# Root is needed only by the e2e and system tests; without it they report SKIP.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

t=$SECONDS
bash scripts/deps.sh
# The other firewalls of tests/e2e/test_coexist_{firewalld,docker,ufw}.sh (never started on the machine).
bash scripts/deps-coexist.sh
# gtkmm for kvmnet-applet, and the desktop suite's Xvfb, AT-SPI and ImageMagick.
bash scripts/deps-desktop.sh
# FRR for tests/e2e/test_overlay_evpn.sh (never started on the machine).
bash scripts/deps-overlay.sh
# took START WHAT: how long a step took, from SECONDS at its start.
took() { echo "==> $2 took $((SECONDS - $1)) s"; }
took "$t" "dependencies"

# Reuse an existing build tree (ninja re-runs meson when meson.build changes);
# set up a fresh one only where none is configured yet.
setup() {
    local dir=$1
    shift
    if [[ -f $dir/build.ninja ]]; then
        # Options may have changed since the tree was made, or be new to it:
        # meson configure does not know an option added to meson_options.txt
        # since, and meson 1.0's setup --reconfigure drops a changed cpp_args,
        # so the one reads the options file again and the other sets them.
        if (($# > 0)); then
            meson setup --reconfigure "$dir" >/dev/null
            meson configure "$dir" "$@" >/dev/null
        fi
    else
        rm -rf "$dir"
        meson setup "$dir" "$@"
    fi
}

# Compile time is most of CI's budget (2 cores, no compiler cache on a fresh
# machine), so the test trees trade debug information and optimization for
# it: -g1 (line tables: backtraces and sanitizer reports keep file:line, gdb
# loses local variables) costs a third less than -g at -O2; the sanitizer
# tree at -O1 (what AddressSanitizer's documentation recommends) compiles
# about 2.5 times faster than at -O2 (docs/architecture.md, "Testing"). A
# developer who wants full debug information configures a tree of their own.
# The release tree is the README's, untouched.
echo "==> configure"
setup build -Dcpp_args=-g1 -Dunit_unity=true
setup build-asan -Db_sanitize=address,undefined -Db_lundef=false -Doptimization=1 -Dcpp_args=-g1 -Dunit_unity=true

# On a broken build still end with the summary line, so it reads as a
# failure and never as "ran no test".
build_failed() {
    echo "build failed in $1 (see above)"
    echo
    echo "0 passed, 1 failed, 0 skipped"
    exit 1
}

echo "==> build"
t=$SECONDS
ninja -C build -j2 || build_failed build
took "$t" "build"
# The sanitizer tree runs the unit tests only; building just that target
# keeps CI well inside its time budget.
t=$SECONDS
ninja -C build-asan -j2 tests/unit/unit_tests || build_failed build-asan
took "$t" "sanitizer build (unit tests)"

# The README's own release build (tests/system/release-build.sh runs its
# lines); the system suite installs this tree. A failure is counted below,
# and the other suites still run.
echo "==> release build (README.md, Installing under systemd)"
t=$SECONDS
release_ok=1
bash tests/system/release-build.sh "$PWD/build-release" || release_ok=0
took "$t" "release build"

format_failed=0
if [[ -f .clang-format ]]; then
    echo "==> clang-format check"
    mapfile -t sources < <(find daemon client tests -type f \( -name '*.cpp' -o -name '*.hpp' \) 2>/dev/null | sort)
    if ((${#sources[@]} > 0)); then
        if ! clang-format --dry-run --Werror "${sources[@]}"; then
            echo "clang-format: the files above are not formatted (run clang-format -i on them)" >&2
            format_failed=1
        fi
    fi
fi

logdir=$(mktemp -d)
trap 'rm -rf "$logdir"' EXIT

passed=0 failed=0 skipped=0
if ((!release_ok)); then
    echo "release build failed (see above); the system suite is not run"
    failed=$((failed + 1))
fi

# Reads meson's closing summary ("Ok: 3", "Fail: 0", ...) from a log file and
# adds it to the totals. A run that printed no summary (meson refused to run,
# e.g. an unknown suite) counts as one failure so it cannot pass silently.
count() {
    local log=$1 rc=$2 v
    if ! grep -qE '^Ok:[[:space:]]+[0-9]+' "$log"; then
        if ((rc != 0)); then failed=$((failed + 1)); fi
        return
    fi
    field() { sed -nE "s/^$1:[[:space:]]+([0-9]+).*/\1/p" "$log" | tail -n1; }
    v=$(field 'Ok'); passed=$((passed + ${v:-0}))
    v=$(field 'Expected Fail'); passed=$((passed + ${v:-0}))
    v=$(field 'Fail'); failed=$((failed + ${v:-0}))
    v=$(field 'Unexpected Pass'); failed=$((failed + ${v:-0}))
    v=$(field 'Timeout'); failed=$((failed + ${v:-0}))
    v=$(field 'Skipped'); skipped=$((skipped + ${v:-0}))
}

echo "==> unit tests (ASan/UBSan)"
t=$SECONDS
set +e
meson test -C build-asan --suite unit --print-errorlogs 2>&1 | tee "$logdir/asan.log"
rc=${PIPESTATUS[0]}
set -e
count "$logdir/asan.log" "$rc"
took "$t" "unit tests (ASan/UBSan)"

echo "==> all tests but the system suite"
if ((EUID != 0)); then
    echo "note: not root, the e2e and system tests will be skipped"
fi
t=$SECONDS
set +e
meson test -C build --no-suite system --print-errorlogs 2>&1 | tee "$logdir/all.log"
rc=${PIPESTATUS[0]}
set -e
count "$logdir/all.log" "$rc"
took "$t" "all tests but the system suite"

if ((release_ok)); then
    echo "==> system tests (real systemd in systemd-nspawn; the first run builds the root file system)"
    t=$SECONDS
    set +e
    # --verbose: the suite prints each check as it runs it.
    KVMNET_RELEASE_BUILD=$PWD/build-release meson test -C build --suite system --verbose 2>&1 |
        tee "$logdir/system.log"
    rc=${PIPESTATUS[0]}
    set -e
    count "$logdir/system.log" "$rc"
    took "$t" "system tests"
fi

# The libFuzzer target: clang, its own tree, only that target (and the pure
# library, so model and plan are also checked to build warning-free with
# clang) built. A crash leaves its input in build-fuzz/artifacts/ (printed),
# to reproduce with `build-fuzz/tests/fuzz/fuzz_document FILE`.
echo "==> fuzzing the document parsers (${FUZZ_SECONDS:-60} s)"
t=$SECONDS
fuzz_ok=0
if CC=clang CXX=clang++ setup build-fuzz -Dfuzzing=true && ninja -C build-fuzz -j2 tests/fuzz/fuzz_document daemon/libkvmnet-pure.a; then
    rm -rf build-fuzz/corpus build-fuzz/artifacts
    cp -r tests/fuzz/corpus build-fuzz/corpus
    mkdir -p build-fuzz/artifacts
    set +e
    build-fuzz/tests/fuzz/fuzz_document -max_total_time="${FUZZ_SECONDS:-60}" -max_len=8192 -timeout=10 \
        -print_final_stats=1 -dict=tests/fuzz/document.dict -artifact_prefix=build-fuzz/artifacts/ \
        build-fuzz/corpus >"$logdir/fuzz.log" 2>&1
    rc=$?
    set -e
    grep -E '^#[0-9]+[[:space:]]+DONE|^stat::number_of_executed_units|^stat::average_exec_per_sec' "$logdir/fuzz.log" || true
    if ((rc == 0)); then
        fuzz_ok=1
    else
        tail -n 60 "$logdir/fuzz.log"
        for f in build-fuzz/artifacts/*; do
            if [[ -e $f ]]; then echo "fuzz: failing input: $f"; fi
        done
        echo "fuzz: exit status $rc (see above)"
    fi
else
    echo "fuzz: the fuzz tree did not configure or build (see above)"
fi
if ((fuzz_ok)); then passed=$((passed + 1)); else failed=$((failed + 1)); fi
took "$t" "fuzzing (build and run)"

if ((format_failed)); then
    echo "formatting check failed (see above)"
fi
echo
echo "$passed passed, $failed failed, $skipped skipped"

if ((failed > 0 || format_failed || passed == 0)); then
    exit 1
fi
