#!/usr/bin/env bash
# Installs the other firewalls of the coexistence suite (tests/coexist):
# Docker (docker.io, with containerd), ufw and firewalld. They only ever run inside the
# test's own network and mount namespaces, so the machine must not start
# them: while installing, /usr/sbin/policy-rc.d answers 101 (action
# forbidden) to every service start the packages' scripts attempt, and the
# units they enable are disabled again. Idempotent and quiet when both are
# present, like deps.sh.
set -euo pipefail

packages=(docker.io ufw firewalld)
missing=()
for p in "${packages[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    [[ $status == "install ok installed" ]] || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
    exit 0
fi
if ((EUID != 0)); then
    echo "deps-coexist.sh: missing packages: ${missing[*]} (run as root)" >&2
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

echo "deps-coexist.sh: installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Enabled units would start at the next boot, in the machine's namespace.
# firewalld's postinst only starts it under a running systemd (none here)
# and ships no bus activation file, so nothing loads its rules until a test
# runs it in its own namespace.
systemctl disable docker.service docker.socket containerd.service ufw.service firewalld.service \
    >/dev/null 2>&1 || true
echo "deps-coexist.sh: done"
