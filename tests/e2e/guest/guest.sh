# Real QEMU guests for the e2e tests. Source after lib.sh:
#
#   source "$(dirname "$0")/lib.sh"
#   source "$(dirname "$0")/guest/guest.sh"
#   guest_prepare                      # skips (77) without QEMU or a guest image
#   boot_guest TAP MAC [EXTRA_APPEND]  # runs the guest to completion in $H
#   guest_spawn NS TAP MAC [EXTRA [QEMU-ARGS...]]  # starts it, returns at once
#   qmp "$GUEST_QMP" query-status      # QMP commands (tests/e2e/guest/qmp.py)
#   assert_guest_lease "$GUEST_CONSOLE" 192.168.122.100-192.168.122.254 192.168.122.1
#   assert_guest_ping "$GUEST_CONSOLE" 203.0.113.2
#
# The guest (tests/e2e/guest/build-guest.sh) loads virtio_net, takes a DHCP
# lease on eth0, pings the router and every address in kvmnet.ping=A[,B],
# prints "KVMNET-GUEST ..." lines on its serial console and powers off.
#
# QEMU runs inside $H as uid GUEST_UID (65534 unless set), so the tap it opens
# must be owned by that uid: this is what proves an unprivileged QEMU can use
# the taps kvmnetd makes.
#
# Environment:
#   KVMNET_GUEST_DIR     build the image there instead of $T/guest-image
#   KVMNET_GUEST_CACHE   build-guest.sh's cache (/var/cache/kvmnet-test/guest)
#   KVMNET_GUEST_TIMEOUT seconds a guest may run (default 120)
#   GUEST_QUEUES         N > 1: a multiqueue NIC (-netdev tap,queues=N, virtio
#                        mq=on) and N vCPUs, since virtio-net uses at most one
#                        queue pair per CPU

# shellcheck shell=bash
# shellcheck disable=SC2034 # GUEST_* results are read by the tests
GUEST_UID=${GUEST_UID:-65534}
GUEST_TIMEOUT=${KVMNET_GUEST_TIMEOUT:-120}
GUEST_QUEUES=${GUEST_QUEUES:-1}
GUEST_KERNEL=""
GUEST_INITRD=""
GUEST_CONSOLE="" # console log of the last boot_guest
GUEST_EXIT=""    # QEMU's exit status
GUEST_SECONDS="" # how long the last guest ran
GUEST_QEMU_UID="" # the uid QEMU was seen running as
GUEST_PID=""      # QEMU of the last guest_spawn
GUEST_DIR=""
GUEST_QMP=""
_guest_boots=0
_guest_tun_private=0

# guest_prepare: QEMU present (installing it through scripts/deps.sh when
# missing) and a guest image built; otherwise skip with the reason.
guest_prepare() {
    if ! command -v qemu-system-x86_64 >/dev/null; then
        log "qemu-system-x86_64 missing; trying scripts/deps.sh"
        bash "$SRCDIR/scripts/deps.sh" >"$T/deps.log" 2>&1 || true
        command -v qemu-system-x86_64 >/dev/null ||
            skip "qemu-system-x86_64 is missing and could not be installed (package qemu-system-x86):" \
                "scripts/deps.sh said: $(tail -n 3 "$T/deps.log" | tr '\n' ' ')"
    fi
    command -v setpriv >/dev/null || skip "setpriv (util-linux) missing: cannot run QEMU unprivileged"
    [[ -e /dev/net/tun ]] || skip "/dev/net/tun missing: no tap devices here"
    local dir=${KVMNET_GUEST_DIR:-$T/guest-image} t0=$SECONDS
    if ! bash "$SRCDIR/tests/e2e/guest/build-guest.sh" "$dir" >"$T/build-guest.log" 2>&1; then
        skip "cannot build the guest image: $(tail -n 5 "$T/build-guest.log" | tr '\n' ' ')"
    fi
    _guest_tun_private=0
    if ! setpriv --reuid="$GUEST_UID" --regid="$GUEST_UID" --clear-groups \
        test -r /dev/net/tun -a -w /dev/net/tun; then
        _guest_tun_private=1
        log "/dev/net/tun is $(stat -c '%a %U:%G' /dev/net/tun), not usable by uid $GUEST_UID:" \
            "QEMU gets a private 0666 node (as udev would make it) in its own mount namespace"
    fi
    log "guest image ready in $((SECONDS - t0)) s: $(tail -n 1 "$T/build-guest.log")"
    GUEST_KERNEL=$dir/vmlinuz
    GUEST_INITRD=$dir/initrd.gz
    # QEMU runs as GUEST_UID and must read both.
    setpriv --reuid="$GUEST_UID" --regid="$GUEST_UID" --clear-groups \
        test -r "$GUEST_KERNEL" -a -r "$GUEST_INITRD" ||
        skip "uid $GUEST_UID cannot read $GUEST_KERNEL and $GUEST_INITRD (a parent directory not world-readable?)"
}

