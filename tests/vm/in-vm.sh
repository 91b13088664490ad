#!/usr/bin/env bash
# Runs inside the test VM (started by build-vm.sh's /init, with SRCDIR and
# BUILDDIR mounted read-only at their host paths): every check below, one
# after the other, each printing its own progress and then one line
#   KVMNET-VM result name=NAME status=ok|fail|skip rc=N seconds=S
# which tests/vm/test_vm_kernel.sh counts. On this kernel everything is
# expected to be supported, so a skip (exit 77) counts as a failure there.
set -u
cd /

export SRCDIR BUILDDIR
export KVMNETD=$BUILDDIR/daemon/kvmnetd KVMNETCTL=$BUILDDIR/client/kvmnetctl

say() { echo "KVMNET-VM $*"; }

# run_check NAME CMD...: runs CMD (its output to the console), then the result line.
run_check() {
    local name=$1 rc t0 t1 status
    shift
    say "check name=$name starting"
    t0=$(cut -d' ' -f1 /proc/uptime)
    "$@" 2>&1
    rc=$?
    t1=$(cut -d' ' -f1 /proc/uptime)
    case $rc in
    0) status=ok ;;
    77) status=skip ;;
    *) status=fail ;;
    esac
    say "result name=$name status=$status rc=$rc seconds=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')"
}

# The kernel adapters' own check (tests/kernel), whose "supported" halves
# only run on a kernel that has the features: here it must take them.
ports_adapter() {
    local out rc=0
    out=$(bash "$SRCDIR/tests/kernel/run-in-netns.sh" "$BUILDDIR/tests/kernel/ports_adapter_check" 2>&1) || rc=$?
    echo "$out"
    if [[ $out != *"probe says: bridge VLAN filtering SUPPORTED"* ]]; then
        echo "FAIL: the VLAN probe did not find bridge VLAN filtering on this kernel"
        return 1
    fi
    if [[ $out != *"tc(8) u32+police on this kernel: ok"* ]]; then
        echo "FAIL: tc police does not work on this kernel"
        return 1
    fi
    return "$rc"
}

say "in-vm kernel=$(uname -r) cpus=$(nproc) mem=$(awk '/MemTotal/ { print int($2 / 1024) " MiB" }' /proc/meminfo)"
# kvmnet.only=NAME on the kernel command line (KVMNET_VM_ONLY): that check alone.
only=""
for arg in $(cat /proc/cmdline); do
    case $arg in kvmnet.only=*) only=${arg#kvmnet.only=} ;; esac
done
[[ -n $only ]] || run_check ports_adapter ports_adapter
for t in "$SRCDIR"/tests/vm/vm_*.sh; do
    n=${t##*/}
    n=${n%.sh}
    [[ -z $only || $n == "$only" ]] || continue
    run_check "$n" bash "$t"
done
exit 0
