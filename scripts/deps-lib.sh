# Sourced by scripts/deps*.sh: the one way they install Debian packages.
#
# deps_install NAME PACKAGE...
#   Installs the packages that are not "install ok installed" (the only
#   dpkg status that means usable: a removed but unpurged package still has
#   an entry) with apt-get, quietly; does nothing, silently, when all are
#   there, so the scripts can run before every test run. NAME prefixes the
#   messages. Not root and something missing: says what to type, returns 1.
#
# DEPS_NO_START=1 (for daemons that only ever run inside a test's own
#   namespaces: Docker, firewalld, FRR): while installing,
#   /usr/sbin/policy-rc.d answers 101 (action forbidden) to every service
#   start the packages' scripts attempt, and the units in DEPS_DISABLE
#   (space-separated) are disabled afterwards, so no boot starts them in
#   the machine's own namespace.

deps_install() {
    local name=$1
    shift
    local missing=() p status
    for p in "$@"; do
        status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
        [[ $status == "install ok installed" ]] || missing+=("$p")
    done
    ((${#missing[@]} == 0)) && return 0
    if ((EUID != 0)); then
        echo "$name: missing packages: ${missing[*]}" >&2
        echo "$name: run as root, or: sudo apt-get install --no-install-recommends ${missing[*]}" >&2
        return 1
    fi

    local policy=/usr/sbin/policy-rc.d had_policy=0
    if [[ ${DEPS_NO_START:-0} == 1 ]]; then
        if [[ -e $policy ]]; then
            had_policy=1
            cp -a "$policy" "$policy.kvmnet-saved"
        fi
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
    fi

    echo "$name: installing: ${missing[*]}"
    local rc=0
    {
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >/dev/null &&
            apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    } || rc=$?

    if [[ ${DEPS_NO_START:-0} == 1 ]]; then
        if ((had_policy)); then mv -f "$policy.kvmnet-saved" "$policy"; else rm -f "$policy"; fi
        # shellcheck disable=SC2086 # a list of unit names
        [[ -z ${DEPS_DISABLE:-} ]] || systemctl disable ${DEPS_DISABLE} >/dev/null 2>&1 || true
    fi
    ((rc == 0)) || return "$rc"
    echo "$name: done"
}
