# Shared harness for the kvmnet end-to-end tests (and scripts/demo.sh).
#
# Source it from a test:  source "$(dirname "$0")/lib.sh"
#
# Everything runs inside network namespaces this file creates: a private
# dbus-daemon, kvmnetd in the "host" namespace, guests and a fake "internet"
# as further namespaces joined by veth pairs. The machine's own network
# namespace is never configured: `ip`, `nft`, `sysctl`, `bridge` and `tc` are
# shadowed by guard functions below that refuse any command not aimed at a
# namespace made by this run.
#
# Environment:
#   KVMNETD, KVMNETCTL, SRCDIR  set by tests/e2e/meson.build; default to the
#                               source tree and its build/ directory.
#   KVMNET_LIB_MODE=demo        set by scripts/demo.sh before sourcing: no
#                               exit-77 skips, fixed "kvmdemo-" prefix.
#   KVMNET_E2E_KEEP=1           keep the temp dir after a run (debugging).
#
# Exit codes: 0 pass, 1 fail, 77 skip (meson prints SKIP).

# shellcheck shell=bash
set -euo pipefail
set -E # functions inherit the ERR trap, so a failing line inside them is reported

KVMNET_LIB_MODE=${KVMNET_LIB_MODE:-test}
_lib_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRCDIR=${SRCDIR:-$(cd "$_lib_dir/../.." && pwd)}
KVMNETD=${KVMNETD:-$SRCDIR/build/daemon/kvmnetd}
KVMNETCTL=${KVMNETCTL:-$SRCDIR/build/client/kvmnetctl}
TEST_NAME=$(basename "${0%.sh}")

# ---------------------------------------------------------------- reporting

log() { echo "[$TEST_NAME] $*" >&2; }

skip() {
    if [[ $KVMNET_LIB_MODE == demo ]]; then
        echo "$TEST_NAME: cannot run: $*" >&2
        exit 1
    fi
    echo "SKIP: $*" >&2
    exit 77
}

_log_dumped=0
dump_daemon_log() {
    local f
    if ((!_log_dumped)) && [[ -n ${T:-} ]]; then
        for f in "$T"/h*/kvmnetd.log; do
            [[ -s $f ]] || continue
            echo "----- last 40 lines of $f -----" >&2
            tail -n 40 "$f" >&2 || true
        done
    fi
    if ((_log_dumped)) || [[ -z ${T:-} || ! -s $T/kvmnetd.log ]]; then
        return 0
    fi
    _log_dumped=1
    echo "----- last 60 lines of kvmnetd log ($T/kvmnetd.log) -----" >&2
    tail -n 60 "$T/kvmnetd.log" >&2 || true
    echo "----- end of kvmnetd log -----" >&2
}

fail() {
    echo "FAIL: $*" >&2
    dump_daemon_log
    exit 1
}

assert_eq() { # ACTUAL EXPECTED WHAT
    if [[ $1 != "$2" ]]; then
        fail "${3:-value}: expected '$2', got '$1'"
    fi
}

assert_contains() { # HAYSTACK NEEDLE WHAT
    if [[ $1 != *"$2"* ]]; then
        fail "${3:-output} should contain '$2', got: $1"
    fi
}

assert_not_contains() { # HAYSTACK NEEDLE WHAT
    if [[ $1 == *"$2"* ]]; then
        fail "${3:-output} should not contain '$2', got: $1"
    fi
}

# retry N CMD...: runs CMD up to N times, 0.2 s apart, until it succeeds.
# Used for everything that settles asynchronously (the daemon reconciles in
# the background, dnsmasq binds after start).
retry() {
    local n=$1 i
    shift
    for ((i = 0; i < n; i++)); do
        if "$@"; then return 0; fi
        sleep 0.2
    done
    return 1
}

not() { ! "$@"; } # for retry: `retry 25 not CMD` waits until CMD fails

# ---------------------------------------------------------------- preconditions

if [[ $KVMNET_LIB_MODE == demo ]]; then
    PFX=kvmdemo-
else
    PFX=kt$$-
fi

if ((EUID != 0)); then
    skip "needs root (creates network namespaces, bridges and nftables tables inside them)"
fi
if ! unshare --net true 2>/dev/null; then
    skip "cannot create network namespaces here (unshare --net failed)"
fi
for _tool in ip nft dnsmasq dbus-daemon dbus-send busybox socat jq ss; do
    command -v "$_tool" >/dev/null || fail "missing tool '$_tool' (run scripts/deps.sh)"
done
for _bin in "$KVMNETD" "$KVMNETCTL"; do
    [[ -x $_bin ]] || fail "not built: $_bin (run: meson setup build && ninja -C build)"
done

# ---------------------------------------------------------------- guards

NAMESPACES=()   # namespaces this run created, deleted by cleanup
TRACKED_PIDS=() # background processes the test started
DAEMON_PID=""
BUS_PID=""
HOST_DAEMON_PIDS=() # hosts_topology's daemons, one per host
HOST_BUS_PIDS=()

_ns_is_ours() {
    local n
    for n in "${NAMESPACES[@]}"; do
        [[ $n == "$1" ]] && return 0
    done
    return 1
}

_guard_refuse() {
    echo "SAFETY: refusing to run '$*': it does not target a namespace made by this test" >&2
    echo "        (use ip -n NS ... or in_ns NS CMD ...)" >&2
    dump_daemon_log
    exit 1
}

