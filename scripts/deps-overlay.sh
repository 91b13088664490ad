#!/usr/bin/env bash
# Installs what the overlay (multi-host) suite needs beyond deps.sh: FRR
# (zebra, bgpd, vtysh) for tests/e2e/test_overlay_evpn.sh. The test runs one
# FRR per host namespace, started and stopped by the test itself; the
# machine must never run FRR in its own namespace. So while installing,
# /usr/sbin/policy-rc.d answers 101 (action forbidden) to every service
# start the package's scripts attempt, and frr.service is disabled again so
# no boot starts it. Idempotent and quiet when FRR is present, like deps.sh.
set -euo pipefail

packages=(frr)
missing=()
for p in "${packages[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    [[ $status == "install ok installed" ]] || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
    exit 0
fi
if ((EUID != 0)); then
    echo "deps-overlay.sh: missing packages: ${missing[*]} (run as root)" >&2
    exit 1
fi

policy=/usr/sbin/policy-rc.d
had_policy=0
if [[ -e $policy ]]; then
    had_policy=1
    cp -a "$policy" "$policy.kvmnet-saved"
fi
restore() {
    if ((had_policy)); then mv -f "$policy.kvmnet-saved" "$policy"; else rm -f "$policy"; fi
}
trap restore EXIT
printf '#!/bin/sh\nexit 101\n' >"$policy"
chmod 755 "$policy"

echo "deps-overlay.sh: installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# An enabled unit would start FRR at the next boot, in the machine's namespace.
systemctl disable frr.service >/dev/null 2>&1 || true
echo "deps-overlay.sh: done"
