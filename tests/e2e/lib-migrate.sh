# Live migration of a real QEMU guest between the hosts of hosts_topology
# (issue 15), shared by tests/e2e/test_overlay_migrate.sh and
# tests/bench/migrate-gap.sh. Source after lib.sh, guest/guest.sh and
# lib-frr.sh; call guest_prepare, hosts_topology 3 and host_daemon_start
# (with --frr-vty-socket for EVPN) first.
#
#   mig_network static|evpn   # the network on hosts 1-3, the taps on 1 and 2,
#                             # a watcher guest on host 3 with a lease
#   mig_boot 1                # the QEMU guest on host 1; MIG_IP its lease
#   mig_measure 1 2           # host 3's watcher pings it every MIG_INTERVAL_MS
#                             # while it migrates from host 1 to host 2
#   mig_stop                  # the guest ends, the network goes everywhere
#
# The guest's tap has the same name on every host (QEMU's netdev names it);
# the migration stream goes over the underlay (10.99.0.K), never elsewhere.

# shellcheck shell=bash
# shellcheck disable=SC2034 # MIG_* results are read by the test and the bench
MIG_INTERVAL_MS=${MIG_INTERVAL_MS:-20}
MIG_PORT=4444
MIG_MAC=52:54:00:15:00:01
MIG_QEMU=() # QEMU's pid per host
MIG_QMP=()  # its QMP socket per host
MIG_IP=""
MIG_MODE=""

# mig_document K MODE: the network as host K defines it.
mig_document() {
    local k=$1 others
    others=$(for p in 1 2 3; do ((p == k)) || echo "\"10.99.0.$p\""; done | paste -sd,)
    if [[ $2 == evpn ]]; then
        printf '%s\n' "{\"name\": \"$MIG_NET\", \"mode\": \"nat\", \"bridge\": \"$MIG_BR\", \"uplink\": \"uplink0\",
 \"ipv4\": {\"address\": \"10.78.0.1/24\", \"dhcp\": {\"ranges\": [\"10.78.0.10-10.78.0.99\"]}},
 \"overlay\": {\"vni\": 200, \"local\": \"10.99.0.$k\", \"dhcp_slice\": {\"index\": $((k - 1)), \"count\": 3},
             \"evpn\": {\"asn\": 65000, \"neighbors\": [$others]}}}"
    else
        printf '%s\n' "{\"name\": \"$MIG_NET\", \"mode\": \"nat\", \"bridge\": \"$MIG_BR\", \"uplink\": \"uplink0\",
 \"ipv4\": {\"address\": \"10.77.0.1/24\", \"dhcp\": {\"ranges\": [\"10.77.0.10-10.77.0.99\"]}},
 \"overlay\": {\"vni\": 100, \"local\": \"10.99.0.$k\", \"peers\": [$others]}}"
    fi
}

_mig_evpn_established() {
    [[ $(on_host "$1" dbus-send --system --print-reply=literal --dest=org.kvmnet1 \
        "/org/kvmnet1/network/$MIG_NET" org.freedesktop.DBus.Properties.Get \
        string:org.kvmnet1.Network string:EvpnState) == *established* ]]
}

# mig_network MODE: sets MIG_NET, MIG_BR, MIG_TAP, MIG_VX, MIG_WATCHER.
mig_network() {
    local k addr
    MIG_MODE=$1
    if [[ $MIG_MODE == evpn ]]; then
        MIG_NET=mige MIG_BR=kvmbr8 MIG_VX=kvx-200 MIG_TAP=tap-mig8
    else
        MIG_NET=mig MIG_BR=kvmbr7 MIG_VX=kvx-100 MIG_TAP=tap-mig7
    fi
    for k in 1 2 3; do
        mig_document "$k" "$MIG_MODE" | on_host "$k" ctl create "$MIG_NET" --file - >/dev/null
        on_host "$k" ctl start "$MIG_NET" >/dev/null
    done
    for k in 1 2 3; do on_host "$k" wait_state "$MIG_NET" active; done
    if [[ $MIG_MODE == evpn ]]; then
        for k in 1 2 3; do
            retry 150 _mig_evpn_established "$k" || fail "host $k: the EVPN sessions did not establish"
        done
    fi
    for k in 1 2; do
        on_host "$k" ctl port attach "$MIG_NET" "$MIG_TAP" --tap --owner "$GUEST_UID" >/dev/null
    done
    MIG_WATCHER=${PFX}w$MIG_MODE
    host_guest_add "w$MIG_MODE" 3
    ip -n "${HOSTS[3]}" link set "v-w$MIG_MODE" master "$MIG_BR" up
    read -r addr _ <<<"$(guest_dhcp "$MIG_WATCHER")"
    log "$MIG_MODE: watcher on host 3 has ${addr%/*}"
}

# mig_boot K: the QEMU guest on host K's tap (it takes a lease, pings its
# gateway, then stays up). Sets MIG_IP and MIG_BOOT_SECONDS.
mig_boot() {
    local k=$1 t0=$SECONDS line
    guest_spawn "${HOSTS[k]}" "$MIG_TAP" "$MIG_MAC" "kvmnet.hold=3600"
    MIG_QEMU[k]=$GUEST_PID
    MIG_QMP[k]=$GUEST_QMP
    guest_wait_done "$GUEST_CONSOLE"
    MIG_BOOT_SECONDS=$((SECONDS - t0))
    line=$(guest_lines "$GUEST_CONSOLE" lease | head -n1)
    if [[ -z $line || $line == none ]]; then
        guest_dump
        fail "the QEMU guest got no lease"
    fi
    MIG_IP=$(guest_field "$line" ip)
    log "$MIG_MODE: QEMU guest booted on host $k in ${MIG_BOOT_SECONDS} s (TCG), lease $line"
}

