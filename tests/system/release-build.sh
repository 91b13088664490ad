#!/usr/bin/env bash
# Builds the release tree exactly as README.md's "Installing under systemd"
# says (its lines before `meson install`, run from the source root), for the
# system suite to install from. scripts/test.sh runs it once and passes the
# tree on as KVMNET_RELEASE_BUILD; test_systemd.sh runs it itself when that
# is not set. Usage: release-build.sh [DIR] (default: SRCROOT/build-release,
# the README's own path). A tree that is already configured is set up again
# with --reconfigure (same options; `meson setup` refuses a configured tree).
set -euo pipefail
srcdir=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
dir=${1:-$srcdir/build-release}
source "$srcdir/tests/system/readme.sh"

cd "$srcdir"
mapfile -t lines < <(readme_host_lines README.md)
[[ ${lines[-1]-} == "meson install "* ]] || {
    echo "release-build: README.md's install block has no 'meson install' line" >&2
    exit 1
}
unset 'lines[-1]'
for line in "${lines[@]}"; do
    line=$(readme_with_build_dir "$line" "$dir")
    if [[ $line == "meson setup "* && -f $dir/build.ninja ]]; then
        line="meson setup --reconfigure ${line#meson setup }"
    fi
    echo "release-build: \$ $line" >&2
    eval "$line"
done
