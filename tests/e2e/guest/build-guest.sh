#!/usr/bin/env bash
# Builds the tiny QEMU guest used by the e2e tests, from Debian packages only:
#
#   OUTDIR/vmlinuz     a Debian kernel (the smaller of linux-image-cloud-amd64
#                      and linux-image-amd64, or KVMNET_GUEST_KERNEL_PKG)
#   OUTDIR/initrd.gz   cpio (newc) + gzip: busybox-static, the virtio_net
#                      module chain and an /init that takes a DHCP lease,
#                      pings, reports on the serial console and powers off
#   OUTDIR/guest.env   KERNEL_PACKAGE, KERNEL_VERSION, KERNEL_RELEASE, BUILD_KEY
#
# Usage: tests/e2e/guest/build-guest.sh OUTDIR
#
# The kernel and busybox-static packages are fetched with `apt-get download`
# (the Debian mirror is the only network used) and unpacked with
# `dpkg-deb -x` into the cache: nothing is installed on the host, its /boot
# and /lib/modules stay untouched. (busybox-static cannot be installed anyway:
# it conflicts with the busybox package the other tests use.) Host tools
# (cpio, ...) come from scripts/deps.sh.
#
# Cache: KVMNET_GUEST_CACHE (default /var/cache/kvmnet-test/guest). Built
# images are keyed by kernel package + version, busybox-static version and
# this script's contents, so a rerun only copies two files; an update of
# either package or an edit here builds a new image. When apt knows no kernel
# package (no package lists, no network), the newest cached image is reused.
#
# What the guest prints on its serial console (ttyS0), one fact per line:
#   KVMNET-GUEST boot kernel=RELEASE
#   KVMNET-GUEST insmod name=MODULE result=ok|fail
#   KVMNET-GUEST eth0 mac=MAC
#   KVMNET-GUEST lease ip=IP mask=BITS router=IP dns=IP...   or: lease none
#   KVMNET-GUEST ping dst=IP result=ok|fail
#   KVMNET-GUEST done
# Kernel command line knobs: kvmnet.ping=IP[,IP...] (ping these as well,
# after the router), kvmnet.hold=SECONDS (stay up that long before powering
# off, e.g. to inspect the running guest).
set -euo pipefail

me=build-guest
say() { echo "$me: $*" >&2; }
die() {
    echo "$me: error: $*" >&2
    exit 1
}

