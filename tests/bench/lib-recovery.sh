# shellcheck shell=bash
# Sourced by the recovery benchmarks (coexist-recovery.sh,
# docker-recovery.sh, firewalld-recovery.sh) after tests/e2e/lib.sh.

now_ms() { echo $(($(date +%s%N) / 1000000)); }
# p50 and max of the numbers on stdin.
stats() { sort -n | awk '{ v[NR] = $1 } END { printf "p50 %d ms, max %d ms (%d runs)", v[int((NR + 1) / 2)], v[NR], NR }'; }

# recovery_network: kvmnetd (info log) in nat_topology's host with the NAT
# network "default" on kvmbr0, active.
recovery_network() {
    daemon_start --log-level info
    ctl create default --mode nat --bridge kvmbr0 --ipv4 192.168.122.1/24 \
        --dhcp-range 192.168.122.100-192.168.122.254 >/dev/null
    ctl start default >/dev/null
    wait_state default active
}

# recovery_guest BESIDE: guest 1 on kvmbr0 with a lease, a TCP server on
# the "internet" namespace's port 9000 answering "ok", and one connection
# to it that works (else fails "no connection beside BESIDE").
recovery_guest() {
    guest_plug "$G1" vg1 kvmbr0
    guest_dhcp "$G1" >/dev/null
    listen_tcp "$I" 9000 'echo ok'
    [[ $(tcp_get "$G1" 203.0.113.2 9000) == ok ]] || fail "no connection beside $1"
}
