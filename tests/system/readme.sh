# shellcheck shell=bash
# The README's install commands, for the system suite: sourcing this defines
# readme_install_lines, which prints the lines of the first code block under
# "## Installing under systemd" in README.md, one command a line, with
# trailing comments and a leading `sudo ` removed (the suite runs as root).
# The suite runs exactly these lines, so README and test cannot drift:
# those up to `meson install` on the machine (tests/system/release-build.sh
# and, with DESTDIR, test_systemd.sh), the rest inside the container.

# readme_install_lines README
readme_install_lines() {
    awk '
        /^## / { in_section = ($0 == "## Installing under systemd"); next }
        in_section && !in_block && /^```/ { in_block = 1; next }
        in_block && /^```/ { exit }
        in_block {
            sub(/[ \t]+#.*$/, ""); sub(/^[ \t]+/, ""); sub(/[ \t]+$/, "")
            if ($0 == "" || $0 ~ /^#/) next
            sub(/^sudo +/, "")
            print
        }' "$1"
}

# readme_host_lines README / readme_container_lines README: the lines up to
# and including `meson install ...`, and the lines after it.
readme_host_lines() { readme_install_lines "$1" | awk '{ print } /^meson install / { exit }'; }
readme_container_lines() { readme_install_lines "$1" | awk 'done { print } /^meson install / { done = 1 }'; }

# readme_with_build_dir LINE DIR: LINE with its build-release argument
# replaced by DIR (the suite may be given a tree elsewhere).
readme_with_build_dir() {
    local line=$1 dir=$2 w out=()
    for w in $line; do
        if [[ $w == build-release ]]; then out+=("$dir"); else out+=("$w"); fi
    done
    echo "${out[*]}"
}
