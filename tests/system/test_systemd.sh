#!/usr/bin/env bash
# System test: kvmnet installed the README's way and run by a real systemd.
#
# A Debian root file system (tests/system/rootfs.sh, cached) is copied, the
# release tree (tests/system/release-build.sh, or KVMNET_RELEASE_BUILD) is
# installed into the copy with the README's `meson install` line and
# DESTDIR, and the copy is booted with
#   systemd-nspawn -b --private-network --register=no --keep-unit
# (systemd 252 as PID 1 of its own namespaces; --private-network gives it a
# network namespace with only lo, so nothing in it can reach the machine's
# network). Commands enter it with nsenter on its PID 1. Inside, the README's
# post-install lines run literally, then the checks below, each printed as it
# runs and each one's failure reported without stopping the rest:
#   readme        the post-install lines; `kvmnetctl list` answers
#   nat           a NAT network; a guest namespace gets a DHCP lease and
#                 pings an "internet" namespace through NAT
#   journal       the daemon logs to journald with fields: `journalctl
#                 NETWORK=default` has the start line ("network default:
#                 active", MESSAGE_ID of the active state, PRIORITY 6) and
#                 no line about another network
#   identity      daemon and dnsmasq run as kvmnet with exactly the
#                 documented capabilities (CAP_NET_ADMIN, CAP_NET_BIND_SERVICE,
#                 CAP_NET_RAW: effective, permitted, ambient, bounding)
#   quiet         under the unit's sandbox (no CAP_SYS_PTRACE, its system
#                 call filter) kvmnetd still takes dnsmasq's rtnetlink socket
#                 out of the IPv4 route group (pidfd_getfd on its own child;
#                 docs/performance.md §9), and logs no warning that it could not
#   restart       `systemctl restart` keeps the network, adopts dnsmasq
#                 (same pid), the guest renews its lease and still pings
#   activation    `systemctl stop`, then `kvmnetctl list` starts the service
#                 over D-Bus (dbus-daemon logs the activation); the new
#                 daemon adopts the network
#   reload        `systemctl reload` succeeds (ExecReload=kvmnetctl reload)
#                 and re-reads the stored documents (a removed one is dropped)
#   watchdog      a daemon frozen with SIGSTOP is killed by the watchdog and
#                 restarted, and adopts the network (a drop-in shortens
#                 WatchdogSec=30s to 3s for the test; the unit's own value is
#                 restored afterwards)
#   security      `systemd-analyze security kvmnetd.service` (online) rates
#                 at most the exposure docs/systemd.md states
#   verify        `systemd-analyze verify` of the installed unit is clean
#                 (man:kvmnetctl(1) must be installed)
#   polkit-deny   a user without authorization gets AccessDenied, nothing made
#                 (also on a terminal with --no-ask-password: no prompt)
#   polkit-group  the group rule of docs/dbus-api.md ("Authorization"),
#                 taken from that document, lets a netdev member change
#   polkit-agent  a user without the rule runs kvmnetctl on a terminal
#                 (script(1)); kvmnetctl's own agent asks for the admin's
#                 password, the test types it, the change is made
#   upgrade       a kvmnetd started by hand as root runs a network (its
#                 dnsmasq as user dnsmasq); the unit (user kvmnet) takes over:
#                 the old dnsmasq is adopted, or refused with a message that
#                 names its pid; never a second dnsmasq, never a `stop` that
#                 reports success while it runs on
#
# Environment: SRCDIR (source root), KVMNET_RELEASE_BUILD (a release tree
# configured as the README says; built here when unset), KVMNET_ROOTFS_CACHE
# (rootfs.sh), KVMNET_SYSTEM_KEEP=1 (keep the work directory).
# Exit: 0 pass, 1 fail, 77 skip (not root, or no namespaces for nspawn).
set -euo pipefail
set -E

