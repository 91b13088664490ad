#!/usr/bin/env bash
# Builds (or finds in its cache) the Debian root file system the system
# suite boots with systemd-nspawn, and prints its path on stdout.
# Usage: rootfs.sh [PACKAGE...]: the packages of the libraries kvmnetd and
# kvmnetctl link (test_systemd.sh finds them from the binaries, as a
# package's Depends would name them) are added to the list below.
#
# Runtime packages only: what an installed kvmnet needs (systemd, dbus,
# polkitd, dnsmasq-base and those libraries), iproute2/nftables/busybox for
# the test's own guest and "internet" namespaces and checks, passwd for the
# test's users. Not procps: the unit must work without /bin/kill (issue
# #10), so the test must not bring it.
#
# The packages come from the Debian mirror apt is configured with on this
# machine (the stanzas of /etc/apt/sources.list* for this machine's release;
# nothing else is contacted). The result is cached in
# $KVMNET_ROOTFS_CACHE (default /var/cache/kvmnet-test) under a name made
# from this script, the package list and those sources: a change to any of
# them builds a new one (older ones are removed). A clean machine builds it
# in about 2 minutes. Callers copy it before changing anything in it.
#
# Needs root and mmdebstrap (scripts/deps.sh).
set -euo pipefail

packages=(
    systemd dbus polkitd dnsmasq-base
    iproute2 nftables busybox passwd
    # systemd-analyze verify checks the unit's Documentation= man pages with man
    man-db
)
# The binaries' libraries, sorted so that the cache key does not depend on
# their order.
mapfile -t libs < <(printf '%s\n' "$@" | sort -u | sed '/^$/d')
packages+=("${libs[@]}")

cache=${KVMNET_ROOTFS_CACHE:-/var/cache/kvmnet-test}
say() { echo "rootfs: $*" >&2; }

((EUID == 0)) || { say "needs root (mmdebstrap --mode=root)"; exit 1; }
command -v mmdebstrap >/dev/null || { say "mmdebstrap missing (tests/system/deps.sh)"; exit 1; }

# shellcheck source=/dev/null
. /etc/os-release
suite=${VERSION_CODENAME:?no VERSION_CODENAME in /etc/os-release}

# The apt sources of this release: deb822 stanzas and one-line entries
# whose suite is SUITE or SUITE-something (updates, security), as written.
# Other repositories configured here (vendors' suites) are left out.
sources=$(
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -f $f ]] || continue
        awk -v s="$suite" '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i !~ /^\[/ && $i !~ /\]$/) break;
            if ($(i + 1) == s || index($(i + 1), s "-") == 1) print }' "$f"
    done
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -f $f ]] || continue
        awk -v s="$suite" 'BEGIN { RS = ""; ORS = "\n\n" }
            { keep = 0; n = split($0, l, "\n");
              for (i = 1; i <= n; i++) if (l[i] ~ /^Suites:/) { m = split(l[i], w, /[ \t]+/);
                  for (j = 2; j <= m; j++) if (w[j] == s || index(w[j], s "-") == 1) keep = 1 }
              if (keep) print }' "$f"
    done
)
[[ -n $sources ]] || { say "no apt source for '$suite' in /etc/apt/sources.list*"; exit 1; }

key=$({
    cat "${BASH_SOURCE[0]}"
    printf '%s\n' "${packages[@]}" "$sources" "$(dpkg --print-architecture)"
} | sha256sum | cut -c1-16)
root=$cache/rootfs-$suite-$key

mkdir -p "$cache"
# One builder at a time; a run that waited finds the root already built.
exec 9>"$cache/.rootfs.lock"
flock 9
if [[ -f $root/.complete ]]; then
    say "cached: $root"
    echo "$root"
    exit 0
fi

for old in "$cache"/rootfs-*; do
    [[ -e $old && $old != "$root" ]] || continue
    say "removing outdated $old"
    rm -rf --one-file-system "$old"
done
tmp=$root.tmp.$$
rm -rf --one-file-system "$tmp"
trap 'rm -rf --one-file-system "$tmp"' EXIT

say "building $root ($suite: ${packages[*]})"
start=$SECONDS
# --variant=essential: only Essential:yes packages besides the list (no apt,
# no priority-important packages such as procps). Documentation and locales
# are not installed. The hook's $1 is mmdebstrap's (the new root), hence the
# single quotes.
# shellcheck disable=SC2016
mmdebstrap --mode=root --variant=essential --format=directory \
    --include="$(
        IFS=,
        echo "${packages[*]}"
    )" \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    --customize-hook='rm -f "$1"/etc/machine-id "$1"/var/lib/dbus/machine-id' \
    --quiet \
    "$suite" "$tmp" - <<<"$sources" >&2
touch "$tmp/.complete"
mv "$tmp" "$root"
trap - EXIT
say "built in $((SECONDS - start)) s: $(du -sh "$root" | cut -f1)"
echo "$root"
