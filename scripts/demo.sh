#!/usr/bin/env bash
# The README's first command: builds kvmnet and shows it working in a sandbox
# made of network namespaces, without touching this machine's own network.
#
#   sudo scripts/demo.sh          run the demo, then clean up
#   sudo scripts/demo.sh --keep   leave it running until Ctrl-C, to play with
#
# Sandbox (namespaces prefixed kvmdemo-): h = the "host" where kvmnetd runs,
# g1 = a guest plugged into the NAT bridge, i = the "internet" behind the
# host's uplink. A private dbus-daemon stands in for the system bus.
set -euo pipefail

keep=0
case ${1:-} in
--keep) keep=1 ;;
"") ;;
*)
    echo "usage: $0 [--keep]" >&2
    exit 2
    ;;
esac

cd "$(dirname "${BASH_SOURCE[0]}")/.."

echo "==> checking build dependencies"
bash scripts/deps.sh

echo "==> building (build/)"
if [[ ! -f build/build.ninja ]]; then
    meson setup build >/dev/null
fi
ninja -C build -j2 >/dev/null

# The e2e harness provides the namespace guard, the private bus, the daemon
# launcher and cleanup-by-PID; demo mode turns off its test-only behaviour.
export KVMNET_LIB_MODE=demo
export SRCDIR=$PWD KVMNETD=$PWD/build/daemon/kvmnetd KVMNETCTL=$PWD/build/client/kvmnetctl
source tests/e2e/lib.sh

echo "==> creating namespaces (host, guest, internet)"
nat_topology
echo "    $H: uplink0 203.0.113.1/24  <->  $I: eth0 203.0.113.2/24"
echo "    $H: vg1                     <->  $G1: eth0 (the guest's NIC)"

echo "==> starting a private D-Bus system bus"
bus_start
echo "    DBUS_SYSTEM_BUS_ADDRESS=$DBUS_SYSTEM_BUS_ADDRESS"

echo "==> starting kvmnetd in $H (log: $T/kvmnetd.log)"
daemon_start

echo "==> kvmnetctl create default --mode nat --bridge kvmbr0 --ipv4 192.168.122.1/24 --dhcp-range 192.168.122.100-192.168.122.254"
ctl create default --mode nat --bridge kvmbr0 --ipv4 192.168.122.1/24 \
    --dhcp-range 192.168.122.100-192.168.122.254

echo "==> kvmnetctl start default"
ctl start default
wait_state default active

echo "==> kvmnetctl list"
ctl list

echo "==> kvmnetctl show default"
ctl show default

echo "==> plugging the guest into kvmbr0 and asking for a DHCP lease"
guest_plug "$G1" vg1 kvmbr0
read -r gaddr router <<<"$(guest_dhcp "$G1")"
echo "    guest got $gaddr, router $router"

echo "==> guest pings the internet namespace (203.0.113.2) through NAT"
in_ns "$G1" busybox ping -c 3 -W 2 203.0.113.2

echo "==> nft list table inet kvmnet (in $H)"
in_ns "$H" nft list table inet kvmnet

if ((keep)); then
    cat <<EOF
==> sandbox is up; press Ctrl-C to tear it down. Meanwhile, in another shell:
    export DBUS_SYSTEM_BUS_ADDRESS='$DBUS_SYSTEM_BUS_ADDRESS'
    $KVMNETCTL list
    $KVMNETCTL show default --json
    ip netns exec $G1 busybox ping -c 1 203.0.113.2
    ip -n $H -d link show kvmbr0
    tail -f $T/kvmnetd.log
EOF
    # Ctrl-C ends the sleep and runs lib.sh's cleanup (daemon, dnsmasq,
    # dbus-daemon stopped by PID, namespaces deleted).
    while :; do sleep 1; done
fi

echo "==> kvmnetctl stop default"
ctl stop default
echo "==> kvmnetctl delete default"
ctl delete default
ctl list

echo "==> cleaning up (daemon, bus, namespaces)"
daemon_stop
echo "==> done"
