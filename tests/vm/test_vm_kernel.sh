#!/usr/bin/env bash
# VM suite: the kernel features this machine's kernel lacks, proven on a full
# Debian kernel. Boots Debian's linux-image-amd64 under qemu-system-x86_64
# -accel tcg (nested KVM hangs here) with the initramfs of tests/vm/build-vm.sh,
# which mounts the host's /usr and /etc, this source tree, the build tree and
# the kernel's modules read-only over 9p. Inside, tests/vm/in-vm.sh runs every
# tests/vm/vm_*.sh (each a namespace test on tests/e2e/lib.sh: private
# dbus-daemon, kvmnetd from the build tree, guests as namespaces) and the
# ports kernel-adapter check, printing one "KVMNET-VM result" line per check.
#
# The VM has no network device (-nic none): nothing leaves it, and the host's
# network is never touched. Output comes back over the serial console only;
# this script prints it as it arrives and fails unless every check passed.
# QEMU is stopped by its PID.
#
# Skips (77) only when QEMU or the kernel package cannot be had.
#
# Environment: KVMNETD, KVMNETCTL, SRCDIR, BUILDDIR (meson sets them),
# KVMNET_VM_CACHE (build-vm.sh's cache), KVMNET_VM_TIMEOUT (seconds the VM
# may run, default 720), KVMNET_VM_SMP (vCPUs, default 2), KVMNET_VM_ONLY
# (one check's name, e.g. vm_fast_path: only that one runs).
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRCDIR=${SRCDIR:-$(cd "$script_dir/../.." && pwd)}
BUILDDIR=${BUILDDIR:-$SRCDIR/build}
KVMNETD=${KVMNETD:-$BUILDDIR/daemon/kvmnetd}
TIMEOUT=${KVMNET_VM_TIMEOUT:-720} # below meson's 900 s, so this script reports first

log() { echo "[test_vm_kernel] $*"; }
skip() {
    echo "SKIP: $*"
    exit 77
}

((EUID == 0)) || skip "needs root (QEMU reads the host's /usr and /etc over 9p, kvmnetd inside runs as root)"
for f in "$KVMNETD" "$BUILDDIR/client/kvmnetctl" "$BUILDDIR/tests/kernel/ports_adapter_check"; do
    [[ -x $f ]] || {
        echo "FAIL: not built: $f"
        exit 1
    }
