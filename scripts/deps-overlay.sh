#!/usr/bin/env bash
# Installs what the overlay (multi-host) suite needs beyond deps.sh: FRR
# (zebra, bgpd, vtysh) for tests/e2e/test_overlay_evpn.sh. The test runs one
# FRR per host namespace, started and stopped by the test itself; the
# machine must never run FRR in its own namespace. So while installing,
# /usr/sbin/policy-rc.d answers 101 (action forbidden) to every service
# start the package's scripts attempt, and frr.service is disabled again so
# no boot starts it. Idempotent and quiet when FRR is present, like deps.sh.
set -euo pipefail
. "$(dirname "$0")/deps-lib.sh"

packages=(frr)
# An enabled unit would start FRR at the next boot, in the machine's namespace.
DEPS_NO_START=1 DEPS_DISABLE="frr.service" deps_install deps-overlay.sh "${packages[@]}"
