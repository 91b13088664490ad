#!/usr/bin/env bash
# Benchmark (not a test: it asserts no times), issue 14 "Measured": how
# long until a guest's new connection works again after firewalld drops
# kvmnet's zone binding, p50 and max over RUNS runs (default 20), beside a
# real firewalld confined as in test_coexist_firewalld (lib-firewalld.sh).
#  1. `firewall-cmd --reload` (Debian's FlushAllOnReload=yes drops run-time
#     zone bindings: the bridge falls into the default zone, public, which
#     does not forward the guests' traffic); kvmnetd puts it back on the
#     Reloaded signal.
#  2. A restart of firewalld (SIGTERM, then a new firewalld); kvmnetd puts
#     the bridge back on NameOwnerChanged.
# Two figures each: from the command (firewall-cmd --reload started; the
# new firewalld spawned) and from firewalld being done (firewall-cmd
# returned; the new firewalld answering `--state` running, polled every
# 200 ms by firewalld_start) until a guest's new TCP connection to the
# "internet" namespace succeeds (tried every 10 ms, each try a socat
# started in the guest's namespace, a few ms: the figures include that
# polling). The "from the command" figures are mostly firewalld's own time.
# Usage: bash tests/bench/firewalld-recovery.sh [RUNS]   (KVMNETD,
# KVMNETCTL as for the e2e tests). About 3 minutes here.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../e2e/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/../e2e/lib-firewalld.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib-recovery.sh"
RUNS=${1:-20}

nat_topology
bus_start
firewalld_setup
firewalld_start
recovery_network
retry 50 _in_zone kvmbr0 || fail "kvmbr0 is not in firewalld's zone kvmnet: '$(zone_of kvmbr0)'"
recovery_guest "firewalld"

connects() { [[ $(tcp_get "$G1" 203.0.113.2 9000 0.2 2>/dev/null) == ok ]]; }
# Waits for a new connection; appends the times since $1 and $2 to the
# files $3 and $4, and counts in $5 the runs whose first try already
# worked (kvmnetd was faster than firewalld's own return or start-up poll).
recovered() {
    local t0=$1 t1=$2 tries=0
    until connects; do
        tries=$((tries + 1))
        (($(now_ms) - t1 < 10000)) || fail "no connection 10 s after firewalld was done"
        sleep 0.01
    done
    local t=$(now_ms)
    echo $((t - t0)) >>"$3"
    echo $((t - t1)) >>"$4"
    ((tries > 0)) || echo >>"$5"
}

: >"$T/reload.cmd.ms"
: >"$T/reload.done.ms"
: >"$T/reload.first"
for ((run = 0; run < RUNS; run++)); do
    t0=$(now_ms)
    fw --reload >/dev/null
    recovered "$t0" "$(now_ms)" "$T/reload.cmd.ms" "$T/reload.done.ms" "$T/reload.first"
done

: >"$T/restart.cmd.ms"
: >"$T/restart.done.ms"
: >"$T/restart.first"
for ((run = 0; run < RUNS; run++)); do
    stop_pid "$FIREWALLD_PID" 15
    t0=$(now_ms)
    firewalld_start
    recovered "$t0" "$(now_ms)" "$T/restart.cmd.ms" "$T/restart.done.ms" "$T/restart.first"
done

echo "firewalld recovery (load average $(cut -d' ' -f1-3 /proc/loadavg))"
echo "firewall-cmd --reload started -> guest's new connection works: $(stats <"$T/reload.cmd.ms")"
echo "firewall-cmd --reload returned -> guest's new connection works: $(stats <"$T/reload.done.ms"); first try worked in $(wc -l <"$T/reload.first") runs"
echo "new firewalld spawned -> guest's new connection works:          $(stats <"$T/restart.cmd.ms")"
echo "new firewalld running -> guest's new connection works:          $(stats <"$T/restart.done.ms"); first try worked in $(wc -l <"$T/restart.first") runs"
ctl stop default >/dev/null
daemon_stop
stop_pid "$FIREWALLD_PID" 15
