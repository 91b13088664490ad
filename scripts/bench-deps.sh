#!/usr/bin/env bash
# The packages scripts/bench.sh needs on top of scripts/deps.sh: gnuplot for
# the plot, and the baselines it measures kvmnet against (iptables-nft,
# hyperfine for process timings, iperf3 for throughput, firewalld). Idempotent
# and quiet when everything is there, like deps.sh.
#
# firewalld is never installed: installing it would enable and start it on
# the machine's own firewall. Its packages are downloaded (apt-get download)
# and unpacked into build/bench-tools/firewalld without running their
# maintainer scripts; bench.sh runs that copy only inside its own namespace,
# on its own bus. Only its library dependencies (python3-dbus, python3-gi,
# ...) are installed normally.
#
# libvirt (the peer of scripts/bench-peers.sh) is installed, daemon and
# client only, without its default network or system units
# (libvirt-daemon-system), and with every service start its scripts attempt
# denied (deps-lib.sh's DEPS_NO_START): libvirtd only ever runs inside the
# benchmark's own namespaces.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. scripts/deps-lib.sh

bash scripts/deps.sh

packages=(gnuplot-nox iptables hyperfine iperf3
    # libraries the unpacked firewalld needs (no services among them)
    python3-dbus python3-gi gir1.2-glib-2.0 python3-jsonschema libnftables1)

export DEBIAN_FRONTEND=noninteractive
updated=0
missing=()
for p in "${packages[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    [[ $status == "install ok installed" ]] || missing+=("$p")
done
if ((${#missing[@]} > 0)); then
    if ((EUID != 0)); then
        echo "bench-deps.sh: missing packages: ${missing[*]}" >&2
        echo "bench-deps.sh: run as root, or: sudo apt-get install --no-install-recommends ${missing[*]}" >&2
        exit 1
    fi
    echo "bench-deps.sh: installing: ${missing[*]}"
    apt-get update -qq >/dev/null
    updated=1
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    echo "bench-deps.sh: done"
fi

DEPS_NO_START=1 DEPS_DISABLE="libvirtd.service libvirtd.socket libvirtd-ro.socket libvirtd-admin.socket virtlogd.socket virtlockd.socket" \
    deps_install bench-deps.sh libvirt-daemon libvirt-clients

# firewalld, unpacked only (see above). A failure here leaves the firewalld
# baseline out of the run (bench.sh then reports it as quoted), nothing else.
fw=build/bench-tools/firewalld
if [[ ! -x $fw/root/usr/sbin/firewalld ]]; then
    echo "bench-deps.sh: fetching firewalld (unpacked into $fw, not installed)"
    rm -rf "$fw"
    mkdir -p "$fw/debs" "$fw/root"
    if ((!updated)); then apt-get update -qq >/dev/null || true; fi
    if (cd "$fw/debs" && apt-get download -qq firewalld python3-firewall python3-nftables >/dev/null 2>&1); then
        for deb in "$fw"/debs/*.deb; do dpkg-deb -x "$deb" "$fw/root"; done
        echo "bench-deps.sh: firewalld unpacked"
    else
        echo "bench-deps.sh: could not download firewalld; its figure will be the quoted one" >&2
        rm -rf "$fw"
    fi
fi