SRCDIR=${SRCDIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
TEST_NAME=test_systemd
source "$SRCDIR/tests/system/readme.sh"

log() { echo "[$TEST_NAME] $*" >&2; }
skip() {
    echo "SKIP: $*" >&2
    exit 77
}
die() {
    echo "FAIL: $*" >&2
    exit 1
}

# ---------------------------------------------------------------- preconditions

((EUID == 0)) || skip "needs root (boots a container with systemd-nspawn)"
if ! unshare --mount --pid --net --uts --ipc --fork true 2>/dev/null; then
    skip "cannot create the namespaces systemd-nspawn needs here (unshare failed)"
fi
for tool in systemd-nspawn mmdebstrap nsenter meson jq; do
    command -v "$tool" >/dev/null || die "missing tool '$tool' (run scripts/deps.sh)"
done

# ---------------------------------------------------------------- work dir, cleanup

W=$(mktemp -d /var/tmp/kvmnet-system.XXXXXX)
NSPAWN_PID=""
CPID="" # the container's PID 1, as seen from here
FAILED=()
PASSED=()

print_journal() {
    [[ -n $CPID ]] && kill -0 "$CPID" 2>/dev/null || return 0
    echo "----- journalctl -u kvmnetd (in the container) -----" >&2
    c journalctl -u kvmnetd --no-pager -o short-precise -n 300 >&2 || true
    echo "----- journalctl -u polkit (in the container) -----" >&2
    c journalctl -u polkit --no-pager -o short-precise -n 40 >&2 || true
    echo "----- end of journal -----" >&2
}

cleanup() {
    local rc=$? i
    trap - EXIT INT TERM ERR
    set +e
    if ((rc != 0 && rc != 77)); then
        print_journal
        if [[ -s $W/console.log ]]; then
            echo "----- last 30 lines of the container's console -----" >&2
            tail -n 30 "$W/console.log" >&2
        fi
    fi
    if [[ -n $NSPAWN_PID ]] && kill -0 "$NSPAWN_PID" 2>/dev/null; then
        # SIGTERM makes nspawn power the container off (systemd stops its
        # units, which ends dnsmasq and every namespace made inside).
        kill -TERM "$NSPAWN_PID"
        for ((i = 0; i < 200; i++)); do
            kill -0 "$NSPAWN_PID" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$NSPAWN_PID" 2>/dev/null; then
            log "the container did not power off in 20 s: SIGKILL to its PID 1 ($CPID) and nspawn ($NSPAWN_PID)"
            [[ -n $CPID ]] && kill -KILL "$CPID"
            kill -KILL "$NSPAWN_PID"
        fi
        wait "$NSPAWN_PID" 2>/dev/null
    fi
    if [[ ${KVMNET_SYSTEM_KEEP:-0} == 1 ]]; then
        log "kept $W"
    else
        rm -rf --one-file-system "$W"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
_on_err() {
    local rc=$1 cmd=$2 i where=""
    for ((i = 1; i < ${#BASH_SOURCE[@]}; i++)); do
        where+=" ${BASH_SOURCE[i]##*/}:${BASH_LINENO[i - 1]}"
    done
    echo "FAIL: command failed (exit $rc): $cmd  [at$where]" >&2
}
trap '_on_err $? "$BASH_COMMAND"' ERR

# ---------------------------------------------------------------- helpers

retry() { # retry N CMD...: up to N tries, 0.2 s apart
    local n=$1 i
    shift
    for ((i = 0; i < n; i++)); do
        if "$@"; then return 0; fi
        sleep 0.2
    done
    return 1
}

# c CMD...: run CMD inside the container (all its namespaces, its root), with
# a clean environment as a root login there would have.
c() {
    nsenter -t "$CPID" -a env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 TERM=dumb "$@"
}
csh() { c bash -c "$1"; }
# as USER CMD...: CMD as USER (and its groups) inside the container.
as() {
    local u=$1
    shift
    c setpriv --reuid="$u" --regid="$u" --init-groups env HOME="/home/$u" USER="$u" LOGNAME="$u" "$@"
}

check_fail() {
    echo "FAIL: $*" >&2
    exit 1
}
expect_eq() { # ACTUAL EXPECTED WHAT
    [[ $1 == "$2" ]] || check_fail "${3:-value}: expected '$2', got '$1'"
}
expect_contains() { # HAYSTACK NEEDLE WHAT
    [[ $1 == *"$2"* ]] || check_fail "${3:-output} should contain '$2', got: $1"
}

main_pid() { c systemctl show -P MainPID kvmnetd; }
unit_active() { [[ $(c systemctl is-active kvmnetd 2>/dev/null) == active ]]; }
net_json() { c kvmnetctl show "$1" --json; }
net_state() { net_json "$1" 2>/dev/null | jq -r .status.state; }
_state_is() { [[ $(net_state "$1") == "$2" ]]; }
wait_state() { # NET STATE
    retry 50 _state_is "$1" "$2" ||
        check_fail "network $1: state '$(net_state "$1")' ($(net_json "$1" 2>&1 | jq -r .status.state_reason 2>&1)), expected '$2'"
}
dnsmasq_pid() { c cat "/run/kvmnet/$1/dnsmasq.pid" 2>/dev/null | tr -d ' \n'; }
# proc_field PID FIELD: a field of /proc/PID/status in the container, its
# words separated by one space.
proc_field() { c cat "/proc/$1/status" | awk -v f="$2:" '$1 == f { $1 = ""; sub(/^ /, ""); print }'; }
alive() { c test -d "/proc/$1"; }
is_dnsmasq() { [[ $1 =~ ^[0-9]+$ ]] && [[ $(c cat "/proc/$1/comm" 2>/dev/null) == dnsmasq ]]; }
# dnsmasqs_of NET: pids of every dnsmasq whose command line names NET's
# runtime directory (more than one means a second instance was started).
dnsmasqs_of() {
    csh "for p in /proc/[0-9]*; do
        [[ \$(cat \$p/comm 2>/dev/null) == dnsmasq ]] || continue
        tr '\0' ' ' <\$p/cmdline | grep -q '/run/kvmnet/$1/' && echo \${p#/proc/}
    done; true"
}

# guest_lease NS: busybox udhcpc in the guest namespace; prints "IP/MASK ROUTER".
guest_lease() {
    rm -f "$W/root/opt/kvmnet-test/lease.$1"
    c env UDHCPC_LEASE_FILE="/opt/kvmnet-test/lease.$1" ip netns exec "$1" \
        busybox udhcpc -i eth0 -n -q -t 5 -T 1 -s /opt/kvmnet-test/udhcpc.script >"$W/udhcpc.$1.log" 2>&1 ||
        check_fail "no DHCP lease in $1: $(cat "$W/udhcpc.$1.log")"
    cat "$W/root/opt/kvmnet-test/lease.$1"
}
guest_pings_internet() {
    c ip netns exec "$1" busybox ping -c 2 -W 2 203.0.113.2 >/dev/null ||
        check_fail "guest $1 cannot ping the internet namespace (203.0.113.2) through NAT"
}

# run_check NAME FUNCTION: prints the check, runs it in a subshell (set -e:
# its first failing command fails it), records the result and goes on.
run_check() {
    local name=$1 rc start=$SECONDS
    echo "[$TEST_NAME] === $name" >&2
    set +e
    (
        set -e
        "$2"
    )
    rc=$?
    set -e
    if ((rc == 0)); then
        PASSED+=("$name")
        echo "[$TEST_NAME] ok   $name ($((SECONDS - start)) s)" >&2
    else
        FAILED+=("$name")
        echo "[$TEST_NAME] FAIL $name ($((SECONDS - start)) s)" >&2
    fi
}

# ---------------------------------------------------------------- root file system and install

release=${KVMNET_RELEASE_BUILD:-}
if [[ -z $release ]]; then
    release=$SRCDIR/build-release
    log "KVMNET_RELEASE_BUILD not set: building $release the README's way"
    bash "$SRCDIR/tests/system/release-build.sh" "$release" >&2 || die "the README's release build failed (see above)"
fi
# The tree must be the README's configuration, whoever built it.
opts=$(meson introspect --buildoptions "$release") || die "$release is not a configured meson tree"
for o in prefix=/usr buildtype=release tests=false werror=true; do
    v=$(jq -r --arg n "${o%%=*}" '.[] | select(.name == $n) | .value | tostring' <<<"$opts")
    [[ $v == "${o#*=}" ]] || die "$release: option ${o%%=*} is '$v', the README's tree has '${o#*=}'"
done

# The Debian packages of the libraries the two binaries link: the root file
# system gets them as a package's Depends would bring them.
runtime_packages() {
    local lib f
    for lib in $(ldd "$@" | awk '$2 == "=>" && $3 ~ /^\// { print $3 }' | sort -u); do
        for f in "$lib" "$(readlink -f "$lib")" "${lib#/usr}" "/usr$lib"; do
            dpkg -S "$f" 2>/dev/null && break
        done
    done | cut -d: -f1 | sort -u
}
mapfile -t libpkgs < <(runtime_packages "$release/daemon/kvmnetd" "$release/client/kvmnetctl")
((${#libpkgs[@]} > 0)) || die "no Debian package found for the libraries of $release's kvmnetd and kvmnetctl"

t0=$SECONDS
rootfs=$(bash "$SRCDIR/tests/system/rootfs.sh" "${libpkgs[@]}") || die "could not build the root file system (see above)"
log "root file system: $rootfs ($((SECONDS - t0)) s)"
cp -a --reflink=auto "$rootfs" "$W/root"
rm -f "$W/root/.complete"

mapfile -t host_lines < <(cd "$SRCDIR" && readme_host_lines README.md)
mapfile -t container_lines < <(cd "$SRCDIR" && readme_container_lines README.md)
install_line=${host_lines[-1]-}
[[ $install_line == "meson install "* ]] || die "README.md's install block has no 'meson install' line"
((${#container_lines[@]} > 0)) || die "README.md's install block has no lines after 'meson install'"
install_line=$(readme_with_build_dir "$install_line" "$release")
log "\$ DESTDIR=$W/root $install_line"
(cd "$SRCDIR" && export DESTDIR=$W/root && eval "$install_line") >"$W/install.log" 2>&1 ||
    die "$install_line failed: $(cat "$W/install.log")"

# The test's own files: the e2e guests' udhcpc hook.
mkdir -p "$W/root/opt/kvmnet-test"
cp "$SRCDIR/tests/e2e/udhcpc.script" "$W/root/opt/kvmnet-test/udhcpc.script"

# ---------------------------------------------------------------- boot

t0=$SECONDS
# --system-call-filter=pidfd_getfd: nspawn's own allow-list of system calls
# (which a real host does not have) lacks it; the unit's filter allows it
# (check quiet).
systemd-nspawn -D "$W/root" -b --private-network --register=no --keep-unit -q \
    --system-call-filter=pidfd_getfd \
    --machine="kvmnet-sys$$" --console=read-only >"$W/console.log" 2>&1 &
NSPAWN_PID=$!
_find_pid1() {
    local p
    kill -0 "$NSPAWN_PID" 2>/dev/null || die "systemd-nspawn exited: $(cat "$W/console.log")"
    # shellcheck disable=SC2013 # the children files hold pids separated by spaces
    for p in $(cat "/proc/$NSPAWN_PID/task/"*/children 2>/dev/null); do
        if [[ $(cat "/proc/$p/comm" 2>/dev/null) == systemd ]]; then
            CPID=$p
            return 0
        fi
    done
    return 1
}
retry 100 _find_pid1 || die "no systemd in the container after 20 s: $(cat "$W/console.log")"
# Safety: everything below configures the container's network namespace;
# it must not be the machine's own.
[[ $(readlink "/proc/$CPID/ns/net") != "$(readlink /proc/self/ns/net)" ]] ||
    die "the container shares this machine's network namespace; refusing to go on"
# systemctl needs the manager's socket, which comes a moment after PID 1.
retry 100 c test -S /run/systemd/private || die "systemd in the container made no /run/systemd/private in 20 s"
state=$(c timeout 60 systemctl is-system-running --wait || true)
if [[ $state != running ]]; then
    c systemctl --failed --no-pager >&2 || true
    die "the container's systemd is '$state' after boot, not 'running'"
fi
log "booted: PID 1 is $CPID here ($((SECONDS - t0)) s)"

# No udev in the container: /dev/net/tun has the mode nspawn copied, not
# the 0666 udev's rules give it on a real machine.
c chmod 0666 /dev/net/tun

# ---------------------------------------------------------------- checks

check_readme() {
    local line out
    for line in "${container_lines[@]}"; do
        echo "[$TEST_NAME] (container) \$ $line" >&2
        out=$(csh "$line" 2>&1) || check_fail "'$line' failed: $out"
        [[ -z $out ]] || printf '    %s\n' "${out//$'\n'/$'\n'    }" >&2
    done
    unit_active || check_fail "kvmnetd.service is $(c systemctl is-active kvmnetd) after the README's steps"
    expect_contains "$(c kvmnetctl list)" NAME "kvmnetctl list"
}

check_nat() {
    # The container's own namespace is the host: an uplink to "inet".
    csh 'set -e
        ip netns add inet
        ip link add uplink0 type veth peer name eth0 netns inet
        ip addr add 203.0.113.1/24 dev uplink0
        ip link set uplink0 up
        ip route add default via 203.0.113.2
        ip -n inet link set lo up
        ip -n inet addr add 203.0.113.2/24 dev eth0
        ip -n inet link set eth0 up
        ip netns add g1
        ip link add vg1 type veth peer name eth0 netns g1
        ip link set vg1 up
        ip -n g1 link set lo up
        ip -n g1 link set eth0 up'
    c kvmnetctl create default --mode nat --bridge kvmbr0 --ipv4 192.168.122.1/24 \
        --dhcp-range 192.168.122.100-192.168.122.199
    c kvmnetctl start default
    wait_state default active
    c ip link set vg1 master kvmbr0
    local lease gaddr router
    lease=$(guest_lease g1)
    log "lease: $lease"
    read -r gaddr router <<<"$lease"
    [[ $gaddr == 192.168.122.*/24 ]] || check_fail "lease $gaddr outside 192.168.122.0/24"
    expect_eq "$router" 192.168.122.1 "router of the lease"
    guest_pings_internet g1
}

# journal_has FILTER... -- NEEDLE: journalctl -o cat FILTER... prints a line containing NEEDLE.
journal_has() {
    local filters=()
    while [[ $1 != -- ]]; do
        filters+=("$1")
        shift
    done
    [[ $(c journalctl --no-pager -o cat "${filters[@]}") == *"$2"* ]]
}

check_journal() {
    local active=94090e9e8be246acb199e1f4fb743012 out
    # journald files the datagrams asynchronously: retried.
    retry 50 journal_has NETWORK=default -- "network default: active" ||
        check_fail "journalctl NETWORK=default has no start line: $(c journalctl --no-pager -o cat NETWORK=default | tail -n 20)"
    out=$(c journalctl --no-pager -o json NETWORK=default MESSAGE_ID=$active | jq -sc \
        '[.[] | {MESSAGE, PRIORITY, SYSLOG_IDENTIFIER, NETWORK}] | first')
    expect_eq "$out" '{"MESSAGE":"network default: active","PRIORITY":"6","SYSLOG_IDENTIFIER":"kvmnetd","NETWORK":"default"}' \
        "the start line's journal fields"
    out=$(c journalctl --no-pager -o cat NETWORK=default)
    [[ $out != *"ready on the bus"* ]] || check_fail "journalctl NETWORK=default has a line not about the network: $out"
    expect_contains "$(c journalctl --no-pager -o cat -u kvmnetd)" "ready on the bus as org.kvmnet1" "journalctl -u kvmnetd"
}

check_identity() {
    local pid dpid uid p f v
    uid=$(c id -u kvmnet)
    pid=$(main_pid)
    dpid=$(dnsmasq_pid default)
    is_dnsmasq "$dpid" || check_fail "default's dnsmasq pid file says '$dpid', not a running dnsmasq"
    for p in "$pid" "$dpid"; do
        expect_eq "$(proc_field "$p" Uid)" "$uid $uid $uid $uid" "uids (real, effective, saved, fs) of pid $p ($(c cat "/proc/$p/comm"))"
        v=$(proc_field "$p" Gid)
        expect_eq "${v%% *}" "$(c id -g kvmnet)" "gid of pid $p"
        # CAP_NET_BIND_SERVICE (10), CAP_NET_ADMIN (12), CAP_NET_RAW (13).
        for f in CapEff CapPrm CapAmb CapBnd; do
            v=$(proc_field "$p" "$f")
            expect_eq "$v" 0000000000003400 "$f of pid $p ($(c cat "/proc/$p/comm"))"
        done
        log "pid $p ($(c cat "/proc/$p/comm")): user kvmnet, CapEff=CapPrm=CapAmb=CapBnd=0x3400"
    done
}

# netlink_groups_of PID: the multicast groups (hex) of each rtnetlink socket of PID, in the container.
netlink_groups_of() {
    csh "for fd in /proc/$1/fd/*; do
        i=\$(readlink \"\$fd\" 2>/dev/null) || continue
        case \$i in socket:*) ;; *) continue ;; esac
        i=\${i#socket:[}; i=\${i%]}
        awk -v i=\"\$i\" '\$2 == 0 && \$NF == i { print \$4 }' /proc/$1/net/netlink
    done"
}

check_quiet() {
    local dpid groups g
    dpid=$(dnsmasq_pid default)
    is_dnsmasq "$dpid" || check_fail "default's dnsmasq pid file says '$dpid', not a running dnsmasq"
    groups=$(netlink_groups_of "$dpid")
    [[ -n $groups ]] || check_fail "dnsmasq pid $dpid has no rtnetlink socket"
    for g in $groups; do
        # RTNLGRP_IPV4_ROUTE is group 7: bit 0x40.
        if ((0x$g & 0x40)); then
            check_fail "dnsmasq pid $dpid's rtnetlink socket is still in the IPv4 route group (groups 0x$g)"
        fi
    done
    ! journal_has -u kvmnetd -- "keeps hearing of every route change" ||
        check_fail "kvmnetd could not quiet dnsmasq: $(c journalctl --no-pager -o cat -u kvmnetd | grep -F 'keeps hearing')"
    log "dnsmasq pid $dpid: rtnetlink groups ${groups//$'\n'/ } (no IPv4 route group)"
}

check_restart() {
    local old dpid
    old=$(main_pid)
    dpid=$(dnsmasq_pid default)
    c systemctl restart kvmnetd
    unit_active || check_fail "kvmnetd not active after restart"
    [[ $(main_pid) != "$old" ]] || check_fail "MainPID still $old after restart"
    wait_state default active
    expect_eq "$(dnsmasq_pid default)" "$dpid" "default's dnsmasq pid after restart (adopted)"
    is_dnsmasq "$dpid" || check_fail "dnsmasq $dpid is gone"
    expect_eq "$(dnsmasqs_of default)" "$dpid" "dnsmasq processes of default"
    guest_lease g1 >/dev/null
    guest_pings_internet g1
}

check_activation() {
    local dpid out
    dpid=$(dnsmasq_pid default)
    c systemctl stop kvmnetd
    expect_eq "$(c systemctl is-active kvmnetd || true)" inactive "kvmnetd after systemctl stop"
    is_dnsmasq "$dpid" || check_fail "stopping the service stopped default's dnsmasq $dpid"
    out=$(c kvmnetctl list) || check_fail "kvmnetctl list with the service stopped failed: $out"
    expect_contains "$out" default "kvmnetctl list (activated)"
    unit_active || check_fail "the call did not start kvmnetd.service"
    [[ $(c journalctl -u dbus --no-pager) == *"Activating via systemd: service name='org.kvmnet1'"* ]] ||
        check_fail "dbus-daemon's journal shows no activation of org.kvmnet1 via systemd"
    wait_state default active
    expect_eq "$(dnsmasq_pid default)" "$dpid" "default's dnsmasq after activation (adopted)"
    guest_pings_internet g1
}

check_reload() {
    local pid out
    # A stored document removed behind the daemon's back: the reload must
    # drop its network (the stored documents were read again).
    c kvmnetctl create rl --mode isolated --ipv4 10.79.0.1/24 >/dev/null
    c rm /var/lib/kvmnet/networks/rl.json
    pid=$(main_pid)
    out=$(c systemctl reload kvmnetd 2>&1) || check_fail "systemctl reload kvmnetd failed: $out
$(c systemctl status kvmnetd --no-pager 2>&1 | tail -n 5)"
    unit_active || check_fail "kvmnetd not active after reload"
    expect_eq "$(main_pid)" "$pid" "MainPID after reload"
    ! c kvmnetctl show rl >/dev/null 2>&1 || check_fail "network rl still there after its file was removed and the daemon reloaded"
    wait_state default active
}

check_watchdog() {
    local pid dpid i
    # A shorter watchdog than the unit's 30 s, so the test waits seconds.
    mkdir -p "$W/root/etc/systemd/system/kvmnetd.service.d"
    printf '[Service]\nWatchdogSec=3s\n' >"$W/root/etc/systemd/system/kvmnetd.service.d/50-test-watchdog.conf"
    c systemctl daemon-reload
    c systemctl restart kvmnetd
    expect_eq "$(c systemctl show -P WatchdogUSec kvmnetd)" 3s "WatchdogUSec with the test's drop-in"
    wait_state default active
    pid=$(main_pid)
    dpid=$(dnsmasq_pid default)
    log "freezing kvmnetd (pid $pid) with SIGSTOP"
    csh "kill -STOP $pid"
    for ((i = 0; i < 150; i++)); do
        [[ $(main_pid) != "$pid" && $(main_pid) != 0 ]] && unit_active && break
        sleep 0.2
    done
    ((i < 150)) || check_fail "kvmnetd (pid $pid, frozen) was not restarted within 30 s; unit: $(c systemctl show -P ActiveState,SubState,Result kvmnetd | tr '\n' ' ')"
    [[ $(c journalctl -u kvmnetd --no-pager) == *"Watchdog timeout"* ]] ||
        check_fail "no 'Watchdog timeout' for kvmnetd in the journal"
    log "restarted by the watchdog: pid $pid -> $(main_pid)"
    wait_state default active
    expect_eq "$(dnsmasq_pid default)" "$dpid" "default's dnsmasq after the watchdog restart (adopted)"
    guest_pings_internet g1
    rm -f "$W/root/etc/systemd/system/kvmnetd.service.d/50-test-watchdog.conf"
    c systemctl daemon-reload
    c systemctl restart kvmnetd
    expect_eq "$(c systemctl show -P WatchdogUSec kvmnetd)" 30s "WatchdogUSec of the unit"
}

check_security() {
    local report exposure threshold
    threshold=$(sed -nE 's/^.*Exposure: ([0-9]+\.[0-9]).*$/\1/p' "$SRCDIR/docs/systemd.md" | head -n1)
    [[ -n $threshold ]] || check_fail "docs/systemd.md states no 'Exposure: N.N'"
    report=$(c systemd-analyze security kvmnetd.service --no-pager 2>&1) || true
    exposure=$(sed -nE 's/^→ Overall exposure level for kvmnetd.service: ([0-9]+\.[0-9]+).*/\1/p' <<<"$report")
    [[ -n $exposure ]] || check_fail "no exposure level in: $report"
    log "exposure $exposure (documented: $threshold)"
    awk -v e="$exposure" -v t="$threshold" 'BEGIN { exit !(e <= t) }' ||
        check_fail "exposure $exposure above the documented $threshold: $report"
}

check_verify() {
    local out
    out=$(c systemd-analyze verify /lib/systemd/system/kvmnetd.service 2>&1) ||
        check_fail "systemd-analyze verify failed: $out"
    [[ -z $out ]] || check_fail "systemd-analyze verify complains: $out"
}

pk_args=(--mode nat --bridge kvbr1 --ipv4 10.77.0.1/24)
make_users() {
    c id kvadmin >/dev/null 2>&1 && return 0
    # kvuser: no rights; kvgroup: in netdev (the documented rule's group);
    # kvadmin: an administrator (group sudo, polkit's admin identity on
    # Debian) with a password, typed into kvmnetctl's agent below.
    csh 'set -e
        getent group netdev >/dev/null || groupadd --system netdev
        useradd -m kvuser
        useradd -m -G netdev kvgroup
        useradd -m -G sudo kvadmin
        echo kvadmin:kvadmin-pw-7 | chpasswd'
}

check_polkit_deny() {
    make_users
    local out rc=0
    out=$(as kvuser kvmnetctl create pk "${pk_args[@]}" </dev/null 2>&1) || rc=$?
    expect_eq "$rc" 1 "exit status of an unauthorized create (output: $out)"
    expect_contains "$out" AccessDenied "unauthorized create"
    expect_contains "$out" "org.kvmnet1.network.create-delete" "unauthorized create"
    expect_contains "$out" "caller uid $(c id -u kvuser)" "unauthorized create"
    [[ $(c kvmnetctl list) != *pk* ]] || check_fail "network pk exists after a refused create"
    # On a terminal, --no-ask-password: refused the same way, no prompt.
    rc=0
    out=$(as kvuser script -qfec "kvmnetctl --no-ask-password create pk ${pk_args[*]}" /dev/null </dev/null 2>&1) || rc=$?
    expect_eq "$rc" 1 "exit status of --no-ask-password on a terminal (output: $out)"
    expect_contains "$out" AccessDenied "--no-ask-password on a terminal"
    [[ $out != *Password:* ]] || check_fail "--no-ask-password still prompted: $out"
    [[ $(c kvmnetctl list) != *pk* ]] || check_fail "network pk exists after a refused create"
}

check_polkit_group() {
    make_users
    local rule out
    # The rule exactly as docs/dbus-api.md shows it (its js code block).
    rule=$(awk '/^## Authorization/ { s = 1 } s && /```js/ { b = 1; next } b && /```/ { exit } b' "$SRCDIR/docs/dbus-api.md" |
        sed 's/^  //')
    [[ $rule == *polkit.addRule* ]] || check_fail "no polkit rule in docs/dbus-api.md's Authorization section"
    mkdir -p "$W/root/etc/polkit-1/rules.d"
    echo "$rule" >"$W/root/etc/polkit-1/rules.d/50-kvmnet.rules"
    # polkitd re-reads its rules when the directory changes.
    # shellcheck disable=SC2317 # called through retry
    _group_create() { out=$(as kvgroup kvmnetctl create pk "${pk_args[@]}" </dev/null 2>&1); }
    retry 25 _group_create || check_fail "a netdev member may not create with the documented rule: $out"
    expect_eq "$(net_state pk)" inactive "pk after the netdev member's create"
    # The rule names the group: kvuser is still refused.
    ! as kvuser kvmnetctl start pk </dev/null >/dev/null 2>&1 || check_fail "kvuser (not in netdev) could start pk"
}

# _tty_echo_off: the terminal of kvuser's kvmnetctl (script's pty) has echo off.
_tty_echo_off() {
    # shellcheck disable=SC2016 # expanded in the container's shell
    csh 'for p in /proc/[0-9]*; do
        [[ $(cat $p/comm 2>/dev/null) == kvmnetctl ]] || continue
        t=$(readlink $p/fd/0) && [[ $t == /dev/pts/* ]] || continue
        [[ " $(stty -F $t -a) " == *" -echo "* ]] && exit 0
    done
    exit 1'
}

check_polkit_agent() {
    make_users
    c kvmnetctl show pk >/dev/null 2>&1 || c kvmnetctl create pk "${pk_args[@]}"
    local buf="" ch rc=0 i apid win rout
    # kvuser on a terminal (script's pty): kvmnetctl must start its own polkit
    # agent, which asks for an administrator's (kvadmin's) password. The
    # test reads the terminal through a fifo until the prompt, then types.
    mkfifo "$W/agent.in" "$W/agent.out"
    # timeout: a password the agent never read would leave polkit waiting
    # for 5 minutes; --foreground keeps kvmnetctl on the terminal.
    as kvuser script -qfec "timeout --foreground 60 kvmnetctl start pk" /dev/null <"$W/agent.in" >"$W/agent.out" 2>&1 &
    apid=$!
    exec {win}>"$W/agent.in" {rout}<"$W/agent.out"
    for ((i = 0; i < 300; i++)); do
        if IFS= read -r -t 0.1 -N 1 ch <&"$rout"; then
            buf+=$ch
            [[ $buf == *"Password: " ]] && break
            i=0
        elif ! kill -0 "$apid" 2>/dev/null; then
            break
        fi
    done
    if [[ $buf != *"Password: " ]]; then
        wait "$apid" || rc=$?
        check_fail "no password prompt on kvmnetctl's terminal (exit $rc); the terminal showed: $buf"
    fi
    log "prompt: $(tr -s '\r\n' '  ' <<<"$buf")"
    expect_contains "$buf" "org.kvmnet1.network.start-stop" "the agent's prompt"
    # The agent prints the prompt, then turns echo off with TCSAFLUSH, which
    # drops what was typed before: type only once echo is off, as a person
    # would be too slow to notice.
    retry 50 _tty_echo_off || check_fail "the terminal of kvmnetctl never turned echo off for the password"
    echo "kvadmin-pw-7" >&"$win"
    while IFS= read -r -t 30 ch <&"$rout"; do buf+=$ch$'\n'; done
    wait "$apid" || rc=$?
    exec {win}>&- {rout}<&-
    expect_eq "$rc" 0 "exit status of kvmnetctl start pk after the password (terminal: $buf)"
    wait_state pk active
    c kvmnetctl stop pk
}

check_upgrade() {
    local rpid odpid duid out rc=0 now pids i
    c kvmnetctl show old >/dev/null 2>&1 && check_fail "network old exists already"
    # The daemon as it ran before the unit: root, by hand, same directories,
    # which a root daemon made and owned (systemd chowns them to kvmnet when
    # the unit starts, as it would after a real upgrade).
    c systemctl stop kvmnetd
    c chown -R root:root /var/lib/kvmnet /run/kvmnet
    csh 'kvmnetd --state-dir /var/lib/kvmnet --runtime-dir /run/kvmnet >/var/log/kvmnetd-root.log 2>&1 &
        echo $! >/var/log/kvmnetd-root.pid'
    rpid=$(cat "$W/root/var/log/kvmnetd-root.pid")
    retry 50 grep -q 'ready on the bus' "$W/root/var/log/kvmnetd-root.log" ||
        check_fail "kvmnetd as root did not start: $(cat "$W/root/var/log/kvmnetd-root.log")"
    c kvmnetctl create old --mode nat --bridge kvbr2 --ipv4 10.78.0.1/24 --dhcp-range 10.78.0.100-10.78.0.150
    c kvmnetctl start old
    wait_state old active
    odpid=$(dnsmasq_pid old)
    is_dnsmasq "$odpid" || check_fail "old's dnsmasq pid file says '$odpid'"
    duid=$(proc_field "$odpid" Uid)
    duid=${duid%% *}
    log "root kvmnetd $rpid runs old; its dnsmasq $odpid runs as uid $duid ($(c id -nu "$duid"))"
    [[ $duid != "$(c id -u kvmnet)" && $duid != 0 ]] || check_fail "old's dnsmasq runs as uid $duid, expected the dnsmasq user"
    csh "kill -TERM $rpid"
    for ((i = 0; i < 50; i++)); do alive "$rpid" || break; sleep 0.1; done
    alive "$rpid" && check_fail "root kvmnetd $rpid ignored SIGTERM"
    is_dnsmasq "$odpid" || check_fail "stopping the root kvmnetd stopped old's dnsmasq"

    # The unit takes over.
    c systemctl start kvmnetd
    now=$(net_json old | jq -c '.status | {state, state_reason}')
    pids=$(dnsmasqs_of old | tr '\n' ' ')
    log "after the unit took over: old is $now; its dnsmasq processes: $pids"
    [[ ${pids% } == "$odpid" ]] || check_fail "old has dnsmasq processes '$pids'; only the adopted or refused $odpid may run"
    case $(jq -r .state <<<"$now") in
    active) expect_eq "$(dnsmasq_pid old)" "$odpid" "old's dnsmasq pid file (adopted)" ;;
    failed) expect_contains "$now" "$odpid" "state reason of the refused network old" ;;
    *) check_fail "network old is $now after the takeover: neither adopted nor refused naming pid $odpid" ;;
    esac

    out=$(c kvmnetctl stop old 2>&1) || rc=$?
    log "kvmnetctl stop old: exit $rc: $out"
    if ((rc == 0)); then
        retry 25 bash -c "! [[ \$(nsenter -t $CPID -a cat /proc/$odpid/comm 2>/dev/null) == dnsmasq ]]" ||
            check_fail "kvmnetctl stop old reported success, but the old dnsmasq $odpid still runs"
    else
        expect_contains "$out" "$odpid" "the refused stop's message"
    fi
}

# The old dnsmasq is the test's to remove whatever the daemon did with it.
cleanup_upgrade() {
    local p
    for p in $(dnsmasqs_of old); do csh "kill -TERM $p" || true; done
    c kvmnetctl delete old >/dev/null 2>&1 || true
}

run_check readme check_readme
if [[ ${FAILED[*]-} == *readme* ]]; then
    die "the README's install steps failed; nothing else can be checked"
fi
run_check nat check_nat
run_check journal check_journal
run_check identity check_identity
run_check quiet check_quiet
run_check restart check_restart
run_check activation check_activation
run_check reload check_reload
run_check watchdog check_watchdog
run_check security check_security
run_check verify check_verify
run_check polkit-deny check_polkit_deny
run_check polkit-group check_polkit_group
run_check polkit-agent check_polkit_agent
run_check upgrade check_upgrade
cleanup_upgrade

echo "[$TEST_NAME] ${#PASSED[@]} checks passed, ${#FAILED[@]} failed${FAILED[*]:+: ${FAILED[*]}}" >&2
((${#FAILED[@]} == 0)) || exit 1