_mig_listening() { [[ $(in_ns "${HOSTS[$1]}" ss -Hltn "sport = :$MIG_PORT") == *LISTEN* ]]; }
_mig_running() {
    local status
    status=$(python3 "$SRCDIR/tests/e2e/guest/qmp.py" "${MIG_QMP[$1]}" query-status 2>/dev/null) || return 1
    [[ $(jq -r .status <<<"$status") == running ]]
}

# mig_migrate FROM TO: QEMU's own live migration of the guest from host FROM
# to a QEMU started with -incoming on host TO (same tap name, same command
# line); the source QEMU quits once it is done. Sets MIG_TOTAL_MS and
# MIG_DOWNTIME_MS (QEMU's own figures).
mig_migrate() {
    local from=$1 to=$2 status="" i info
    guest_spawn "${HOSTS[to]}" "$MIG_TAP" "$MIG_MAC" "kvmnet.hold=3600" -incoming "tcp:10.99.0.$to:$MIG_PORT"
    MIG_QEMU[to]=$GUEST_PID
    MIG_QMP[to]=$GUEST_QMP
    if ! retry 100 _mig_listening "$to"; then
        guest_dump
        fail "the incoming QEMU on host $to does not listen on 10.99.0.$to:$MIG_PORT"
    fi
    # The destination announces the guest's MAC (RARP) as it resumes: QEMU's
    # defaults, which libvirt keeps, set here so the test says what it relies
    # on (docs/overlay.md, "Live migration"): the first at once, 5 in all.
    qmp "${MIG_QMP[to]}" migrate-set-parameters \
        '{"announce-initial": 50, "announce-max": 550, "announce-rounds": 5, "announce-step": 100}' >/dev/null
    qmp "${MIG_QMP[from]}" migrate "{\"uri\": \"tcp:10.99.0.$to:$MIG_PORT\"}" >/dev/null
    for ((i = 0; i < 600; i++)); do
        info=$(qmp "${MIG_QMP[from]}" query-migrate)
        status=$(jq -r '.status // "none"' <<<"$info")
        [[ $status == completed || $status == failed || $status == cancelled ]] && break
        sleep 0.05
    done
    [[ $status == completed ]] || fail "migration from host $from to host $to: status '$status': $info"
    MIG_TOTAL_MS=$(jq -r '."total-time"' <<<"$info")
    MIG_DOWNTIME_MS=$(jq -r .downtime <<<"$info")
    if ! retry 50 _mig_running "$to"; then
        guest_dump "${MIG_QMP[to]%/*}/console.log"
        fail "the guest does not run on host $to after the migration (QEMU pid ${MIG_QEMU[to]})"
    fi
    qmp "${MIG_QMP[from]}" quit >/dev/null 2>&1 || true
    stop_pid "${MIG_QEMU[from]}"
    MIG_QEMU[from]=""
}

# mig_measure FROM TO: host 3's watcher pings the guest every
# MIG_INTERVAL_MS from 1 s before the migration until 2 s after it; sets
# MIG_GAP_MS (the longest time between two replies), MIG_LOST, MIG_SENT.
mig_measure() {
    local from=$1 to=$2 out=$T/pinger.$MIG_MODE.$1-$2.$SECONDS.json pid
    retry 50 pings "$MIG_WATCHER" "$MIG_IP" || fail "host 3's watcher cannot ping the guest on host $from"
    spawn_in_ns "$MIG_WATCHER" python3 "$SRCDIR/tests/e2e/pinger.py" "$MIG_IP" "$MIG_INTERVAL_MS" "$out" \
        >>"$T/pinger.log" 2>&1
    pid=$SPAWNED_PID
    track_pid "$pid"
    sleep 1
    mig_migrate "$from" "$to"
    sleep 2
    stop_pid "$pid"
    [[ -s $out ]] || fail "the pinger wrote no result: $(cat "$T/pinger.log")"
    MIG_GAP_MS=$(jq -r .max_gap_ms "$out")
    MIG_LOST=$(jq -r .lost "$out")
    MIG_SENT=$(jq -r .sent "$out")
    log "$MIG_MODE: host $from -> $to: migration ${MIG_TOTAL_MS} ms (downtime ${MIG_DOWNTIME_MS} ms);" \
        "pings every ${MIG_INTERVAL_MS} ms: longest gap ${MIG_GAP_MS} ms, lost $MIG_LOST of $MIG_SENT"
}

# mig_stop: the guest's QEMU quits, the network stops and goes on every host.
mig_stop() {
    local k
    for k in 1 2 3; do
        [[ -n ${MIG_QEMU[k]:-} ]] || continue
        qmp "${MIG_QMP[k]}" quit >/dev/null 2>&1 || true
        stop_pid "${MIG_QEMU[k]}"
        MIG_QEMU[k]=""
    done
    for k in 1 2 3; do
        on_host "$k" ctl stop "$MIG_NET" >/dev/null
        on_host "$k" ctl delete "$MIG_NET" >/dev/null
    done
}
