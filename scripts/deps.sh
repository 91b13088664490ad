#!/usr/bin/env bash
# Installs the Debian packages kvmnet needs to build, test and run its demo.
# Idempotent: when everything is present it only checks (dpkg-query) and
# stays quiet, so test.sh and demo.sh can call it every time.
set -euo pipefail

packages=(
    # build
    g++ meson ninja-build pkg-config
    libsdbus-c++-dev libsdbus-c++-bin
    libnl-3-dev libnl-route-3-dev libnftnl-dev libmnl-dev
    nlohmann-json3-dev libsystemd-dev catch2
    # run time and e2e tests
    dnsmasq-base dbus busybox nftables iproute2 socat jq procps iperf3
    # e2e test_access: the real polkit daemon on the test's private bus; its
    # pkttyagent is kvmnetctl's agent; openssl hashes the test's password
    polkitd openssl
    # e2e DNS queries (test_dns, test_ipv6) and the DHCPv6 client of test_ipv6
    dnsutils isc-dhcp-client
    # test_notify: the stand-in for systemd's notify socket; the unit
    # security check (tests/static) runs systemd-analyze
    python3 systemd
    # e2e QEMU guest (tests/e2e/guest/build-guest.sh fetches the guest's
    # kernel and busybox-static with apt-get download, not installing them)
    qemu-system-x86 cpio
    # the system suite (tests/system): the Debian root file system it boots
    # (mmdebstrap) and systemd-nspawn, which boots it
    mmdebstrap systemd-container
    # style check
    clang-format
    # the libFuzzer target (scripts/test.sh: -fsanitize=fuzzer,address,undefined)
    clang libclang-rt-14-dev
)

missing=()
for p in "${packages[@]}"; do
    # "install ok installed" is the only status that means usable; a package
    # that was removed but not purged still has an entry.
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    [[ $status == "install ok installed" ]] || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
    exit 0
fi

if ((EUID != 0)); then
    echo "deps.sh: missing packages: ${missing[*]}" >&2
    echo "deps.sh: run as root, or: sudo apt-get install --no-install-recommends ${missing[*]}" >&2
    exit 1
fi

echo "deps.sh: installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "deps.sh: done"