# `ip` is allowed as `ip [opts] -n OURNS ...`, `ip netns add|del|exec|pids OURNS`
# and `ip netns list`; anything else would touch the root namespace.
ip() {
    local -a a=("$@")
    local i=0 ns="" sub
    while ((i < ${#a[@]})); do
        case ${a[i]} in
        -n | -netns | --netns)
            ns=${a[i + 1]-}
            i=$((i + 2))
            ;;
        -*) i=$((i + 1)) ;;
        *) break ;;
        esac
    done
    sub=${a[i]-}
    if [[ -n $ns ]]; then
        _ns_is_ours "$ns" || _guard_refuse ip "$@"
        # `link add/set ... netns X` moves a link: X must be ours as well
        # (a pid or a foreign name could mean the root namespace).
        local j
        for ((j = i; j < ${#a[@]}; j++)); do
            if [[ ${a[j]} == netns ]]; then
                _ns_is_ours "${a[j + 1]-}" || _guard_refuse ip "$@"
            fi
        done
        command ip "$@"
        return
    fi
    if [[ $sub == netns ]]; then
        case ${a[i + 1]-} in
        list | ls) command ip "$@"; return ;;
        add | del | delete | exec | pids)
            _ns_is_ours "${a[i + 2]-}" || _guard_refuse ip "$@"
            command ip "$@"
            return
            ;;
        esac
    fi
    _guard_refuse ip "$@"
}
nft() { _guard_refuse nft "$@"; }
sysctl() { _guard_refuse sysctl "$@"; }
bridge() { _guard_refuse bridge "$@"; }
tc() { _guard_refuse tc "$@"; }

# in_ns NS CMD...: the one way to run nft/sysctl/ping/socat in a namespace.
in_ns() {
    local ns=$1
    shift
    ip netns exec "$ns" "$@"
}

# spawn_in_ns NS CMD...: start CMD in NS in the background so that $! is the
# command's own pid (`ip netns exec` execs it). Backgrounding a shell function
# would make $! a subshell whose SIGTERM leaves the command running.
# Redirect output at the call site.
spawn_in_ns() {
    _ns_is_ours "$1" || _guard_refuse ip netns exec "$@"
    command ip netns exec "$@" &
    SPAWNED_PID=$!
}

# ---------------------------------------------------------------- temp dir

T=$(mktemp -d "/tmp/kvmnet-e2e-${TEST_NAME}.XXXXXX")
# The daemon's runtime dir lives under here; dnsmasq drops privileges and
# still has to reach its files, as it would under /run/kvmnet.
chmod 755 "$T"

# ---------------------------------------------------------------- private mounts

# A test that gives the daemon a state directory on a file system of its own
# (a small tmpfs to fill up, or to remount read-only) runs in a private mount
# namespace, so no mount reaches the machine's. It re-executes itself into
# one before sourcing this file:
#   if [[ -z ${KVMNET_E2E_MOUNTNS:-} ]] && ((EUID == 0)); then
#       KVMNET_E2E_MOUNTNS=1 exec unshare --mount --propagation private bash "$0" "$@"
#   fi
MOUNTS=() # unmounted by cleanup
# state_tmpfs SIZE: $T/state becomes a tmpfs of SIZE bytes (k, m suffixes).
# Call it before daemon_start: the daemon's mount namespace is a copy of
# ours, and both mounts share the one file system.
state_tmpfs() {
    [[ $(readlink /proc/self/ns/mnt) != "$(readlink /proc/1/ns/mnt)" ]] ||
        fail "state_tmpfs: not in a private mount namespace (see 'private mounts' in lib.sh)"
    mkdir -p "$T/state"
    mount -t tmpfs -o "size=$1,mode=755" kvmnet-e2e-state "$T/state"
    MOUNTS+=("$T/state")
}
# KVMNET_E2E_RUNTIME_TMPFS=1: the daemon's runtime directory ($T/run) is a
# tmpfs, as /run is where kvmnetd runs for real (the benchmarks ask for it:
# on this machine's ext4 a runtime file's new inode costs a write a third of
# its time). Needs a private mount namespace, like state_tmpfs.
runtime_tmpfs() {
    mountpoint -q "$T/run" && return 0
    [[ $(readlink /proc/self/ns/mnt) != "$(readlink /proc/1/ns/mnt)" ]] ||
        fail "runtime_tmpfs: not in a private mount namespace (see 'private mounts' in lib.sh)"
    mkdir -p "$T/run"
    mount -t tmpfs -o "size=256m,mode=755" kvmnet-e2e-run "$T/run"
    MOUNTS+=("$T/run")
}
# runtime_reset: an empty runtime directory for the next daemon (a tmpfs
# mount point stays).
runtime_reset() { [[ ! -d $T/run ]] || find "$T/run" -mindepth 1 -delete; }
# state_mode ro|rw: remounts the state tmpfs; the file system itself becomes
# read-only (or writable again), so the daemon's copy of the mount follows.
state_mode() { mount -o "remount,$1" "$T/state"; }

# slow_disk DIR: DIR becomes an ext4 of the test's own whose image lives on
# a second ext4 of the test's own ($T/outer; two loop devices). Call it in a
# private mount namespace, before daemon_start. disk_freeze freezes the
# outer one (fsfreeze): writes into DIR's page cache go on, every fsync
# there waits until disk_thaw - a real slow disk, no test hook in the
# daemon. cleanup thaws before it stops anything.
DISK_FROZEN=0
slow_disk() {
    local dir=$1
    [[ $(readlink /proc/self/ns/mnt) != "$(readlink /proc/1/ns/mnt)" ]] ||
        fail "slow_disk: not in a private mount namespace (see 'private mounts' in lib.sh)"
    command -v mkfs.ext4 >/dev/null || skip "mkfs.ext4 (e2fsprogs) is not installed"
    command -v fsfreeze >/dev/null || skip "fsfreeze (util-linux) is not installed"
    [[ -e /dev/loop-control ]] || skip "no loop devices (/dev/loop-control)"
    if [[ ! -d $T/outer ]]; then
        mkdir -p "$T/outer"
        truncate -s 64M "$T/outer.img"
        mkfs.ext4 -q -F "$T/outer.img"
        mount -o loop "$T/outer.img" "$T/outer" || skip "cannot mount an ext4 image on a loop device"
        MOUNTS+=("$T/outer")
    fi
    local image
    image=$T/outer/$(basename "$dir").img
    mkdir -p "$dir"
    truncate -s 32M "$image"
    mkfs.ext4 -q -F "$image"
    mount -o loop "$image" "$dir"
    MOUNTS=("$dir" "${MOUNTS[@]}") # the inner one is unmounted first
}
disk_freeze() {
    local m
    for m in "${MOUNTS[@]}"; do [[ $m == "$T/outer" ]] || sync -f "$m"; done
    sync -f "$T/outer"
    fsfreeze -f "$T/outer"
    DISK_FROZEN=1
}
disk_thaw() {
    if ((DISK_FROZEN)); then
        fsfreeze -u "$T/outer" 2>/dev/null || true
        DISK_FROZEN=0
    fi
}

# ---------------------------------------------------------------- cleanup

_pid_alive() { [[ -n ${1:-} ]] && kill -0 "$1" 2>/dev/null; }
proc_cmdline() { tr '\0' ' ' 2>/dev/null <"/proc/$1/cmdline" || true; }
# dnsmasqs_of NAME: the processes in H running network NAME's dnsmasq
# configuration (by their command line, pid file or not).
dnsmasqs_of() {
    local pid
    for pid in $(command ip netns pids "$H"); do
        [[ $(proc_cmdline "$pid") == *"--conf-file=$T/run/$1/dnsmasq.conf"* ]] && echo "$pid"
    done
    return 0
}
# (Pipelines into `grep -q` are avoided in this file: with pipefail, an early
# grep exit can fail the writer with SIGPIPE and turn a match into a failure.)

# stop_pid PID [GRACE_SECONDS]: SIGTERM, wait, SIGKILL. Reaps our own children.
stop_pid() {
    local pid=$1 grace=${2:-5} i
    _pid_alive "$pid" || { wait "$pid" 2>/dev/null || true; return 0; }
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < grace * 10; i++)); do
        _pid_alive "$pid" || break
        # A reaped child vanishes from kill -0; a non-child zombie does not.
        [[ $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) == Z ]] && break
        sleep 0.1
    done
    if _pid_alive "$pid" && [[ $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) != Z ]]; then
        log "pid $pid ignored SIGTERM for ${grace}s, sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

