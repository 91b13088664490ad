# FRR for the EVPN tests: one FRR (zebra + bgpd) per host namespace of
# hosts_topology, started and stopped by the test by PID, never by kvmnet
# and never in the machine's own namespace. Source after lib.sh; frr_require
# skips (77) when FRR is not installed (scripts/deps-overlay.sh installs it).
#
#   frr_require
#   frr_start K [CONFIG-LINES]   # host K's FRR, every path under $T/h<K>/frr
#   vty K -c 'show bgp summary'
#   frr_stop K
# kvmnetd reaches host K's FRR with --frr-vty-socket "$T/h<K>/frr".

# shellcheck shell=bash
FRR_DIR=/usr/lib/frr
FRR_PIDS=()

frr_require() {
    local b
    for b in "$FRR_DIR/zebra" "$FRR_DIR/bgpd" /usr/bin/vtysh; do
        [[ -x $b ]] || skip "FRR is not installed ($b missing; scripts/deps-overlay.sh installs it)"
    done
    id frr >/dev/null 2>&1 || skip "no user frr (the frr package makes it)"
}

# frr_available: whether frr_require would pass (for tests with an FRR half).
frr_available() {
    [[ -x $FRR_DIR/zebra && -x $FRR_DIR/bgpd && -x /usr/bin/vtysh ]] && id frr >/dev/null 2>&1
}

# frr_start K [CONFIG-LINES]: zebra then bgpd in host K, as user frr, every
# path in $T/h<K>/frr (configuration, pid files, zserv and vty sockets), and
# /var/tmp (where FRR keeps crash records) bound to a directory of its own
# in a private mount namespace. CONFIG-LINES (the administrator's own
# configuration) go into frr.conf after the hostname. Tracked by PID.
frr_start() {
    local k=$1 d=$T/h$1/frr daemon
    mkdir -p "$d/tmp"
    printf 'hostname h%s\n%s\n' "$k" "${2:-}" >"$d/frr.conf"
    rm -f "$d"/*.vty
    chown -R frr:frr "$d"
    FRR_PIDS[k]=""
    for daemon in zebra bgpd; do
        spawn_in_ns "${HOSTS[k]}" unshare --mount --propagation private sh -c \
            'mount --bind "$1" /var/tmp && shift && exec "$@"' sh "$d/tmp" \
            "$FRR_DIR/$daemon" -f "$d/frr.conf" -i "$d/$daemon.pid" -z "$d/zserv.api" \
            --vty_socket "$d" -P 0 --log "file:$d/$daemon.log" >>"$d/$daemon.out" 2>&1
        track_pid "$SPAWNED_PID"
        FRR_PIDS[k]+=" $SPAWNED_PID"
        retry 50 test -S "$d/$daemon.vty" || fail "FRR $daemon of host $k did not start: $(cat "$d/$daemon.out")"
    done
}

# frr_stop K: bgpd, then zebra, by PID.
frr_stop() {
    local pids i
    read -ra pids <<<"${FRR_PIDS[$1]}"
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do stop_pid "${pids[i]}"; done
    FRR_PIDS[$1]=""
}

# vty K VTYSH-ARGS...: host K's FRR.
vty() {
    local k=$1
    shift
    in_ns "${HOSTS[k]}" vtysh --vty_socket "$T/h$k/frr" "$@"
}

# evpn_mac_wait T0 MAC VXLAN TIMEOUT-S K...: polls (every 10 ms) hosts K...
# until each one's VXLAN FDB has MAC from FRR (extern_learn, a type-2 route;
# MAC may be "MAC dst VTEP" to wait for it behind one host, after a move);
# prints, per host in order, the milliseconds from T0 (an $EPOCHREALTIME
# taken just before the MAC's first frame) to the first poll that saw it.
# Returns 1, printing what it has, when TIMEOUT-S passes first. Reports a
# time, asserts none: the timeout only says the MAC never came.
evpn_mac_wait() {
    local t0=$1 mac=$2 vx=$3 timeout=$4 k out=""
    shift 4
    local -A got=()
    while ((${#got[@]} < $#)); do
        for k in "$@"; do
            [[ -z ${got[$k]:-} ]] || continue
            in_ns "${HOSTS[k]}" bridge fdb show dev "$vx" | grep -q "^$mac .*extern_learn" &&
                got[$k]=$(((${EPOCHREALTIME/[.,]/} - ${t0/[.,]/}) / 1000))
        done
        ((${#got[@]} == $#)) && break
        if (((${EPOCHREALTIME/[.,]/} - ${t0/[.,]/}) / 1000000 >= timeout)); then
            for k in "$@"; do out+="${got[$k]:-none} "; done
            echo "${out% }"
            return 1
        fi
        sleep 0.01
    done
    for k in "$@"; do out+="${got[$k]} "; done
    echo "${out% }"
}
