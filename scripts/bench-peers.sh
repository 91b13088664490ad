#!/usr/bin/env bash
# Network start and stop, kvmnet against libvirt 9.0, measured in one run
# (issue 17, item 6): `kvmnetctl start` / `kvmnetctl stop` of a NAT network
# with DHCP and DNS, and `virsh net-start` / `virsh net-destroy` of libvirt's
# default network (virbr0, 192.168.122.0/24, NAT, dnsmasq), alternating
# (kvmnet, libvirt, kvmnet, ...), medians over RUNS each; prints kvmnet ÷
# libvirt. Writes RESULTS/peers.csv and RESULTS/peers.md (the marked section
# "peers" of docs/performance.md, which scripts/bench.sh puts in place).
#
# Usage: sudo scripts/bench-peers.sh RESULTS-DIR [RUNS]
#
# libvirtd (packages libvirt-daemon, libvirt-clients from
# scripts/bench-deps.sh, installed with every service start denied) runs only
# here, in a network namespace of this script's and in a private mount
# namespace in which /etc/libvirt, /var and /run are directories under the
# run's temp dir: its configuration, state, sockets, pid files and dnsmasq
# files never touch the machine's, and it reaches no system bus (there is
# none under its /run). Its dnsmasq gets an empty resolv.conf: no upstream.
# kvmnetd runs in a namespace of its own on a private bus, as in bench.sh.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RESULTS=${1:?usage: bench-peers.sh RESULTS-DIR [RUNS]}
RUNS=${2:-15}
mkdir -p "$RESULTS"
RESULTS=$(cd "$RESULTS" && pwd)

export SRCDIR=$ROOT KVMNETD=${KVMNETD:-$ROOT/build/daemon/kvmnetd} KVMNETCTL=${KVMNETCTL:-$ROOT/build/client/kvmnetctl}
KVMNET_LIB_MODE=demo # read by lib.sh
# shellcheck source=../tests/e2e/lib.sh
source "$ROOT/tests/e2e/lib.sh"
PFX=kvmp$$-

for tool in libvirtd virsh; do
    command -v "$tool" >/dev/null || fail "missing $tool (run scripts/bench-deps.sh)"
done

CSV=$RESULTS/peers.csv
echo "figure,variant,run,unit,value" >"$CSV"
cut -d' ' -f1-3 /proc/loadavg >"$RESULTS/peers-load-start.txt"
ms_between() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (b - a) * 1000 }'; }

# ---------------------------------------------------------------- kvmnet

bus_start
nat_topology
daemon_start --log-level warning
# The same shape as libvirt's default network: NAT, DHCP over most of a /24, DNS.
printf '{"name":"peer","mode":"nat","bridge":"kvmbpeer","ipv4":{"address":"192.168.122.1/24","dhcp":{"ranges":["192.168.122.2-192.168.122.254"]}}}\n' >"$T/peer.json"
ctl create peer --file "$T/peer.json" >/dev/null

# ---------------------------------------------------------------- libvirt

LV=${PFX}lv
ns_create "$LV"
lv=$T/libvirt
mkdir -p "$lv/etc/qemu/networks" "$lv/var/lib/libvirt" "$lv/var/cache/libvirt" "$lv/var/log/libvirt" "$lv/run"
: >"$lv/resolv.conf"
# libvirtd's QEMU driver must initialise for the daemon to start, and it
# looks up its built-in user libvirt-qemu, which only libvirt-daemon-system
# creates: libvirtd sees copies of passwd and group that have it (and
# libvirt-dnsmasq), the machine's files stay as they are.
cp /etc/passwd "$lv/passwd"
cp /etc/group "$lv/group"
echo 'libvirt-qemu:x:64055:64055:libvirt (bench-peers):/var/lib/libvirt:/usr/sbin/nologin' >>"$lv/passwd"
echo 'libvirt-dnsmasq:x:64056:64056:libvirt (bench-peers):/var/lib/libvirt/dnsmasq:/usr/sbin/nologin' >>"$lv/passwd"
printf 'libvirt-qemu:x:64055:\nlibvirt-dnsmasq:x:64056:\n' >>"$lv/group"
printf 'unix_sock_group = "root"\nunix_sock_rw_perms = "0700"\nlog_outputs = "3:file:/var/log/libvirt/libvirtd.log"\n' >"$lv/etc/libvirtd.conf"
cp -a /etc/libvirt/libvirt.conf "$lv/etc/" 2>/dev/null || true
# libvirt's own default network (libvirt-daemon-config-network's default.xml).
cat >"$T/default.xml" <<'XML'
<network>
  <name>default</name>
  <forward mode='nat'/>
  <bridge name='virbr0' stp='on' delay='0'/>
  <ip address='192.168.122.1' netmask='255.255.255.0'>
    <dhcp>
      <range start='192.168.122.2' end='192.168.122.254'/>
    </dhcp>
  </ip>