track_pid() { TRACKED_PIDS+=("$1"); }

# Kills PID only if it really is a dnsmasq (pid files can be stale and the
# number reused by an unrelated process).
_kill_dnsmasq_pid() {
    local pid=$1
    [[ $pid =~ ^[0-9]+$ ]] || return 0
    if [[ $(proc_cmdline "$pid") == *dnsmasq* ]]; then
        stop_pid "$pid" 3
    fi
}

cleanup() {
    local rc=$? pid f ns
    trap - EXIT INT TERM ERR
    set +e
    if ((rc != 0 && rc != 77 && rc != 130)); then
        dump_daemon_log
    fi
    # A daemon (or the kernel's writeback) waiting on a frozen file system
    # would not stop.
    disk_thaw
    [[ -n $DAEMON_PID ]] && stop_pid "$DAEMON_PID"
    for pid in "${HOST_DAEMON_PIDS[@]}"; do stop_pid "$pid"; done
    for pid in "${TRACKED_PIDS[@]}"; do stop_pid "$pid" 3; done
    for f in "$T"/run/*/dnsmasq.pid "$T"/h*/run/*/dnsmasq.pid; do
        [[ -f $f ]] && _kill_dnsmasq_pid "$(tr -d ' \n' <"$f")"
    done
    # Anything still running inside our namespaces was started by this run
    # (most likely a dnsmasq whose pid file was never written): stop it by
    # PID, and say so, since it may point at a daemon bug.
    for ns in "${NAMESPACES[@]}"; do
        for pid in $(command ip netns pids "$ns" 2>/dev/null); do
            log "leftover process in $ns: $pid ($(proc_cmdline "$pid"))"
            stop_pid "$pid" 2
        done
    done
    [[ -n $BUS_PID ]] && stop_pid "$BUS_PID"
    for pid in "${HOST_BUS_PIDS[@]}"; do stop_pid "$pid"; done
    for ns in "${NAMESPACES[@]}"; do
        command ip netns del "$ns" 2>/dev/null || log "could not delete namespace $ns"
    done
    for f in "${MOUNTS[@]}"; do
        umount "$f" 2>/dev/null || umount -l "$f" 2>/dev/null || log "could not unmount $f"
    done
    if [[ ${KVMNET_E2E_KEEP:-0} == 1 ]]; then
        log "kept $T"
    else
        rm -rf "$T"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
# Under set -e a failing command ends the test; say which one and from where.
_on_err() {
    local rc=$1 cmd=$2 i where=""
    for ((i = 1; i < ${#BASH_SOURCE[@]}; i++)); do
        where+=" ${BASH_SOURCE[i]##*/}:${BASH_LINENO[i - 1]}"
    done
    echo "FAIL: command failed (exit $rc): $cmd  [at$where]" >&2
}
trap '_on_err $? "$BASH_COMMAND"' ERR

