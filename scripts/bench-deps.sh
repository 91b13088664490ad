#!/usr/bin/env bash
# The packages scripts/bench.sh needs on top of scripts/deps.sh: gnuplot for
# the plot, and the baselines it measures kvmnet against (iptables-nft,
# hyperfine for process timings, iperf3 for throughput). Idempotent and quiet
# when everything is there, like deps.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/deps.sh

packages=(gnuplot-nox iptables hyperfine iperf3)

missing=()
for p in "${packages[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    [[ $status == "install ok installed" ]] || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
    exit 0
fi
if ((EUID != 0)); then
    echo "bench-deps.sh: missing packages: ${missing[*]}" >&2
    echo "bench-deps.sh: run as root, or: sudo apt-get install --no-install-recommends ${missing[*]}" >&2
    exit 1
fi
echo "bench-deps.sh: installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "bench-deps.sh: done"