</network>
XML
# shellcheck disable=SC2016 # the inner shell expands $1
spawn_in_ns "$LV" unshare --mount --propagation private -- sh -c '
    set -e
    lv=$1
    mount --bind "$lv/etc" /etc/libvirt
    mount --bind "$lv/resolv.conf" /etc/resolv.conf
    mount --bind "$lv/passwd" /etc/passwd
    mount --bind "$lv/group" /etc/group
    mount --bind "$lv/var" /var
    mount --bind "$lv/run" /run
    exec libvirtd' sh "$lv" >"$T/libvirtd.out" 2>&1
LIBVIRTD_PID=$SPAWNED_PID
track_pid "$LIBVIRTD_PID"
virsh_() { virsh -q -c "qemu:///system?socket=$lv/run/libvirt/libvirt-sock" "$@"; }
for ((i = 0; i < 100; i++)); do
    _pid_alive "$LIBVIRTD_PID" || fail "libvirtd exited: $(tail -c 600 "$T/libvirtd.out" "$lv/var/log/libvirt/libvirtd.log" 2>/dev/null)"
    virsh_ version >/dev/null 2>&1 && break
    sleep 0.1
done
((i < 100)) || fail "libvirtd did not answer within 10 s: $(tail -c 600 "$T/libvirtd.out")"
virsh_ net-define "$T/default.xml" >/dev/null
LIBVIRT_VERSION=$(libvirtd --version | awk '{ print $NF }')

# ---------------------------------------------------------------- measure

# dnsmasq_in NS: the pids of the dnsmasq processes running in NS.
dnsmasq_in() {
    local pid
    for pid in $(command ip netns pids "$1"); do
        [[ $(proc_cmdline "$pid") == *dnsmasq* ]] && echo "$pid"
    done
    return 0
}
# A warm-up of each (first dnsmasq exec, page cache), not recorded, which
# also checks that both start the same kind of thing: a bridge with the
# address and a dnsmasq serving it, all gone after the stop.
ctl start peer >/dev/null
[[ -n $(dnsmasq_in "$H") ]] || fail "kvmnet: no dnsmasq after start"
ip -n "$H" -br addr show dev kvmbpeer | grep -q 192.168.122.1/24 || fail "kvmnet: no bridge address after start"
ctl stop peer >/dev/null
virsh_ net-start default >/dev/null
[[ -n $(dnsmasq_in "$LV") ]] || fail "libvirt: no dnsmasq after net-start"
ip -n "$LV" -br addr show dev virbr0 | grep -q 192.168.122.1/24 || fail "libvirt: no virbr0 address after net-start"
in_ns "$LV" iptables -t nat -S 2>/dev/null | grep -q MASQUERADE || fail "libvirt: no masquerade rule after net-start"
virsh_ net-destroy default >/dev/null
retry 50 test -z "$(dnsmasq_in "$LV")" || fail "libvirt: dnsmasq still running after net-destroy"
retry 50 test -z "$(dnsmasq_in "$H")" || fail "kvmnet: dnsmasq still running after stop"