# ---------------------------------------------------------------- namespaces

# ns_create NAME: a fresh namespace with lo up. NAME must carry this run's
# prefix, so it can never be the name of something we did not make.
ns_create() {
    local ns=$1
    [[ $ns == "$PFX"* ]] || fail "namespace name '$ns' lacks the run prefix '$PFX'"
    if [[ -e /run/netns/$ns ]]; then
        fail "namespace $ns already exists (left over from an earlier run?); remove it with: ip netns del $ns"
    fi
    NAMESPACES+=("$ns")
    ip netns add "$ns"
    ip -n "$ns" link set lo up
}

# veth_pair NS1 IF1 NS2 IF2: both ends created directly inside the namespaces
# and brought up.
veth_pair() {
    ip -n "$1" link add "$2" type veth peer name "$4" netns "$3"
    ip -n "$1" link set "$2" up
    ip -n "$3" link set "$4" up
}

# ---------------------------------------------------------------- bus and daemon

# bus_start [EXTRA]: the open test bus; EXTRA (configuration elements such as
# a <limit>) goes before the policy.
bus_start() {
    bus_launch <<EOF
${1:-}
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow receive_sender="*"/>
    <allow eavesdrop="true"/>
  </policy>
EOF
}

# bus_launch <<EOF ... EOF: a private dbus-daemon, a system-type bus on
# $T/bus with EXTERNAL authentication, configured by the policies (and
# includes, service directories) read from stdin; tests with a policy of
# their own call it directly. Sets BUS_PID (cleanup stops it) and exports
# DBUS_SYSTEM_BUS_ADDRESS.
bus_launch() {
    local dir=${BUS_DIR:-$T} # the hosts of hosts_topology each have their own
    {
        cat <<EOF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=$dir/bus</listen>
  <auth>EXTERNAL</auth>
EOF
        cat
        echo '</busconfig>'
    } >"$dir/bus.conf"
    : >"$dir/bus.addr"
    dbus-daemon --config-file="$dir/bus.conf" --nofork --nopidfile --print-address=3 \
        3>"$dir/bus.addr" >"$dir/dbus.log" 2>&1 &
    BUS_PID=$!
    retry 50 test -s "$dir/bus.addr" || fail "dbus-daemon did not start: $(cat "$dir/dbus.log")"
    DBUS_SYSTEM_BUS_ADDRESS=$(head -n1 "$dir/bus.addr")
    export DBUS_SYSTEM_BUS_ADDRESS
}

_bus_name_owned() {
    local reply
    reply=$(dbus-send --system --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \
        org.freedesktop.DBus.NameHasOwner string:org.kvmnet1 2>/dev/null) || return 1
    [[ $reply == *"boolean true"* ]]
}

_daemon_starts=0
# daemon_start [EXTRA ARGS]: kvmnetd in $H, logging to $T/kvmnetd.log; returns
# once it owns org.kvmnet1.
daemon_start() {
    [[ -n ${H:-} ]] || fail "daemon_start: no host namespace (call nat_topology first)"
    _pid_alive "$DAEMON_PID" && fail "daemon_start: daemon already running (pid $DAEMON_PID)"
    _daemon_starts=$((_daemon_starts + 1))
    echo "===== kvmnetd start #$_daemon_starts $(date +%T.%N) =====" >>"$T/kvmnetd.log"
    # Debug unless the caller chose a level (kvmnetd refuses an option twice).
    local level=(--log-level debug)
    [[ " $* " == *" --log-level "* ]] && level=()
    [[ ${KVMNET_E2E_RUNTIME_TMPFS:-0} != 1 ]] || runtime_tmpfs
    spawn_in_ns "$H" "$KVMNETD" --state-dir "$T/state" --runtime-dir "$T/run" \
        "${level[@]}" "$@" >>"$T/kvmnetd.log" 2>&1
    DAEMON_PID=$SPAWNED_PID
    local i rc
    for ((i = 0; i < 50; i++)); do
        if ! _pid_alive "$DAEMON_PID"; then
            wait "$DAEMON_PID" && rc=0 || rc=$?
            DAEMON_PID=""
            fail "kvmnetd exited during start-up (exit $rc)"
        fi
        if _bus_name_owned; then return 0; fi
        sleep 0.2
    done
    fail "kvmnetd did not take the bus name org.kvmnet1 within 10 s"
}

# daemon_stop: SIGTERM by PID, SIGKILL after 5 s. Sets DAEMON_EXIT to the
# exit status (0 is expected for a clean shutdown).
DAEMON_EXIT=""
daemon_stop() {
    [[ -n $DAEMON_PID ]] || return 0
    local pid=$DAEMON_PID i
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        _pid_alive "$pid" || break
        [[ $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) == Z ]] && break
        sleep 0.1
    done
    if ((i == 50)); then
        log "kvmnetd ignored SIGTERM for 5 s, sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" && DAEMON_EXIT=0 || DAEMON_EXIT=$?
    DAEMON_PID=""
    # The name must be free before a new daemon is started.
    retry 25 _bus_name_free || fail "org.kvmnet1 still owned after kvmnetd exited"
}
_bus_name_free() { ! _bus_name_owned; }

