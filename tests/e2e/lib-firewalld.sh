# shellcheck shell=bash
# Sourced after lib.sh by the tests and benchmarks that run a real
# firewalld (Debian firewalld 1.3, nftables backend) in the host namespace
# $H, on the test's private bus, with a private copy of its configuration
# (--default-config: /usr/lib/firewalld plus kvmnet's zone and policies from
# firewalld/ in the source tree; --system-config: a copy of /etc/firewalld)
# and a private /run (a mount namespace of its own), so the machine's own
# firewalld, if any, is never touched.
# Packages: scripts/deps-coexist.sh (firewalld, never started by the
# machine).

command -v firewalld >/dev/null || skip "firewalld not installed (run scripts/deps-coexist.sh)"
command -v firewall-cmd >/dev/null || skip "firewall-cmd not installed (run scripts/deps-coexist.sh)"

# Copies the configuration into $T/firewalld; call once, after bus_start.
firewalld_setup() {
    FW=$T/firewalld
    mkdir -p "$FW"
    cp -a /usr/lib/firewalld "$FW/lib"
    cp "$SRCDIR/firewalld/kvmnet.xml" "$FW/lib/zones/"
    cp "$SRCDIR/firewalld/kvmnet-to-host.xml" "$SRCDIR/firewalld/kvmnet-in.xml" "$FW/lib/policies/"
    cp -a /etc/firewalld "$FW/etc"
}
fw() { in_ns "$H" firewall-cmd "$@"; }
# Starts firewalld (its PID in FIREWALLD_PID, tracked) and returns once it
# answers `--state` with running.
firewalld_start() {
    spawn_in_ns "$H" unshare --mount --propagation private sh -c \
        'mount -t tmpfs -o mode=755 kvmnet-e2e-run /run && exec "$@"' firewalld \
        firewalld --nofork --nopid --default-config "$FW/lib" --system-config "$FW/etc" \
        --log-target file --log-file "$T/firewalld.log" >>"$T/firewalld.out" 2>&1
    FIREWALLD_PID=$SPAWNED_PID
    track_pid "$FIREWALLD_PID"
    local i
    for ((i = 0; i < 150; i++)); do
        [[ $(fw --state 2>/dev/null) == running ]] && break
        _pid_alive "$FIREWALLD_PID" || break
        sleep 0.2
    done
    if ((i == 150)) || ! _pid_alive "$FIREWALLD_PID"; then
        local why
        why=$(tail -c 600 "$T/firewalld.out" "$T/firewalld.log" 2>/dev/null | tr '\n' ' ')
        # A kernel without what firewalld's ruleset needs is a missing
        # feature, not a failure of kvmnet.
        if [[ $why == *"Operation not supported"* || $why == *"No such file or directory"*nft* ]]; then
            skip "firewalld cannot load its ruleset on this kernel: $why"
        fi
        fail "firewalld did not come up: $why"
    fi
}
zone_of() { fw --get-zone-of-interface="$1" 2>/dev/null || true; }
_in_zone() { [[ $(zone_of "$1") == kvmnet ]]; }