# guest_spawn NS TAP MAC [EXTRA_APPEND [QEMU-ARGS...]]: starts the guest in
# namespace NS on the existing tap TAP with MAC and returns at once. Sets
# GUEST_PID (QEMU's own pid, tracked: cleanup stops it), GUEST_DIR,
# GUEST_CONSOLE (the serial console log) and GUEST_QMP (its QMP socket, see
# qmp). QEMU-ARGS go to QEMU as they are (e.g. -incoming tcp:A:P).
# Not for $(...): QEMU's pid must be tracked by the test's own shell.
guest_spawn() {
    local ns=$1 tap=$2 mac=$3 extra=${4:-} dir
    shift 3
    (($# == 0)) || shift
    [[ -n $GUEST_KERNEL ]] || fail "guest_spawn: call guest_prepare first"
    _guest_boots=$((_guest_boots + 1))
    dir=$T/qemu.$_guest_boots
    mkdir -p "$dir"
    chown "$GUEST_UID:$GUEST_UID" "$dir" # QEMU creates the log and socket as GUEST_UID
    GUEST_DIR=$dir
    GUEST_CONSOLE=$dir/console.log
    GUEST_QMP=$dir/qmp.sock
    # TCG, never KVM: /dev/kvm exists on these machines but nested guests
    # hang at kernel start (design.md); TCG boots this guest in seconds.
    # -nodefaults: no VGA, no default NIC or serial; romfile= skips the iPXE
    # ROM (we boot with -kernel); -no-reboot + panic=-1 makes a guest that
    # fails early end QEMU too, instead of looping. no_timer_check: under a
    # heavily loaded host TCG's timer can look broken to the kernel's
    # IO-APIC check, which then panics at boot (seen at load 27).
    local smp=1 netdev="tap,id=n0,ifname=$tap,script=no,downscript=no" nic="virtio-net-pci,netdev=n0,mac=$mac"
    if ((GUEST_QUEUES > 1)); then
        # One MSI-X vector per queue, plus config and control (QEMU's rule).
        smp=$GUEST_QUEUES
        netdev+=",queues=$GUEST_QUEUES"
        nic+=",mq=on,vectors=$((2 * GUEST_QUEUES + 2))"
    fi
    local -a qemu=(setpriv --reuid="$GUEST_UID" --regid="$GUEST_UID" --clear-groups
        qemu-system-x86_64 -accel tcg -m 256 -smp "$smp" -nodefaults -nographic -no-reboot
        -serial "file:$GUEST_CONSOLE" -qmp "unix:$GUEST_QMP,server=on,wait=off"
        -kernel "$GUEST_KERNEL" -initrd "$GUEST_INITRD"
        -append "console=ttyS0 quiet panic=-1 no_timer_check $extra"
        -netdev "$netdev"
        -device "$nic,romfile=" "$@")
    if ((_guest_tun_private)); then
        # /dev/net/tun is root-only here (no udev; Debian's udev rule makes
        # it 0666): give QEMU a 0666 node in a mount namespace of its own.
        # The tun driver's own check - only the tap's owner may attach - is
        # unchanged, and nothing outside that namespace sees the node.
        qemu=(unshare --mount --propagation private sh -c
            'mount -t tmpfs -o mode=755,size=16k kvmnet-tun /dev/net &&
             mknod -m 666 /dev/net/tun c 10 200 && exec "$@"' sh "${qemu[@]}")
    fi
    spawn_in_ns "$ns" "${qemu[@]}" </dev/null >"$dir/qemu.log" 2>&1
    GUEST_PID=$SPAWNED_PID
    track_pid "$GUEST_PID"
    log "guest $_guest_boots: QEMU pid $GUEST_PID in $ns on $tap ($mac), console $GUEST_CONSOLE"
}

# boot_guest TAP MAC [EXTRA_APPEND]: boots the guest in $H on the existing tap
# TAP with MAC, waits (at most GUEST_TIMEOUT s) until it powers off, and sets
# GUEST_CONSOLE (the serial console log), GUEST_EXIT and GUEST_SECONDS.
# Not for $(...): QEMU's pid must be tracked by the test's own shell.
boot_guest() {
    local tap=$1 mac=$2 extra=${3:-} pid i rc
    guest_spawn "$H" "$tap" "$mac" "$extra"
    pid=$GUEST_PID
    local t0=$SECONDS
    GUEST_QEMU_UID=""
    for ((i = 0; i < GUEST_TIMEOUT * 10; i++)); do
        _pid_alive "$pid" || break
        if [[ -z $GUEST_QEMU_UID && $(cat "/proc/$pid/comm" 2>/dev/null) == qemu-system* ]]; then
            GUEST_QEMU_UID=$(awk '/^Uid:/ {print $2 "," $3 "," $4 "," $5}' "/proc/$pid/status" 2>/dev/null || true)
        fi
        sleep 0.1
    done
    if _pid_alive "$pid"; then
        guest_dump
        fail "guest on $tap still running after ${GUEST_TIMEOUT} s"
    fi
    wait "$pid" && rc=0 || rc=$?
    GUEST_EXIT=$rc
    GUEST_SECONDS=$((SECONDS - t0))
    log "guest $_guest_boots: QEMU exited with $rc after ${GUEST_SECONDS} s"
    if ((rc != 0)); then
        guest_dump
        fail "QEMU exited with status $rc: $(tail -n 5 "$GUEST_DIR/qemu.log" | tr '\n' ' ')"
    fi
}

# qmp SOCKET COMMAND [ARGUMENTS-JSON]: one QMP command to the QEMU behind
# SOCKET (GUEST_QMP of guest_spawn); prints its "return" value as JSON, fails
# with QMP's error.
qmp() {
    python3 "$SRCDIR/tests/e2e/guest/qmp.py" "$@" || fail "QMP $2 on $1 failed"
}

# guest_wait_done LOG [SECONDS]: waits until the guest running on LOG has
# finished its script (leased, pinged; with kvmnet.hold it stays up).
guest_wait_done() {
    local log=$1 i
    for ((i = 0; i < ${2:-$GUEST_TIMEOUT} * 10; i++)); do
        grep -q 'KVMNET-GUEST done' "$log" 2>/dev/null && return 0
        if [[ $log == "$GUEST_CONSOLE" ]] && ! _pid_alive "$GUEST_PID"; then
            guest_dump "$log"
            fail "QEMU (pid $GUEST_PID) ended before the guest finished its script"
        fi
        sleep 0.1
    done
    guest_dump "$log"
    fail "guest did not finish its script within ${2:-$GUEST_TIMEOUT} s"
}

# guest_dump [LOG]: QEMU's own messages and the guest console, for failures.
guest_dump() {
    local log=${1:-$GUEST_CONSOLE}
    echo "----- QEMU messages ($(dirname "$log")/qemu.log) -----" >&2
    cat "$(dirname "$log")/qemu.log" >&2 2>/dev/null || true
    echo "----- guest console ($log) -----" >&2
    tr -d '\r' <"$log" 2>/dev/null | sed 's/\x1b[[0-9;?]*[A-Za-z]//g' >&2 || true
    echo "----- end of guest console -----" >&2
}

# guest_lines LOG KIND: the "KVMNET-GUEST KIND ..." lines, without the prefix
# and the serial line's carriage returns.
guest_lines() {
    tr -d '\r' <"$1" | sed -n "s/^.*KVMNET-GUEST $2 //p"
}

# guest_field LINE KEY: VALUE of KEY=VALUE in LINE.
guest_field() {
    local w
    for w in $1; do
        if [[ $w == "$2="* ]]; then
            echo "${w#*=}"
            return 0
        fi
    done
}

_ip4_int() {
    local a b c d
    IFS=. read -r a b c d <<<"$1"
    echo $(((a << 24) | (b << 16) | (c << 8) | d))
}

# assert_guest_lease LOG FIRST-LAST [ROUTER]: the guest got a lease inside
# the range (from ROUTER when given). Sets GUEST_IP.
assert_guest_lease() {
    local log=$1 range=$2 router=${3:-} line n ip
    grep -q 'KVMNET-GUEST done' "$log" || {
        guest_dump "$log"
        fail "guest did not finish its script (no 'KVMNET-GUEST done' on the console)"
    }
    line=$(guest_lines "$log" lease | head -n1)
    if [[ -z $line || $line == none ]]; then
        guest_dump "$log"
        fail "guest got no DHCP lease"
    fi
    ip=$(guest_field "$line" ip)
    n=$(_ip4_int "$ip")
    if ((n < $(_ip4_int "${range%-*}") || n > $(_ip4_int "${range#*-}"))); then
        guest_dump "$log"
        fail "guest lease $ip outside $range"
    fi
    if [[ -n $router ]]; then
        assert_eq "$(guest_field "$line" router)" "$router" "router in the guest's lease"
    fi
    GUEST_IP=$ip
    log "guest lease: $line"
}

# _assert_guest_ping_result LOG DST RESULT WHAT: the guest's ping of DST ended in RESULT.
_assert_guest_ping_result() {
    local log=$1 dst=$2 want=$3 what=$4 line
    line=$(guest_lines "$log" ping | grep "^dst=$dst " | head -n1 || true)
    if [[ $(guest_field "$line" result) != "$want" ]]; then
        guest_dump "$log"
        fail "guest ping of $dst $what: ${line:-not attempted}"
    fi
}

# assert_guest_ping LOG DST: the guest reported a successful ping of DST.
assert_guest_ping() { _assert_guest_ping_result "$1" "$2" ok "should have succeeded"; }

# assert_guest_ping_fails LOG DST: the guest tried DST and got no answer.
assert_guest_ping_fails() { _assert_guest_ping_result "$1" "$2" fail "should have failed"; }