# ctl ARGS...: the CLI against the private bus.
ctl() { "$KVMNETCTL" "$@"; }

# expect_error KIND CTL-ARGS...: the command must exit 1 and print exactly one
# line "kvmnetctl: KIND: message" on stderr. Sets ERR_MSG to the message.
ERR_MSG=""
expect_error() {
    local kind=$1 rc out err
    shift
    out=$("$KVMNETCTL" "$@" 2>"$T/ctl.err") && rc=0 || rc=$?
    err=$(cat "$T/ctl.err")
    if ((rc != 1)); then
        fail "kvmnetctl $* : expected exit 1 ($kind), got exit $rc; stdout: $out; stderr: $err"
    fi
    if [[ $(wc -l <"$T/ctl.err") != 1 ]]; then
        fail "kvmnetctl $* : expected exactly one line on stderr, got: $err"
    fi
    if [[ $err != "kvmnetctl: $kind: "* ]]; then
        fail "kvmnetctl $* : expected 'kvmnetctl: $kind: ...', got: $err"
    fi
    ERR_MSG=${err#"kvmnetctl: $kind: "}
}

# net_state NET: the state field of `ctl show NET --json`.
net_state() { ctl show "$1" --json | jq -r .status.state; }

# default_network_running: the "default" NAT network most tests start from
# (kvmbr0, 192.168.122.1/24, DHCP .100-.254), created, started and active.
default_network_running() {
    ctl create default --mode nat --bridge kvmbr0 --ipv4 192.168.122.1/24 \
        --dhcp-range 192.168.122.100-192.168.122.254 >/dev/null
    ctl start default >/dev/null
    wait_state default active
}
_state_is() { [[ $(net_state "$1" 2>/dev/null) == "$2" ]]; }
# wait_state NET STATE [TRIES]: poll (activation may finish asynchronously).
wait_state() {
    retry "${3:-50}" _state_is "$1" "$2" ||
        fail "network $1: state '$(net_state "$1" 2>&1)' ($(ctl show "$1" --json 2>/dev/null | jq -r .status.state_reason)), expected '$2'"
}

# dnsmasq_pid NET: the pid in the daemon's pid file, or nothing.
dnsmasq_pid() { tr -d ' \n' <"$T/run/$1/dnsmasq.pid" 2>/dev/null || true; }
# held_dnsmasq NAME...: the path of a dnsmasq wrapper for `kvmnetd
# --dnsmasq`: for the listed networks it writes its pid to $T/waiting.NAME
# and waits for $T/release.NAME before it execs the real dnsmasq (same pid,
# same command line), holding a start in "waiting for dnsmasq"; other
# networks get dnsmasq at once.
held_dnsmasq() {
    local real pattern="" n
    real=$(command -v dnsmasq)
    for n in "$@"; do pattern+="${pattern:+ | }*/run/$n/dnsmasq.conf*"; done
    cat >"$T/held-dnsmasq" <<WRAPPER
#!/bin/sh
case "\$*" in
$pattern)
    name=\$(basename "\$(dirname "\${2#--conf-file=}")")
    echo \$\$ >"$T/waiting.\$name"
    while [ ! -e "$T/release.\$name" ]; do sleep 0.05; done ;;
esac
exec $real "\$@"
WRAPPER
    chmod 755 "$T/held-dnsmasq"
    echo "$T/held-dnsmasq"
}

# is_dnsmasq PID: alive and really a dnsmasq.
is_dnsmasq() {
    [[ ${1:-} =~ ^[0-9]+$ ]] && [[ $(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) != Z ]] &&
        [[ $(proc_cmdline "$1") == *dnsmasq* ]]
}

# ---------------------------------------------------------------- topology

# nat_topology: H (host, the daemon runs here), G1 (guest), I ("internet").
#   H:uplink0 203.0.113.1/24 <-> I:eth0 203.0.113.2/24, H default via .2
#   H:vg1 (up, unplugged) <-> G1:eth0
# I has no route to guest subnets; see route_back.
nat_topology() {
    H=${PFX}h
    G1=${PFX}g1
    I=${PFX}i
    ns_create "$H"
    ns_create "$G1"
    ns_create "$I"
    veth_pair "$H" uplink0 "$I" eth0
    ip -n "$H" addr add 203.0.113.1/24 dev uplink0
    ip -n "$I" addr add 203.0.113.2/24 dev eth0
    ip -n "$H" route add default via 203.0.113.2
    veth_pair "$H" vg1 "$G1" eth0
}

# plain_router I H G: a kvmnet NAT host's shape without kvmnetd, for the
# benchmarks' baselines: I ("internet", eth0 203.0.113.2/24) -- H (uplink0
# 203.0.113.1/24, bridge br0 192.168.170.1/24, forwarding on) -- G (guest,
# eth0 192.168.170.10/24 on br0 through vgp, default via the bridge).
plain_router() {
    local i=$1 h=$2 g=$3
    ns_create "$i"
    ns_create "$h"
    ns_create "$g"
    veth_pair "$h" uplink0 "$i" eth0
    ip -n "$h" addr add 203.0.113.1/24 dev uplink0
    ip -n "$i" addr add 203.0.113.2/24 dev eth0
    ip -n "$h" link add br0 type bridge
    ip -n "$h" addr add 192.168.170.1/24 dev br0
    ip -n "$h" link set br0 up
    veth_pair "$h" vgp "$g" eth0
    ip -n "$h" link set vgp master br0
    ip -n "$g" addr add 192.168.170.10/24 dev eth0
    ip -n "$g" route add default via 192.168.170.1
    in_ns "$h" sysctl -qw net.ipv4.ip_forward=1
}

# route_back CIDR: let I reach a guest subnet through the host (for tests that
# show inbound traffic is refused for another reason than routing).
route_back() { ip -n "$I" route add "$1" via 203.0.113.1; }

# guest_plug GUESTNS HOSTIF BRIDGE: plug the guest's host-side veth into the
# bridge the daemon created.
guest_plug() { ip -n "$H" link set "$2" master "$3" up; }

# routed_guest GUESTNS HOSTIF: a routed network "rt" (kvmbr5, 10.62.0.1/24)
# started, the guest at 10.62.0.10 on it, and I routing to it (nat_topology).
routed_guest() {
    ctl create rt --mode routed --bridge kvmbr5 --ipv4 10.62.0.1/24 >/dev/null
    ctl start rt >/dev/null
    wait_state rt active
    guest_plug "$1" "$2" kvmbr5
    ip -n "$1" addr add 10.62.0.10/24 dev eth0
    ip -n "$1" route add default via 10.62.0.1
    route_back 10.62.0.0/24
    pings "$I" 10.62.0.10 || fail "203.0.113.2 cannot reach the routed guest before the change"
}

# guest_dhcp NS [UDHCPC-ARGS...]: obtain a lease with busybox udhcpc (extra
# arguments such as `-x hostname:web1` go to udhcpc); prints "IP/MASK ROUTER".
guest_dhcp() {
    local ns=$1
    shift
    UDHCPC_LEASE_FILE="$T/lease.$ns" in_ns "$ns" busybox udhcpc -i eth0 -n -q -t 5 -T 1 \
        -s "$SRCDIR/tests/e2e/udhcpc.script" "$@" >"$T/udhcpc.$ns.log" 2>&1 ||
        fail "no DHCP lease in $ns: $(cat "$T/udhcpc.$ns.log")"
    cat "$T/lease.$ns"
}

# listen_tcp NS PORT REPLY-CMD: a socat listener in NS, tracked, waited for.
# A client that half-closes (tcp_get) must not end the connection before
# REPLY-CMD has answered: socat's -t (0.5 s by default) is 10 s here.
listen_tcp() {
    local ns=$1 port=$2 cmd=$3
    spawn_in_ns "$ns" socat -t 10 "TCP-LISTEN:$port,reuseaddr,fork" "SYSTEM:$cmd" >>"$T/socat.log" 2>&1
    track_pid "$SPAWNED_PID"
    retry 50 _listening "$ns" "$port" || fail "listener on $ns:$port did not come up"
}
_listening() { [[ $(in_ns "$1" ss -Hltn "sport = :$2") == *LISTEN* ]]; }

# tcp_get NS ADDR PORT [TIMEOUT]: connect, print what the server sends.
# Its stdin is empty, so socat half-closes at once and then waits only -t
# for the reply (0.5 s by default): -t is the timeout too, or a server slow
# to answer reads as an empty reply (test_tcp_get).
tcp_get() {
    in_ns "$1" socat -t "${4:-3}" -T "${4:-3}" - "TCP:$2:$3,connect-timeout=${4:-3}" </dev/null
}

# ---------------------------------------------------------------- kernel snapshots

# kernel_snapshot NS: links, addresses and our nftables table in a form that
# only changes when configuration changes (timers, lifetimes, DAD flags and
# counters stripped).
kernel_snapshot() {
    local ns=$1
    echo "## links"
    ip -n "$ns" -j -d link show | jq -S 'walk(if type == "object" then
        with_entries(select(.key | test("_timer$|^stats") | not)) else . end)'
    echo "## addresses"
    ip -n "$ns" -j addr show | jq -S 'map(.addr_info |= map(del(.valid_life_time,
        .preferred_life_time, .tentative, .dadfailed)))'
    echo "## nft"
    in_ns "$ns" nft -s list table inet kvmnet 2>&1 | sed -E 's/expires [0-9a-z.]+//g' || true
    echo "## nft json"
    in_ns "$ns" nft -j list table inet kvmnet 2>&1 | jq -S 'walk(if type == "object" then
        del(.handle, .counter, .packets, .bytes, .expires) else . end)' 2>&1 || true
}

