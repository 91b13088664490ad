#!/usr/bin/env bash
# Runs kvmnetd confined the way systemd/kvmnetd.service.in confines it, as
# far as that can be done without systemd, so that any e2e test can run
# against such a daemon:
#   KVMNETD=tests/e2e/confined-kvmnetd.sh KVMNETD_REAL=build/daemon/kvmnetd \
#       bash tests/e2e/test_nat_basic.sh
# What it applies, read from the unit: the ambient (= inheritable = bounding)
# capabilities of AmbientCapabilities= (CONFINED_CAPS overrides them: a
# space-separated list, possibly empty), NoNewPrivileges=, UMask=; User= is
# played by uid CONFINED_UID (default 65534, nobody: tests cannot create
# users); the --state-dir and --runtime-dir directories are made 0755 and
# given to that user, as StateDirectory= and RuntimeDirectory= do. Where
# /dev/net/tun is not mode 0666 (udev's default; some containers leave it
# 0600), the daemon gets a private bind mount of a 0666 node of the same
# device next to the runtime directory. The mount-namespace options and the
# system call filter are not applied (they need systemd).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src=${SRCDIR:-$here/../..}
real=${KVMNETD_REAL:-$src/build/daemon/kvmnetd}
unit=$src/systemd/kvmnetd.service.in
caps=${CONFINED_CAPS-$(sed -n 's/^AmbientCapabilities=//p' "$unit")}
umask_unit=$(sed -n 's/^UMask=//p' "$unit")
uid=${CONFINED_UID:-65534}
grep -qx 'NoNewPrivileges=yes' "$unit" || { echo "confined-kvmnetd: $unit lacks NoNewPrivileges=yes" >&2; exit 1; }

spec=-all
for c in $caps; do spec+=",+$(tr '[:upper:]' '[:lower:]' <<<"${c#CAP_}")"; done

args=("$@") runtime=""
for ((i = 0; i < ${#args[@]}; i++)); do
    case ${args[i]} in
    --state-dir | --runtime-dir)
        mkdir -p -m 0755 "${args[i + 1]}"
        chown "$uid:$uid" "${args[i + 1]}"
        [[ ${args[i]} == --runtime-dir ]] && runtime=${args[i + 1]}
        ;;
    esac
done
tun_mount=""
if [[ $(stat -c %a /dev/net/tun 2>/dev/null) != 666 && -n $runtime ]]; then
    node=$(dirname "$runtime")/tun.node
    [[ -c $node ]] || mknod -m 0666 "$node" c "$((16#$(stat -c %t /dev/net/tun)))" "$((16#$(stat -c %T /dev/net/tun)))"
    tun_mount="mount --bind $node /dev/net/tun || exit 1"
fi

umask "$umask_unit"
exec unshare --mount --propagation private sh -c "$tun_mount
    exec setpriv --reuid=$uid --regid=$uid --clear-groups --inh-caps=$spec --ambient-caps=$spec \
        --bounding-set=$spec --no-new-privs \"\$0\" \"\$@\"" "$real" "$@"