done
# The VM sees the build tree at the same path, so paths meson gave us work there.
case $KVMNETD in
"$BUILDDIR"/*) ;;
*)
    echo "FAIL: KVMNETD ($KVMNETD) is not under BUILDDIR ($BUILDDIR)"
    exit 1
    ;;
esac

if ! command -v qemu-system-x86_64 >/dev/null; then
    bash "$SRCDIR/scripts/deps.sh" >/dev/null 2>&1 || true
    command -v qemu-system-x86_64 >/dev/null ||
        skip "qemu-system-x86_64 is missing and scripts/deps.sh could not install it (package qemu-system-x86)"
fi

T=$(mktemp -d /tmp/kvmnet-vm.XXXXXX)
QEMU_PID=""
cleanup() {
    local rc=$?
    if [[ -n $QEMU_PID ]] && kill -0 "$QEMU_PID" 2>/dev/null; then
        kill -TERM "$QEMU_PID" 2>/dev/null || true
        for _ in 1 2 3 4 5 6 7 8 9 10; do
            kill -0 "$QEMU_PID" 2>/dev/null || break
            sleep 0.2
        done
        kill -KILL "$QEMU_PID" 2>/dev/null || true
        wait "$QEMU_PID" 2>/dev/null || true
    fi
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

t0=$SECONDS
if ! bash "$script_dir/build-vm.sh" "$T/image" >"$T/build.log" 2>&1; then
    cat "$T/build.log"
    if grep -qE 'apt knows no|apt-get download .* failed' "$T/build.log"; then
        skip "cannot get the kernel package: $(tail -n 1 "$T/build.log")"
    fi
    echo "FAIL: tests/vm/build-vm.sh failed (see above)"
    exit 1
fi
# shellcheck source=/dev/null
source "$T/image/vm.env"
log "image ready in $((SECONDS - t0)) s: $(tail -n 1 "$T/build.log")"
[[ -d $MODULES_DIR/$KERNEL_RELEASE ]] || {
    echo "FAIL: no modules for $KERNEL_RELEASE in $MODULES_DIR"
    exit 1
}

# Read-only 9p shares; the VM mounts them by tag (see build-vm.sh's /init).
shares=(usr:/usr etc:/etc modules:"$MODULES_DIR" src:"$SRCDIR")
case $BUILDDIR/ in
"$SRCDIR"/*) ;;
*) shares+=(build:"$BUILDDIR") ;;
esac
qemu_args=(-accel tcg -machine pc -m 1024 -smp "${KVMNET_VM_SMP:-2}"
    -nodefaults -no-user-config -display none -nic none -no-reboot
    -serial "file:$T/console.log"
    -kernel "$T/image/vmlinuz" -initrd "$T/image/initrd.gz"
    -append "console=ttyS0 quiet loglevel=4 panic=-1 kvmnet.src=$SRCDIR kvmnet.build=$BUILDDIR kvmnet.run=$SRCDIR/tests/vm/in-vm.sh${KVMNET_VM_ONLY:+ kvmnet.only=$KVMNET_VM_ONLY}")
i=0
for s in "${shares[@]}"; do
    qemu_args+=(-fsdev "local,id=fs$i,path=${s#*:},security_model=none,readonly=on"
        -device "virtio-9p-pci,fsdev=fs$i,mount_tag=${s%%:*}")
    i=$((i + 1))
done

log "booting $KERNEL_PACKAGE $KERNEL_VERSION under TCG (timeout $TIMEOUT s)"
: >"$T/console.log"
t_boot=$SECONDS
qemu-system-x86_64 "${qemu_args[@]}" >"$T/qemu.log" 2>&1 &
QEMU_PID=$!

# Print the console as it grows, until QEMU exits or the time is up.
printed=0
print_new() {
    local n
    n=$(wc -l <"$T/console.log")
    if ((n > printed)); then
        sed -n "$((printed + 1)),${n}p" "$T/console.log" | tr -d '\r'
        printed=$n
    fi
}
while kill -0 "$QEMU_PID" 2>/dev/null; do
    print_new
    if ((SECONDS - t_boot > TIMEOUT)); then
        log "the VM ran longer than $TIMEOUT s; stopping QEMU (pid $QEMU_PID)"
        break
    fi
    sleep 1
done
print_new
if kill -0 "$QEMU_PID" 2>/dev/null; then
    kill -KILL "$QEMU_PID" 2>/dev/null || true
fi
qrc=0
wait "$QEMU_PID" || qrc=$?
QEMU_PID=""
log "QEMU exited (status $qrc) after $((SECONDS - t_boot)) s"
if [[ -s $T/qemu.log ]]; then
    log "QEMU said: $(cat "$T/qemu.log")"
fi

console=$(tr -d '\r' <"$T/console.log")
results=$(grep -E '^KVMNET-VM result ' <<<"$console" || true)
ok=$(grep -c ' status=ok' <<<"$results" || true)
bad=$(grep -vc ' status=ok' <<<"$results" || true)
[[ -n $results ]] || bad=0
echo
log "summary: $ok checks passed, $bad failed"
grep -v ' status=ok' <<<"$results" || true
if ! grep -q '^KVMNET-VM exit rc=0$' <<<"$console"; then
    echo "FAIL: the VM did not finish its checks ($(grep -E '^KVMNET-VM exit' <<<"$console" || echo 'no exit line'))"
    exit 1
fi
if ((ok == 0 || bad > 0)); then
    echo "FAIL: $bad of $((ok + bad)) VM checks failed"
    exit 1
fi
log "all $ok VM checks passed"