# ---------------------------------------------------------------- bridge mode and guest ports

# guest_add N: one more guest, namespace G<N> (${PFX}g<N>), whose eth0 is a
# veth to H:vg<N> (up, unplugged). Needs $H. Sets the variable G<N>.
guest_add() {
    local n=$1 ns=${PFX}g$1
    [[ -n ${H:-} ]] || fail "guest_add: no host namespace yet"
    ns_create "$ns"
    veth_pair "$H" "vg$n" "$ns" eth0
    printf -v "G$n" '%s' "$ns"
}

# lan_topology: the world of a bridge-mode network. L is the "LAN router",
# H the host (the daemon runs here) whose uplink0 is a veth to L:eth0:
#   L:eth0     192.0.2.1/24, 2001:db8:1::1/64
#   H:uplink0  192.0.2.10/24, 2001:db8:1::10/64 (nodad),
#              default via 192.0.2.1 metric 100 proto static,
#              198.51.100.0/24 via 192.0.2.1 metric 50,
#              default via 2001:db8:1::1 metric 100 proto static
# Guests come from guest_add; L's DHCP server from lan_dhcp_start.
lan_topology() {
    H=${PFX}h
    L=${PFX}l
    ns_create "$H"
    ns_create "$L"
    veth_pair "$H" uplink0 "$L" eth0
    ip -n "$L" addr add 192.0.2.1/24 dev eth0
    ip -n "$L" addr add 2001:db8:1::1/64 dev eth0 nodad
    ip -n "$H" addr add 192.0.2.10/24 dev uplink0
    ip -n "$H" addr add 2001:db8:1::10/64 dev uplink0 nodad
    ip -n "$H" route add default via 192.0.2.1 dev uplink0 metric 100 proto static
    ip -n "$H" route add 198.51.100.0/24 via 192.0.2.1 dev uplink0 metric 50
    ip -n "$H" -6 route add default via 2001:db8:1::1 dev uplink0 metric 100 proto static
}

