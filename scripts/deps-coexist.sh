#!/usr/bin/env bash
# Installs the other firewalls of the coexistence tests (tests/e2e/test_coexist_*):
# Docker (docker.io, with containerd), ufw and firewalld. They only ever run inside the
# test's own network and mount namespaces, so the machine must not start
# them: while installing, /usr/sbin/policy-rc.d answers 101 (action
# forbidden) to every service start the packages' scripts attempt, and the
# units they enable are disabled again. Idempotent and quiet when all are
# present, like deps.sh.
set -euo pipefail
. "$(dirname "$0")/deps-lib.sh"

packages=(docker.io ufw firewalld)
# Enabled units would start at the next boot, in the machine's namespace.
# firewalld's postinst only starts it under a running systemd (none here)
# and ships no bus activation file, so nothing loads its rules until a test
# runs it in its own namespace.
DEPS_NO_START=1 DEPS_DISABLE="docker.service docker.socket containerd.service ufw.service firewalld.service" deps_install deps-coexist.sh "${packages[@]}"