[[ $# == 1 && -n $1 && $1 != -* ]] || die "usage: $0 OUTDIR"
OUTDIR=$1
script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRCDIR=${SRCDIR:-$(cd "$script_dir/../../.." && pwd)}
CACHE=${KVMNET_GUEST_CACHE:-/var/cache/kvmnet-test/guest}
# design.md: Debian's kernel has virtio_net as a module; this is the order
# insmod needs (each module's dependencies come before it; checked below).
MODULES=(virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci
    failover net_failover virtio_net)

# ---------------------------------------------------------------- host tools

# shellcheck source=tests/e2e/guest/debian-packages.sh
source "$script_dir/debian-packages.sh"
need_tools apt-get apt-cache dpkg-deb cpio gzip flock sha256sum

mkdir -p "$CACHE" "$OUTDIR" || die "cannot create $CACHE or $OUTDIR"
OUTDIR=$(cd "$OUTDIR" && pwd)
# One build at a time per cache (parallel test runs share it).
exec 9>"$CACHE/.lock"
flock -w 900 9 || die "timed out waiting for the lock on $CACHE"

# ---------------------------------------------------------------- choose packages

read -r -a kernel_metas <<<"${KVMNET_GUEST_KERNEL_PKG:-linux-image-cloud-amd64 linux-image-amd64}"
choose_packages "${kernel_metas[@]}"

if [[ -z $kpkg ]]; then
    # Offline: the newest image already built will do.
    # shellcheck disable=SC2012 # our own directory names, no odd characters
    newest=$(ls -1dt "$CACHE"/image-*/ 2>/dev/null | head -n1 || true)
    [[ -n $newest && -s $newest/initrd.gz ]] ||
        die "apt knows no kernel package (${kernel_metas[*]}) or no busybox-static, and nothing is cached in $CACHE"
    say "apt has no package information; reusing the cached image $newest"
    image=${newest%/}
else
    self_sum=$(cat "${BASH_SOURCE[0]}" "$script_dir/debian-packages.sh" | sha256sum | cut -c1-12)
    key="$krel-$kver-busybox-$busybox_ver-$self_sum"
    key=${key//[^A-Za-z0-9._+-]/_}
    image=$CACHE/image-$key
fi

# ---------------------------------------------------------------- build

build_image() {
    local kdir=$CACHE/kernel-$kpkg-$kver bdir=$CACHE/busybox-static-$busybox_ver
    local stage tmpimg m f dep deps vmlinuz i
    local t0=$SECONDS
    say "building guest image $image"
    say "kernel $kpkg $kver ($((ksize / 1024 / 1024)) MiB package), busybox-static $busybox_ver"
    fetch "$kpkg" "$kver" "$kdir"
    fetch busybox-static "$busybox_ver" "$bdir"
    vmlinuz=$kdir/boot/vmlinuz-$krel
    [[ -s $vmlinuz ]] || die "no $vmlinuz in $kpkg"
    [[ -x $bdir/bin/busybox ]] || die "no bin/busybox in busybox-static"

    tmpimg=$(mktemp -d "$CACHE/.image.XXXXXX")
    stage=$tmpimg/stage
    mkdir -p "$stage"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,tmp,run,etc,lib/modules}
    cp "$bdir/bin/busybox" "$stage/bin/busybox"
    # The kernel opens /dev/console for init before anything is mounted.
    if ! mknod -m 600 "$stage/dev/console" c 5 1 2>/dev/null; then
        say "cannot mknod dev/console (not root?); /init reopens it after mounting devtmpfs"
    fi

    for ((i = 0; i < ${#MODULES[@]}; i++)); do
        m=${MODULES[i]}
        f=$(module_file "$kdir" "$m")
        [[ -n $f ]] || die "module $m not found in $kpkg (is it built in? check boot/config-$krel)"
        copy_module "$f" "$stage/lib/modules/$m.ko"
        # Every dependency named in .modinfo must come earlier in MODULES.
        deps=$(grep -a -o 'depends=[A-Za-z0-9_,-]*' "$stage/lib/modules/$m.ko" | head -n1 | cut -d= -f2)
        for dep in ${deps//,/ }; do
            dep=${dep//-/_}
            [[ " ${MODULES[*]:0:i} " == *" $dep "* ]] ||
                die "module $m depends on $dep, which is not loaded before it; fix MODULES in $0"
        done
    done
    printf '%s\n' "${MODULES[@]}" >"$stage/etc/modules"

    write_init >"$stage/init"
    write_udhcpc_script >"$stage/udhcpc.script"
    chmod 755 "$stage/init" "$stage/udhcpc.script"

    (cd "$stage" && find . -mindepth 1 -print0 | LC_ALL=C sort -z |
        cpio --null --create --format=newc --owner=0:0 --quiet) | gzip -9n >"$tmpimg/initrd.gz"
    cp "$vmlinuz" "$tmpimg/vmlinuz"
    cat >"$tmpimg/guest.env" <<EOF
KERNEL_PACKAGE=$kpkg
KERNEL_VERSION=$kver
KERNEL_RELEASE=$krel
BUSYBOX_VERSION=$busybox_ver
BUILD_KEY=$key
EOF
    rm -rf "$stage"
    chmod 755 "$tmpimg"
    chmod 644 "$tmpimg"/*
    rm -rf "$image"
    mv "$tmpimg" "$image"
    # Keep only what the current image was built from.
    for old in "$CACHE"/image-* "$CACHE"/kernel-* "$CACHE"/busybox-static-*; do
        [[ -d $old && $old != "$image" && $old != "$kdir" && $old != "$bdir" ]] || continue
        say "removing stale $old"
        rm -rf "$old"
    done
    say "built in $((SECONDS - t0)) s: vmlinuz $(du -h "$image/vmlinuz" | cut -f1), initrd.gz $(du -h "$image/initrd.gz" | cut -f1)"
}

# ---------------------------------------------------------------- guest files

write_init() {
    cat <<'EOF'
#!/bin/busybox sh
# kvmnet e2e guest init (generated by tests/e2e/guest/build-guest.sh).
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
say() { echo "KVMNET-GUEST $*"; }
finish() {
    say done
    [ "$hold" -gt 0 ] 2>/dev/null && sleep "$hold"
    sync
    poweroff -f
    sleep 5
    exit 1 # a kernel panic with panic=-1 and -no-reboot ends QEMU as well
}

pings=""
hold=0
for arg in $(cat /proc/cmdline); do
    case $arg in
    kvmnet.ping=*) pings=$(echo "${arg#kvmnet.ping=}" | tr ',' ' ') ;;
    kvmnet.hold=*) hold=${arg#kvmnet.hold=} ;;
    esac
done

say "boot kernel=$(uname -r)"
for m in $(cat /etc/modules); do
    if insmod "/lib/modules/$m.ko"; then
        say "insmod name=$m result=ok"
    else
        say "insmod name=$m result=fail"
    fi
done
ip link set lo up

i=0
while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 50 ]; do
    sleep 0.1
    i=$((i + 1))
done
if [ ! -e /sys/class/net/eth0 ]; then
    say "error no eth0 (interfaces: $(ls /sys/class/net | tr '\n' ' '))"
    finish
fi
ip link set eth0 up
say "eth0 mac=$(cat /sys/class/net/eth0/address)"
# The queues virtio-net uses now (ethtool -l's current "Combined": one rx and
# one tx queue per pair); busybox has no ethtool.
say "queues dev=eth0 rx=$(ls -d /sys/class/net/eth0/queues/rx-* | wc -l) tx=$(ls -d /sys/class/net/eth0/queues/tx-* | wc -l) cpus=$(grep -c ^processor /proc/cpuinfo)"

rm -f /tmp/lease
udhcpc -i eth0 -n -q -t 10 -T 1 -s /udhcpc.script
if [ ! -s /tmp/lease ]; then
    say "lease none"
    finish
fi
. /tmp/lease
say "lease ip=$lease_ip mask=$lease_mask router=$lease_router dns=$lease_dns"

for dst in $lease_router $pings; do
    if ping -c 3 -W 2 -w 8 "$dst" >/tmp/ping.log 2>&1; then
        say "ping dst=$dst result=ok"
    else
        say "ping dst=$dst result=fail"
        sed 's/^/KVMNET-GUEST ping-log /' /tmp/ping.log
    fi
done
finish
EOF
}

write_udhcpc_script() {
    cat <<'EOF'
#!/bin/sh
# udhcpc hook in the guest: applies the lease and records it in /tmp/lease.
case "$1" in
deconfig)
    ip addr flush dev "$interface"
    ip link set "$interface" up
    ;;
bound | renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/$mask" dev "$interface"
    set -- $router
    [ -n "$1" ] && ip route replace default via "$1" dev "$interface"
    {
        echo "lease_ip=$ip"
        echo "lease_mask=$mask"
        echo "lease_router=$1"
        echo "lease_dns='$dns'"
    } >/tmp/lease
    ;;
esac
exit 0
EOF
}

# ---------------------------------------------------------------- main

if [[ -s $image/initrd.gz && -s $image/vmlinuz && -s $image/guest.env ]]; then
    say "cached: $image"
else
    build_image
fi

if [[ $image != "$OUTDIR" ]]; then
    for f in vmlinuz initrd.gz guest.env; do
        cp -f "$image/$f" "$OUTDIR/$f.tmp"
        mv -f "$OUTDIR/$f.tmp" "$OUTDIR/$f"
    done
    chmod 644 "$OUTDIR"/{vmlinuz,initrd.gz,guest.env}
fi
say "guest in $OUTDIR: vmlinuz initrd.gz ($(grep -E '^KERNEL_(PACKAGE|VERSION)=' "$OUTDIR/guest.env" | cut -d= -f2 | paste -sd' '))"