# lan_dhcp_start: L's own DHCP server, a dnsmasq the test starts (tracked by
# PID): 192.0.2.100-150, router 192.0.2.1, no DNS (--port=0), no upstream
# resolvers, no config file but its options. Leases in $LAN_LEASES.
lan_dhcp_start() {
    LAN_LEASES=$T/lan.leases
    : >"$LAN_LEASES"
    spawn_in_ns "$L" dnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts --port=0 \
        --user=root --bind-interfaces --interface=eth0 --except-interface=lo \
        --dhcp-range=192.0.2.100,192.0.2.150,255.255.255.0,1h --dhcp-option=option:router,192.0.2.1 \
        --dhcp-leasefile="$LAN_LEASES" --pid-file="$T/lan-dnsmasq.pid" --log-dhcp --log-facility=- \
        >"$T/lan-dnsmasq.log" 2>&1
    LAN_DNSMASQ_PID=$SPAWNED_PID
    track_pid "$LAN_DNSMASQ_PID"
    retry 50 _udp_listening "$L" 67 || fail "LAN dnsmasq did not bind UDP port 67: $(cat "$T/lan-dnsmasq.log")"
}
_udp_listening() { [[ $(in_ns "$1" ss -Hlun "sport = :$2") == *":$2"* ]]; }

# iface_config NS IF: one interface's configuration as sorted JSON, in a form
# that only changes when configuration changes: MAC, MTU, master, addresses
# (lifetimes and DAD state stripped, sorted) and its main-table IPv4 and IPv6
# routes (expiry stripped, sorted). For before/after comparisons.
iface_config() {
    local ns=$1 dev=$2 link addrs r4 r6
    link=$(ip -n "$ns" -j link show dev "$dev") || return 1
    addrs=$(ip -n "$ns" -j addr show dev "$dev") || return 1
    r4=$(ip -n "$ns" -j -4 route show table main)
    r6=$(ip -n "$ns" -j -6 route show table main)
    jq -n -S --arg dev "$dev" --argjson link "$link" --argjson a "$addrs" --argjson r4 "$r4" --argjson r6 "$r6" '{
        mac: $link[0].address, mtu: $link[0].mtu, master: ($link[0].master // null),
        addresses: ($a[0].addr_info | map(del(.valid_life_time, .preferred_life_time, .tentative,
            .dadfailed, .optimistic)) | sort_by(.family, .local)),
        routes: ([$r4[], $r6[]] | map(select(.dev == $dev) | del(.expires)) | sort_by(tostring))}'
}

# link_json NS IF: `ip -d -j link show` of one interface (the object, not the array).
link_json() { ip -n "$1" -d -j link show dev "$2" | jq -c '.[0]'; }
ifindex() { ip -n "$1" -j link show dev "$2" | jq -r '.[0].ifindex'; }

# pings NS ADDR: one quiet ping with a 1 s deadline (IPv4 or IPv6).
pings() {
    if [[ $2 == *:* ]]; then
        in_ns "$1" busybox ping6 -c 1 -W 1 "$2" >/dev/null 2>&1
    else
        in_ns "$1" busybox ping -c 1 -W 1 "$2" >/dev/null 2>&1
    fi
}

# ready_v6 NS DEV SCOPE: DEV has a usable (not tentative) IPv6 address of
# SCOPE (link, global).
ready_v6() {
    [[ -n $(ip -n "$1" -j -6 addr show dev "$2" scope "$3" |
        jq -r '(.[0].addr_info // [])[] | select(.local and (.tentative // false) == false) | .local') ]]
}

# port_json NET PORT: that port's object from `port list NET --json` (empty if absent).
port_json() { ctl port list "$1" --json | jq -c --arg n "$2" '.[] | select(.name == $n)'; }
_port_state_is() { [[ $(port_json "$1" "$2" 2>/dev/null | jq -r .state) == "$3" ]]; }
# wait_port_state NET PORT STATE [TRIES]: poll `port list` until PORT is in STATE.
wait_port_state() {
    retry "${4:-50}" _port_state_is "$1" "$2" "$3" ||
        fail "port $2 of $1: expected state '$3', port list says: $(ctl port list "$1" --json 2>&1 | jq -c . 2>&1)"
}

