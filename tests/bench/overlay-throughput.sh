#!/usr/bin/env bash
# Benchmark (not a test: it asserts no figures), issue 15 "Measured": TCP
# throughput between two guests on two hosts of an overlay network (static
# peers, VXLAN over the underlay namespace's bridge) against the same two
# guests on one host's bridge, as a ratio. Guest A stays on host 1; guest B
# alternates between host 2 (across the overlay) and host 1 (the same
# bridge) by moving its cable (host_guest_move: same MAC and address).
# iperf3, one stream, RUNS runs per placement (default 3), alternating, the
# load average printed at each run.
# Usage: bash tests/bench/overlay-throughput.sh [RUNS] [SECONDS]   (KVMNETD,
# KVMNETCTL as for the e2e tests). About a minute here.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../e2e/lib.sh"
RUNS=${1:-3}
SECS=${2:-5}
command -v iperf3 >/dev/null || fail "iperf3 missing (scripts/bench-deps.sh installs it)"

hosts_topology 2
for k in 1 2; do host_daemon_start "$k"; done
for k in 1 2; do
    other=$((3 - k))
    on_host "$k" ctl create tput --file - >/dev/null <<EOF
{"name": "tput", "mode": "nat", "bridge": "kvmbr5", "uplink": "uplink0",
 "ipv4": {"address": "10.80.0.1/24", "dhcp": {"ranges": ["10.80.0.10-10.80.0.99"]}},
 "overlay": {"vni": 400, "local": "10.99.0.$k", "peers": ["10.99.0.$other"]}}
EOF
    on_host "$k" ctl start tput >/dev/null
done
for k in 1 2; do on_host "$k" wait_state tput active; done

host_guest_add ta 1
host_guest_add tb 2
ip -n "${HOSTS[1]}" link set v-ta master kvmbr5 up
ip -n "${HOSTS[2]}" link set v-tb master kvmbr5 up
read -r aaddr _ <<<"$(guest_dhcp "${PFX}ta")"
read -r baddr _ <<<"$(guest_dhcp "${PFX}tb")"
bip=${baddr%/*}
# The MTU dnsmasq offers (option 26), which udhcpc.script does not apply; a
# real guest does, and larger frames would be fragmented on the underlay.
mtu=$(ip -n "${HOSTS[1]}" -j link show kvmbr5 | jq -r '.[0].mtu')
for g in ta tb; do ip -n "${PFX}$g" link set eth0 mtu "$mtu"; done
spawn_in_ns "${PFX}tb" iperf3 -s -B "$bip" >"$T/iperf3-server.log" 2>&1
track_pid "$SPAWNED_PID"
retry 50 _listening "${PFX}tb" 5201 || fail "iperf3 server did not start: $(cat "$T/iperf3-server.log")"
log "guest A ${aaddr%/*} on host 1, guest B $bip; MTU $(ip -n "${PFX}ta" -j link show eth0 | jq -r '.[0].mtu')"

# gbits: one iperf3 run from A to B, in Gbit/s.
gbits() {
    # B speaks first after its move, as a migrated guest's announce does:
    # until then the bridges still send its frames where it was.
    retry 25 pings "${PFX}tb" "${aaddr%/*}" || fail "B cannot reach A"
    retry 25 pings "${PFX}ta" "$bip" || fail "A cannot reach B"
    in_ns "${PFX}ta" iperf3 -c "$bip" -t "$SECS" -J >"$T/iperf3.json" 2>&1 || fail "iperf3: $(tail -5 "$T/iperf3.json")"
    jq -r '.end.sum_received.bits_per_second / 1e9 | . * 100 | floor / 100' "$T/iperf3.json"
}

cross=()
local_=()
where=2
for ((i = 1; i <= RUNS; i++)); do
    if ((where != 2)); then
        host_guest_move tb 1 2 kvmbr5
        where=2
    fi
    load=$(cut -d' ' -f1 /proc/loadavg)
    cross+=("$(gbits)")
    echo "run $i: two hosts (VXLAN) ${cross[-1]} Gbit/s, load $load"
    host_guest_move tb 2 1 kvmbr5
    where=1
    load=$(cut -d' ' -f1 /proc/loadavg)
    local_+=("$(gbits)")
    echo "run $i: one bridge ${local_[-1]} Gbit/s, load $load"
done
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
mc=$(median "${cross[@]}")
ml=$(median "${local_[@]}")
echo "----- iperf3 A -> B, one TCP stream, ${SECS} s, $RUNS runs each (alternating)"
echo "two hosts over VXLAN: median $mc Gbit/s (${cross[*]})"
echo "one bridge:           median $ml Gbit/s (${local_[*]})"
echo "ratio two hosts / one bridge: $(awk -v a="$mc" -v b="$ml" 'BEGIN { printf "%.2f", a / b }')"