log "measuring: $RUNS runs each, kvmnet and libvirt $LIBVIRT_VERSION alternating"
for ((r = 1; r <= RUNS; r++)); do
    # Each command returns once its network is up (or gone); the timer is
    # the caller's, process start-up included on both sides.
    t0=$EPOCHREALTIME
    ctl start peer >/dev/null
    t1=$EPOCHREALTIME
    ctl stop peer >/dev/null
    t2=$EPOCHREALTIME
    echo "start,kvmnet,$r,ms,$(ms_between "$t0" "$t1")" >>"$CSV"
    echo "stop,kvmnet,$r,ms,$(ms_between "$t1" "$t2")" >>"$CSV"
    t0=$EPOCHREALTIME
    virsh_ net-start default >/dev/null
    t1=$EPOCHREALTIME
    virsh_ net-destroy default >/dev/null
    t2=$EPOCHREALTIME
    echo "start,libvirt,$r,ms,$(ms_between "$t0" "$t1")" >>"$CSV"
    echo "stop,libvirt,$r,ms,$(ms_between "$t1" "$t2")" >>"$CSV"
done
cut -d' ' -f1-3 /proc/loadavg >"$RESULTS/peers-load-end.txt"

# ---------------------------------------------------------------- report

# stat FIGURE VARIANT: "median min max" (median of an even count: the mean of the middle two).
stat() {
    awk -F, -v f="$1" -v v="$2" '$1 == f && $2 == v { print $5 }' "$CSV" | sort -g | awk '
        { x[NR] = $1 } END { m = NR % 2 ? x[(NR + 1) / 2] : (x[NR / 2] + x[NR / 2 + 1]) / 2
            printf "%.1f %.1f %.1f\n", m, x[1], x[NR] }'
}
read -r ks kslo kshi <<<"$(stat start kvmnet)"
read -r ls lslo lshi <<<"$(stat start libvirt)"
read -r kd kdlo kdhi <<<"$(stat stop kvmnet)"
read -r ld ldlo ldhi <<<"$(stat stop libvirt)"
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "×%.2f", a / b }'; }
commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
cat >"$RESULTS/peers.md" <<MD
<!-- peers: rendered by scripts/bench-peers.sh; scripts/bench.sh --peers-only replaces it -->
### Network start and stop against libvirt (issue 17)

Measured by \`scripts/bench-peers.sh\` on $(date -u +%Y-%m-%d), commit \`$commit\`, $RUNS runs each,
kvmnet and libvirt $LIBVIRT_VERSION alternating in one run (kvmnet start, stop, libvirt
start, stop, again), after one unrecorded warm-up of each. Load average (1, 5, 15 min)
$(cat "$RESULTS/peers-load-start.txt") at the start, $(cat "$RESULTS/peers-load-end.txt") at the end, on 2 shared cores.
kvmnet: \`kvmnetctl start\` / \`kvmnetctl stop\` of a NAT network with DHCP over
192.168.122.2–254 and DNS (kvmnetd in its namespace, private bus). libvirt:
\`virsh net-start\` / \`virsh net-destroy\` of its default network (the same
subnet, NAT, DHCP range and DNS; libvirtd in a network namespace and a private
mount namespace with its own \`/etc/libvirt\`, \`/var\` and \`/run\`). Both
sides: one client process per command, until it returns (the bridge, the
rules and a dnsmasq up, or all gone).

| Figure | kvmnet, median (min–max) | libvirt $LIBVIRT_VERSION, median (min–max) | kvmnet ÷ libvirt |
|---|---|---|---|
| Network start | $ks ms ($kslo–$kshi) | $ls ms ($lslo–$lshi) | $(ratio "$ks" "$ls") |
| Network stop | $kd ms ($kdlo–$kdhi) | $ld ms ($ldlo–$ldhi) | $(ratio "$kd" "$ld") |

Raw samples: \`peers.csv\` in the results directory.
<!-- /peers -->
MD
log "wrote $RESULTS/peers.md"
cat "$RESULTS/peers.md"