# signal_monitor_start FILE: records every signal on the private bus into
# FILE (dbus-monitor, tracked; stop it with stop_pid $MONITOR_PID).
signal_monitor_start() {
    command -v dbus-monitor >/dev/null || fail "dbus-monitor missing (package dbus)"
    dbus-monitor --system "type='signal'" >"$1" 2>&1 &
    MONITOR_PID=$!
    track_pid "$MONITOR_PID"
    # Once it has become a monitor, the bus tells it that it lost its own
    # unique name (NameLost); older buses without BecomeMonitor: just wait.
    retry 25 grep -q 'member=NameLost' "$1" || sleep 0.5
}

# ---------------------------------------------------------------- several hosts

# hosts_topology N: N "hosts" on one machine, for networks that span hosts
# (overlays). Each host namespace HOSTS[k] (k = 1..N, ${PFX}h<k>) has
#   ul0      10.99.0.<k>/24, a veth to the underlay namespace U, whose
#            bridge ul0 joins all hosts (the VXLAN underlay);
#   uplink0  203.0.113.<k>/24, a veth to the "internet" namespace I, whose
#            bridge inet0 has 203.0.113.254/24; default via .254.
# Each host gets its own daemon from host_daemon_start. Sets U, I, HOSTS.
HOSTS=()
hosts_topology() {
    local n=$1 k ns
    U=${PFX}u
    I=${PFX}i
    ns_create "$U"
    ns_create "$I"
    ip -n "$U" link add ul0 type bridge
    ip -n "$U" link set ul0 up
    ip -n "$I" link add inet0 type bridge
    ip -n "$I" link set inet0 up
    ip -n "$I" addr add 203.0.113.254/24 dev inet0
    for ((k = 1; k <= n; k++)); do
        ns=${PFX}h$k
        ns_create "$ns"
        HOSTS[k]=$ns
        veth_pair "$ns" ul0 "$U" "u$k"
        ip -n "$U" link set "u$k" master ul0
        ip -n "$ns" addr add "10.99.0.$k/24" dev ul0
        veth_pair "$ns" uplink0 "$I" "i$k"
        ip -n "$I" link set "i$k" master inet0
        ip -n "$ns" addr add "203.0.113.$k/24" dev uplink0
        ip -n "$ns" route add default via 203.0.113.254
        mkdir -p "$T/h$k"
        chmod 755 "$T/h$k"
    done
}

# host_daemon_start K [EXTRA ARGS]: host K's own bus ($T/h<K>/bus) and
# kvmnetd (state and runtime under $T/h<K>, log $T/h<K>/kvmnetd.log).
# Returns once it owns org.kvmnet1 on that bus. Talk to it with on_host.
HOST_BUS_ADDR=()
host_daemon_start() {
    local k=$1 i
    shift
    [[ -n ${HOSTS[k]:-} ]] || fail "host_daemon_start: no host $k (call hosts_topology first)"
    if [[ -z ${HOST_BUS_ADDR[k]:-} ]]; then
        local saved_bus=$BUS_PID saved_addr=${DBUS_SYSTEM_BUS_ADDRESS:-}
        BUS_DIR=$T/h$k bus_start
        HOST_BUS_PIDS+=("$BUS_PID")
        HOST_BUS_ADDR[k]=$DBUS_SYSTEM_BUS_ADDRESS
        BUS_PID=$saved_bus
        DBUS_SYSTEM_BUS_ADDRESS=$saved_addr
    fi
    echo "===== kvmnetd start $(date +%T.%N) =====" >>"$T/h$k/kvmnetd.log"
    DBUS_SYSTEM_BUS_ADDRESS=${HOST_BUS_ADDR[k]} spawn_in_ns "${HOSTS[k]}" "$KVMNETD" \
        --state-dir "$T/h$k/state" --runtime-dir "$T/h$k/run" --log-level debug "$@" >>"$T/h$k/kvmnetd.log" 2>&1
    HOST_DAEMON_PIDS[k]=$SPAWNED_PID
    for ((i = 0; i < 50; i++)); do
        _pid_alive "${HOST_DAEMON_PIDS[k]}" || fail "kvmnetd of host $k exited during start-up"
        if on_host "$k" _bus_name_owned; then return 0; fi
        sleep 0.2
    done
    fail "kvmnetd of host $k did not take org.kvmnet1 within 10 s"
}

# host_daemon_stop K: SIGTERM by PID (SIGKILL after 5 s).
host_daemon_stop() {
    stop_pid "${HOST_DAEMON_PIDS[$1]}"
    HOST_DAEMON_PIDS[$1]=""
}

# on_host K CMD...: CMD (ctl, net_state, wait_state, ...) against host K's bus.
on_host() {
    local k=$1
    shift
    DBUS_SYSTEM_BUS_ADDRESS=${HOST_BUS_ADDR[k]} "$@"
}

# host_guest_add NAME K: a guest namespace ${PFX}NAME whose eth0 is a veth to
# host K's interface v-NAME (up, unplugged). Prints the namespace.
host_guest_add() {
    local ns=${PFX}$1
    ns_create "$ns"
    veth_pair "${HOSTS[$2]}" "v-$1" "$ns" eth0
}

# host_guest_move NAME FROM TO BRIDGE: the guest's cable moved from host FROM
# to host TO's bridge BRIDGE: its host-side veth changes namespace, so the
# guest keeps its MAC, address and routes (as a migrated VM does).
host_guest_move() {
    local name=$1 from=$2 to=$3 bridge=$4
    ip -n "${HOSTS[from]}" link set "v-$name" netns "${HOSTS[to]}"
    ip -n "${HOSTS[to]}" link set "v-$name" master "$bridge" up
}
