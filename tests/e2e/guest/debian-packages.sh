# Fetching a Debian kernel and busybox-static for the test images, shared by
# tests/e2e/guest/build-guest.sh (the tiny QEMU guest) and
# tests/vm/build-vm.sh (the full-kernel test VM). Source it after defining
# say, die, CACHE (an existing directory, locked by the caller) and SRCDIR.
#
# The packages are fetched with `apt-get download` (the Debian mirror is the
# only network used) and unpacked with `dpkg-deb -x` into the cache: nothing
# is installed on the host, its /boot and /lib/modules stay untouched.

# shellcheck shell=bash

# need_tools TOOL...: runs scripts/deps.sh when one is missing; dies if it
# still is.
need_tools() {
    local t missing=()
    for t in "$@"; do
        command -v "$t" >/dev/null || missing+=("$t")
    done
    ((${#missing[@]} == 0)) && return 0
    say "missing host tools: ${missing[*]} - running scripts/deps.sh"
    bash "$SRCDIR/scripts/deps.sh" || die "scripts/deps.sh failed"
    for t in "${missing[@]}"; do
        command -v "$t" >/dev/null || die "still missing after scripts/deps.sh: $t"
    done
}

# show PKG...: one line "PACKAGE VERSION SIZE IMAGE-DEP" per package apt
# knows (candidate versions; IMAGE-DEP is the linux-image-<release> package a
# metapackage depends on, or "-"). One apt-cache call: each costs ~0.5 s.
show() {
    apt-cache show --no-all-versions "$@" 2>/dev/null | awk '
        function flush() { if (p != "") print p, v, s, (d == "" ? "-" : d); p = v = s = d = "" }
        /^Package: / { flush(); p = $2 }
        /^Version: / { v = $2 }
        /^Size: / { s = $2 }
        /^Depends: / { if (match($0, /linux-image-[0-9][^ ,|]*/)) d = substr($0, RSTART, RLENGTH) }
        END { flush() }' || true
}

# pick_kernel METAPACKAGE...: "PACKAGE VERSION SIZE" of the smallest kernel
# image the metapackages depend on; sets busybox_ver on the way.
pick_kernel() {
    local metas pkg ver size dep best="" best_size=""
    local -a reals
    metas=$(show "$@" busybox-static)
    busybox_ver=$(awk '$1 == "busybox-static" { print $2 }' <<<"$metas")
    mapfile -t reals < <(awk '$1 != "busybox-static" { print ($4 == "-" ? $1 : $4) }' <<<"$metas")
    ((${#reals[@]})) || return 0
    while read -r pkg ver size dep; do
        [[ $dep == - && $size =~ ^[0-9]+$ ]] || continue
        if [[ -z $best || $size -lt $best_size ]]; then
            best="$pkg $ver $size"
            best_size=$size
        fi
    done < <(show "${reals[@]}")
    echo "$best"
}

# choose_packages METAPACKAGE...: sets kpkg, kver, ksize, krel and
# busybox_ver (all empty when apt knows none of them even after an
# `apt-get update`, e.g. offline: the caller falls back to its cache).
# shellcheck disable=SC2034 # the caller reads what this sets
choose_packages() {
    local kernel tmp
    busybox_ver=""
    # Not $(...): pick_kernel sets busybox_ver in this shell.
    tmp=$(mktemp)
    pick_kernel "$@" >"$tmp"
    if [[ ! -s $tmp || -z $busybox_ver ]] && ((EUID == 0)); then
        say "apt knows none of: $* or no busybox-static; running apt-get update"
        apt-get update -qq >/dev/null 2>&1 || say "apt-get update failed"
        pick_kernel "$@" >"$tmp"
    fi
    kernel=$(cat "$tmp")
    rm -f "$tmp"
    kpkg="" kver="" ksize="" krel=""
    if [[ -n $kernel && -n $busybox_ver ]]; then
        read -r kpkg kver ksize <<<"$kernel"
        krel=${kpkg#linux-image-}
    fi
}

# fetch PKG VERSION DIR: download the .deb (apt-get download, Debian mirror)
# and unpack it into DIR, atomically; no-op when DIR exists.
fetch() {
    local pkg=$1 ver=$2 dir=$3 tmp deb
    [[ -d $dir ]] && return 0
    tmp=$(mktemp -d "$CACHE/.fetch.XXXXXX")
    say "downloading $pkg=$ver"
    (cd "$tmp" && apt-get download -qq -o APT::Sandbox::User=root "$pkg=$ver") >"$tmp/apt.log" 2>&1 ||
        {
            cat "$tmp/apt.log" >&2
            rm -rf "$tmp"
            die "apt-get download $pkg=$ver failed"
        }
    deb=$(ls "$tmp"/*.deb)
    say "unpacking $(basename "$deb") ($(du -h "$deb" | cut -f1))"
    dpkg-deb -x "$deb" "$tmp/root" || {
        rm -rf "$tmp"
        die "dpkg-deb -x $deb failed"
    }
    mv "$tmp/root" "$dir"
    rm -rf "$tmp"
}

# module_file KDIR NAME: path of NAME.ko[.xz|.zst|.gz] under the unpacked kernel.
module_file() {
    find "$1/lib/modules" -name "$2.ko" -o -name "$2.ko.xz" -o -name "$2.ko.zst" -o -name "$2.ko.gz" |
        head -n1
}

# copy_module SRC DEST: busybox insmod cannot read compressed modules.
copy_module() {
    case $1 in
    *.ko) cp "$1" "$2" ;;
    *.ko.xz)
        command -v xz >/dev/null || die "module $1 is xz-compressed and xz is missing (apt-get install xz-utils)"
        xz -dc "$1" >"$2"
        ;;
    *.ko.zst)
        command -v zstd >/dev/null || die "module $1 is zstd-compressed and zstd is missing (apt-get install zstd)"
        zstd -qdc "$1" >"$2"
        ;;
    *.ko.gz) gzip -dc "$1" >"$2" ;;
    *) die "unexpected module file $1" ;;
    esac
}
