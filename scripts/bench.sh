#!/usr/bin/env bash
# The benchmarks of issue #4, side by side with their baselines in one run:
#   1. control plane: forwards committed in bulk and one at a time with N
#      existing (kvmnet's nftables adapter, the daemon over D-Bus; iptables-nft
#      and nft with one rule per forward);
#   2. datapath: iperf3 through a raw veth, a bridge, the same hops as a NAT
#      host routed without rules (both directions) and kvmnet's NAT (forward
#      and masquerade), rendered by scripts/bench-datapath-report.sh; new TCP
#      connections per second through 1 and 10,000 forwards;
#   3. end to end: `kvmnetctl forward add`, network start and stop;
#   4. kvmnetd's resident memory;
#   5. D-Bus load: tests/e2e/test_load.sh (32 concurrent clients for about a
#      minute), its figures rendered by scripts/bench-load-report.sh;
#   6. repair time after a bridge deleted, ip_forward turned off and the
#      ruleset flushed, against commit c344358 built in a tree of its own:
#      scripts/bench-repair.sh;
#   7. network start and stop against libvirt 9.0 (libvirtd confined to a
#      namespace of its own), alternating: scripts/bench-peers.sh;
#   8. where the cost of NAT masquerade goes: kvmnet's ruleset against the
#      same hops routed and variants of it, alternating: scripts/bench-masq.sh.
# Raw samples go to RESULTS/raw.csv (figure,variant,n,unit,value; one row per
# sample), medians and p99 to RESULTS/summary.csv, the plot and the report
# to RESULTS/performance.{png,md}; without --quick also to docs/.
#
# Usage: sudo scripts/bench.sh [--quick] [--results DIR] [--no-doc] [--load-only] [--repair-only] [--peers-only]
#                             [--masq-only] [--datapath-only] [--iperf-runs N] [--iperf-seconds S]
#   --quick     fewer runs and no 100k sizes (a smoke run; never for docs/)
#   --load-only only the D-Bus load (about 75 s), and only its section of
#               docs/performance.md replaced
#   --repair-only only the repair times (about 1 minute, plus building the
#               baseline once), and only their section replaced
#   --peers-only only the start/stop against libvirt (about 30 s), and only
#               its section replaced
#   --masq-only only the masquerade breakdown (about 10 minutes under
#               load), and only its section replaced
#   --datapath-only only the bulk throughput of the datapath (iperf3 through
#               every path, interleaved round by round; 7 runs of 3 s by
#               default, about 6 minutes), and only its section replaced
#   --iperf-runs N, --iperf-seconds S  rounds of iperf3 over all paths, and
#               seconds per run (default 5 and 3; 7 and 3 with
#               --datapath-only; 1 and 2 with --quick)
#   --results   where the results go (default: bench-results/DATE-TIME)
#   --no-doc    leave docs/performance.* alone
#
# Everything happens in network namespaces this script creates (the guards of
# tests/e2e/lib.sh refuse ip/nft/sysctl/tc/bridge and, below, iptables, iperf3
# and hyperfine aimed anywhere else); traffic flows only between them; every
# process started is stopped by its PID. The machine's own namespace is never
# configured. About 6-10 minutes on 2 cores.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

QUICK=0
RESULTS=""
WRITE_DOC=1
LOAD_ONLY=0
REPAIR_ONLY=0
PEERS_ONLY=0
MASQ_ONLY=0
DATAPATH_ONLY=0
IPERF_RUNS_OPT=""
IPERF_SECONDS_OPT=""
# positive_int OPTION VALUE: VALUE, or exit 2 naming the option.
positive_int() {
    if [[ ! $2 =~ ^[1-9][0-9]{0,3}$ ]]; then
        echo "bench.sh: $1 needs a whole number from 1 to 9999, not '$2'" >&2
        exit 2
    fi
    echo "$2"
}
while (($# > 0)); do
    case $1 in
    --quick) QUICK=1 ;;
    --results)
        RESULTS=${2:?--results needs a directory}
        shift
        ;;
    --no-doc) WRITE_DOC=0 ;;
    --load-only) LOAD_ONLY=1 ;;
    --repair-only) REPAIR_ONLY=1 ;;
    --peers-only) PEERS_ONLY=1 ;;
    --masq-only) MASQ_ONLY=1 ;;
    --datapath-only) DATAPATH_ONLY=1 ;;
    --iperf-runs)
        IPERF_RUNS_OPT=$(positive_int "$1" "${2:-}")
        shift
        ;;
    --iperf-seconds)
        IPERF_SECONDS_OPT=$(positive_int "$1" "${2:-}")
        shift
        ;;
    -h | --help)
        awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"
        exit 0
        ;;
    *)
        echo "bench.sh: unknown option '$1' (see --help)" >&2
        exit 2
        ;;
    esac
    shift
done
((QUICK)) && WRITE_DOC=0

if ((EUID != 0)); then
    echo "bench.sh: needs root (it creates network namespaces)" >&2
    exit 1
fi

bash scripts/bench-deps.sh
[[ -f build/build.ninja ]] || meson setup build
nice -n 5 ninja -C build -j2 daemon/kvmnetd client/kvmnetctl tests/bench/kvmnet-bench

export SRCDIR=$ROOT KVMNETD=$ROOT/build/daemon/kvmnetd KVMNETCTL=$ROOT/build/client/kvmnetctl
BENCH=$ROOT/build/tests/bench/kvmnet-bench
RESULTS=${RESULTS:-$ROOT/bench-results/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$RESULTS"
RESULTS=$(cd "$RESULTS" && pwd)

# D-Bus load: the e2e test with its results kept (it makes its own
# namespaces, bus and daemon, and asserts no failed calls, no leaked fds and
# flat memory on the way).
bench_dbus_load() {
    local rc=0
    LOAD_RESULTS=$RESULTS KVMNET_BENCH=$BENCH LOAD_SECONDS=$( ((QUICK)) && echo 15 || echo 55) \
        bash "$ROOT/tests/e2e/test_load.sh" >"$RESULTS/dbus-load.log" 2>&1 || rc=$?
    if ((rc != 0)); then
        echo "bench.sh: tests/e2e/test_load.sh failed (exit $rc):" >&2
        tail -n 30 "$RESULTS/dbus-load.log" >&2
        return 1
    fi
}

# put_section MARKER FILE: replaces the section between <!-- MARKER: and
# <!-- /MARKER --> in docs/performance.md, or puts it before "## Not measured".
put_section() {
    python3 "$ROOT/scripts/doc-section.py" "$1" "$ROOT/docs/performance.md" "$2"
}

if ((REPAIR_ONLY)); then
    echo "bench.sh: repair times only" >&2
    bash "$ROOT/scripts/bench-repair.sh" "$RESULTS" c344358 "$( ((QUICK)) && echo 3 || echo 20)" >/dev/null
    if ((WRITE_DOC)); then
        put_section repair "$RESULTS/repair.md"
        echo "bench.sh: replaced the repair-time section of docs/performance.md" >&2
    fi
    echo "bench.sh: results in $RESULTS" >&2
    exit 0
fi

PEER_RUNS=$( ((QUICK)) && echo 3 || echo 15)
if ((PEERS_ONLY)); then
    echo "bench.sh: network start/stop against libvirt only" >&2
    bash "$ROOT/scripts/bench-peers.sh" "$RESULTS" "$PEER_RUNS" >/dev/null
    if ((WRITE_DOC)); then
        put_section peers "$RESULTS/peers.md"
        echo "bench.sh: replaced the libvirt section of docs/performance.md" >&2
    fi
    echo "bench.sh: results in $RESULTS" >&2
    exit 0
fi

# bench-masq.sh: runs per variant and seconds per run.
if ((QUICK)); then MASQ_ARGS=(2 1); else MASQ_ARGS=(9 2); fi
if ((MASQ_ONLY)); then
    echo "bench.sh: masquerade breakdown only" >&2
    KVMNET_BENCH=$BENCH bash "$ROOT/scripts/bench-masq.sh" "$RESULTS" "${MASQ_ARGS[@]}" >/dev/null
    if ((WRITE_DOC)); then
        put_section masq "$RESULTS/masq.md"
        echo "bench.sh: replaced the masquerade section of docs/performance.md" >&2
    fi
    echo "bench.sh: results in $RESULTS" >&2
    exit 0
fi

if ((LOAD_ONLY)); then
    echo "bench.sh: D-Bus load only (about 75 s)" >&2
    bench_dbus_load
    bash "$ROOT/scripts/bench-load-report.sh" "$RESULTS" >"$RESULTS/dbus-load.md"
    if ((WRITE_DOC)); then
        put_section dbus-load "$RESULTS/dbus-load.md"
        echo "bench.sh: replaced the D-Bus load section of docs/performance.md" >&2
    fi
    echo "bench.sh: results in $RESULTS" >&2
    exit 0
fi

# A benchmark that cannot run is an error, never a skip (demo mode of lib.sh).
KVMNET_LIB_MODE=demo
# shellcheck source=../tests/e2e/lib.sh
source "$ROOT/tests/e2e/lib.sh"
# lib.sh named the run's namespaces kvmdemo-*; bench namespaces carry their own
# prefix with this script's PID (ns_create refuses any other name).
PFX=kvmb$$-

# More guards in the spirit of lib.sh's: these tools must only ever run
# inside one of our namespaces (in_ns NS TOOL ...).
for _tool in iptables iptables-nft iptables-restore iptables-nft-restore iptables-save ip6tables iperf3 hyperfine; do
    eval "$_tool() { _guard_refuse $_tool \"\$@\"; }"
done

if ((QUICK)); then
    RUNS=2 ADDS=30 EXEC_ADDS=10 SIZES=(1000 10000) AT=(0 10000) IPERF_SECONDS=2 IPERF_RUNS=1 CONNS=1000
    START_RUNS=3 CLI_RUNS=10 FW_RUNS=5
else
    RUNS=5 ADDS=200 EXEC_ADDS=100 SIZES=(1000 10000 100000) AT=(0 1000 10000 100000) IPERF_SECONDS=3 IPERF_RUNS=5
    CONNS=10000 START_RUNS=10 CLI_RUNS=50 FW_RUNS=20
fi
if ((DATAPATH_ONLY && !QUICK)); then IPERF_RUNS=7; fi
IPERF_RUNS=${IPERF_RUNS_OPT:-$IPERF_RUNS}
IPERF_SECONDS=${IPERF_SECONDS_OPT:-$IPERF_SECONDS}
RUNS_100K=3 # bulk runs at 100,000 (each takes seconds in the baselines)
join() {
    local IFS=,
    echo "$*"
}

RAW=$RESULTS/raw.csv
NOTES=$RESULTS/not-measured.txt
echo "figure,variant,n,unit,value" >"$RAW"
: >"$NOTES"
STARTED=$(date +%s)
# Other work on a shared machine shows in the numbers: the load around the run goes into the report.
cut -d' ' -f1-3 /proc/loadavg >"$RESULTS/load-start.txt"

section() { log "== $* ($(($(date +%s) - STARTED)) s)"; }
# not_measured FIGURE WHY: recorded for the report; never a number.
not_measured() {
    echo "$1|$2" >>"$NOTES"
    log "not measured: $1: $2"
}
record() { "$@" >>"$RAW"; } # record CMD...: the command's CSV rows go to raw.csv
row() { echo "$1,$2,$3,$4,$5" >>"$RAW"; }
ms_between() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (b - a) * 1000 }'; }

# ---------------------------------------------------------------- forward lists

# The i-th synthetic forward (as kvmnet-bench's forward_spec): tcp, host
# 203.0.113.(11 + i/50000):(10000 + i%50000) -> 192.168.150.(10 + i%200):80.
# gen_forwards N FORMAT [FIRST-ADDRESS-OCTET GUEST-NET] prints them as
# iptables-restore lines, nft rule lines or a JSON array.
gen_forwards() {
    awk -v n="$1" -v fmt="$2" -v octet="${3:-11}" -v gnet="${4:-192.168.150}" 'BEGIN {
        if (fmt == "json") printf "[";
        for (i = 0; i < n; i++) {
            a = "203.0.113." (octet + int(i / 50000)); p = 10000 + i % 50000; g = gnet "." (10 + i % 200)
            if (fmt == "iptables")
                printf "-A PREROUTING -d %s/32 -p tcp -m tcp --dport %d -j DNAT --to-destination %s:80\n", a, p, g
            else if (fmt == "nft")
                printf "ip daddr %s tcp dport %d dnat to %s:80\n", a, p, g
            else
                printf "%s{\"proto\":\"tcp\",\"host_address\":\"%s\",\"host_port\":%d,\"guest\":\"%s\",\"guest_port\":80}",
                    (i ? "," : ""), a, p, g
        }
        if (fmt == "json") printf "]\n";
    }'
}

# iptables_file N PATH [USED-RULE]: N-1 (or N without USED) filler rules, then USED.
iptables_file() {
    {
        echo "*nat"
        echo ":PREROUTING ACCEPT [0:0]"
        if [[ -n ${3:-} ]]; then
            (($1 > 1)) && gen_forwards $(($1 - 1)) iptables
            echo "$3"
        else
            gen_forwards "$1" iptables
        fi
        echo "COMMIT"
    } >"$2"
}
# nft_file N PATH [USED-RULE]: table ip nftbase, one rule per forward.
nft_file() {
    {
        echo "table ip nftbase {"
        echo "  chain prerouting {"
        echo "    type nat hook prerouting priority dstnat; policy accept;"
        if [[ -n ${3:-} ]]; then
            (($1 > 1)) && gen_forwards $(($1 - 1)) nft
            echo "$3"
        else
            gen_forwards "$1" nft
        fi
        echo "  }"
        echo "}"
    } >"$2"
}

# ---------------------------------------------------------------- 1. control plane, no daemon

bench_adapter() {
    section "control plane: forward-map elements through kvmnet's nftables adapter"
    local ns=${PFX}nft
    ns_create "$ns"
    record in_ns "$ns" "$BENCH" nft-elements --sizes "$(join "${SIZES[@]}")" --at "$(join "${AT[@]}")" \
        --runs "$RUNS" --adds "$ADDS"
}

bench_rule_baselines() {
    section "control plane baselines: iptables-nft and nft, one rule per forward"
    local ns=${PFX}ipt n runs
    ns_create "$ns"
    for n in "${SIZES[@]}"; do
        runs=$RUNS
        ((n >= 100000 && runs > RUNS_100K)) && runs=$RUNS_100K
        iptables_file "$n" "$T/ipt-$n.rules"
        record in_ns "$ns" "$BENCH" exec --runs "$runs" --figure commit_bulk --variant iptables-restore --n "$n" \
            --prepare "iptables -t nat -F PREROUTING" -- iptables-restore "$T/ipt-$n.rules"
        nft_file "$n" "$T/nft-$n.nft"
        record in_ns "$ns" "$BENCH" exec --runs "$runs" --figure commit_bulk --variant nft-f --n "$n" \
            --prepare "nft delete table ip nftbase 2>/dev/null; true" -- nft -f "$T/nft-$n.nft"
    done
    in_ns "$ns" nft flush ruleset
    local add="-t nat -A PREROUTING -d 203.0.113.99/32 -p tcp -m tcp --dport {i} -j DNAT --to-destination 192.168.150.10:80"
    for n in "${AT[@]}"; do
        # One rule more at N, as a new process each time. The rules stay (N
        # grows by one a run, N..N+runs-1: immaterial next to N and to
        # process start-up): removing one again costs each tool more than
        # adding it (iptables -D compares every rule), which would make the
        # run far longer without changing what is measured.
        iptables_file "$n" "$T/ipt-at-$n.rules"
        in_ns "$ns" iptables-restore "$T/ipt-at-$n.rules"
        # shellcheck disable=SC2086 # $add is a word list on purpose
        record in_ns "$ns" "$BENCH" exec --runs "$EXEC_ADDS" --first 20000 --figure add_one --variant iptables \
            --n "$n" -- iptables $add
        in_ns "$ns" iptables -t nat -F PREROUTING
        nft_file "$n" "$T/nft-at-$n.nft"
        in_ns "$ns" nft -f "$T/nft-at-$n.nft"
        record in_ns "$ns" "$BENCH" exec --runs "$EXEC_ADDS" --first 20000 --figure add_one --variant nft --n "$n" \
            -- nft add rule ip nftbase prerouting ip daddr 203.0.113.99 tcp dport "{i}" dnat to 192.168.150.10:80
        in_ns "$ns" nft delete table ip nftbase
    done
}

# ---------------------------------------------------------------- 2. datapath, no daemon

# iperf3 paths: "VARIANT SERVER-NS SERVER-ADDR CLIENT-NS CONNECT-ADDR CONNECT-PORT",
# filled in as their topologies are made; measured together, interleaved
# (run 1 of every path, then run 2, ...), so that load from elsewhere on the
# shared machine spreads over all paths instead of skewing one.
IPERF_PATHS=()

iperf_all() {
    section "datapath: iperf3, ${#IPERF_PATHS[@]} paths interleaved, $IPERF_RUNS runs of ${IPERF_SECONDS} s each"
    local path variant sns saddr cns caddr cport r streams
    local -a pids=()
    for path in "${IPERF_PATHS[@]}"; do
        read -r variant sns saddr cns caddr cport <<<"$path"
        spawn_in_ns "$sns" iperf3 -s -B "$saddr" -p 5201 >>"$T/iperf3-server.log" 2>&1
        pids+=("$SPAWNED_PID")
        track_pid "$SPAWNED_PID"
    done
    for path in "${IPERF_PATHS[@]}"; do
        read -r variant sns saddr cns caddr cport <<<"$path"
        retry 50 _listening "$sns" 5201 || fail "iperf3 server in $sns did not come up"
    done
    # datapath.csv keeps the round of every sample (scripts/bench-datapath-report.sh
    # divides paths measured in the same round) and the bits moved per
    # CPU-second of both iperf3 processes (less dependent on the CPU share
    # the run gets on a shared machine; as in scripts/bench-masq.sh).
    echo "round,streams,variant,gbps,gbps_per_cpu_s" >"$RESULTS/datapath.csv"
    echo "$IPERF_RUNS $IPERF_SECONDS" >"$RESULTS/datapath-runs.txt"
    # What was measured, for a later rendering: the commit (and whether the
    # tree had changes), the niceness the run had.
    {
        git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown
        if [[ -n $(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null) ]]; then echo dirty; else echo clean; fi
        nice
    } >"$RESULTS/datapath-commit.txt"
    cut -d' ' -f1-3 /proc/loadavg >"$RESULTS/datapath-load-start.txt"
    for ((r = 0; r < IPERF_RUNS; r++)); do
        for streams in 1 4; do
            for path in "${IPERF_PATHS[@]}"; do
                read -r variant sns saddr cns caddr cport <<<"$path"
                in_ns "$cns" iperf3 -c "$caddr" -p "$cport" -t "$IPERF_SECONDS" -O 1 -P "$streams" -J \
                    >"$T/iperf3.json" 2>&1 || fail "iperf3 $variant: $(tail -5 "$T/iperf3.json")"
                jq -r --arg v "$variant" --arg n "$streams" --arg r "$r" '.end as $e |
                    ($e.sum_received.bits_per_second / 1e9) as $g |
                    "\($r),\($n),\($v),\($g),\($g / (($e.cpu_utilization_percent.host_total +
                        $e.cpu_utilization_percent.remote_total) / 100))"' "$T/iperf3.json" >>"$RESULTS/datapath.csv"
                row throughput "$variant" "$streams" Gbit/s "$(tail -n 1 "$RESULTS/datapath.csv" | cut -d, -f4)"
            done
        done
    done
    cut -d' ' -f1-3 /proc/loadavg >"$RESULTS/datapath-load-end.txt"
    for path in "${pids[@]}"; do stop_pid "$path"; done
}

bench_throughput_plain() {
    section "datapath: a raw veth and a bridge for iperf3"
    local c=${PFX}rc s=${PFX}rs
    ns_create "$c"
    ns_create "$s"
    veth_pair "$c" eth0 "$s" eth0
    ip -n "$c" addr add 10.250.0.1/24 dev eth0
    ip -n "$s" addr add 10.250.0.2/24 dev eth0
    IPERF_PATHS+=("raw-veth $s 10.250.0.2 $c 10.250.0.2 5201")

    local bc=${PFX}bc bb=${PFX}bb bs=${PFX}bs
    ns_create "$bc"
    ns_create "$bb"
    ns_create "$bs"
    ip -n "$bb" link add br0 type bridge
    veth_pair "$bc" eth0 "$bb" pc
    veth_pair "$bs" eth0 "$bb" ps
    ip -n "$bb" link set pc master br0
    ip -n "$bb" link set ps master br0
    ip -n "$bb" link set br0 up
    ip -n "$bc" addr add 10.251.0.1/24 dev eth0
    ip -n "$bs" addr add 10.251.0.2/24 dev eth0
    IPERF_PATHS+=("bridge $bs 10.251.0.2 $bc 10.251.0.2 5201")
}

# The router of the baselines (lib.sh's plain_router: a kvmnet NAT host
# without kvmnetd) in PI, PH, PG.
baseline_router() {
    PI=${PFX}pi PH=${PFX}ph PG=${PFX}pg
    plain_router "$PI" "$PH" "$PG"
}

# The connection-rate baselines' router, an accept loop on the guest.
bench_router() {
    baseline_router
    spawn_in_ns "$PG" "$BENCH" serve --port 8080 >>"$T/serve.log" 2>&1
    track_pid "$SPAWNED_PID"
    retry 50 _listening "$PG" 8080 || fail "accept loop in $PG did not come up"
}

# connrate VARIANT N CLIENT-NS ADDR:PORT: one run of $CONNS connections.
# Callers loop over the runs outermost, so the variants interleave.
connrate() {
    record in_ns "$3" "$BENCH" connrate --to "$4" --count "$CONNS" --runs 1 --variant "$1" --n "$2"
}

# plain_rules VARIANT N: the router's nat rules for one baseline, replacing
# whatever was there.
plain_rules() {
    local variant=$1 n=$2
    in_ns "$PH" nft flush ruleset
    case $variant in
    iptables-nft)
        iptables_file "$n" "$T/ipt-conn-$n.rules" \
            "-A PREROUTING -d 203.0.113.1/32 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 192.168.170.10:8080"
        in_ns "$PH" iptables-restore "$T/ipt-conn-$n.rules"
        ;;
    nft-rules)
        nft_file "$n" "$T/nft-conn-$n.nft" "ip daddr 203.0.113.1 tcp dport 8080 dnat to 192.168.170.10:8080"
        in_ns "$PH" nft -f "$T/nft-conn-$n.nft"
        ;;
    kvmnet-nodaemon)
        in_ns "$PH" "$BENCH" nft-dnat --forwards "$n" --host-address 203.0.113.1 --port 8080 --bridge br0 \
            --subnet-prefix 192.168.170 --guest 192.168.170.10 --guest-port 8080 2>/dev/null
        ;;
    esac
}

bench_connrate_plain() {
    section "datapath: new connections per second, baselines (iptables-nft, nft rules, kvmnet ruleset without the daemon), $RUNS runs interleaved"
    bench_router
    local r n variant
    for ((r = 0; r < RUNS; r++)); do
        for n in 1 10000; do
            for variant in iptables-nft nft-rules kvmnet-nodaemon; do
                plain_rules "$variant" "$n"
                connrate "$variant" "$n" "$PI" 203.0.113.1:8080
            done
        done
    done
    in_ns "$PH" nft flush ruleset
    routed_paths
    for ((r = 0; r < RUNS; r++)); do connrate routed-no-nat 0 "$PI" 192.168.170.10:8080; done
}

# routed_paths: the router of bench_router without any ruleset, the guest
# reached directly (no NAT): the ceiling of these hops, for iperf3 (two
# veths, a bridge, routing; no conntrack) in both directions: routed-no-nat
# from the "internet" to the guest (a forward's direction), routed-upload
# from the guest to the "internet" (masquerade's).
routed_paths() {
    ip -n "$PI" route add 192.168.170.0/24 via 203.0.113.1
    IPERF_PATHS+=("routed-no-nat $PG 192.168.170.10 $PI 192.168.170.10 5201")
    IPERF_PATHS+=("routed-upload $PI 203.0.113.2 $PG 203.0.113.2 5201")
}

# ---------------------------------------------------------------- 3./4. the daemon

daemon_rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$DAEMON_PID/status"; }
# rss_samples VARIANT N: three samples, a second apart, in MB.
rss_samples() {
    local i kb
    for i in 1 2 3; do
        sleep 1
        kb=$(daemon_rss_kb)
        row rss "$1" "$2" MB "$(awk -v kb="$kb" 'BEGIN { printf "%.2f", kb / 1024 }')"
    done
}

net_doc() { # NAME BRIDGE PREFIX(a.b.c) [PORTS-JSON]
    printf '{"name":"%s","mode":"nat","bridge":"%s","ipv4":{"address":"%s.1/24","dhcp":{"ranges":["%s.220-%s.250"]}},"ports":%s}\n' \
        "$1" "$2" "$3" "$3" "$3" "${4:-[]}"
}

# How this kvmnetd takes forwards: "cli" (kvmnetctl forward add, AddForwards
# over D-Bus), "document" (only in the network document at create time), or
# "none"; FORWARDS_WHY says why a figure that needs forwards is missing.
FWD_MODE=none
FORWARDS_WHY="kvmnetd on this commit has no port forwards"

probe_forwards() {
    local one='{"proto":"tcp","host_address":"203.0.113.1","host_port":1,"guest":"192.168.190.10","guest_port":1}'
    net_doc probe kvmbprobe 192.168.190 | jq -c --argjson f "$one" '.forwards = [$f]' >"$T/probe.json"
    if ctl create probe --file "$T/probe.json" >"$T/probe.log" 2>&1; then
        FWD_MODE=document
        ctl delete probe >/dev/null
    else
        FORWARDS_WHY="kvmnetd on this commit has no port forwards ($(head -c 200 "$T/probe.log"))"
    fi
    net_doc probe kvmbprobe 192.168.190 >"$T/probe.json"
    ctl create probe --file "$T/probe.json" >/dev/null
    if ctl forward add probe --proto tcp --host-port 1 --guest 192.168.190.10 --guest-port 1 >"$T/probe.log" 2>&1; then
        FWD_MODE=cli
    elif [[ $FWD_MODE == document ]]; then
        FORWARDS_WHY="kvmnetd on this commit takes forwards only in the network document, not through AddForwards / kvmnetctl forward add ($(head -c 200 "$T/probe.log"))"
    fi
    ctl delete probe >/dev/null
    log "forwards: $FWD_MODE"
}

# dp_network N HOST-PORT GUEST-PORT: (re)creates and starts network dp with
# N forwards, the one to G1 (203.0.113.1:HOST-PORT -> 192.168.160.10:GUEST-PORT)
# last: through kvmnetctl forward add where the daemon has it, else in the
# document. N=0: none.
dp_network() {
    local n=$1 used
    used=$(printf '{"proto":"tcp","host_address":"203.0.113.1","host_port":%s,"guest":"192.168.160.10","guest_port":%s}' "$2" "$3")
    ctl delete dp >/dev/null 2>&1 || true
    net_doc dp kvmbdp 192.168.160 '[{"name":"vg1"}]' >"$T/dp.json"
    # The others on host address 203.0.113.13, guests in dp's subnet.
    if ((n > 1)); then gen_forwards $((n - 1)) json 13 192.168.160 >"$T/dp-others.json"; else echo "[]" >"$T/dp-others.json"; fi
    if [[ $FWD_MODE == document ]] && ((n > 0)); then
        jq -c --slurpfile o "$T/dp-others.json" --argjson u "$used" '.forwards = $o[0] + [$u]' "$T/dp.json" >"$T/dp-f.json"
        ctl create dp --file "$T/dp-f.json" >/dev/null
        ctl start dp >/dev/null
    else
        ctl create dp --file "$T/dp.json" >/dev/null
        ctl start dp >/dev/null
        if ((n > 1)); then ctl forward add dp --file "$T/dp-others.json" >/dev/null; fi
        if ((n > 0)); then echo "$used" >"$T/dp-used.json" && ctl forward add dp --file "$T/dp-used.json" >/dev/null; fi
    fi
}

bench_daemon() {
    section "daemon: start, memory with 10 networks"
    nat_topology # H (daemon), G1, I; H:uplink0 203.0.113.1/24
    local a
    for a in 11 12 13; do ip -n "$H" addr add "203.0.113.$a/24" dev uplink0; done
    bus_start
    daemon_start --log-level warning
    rss_samples idle-no-networks 0

    local k
    for k in $(seq 1 10); do
        net_doc "m$k" "kvmbm$k" "10.77.$k" >"$T/m$k.json"
        ctl create "m$k" --file "$T/m$k.json" >/dev/null
        ctl start "m$k" >/dev/null
    done
    rss_samples idle-10-networks 10
    for k in $(seq 1 10); do ctl delete "m$k" >/dev/null; done

    # The floor of any kvmnetctl call: process start-up and one D-Bus round trip.
    in_ns "$H" hyperfine -N --style basic --runs "$CLI_RUNS" --warmup 3 --export-json "$T/hyperfine.json" \
        "$KVMNETCTL list" >>"$T/hyperfine.log" 2>&1 || fail "hyperfine: $(tail -5 "$T/hyperfine.log")"
    jq -r '.results[0].times[] | "cli,kvmnetctl-list,0,ms,\(. * 1000)"' "$T/hyperfine.json" >>"$RAW"

    # Finding the namespace's listening sockets (see the report's "Where the time goes").
    record in_ns "$H" "$BENCH" listener-scan --runs 50

    probe_forwards
    echo "$FWD_MODE" >"$RESULTS/forward-mode.txt"

    nat_paths
    iperf_all

    if [[ $FWD_MODE != none ]]; then
        spawn_in_ns "$G1" "$BENCH" serve --port 8080 >>"$T/serve.log" 2>&1
        track_pid "$SPAWNED_PID"
        retry 50 _listening "$G1" 8080 || fail "accept loop in $G1 did not come up"
        local r
        for ((r = 0; r < RUNS; r++)); do
            dp_network 1 8080 8080
            connrate kvmnet 1 "$I" 203.0.113.1:8080
            dp_network 10000 8080 8080
            connrate kvmnet 10000 "$I" 203.0.113.1:8080
        done
        section "memory with 10,000 forwards"
        rss_samples with-10k-forwards 10000
        [[ $FWD_MODE == cli ]] || not_measured "forwards added one request at a time" "$FORWARDS_WHY; the datapath figures used forwards from the network document (the one in use last in its array)"
    else
        not_measured "throughput nat-forward" "$FORWARDS_WHY"
        not_measured "connrate kvmnet (1 and 10,000 forwards)" "$FORWARDS_WHY"
        not_measured "rss with 10,000 forwards" "$FORWARDS_WHY"
    fi
    ctl delete dp >/dev/null

    bench_daemon_forwards
    bench_firewalld
    bench_start_stop
}

# nat_paths: network dp of the running kvmnetd with guest G1 on it, and
# the iperf3 paths through its NAT: nat-masquerade (G1 to the "internet"),
# nat-forward (the "internet" to G1 through port forward 5201, when this
# kvmnetd has forwards; FWD_MODE from probe_forwards).
nat_paths() {
    section "daemon: NAT datapath (forwards: $FWD_MODE)"
    dp_network 0 0 0
    ip -n "$G1" addr add 192.168.160.10/24 dev eth0
    ip -n "$G1" route add default via 192.168.160.1
    retry 25 pings "$G1" 203.0.113.2 || fail "guest cannot reach the internet namespace through kvmnet's NAT"
    IPERF_PATHS+=("nat-masquerade $I 203.0.113.2 $G1 203.0.113.2 5201")
    if [[ $FWD_MODE != none ]]; then
        dp_network 1 5201 5201
        IPERF_PATHS+=("nat-forward $G1 192.168.160.10 $I 203.0.113.1 5201")
    fi
}

bench_daemon_forwards() {
    net_doc fwbench kvmbfw 192.168.150 >"$T/fwbench.json"
    if [[ $FWD_MODE != cli ]]; then
        not_measured "commit_bulk/add_one kvmnet-dbus (AddForwards)" "$FORWARDS_WHY"
        not_measured "kvmnetctl forward add" "$FORWARDS_WHY"
        return 0
    fi
    section "control plane: AddForwards through D-Bus"
    record "$BENCH" dbus-forwards --document "$T/fwbench.json" --bulk "$(join "${SIZES[@]}")" --bulk-runs "$RUNS" \
        --max-runs-100k "$RUNS_100K" --at "$(join "${AT[@]}")" --adds "$ADDS"

    section "end to end: kvmnetctl forward add (hyperfine)"
    ctl create fwbench --file "$T/fwbench.json" >/dev/null
    ctl start fwbench >/dev/null
    local add="$KVMNETCTL forward add fwbench --proto tcp --host-address 203.0.113.12 --host-port 9000 --guest 192.168.150.10 --guest-port 80"
    local remove="sh -c '$KVMNETCTL forward remove fwbench tcp 203.0.113.12:9000 >/dev/null 2>&1 || true'"
    local n
    for n in 0 10000; do
        if ((n > 0)); then
            gen_forwards "$n" json >"$T/fw-$n.json"
            ctl forward add fwbench --file "$T/fw-$n.json" >/dev/null
        fi
        in_ns "$H" hyperfine -N --style basic --runs "$CLI_RUNS" --warmup 3 --prepare "$remove" \
            --export-json "$T/hyperfine.json" "$add" >>"$T/hyperfine.log" 2>&1 ||
            fail "hyperfine: $(tail -5 "$T/hyperfine.log")"
        jq -r --arg n "$n" '.results[0].times[] | "cli,kvmnetctl-forward-add,\($n),ms,\(. * 1000)"' \
            "$T/hyperfine.json" >>"$RAW"
    done
    ctl delete fwbench >/dev/null
}

# The firewalld baseline of `kvmnetctl forward add`: firewalld unpacked by
# bench-deps.sh (never installed), run in a namespace of its own on the
# run's private bus, with a copy of its configuration under $T.
bench_firewalld() {
    local root=$ROOT/build/bench-tools/firewalld/root
    if [[ ! -x $root/usr/sbin/firewalld ]]; then
        not_measured "firewall-cmd --add-forward-port" "firewalld could not be fetched (scripts/bench-deps.sh); the issue's figure is quoted instead"
        return 0
    fi
    section "end to end baseline: firewall-cmd --add-forward-port (firewalld in its own namespace)"
    local ns=${PFX}fw pid i
    ns_create "$ns"
    cp -a "$root/etc/firewalld" "$T/firewalld-etc"
    export PYTHONPATH=$root/usr/lib/python3/dist-packages
    spawn_in_ns "$ns" "$root/usr/sbin/firewalld" --nofork --nopid --default-config "$root/usr/lib/firewalld" \
        --system-config "$T/firewalld-etc" --log-target file --log-file "$T/firewalld.log" >"$T/firewalld.out" 2>&1
    pid=$SPAWNED_PID
    track_pid "$pid"
    for ((i = 0; i < 100; i++)); do
        in_ns "$ns" "$root/usr/bin/firewall-cmd" --state >/dev/null 2>&1 && break
        _pid_alive "$pid" || break
        sleep 0.2
    done
    if ((i == 100)) || ! _pid_alive "$pid"; then
        not_measured "firewall-cmd --add-forward-port" "firewalld did not come up: $(tail -c 300 "$T/firewalld.out" "$T/firewalld.log" 2>/dev/null | tr '\n' ' ')"
        stop_pid "$pid"
        unset PYTHONPATH
        return 0
    fi
    local spec="proto=tcp:toport=80:toaddr=192.168.150.10"
    record in_ns "$ns" "$BENCH" exec --runs "$FW_RUNS" --first 8000 --figure cli --variant firewall-cmd --n 0 \
        --cleanup "$root/usr/bin/firewall-cmd --remove-forward-port=port={i}:$spec" \
        -- "$root/usr/bin/firewall-cmd" "--add-forward-port=port={i}:$spec"
    stop_pid "$pid"
    unset PYTHONPATH
}

# start_stop_run GUEST-NS VARIANT: one start, a DHCP lease in the guest, one stop.
start_stop_run() {
    local g=$1 t0 t1 t2 t3 t4
    ip -n "$g" addr flush dev eth0
    t0=$EPOCHREALTIME
    ctl start st >/dev/null
    t1=$EPOCHREALTIME
    in_ns "$g" busybox udhcpc -i eth0 -n -q -t 20 -T 1 -s "$ROOT/tests/e2e/udhcpc.script" \
        >"$T/udhcpc-st.log" 2>&1 || fail "no DHCP lease after start: $(cat "$T/udhcpc-st.log")"
    t2=$EPOCHREALTIME
    row netstart kvmnetctl-start 0 ms "$(ms_between "$t0" "$t1")"
    row netstart "start-until-lease-$2" 0 ms "$(ms_between "$t0" "$t2")"
    t3=$EPOCHREALTIME
    ctl stop st >/dev/null
    t4=$EPOCHREALTIME
    row netstop kvmnetctl-stop 0 ms "$(ms_between "$t3" "$t4")"
}

bench_start_stop() {
    section "end to end: network start (until a DHCP lease) and stop"
    # G2 has a static DHCP host entry (dnsmasq answers at once); G3 gets a
    # dynamic address, for which dnsmasq first pings the address (and waits
    # for no answer) before it offers it.
    guest_add 2
    guest_add 3
    local mac
    mac=$(ip -n "$G2" -j link show dev eth0 | jq -r '.[0].address')
    printf '{"name":"st","mode":"nat","bridge":"kvmbst","ipv4":{"address":"192.168.180.1/24","dhcp":{"ranges":["192.168.180.100-192.168.180.150"],"hosts":[{"mac":"%s","ip":"192.168.180.20","name":"g2"}]}},"ports":[{"name":"vg2"},{"name":"vg3"}]}\n' \
        "$mac" >"$T/st.json"
    ctl create st --file "$T/st.json" >/dev/null
    local r
    for ((r = 0; r < START_RUNS; r++)); do start_stop_run "$G2" static-host; done
    for ((r = 0; r < 3; r++)); do start_stop_run "$G3" dynamic; done
    ctl delete st >/dev/null
}

bench_in_process() {
    section "control plane: core::Manager in-process"
    local ns=${PFX}mgr rc=0
    ns_create "$ns"
    mkdir -p "$T/mgr"
    in_ns "$ns" "$BENCH" daemon-forwards --state-dir "$T/mgr/state" --runtime-dir "$T/mgr/run" \
        --sizes "$(join "${SIZES[@]}")" --at "$(join "${AT[@]}")" --runs "$RUNS" --max-runs-100k "$RUNS_100K" \
        --adds "$ADDS" >>"$RAW" 2>"$T/mgr.log" || rc=$?
    if ((rc != 0)); then
        fail "kvmnet-bench daemon-forwards failed: $(tail -5 "$T/mgr.log")"
    fi
}

# ---------------------------------------------------------------- run

if ((DATAPATH_ONLY)); then
    echo "bench.sh: datapath throughput only ($IPERF_RUNS runs of $IPERF_SECONDS s per path and stream count)" >&2
    bench_throughput_plain
    baseline_router
    routed_paths
    nat_topology
    bus_start
    daemon_start --log-level warning
    probe_forwards
    nat_paths
    [[ $FWD_MODE != none ]] || not_measured "throughput nat-forward" "$FORWARDS_WHY"
    iperf_all
    ctl delete dp >/dev/null
    daemon_stop
    echo "$(($(date +%s) - STARTED))" >"$RESULTS/duration.txt"
    bash "$ROOT/scripts/bench-datapath-report.sh" "$RESULTS" >"$RESULTS/datapath.md"
    if ((WRITE_DOC)); then
        put_section datapath "$RESULTS/datapath.md"
        log "replaced the datapath section of docs/performance.md"
    fi
    log "results in $RESULTS ($(($(date +%s) - STARTED)) s)"
    exit 0
fi

bench_adapter
bench_in_process
bench_rule_baselines
bench_throughput_plain
bench_connrate_plain
bench_daemon
daemon_stop
section "D-Bus load (tests/e2e/test_load.sh)"
bench_dbus_load || fail "the D-Bus load test failed (see $RESULTS/dbus-load.log)"
section "repair time (scripts/bench-repair.sh, against c344358)"
bash "$ROOT/scripts/bench-repair.sh" "$RESULTS" c344358 "$( ((QUICK)) && echo 3 || echo 20)" >/dev/null ||
    fail "scripts/bench-repair.sh failed"

section "network start and stop against libvirt (scripts/bench-peers.sh)"
bash "$ROOT/scripts/bench-peers.sh" "$RESULTS" "$PEER_RUNS" >/dev/null || fail "scripts/bench-peers.sh failed"

section "datapath: where masquerade's cost goes (scripts/bench-masq.sh)"
KVMNET_BENCH=$BENCH bash "$ROOT/scripts/bench-masq.sh" "$RESULTS" "${MASQ_ARGS[@]}" >/dev/null ||
    fail "scripts/bench-masq.sh failed"
tail -n +2 "$RESULTS/masq.csv" >>"$RAW"

section "summary"
cut -d' ' -f1-3 /proc/loadavg >"$RESULTS/load-end.txt"
echo "$(($(date +%s) - STARTED))" >"$RESULTS/duration.txt"
"$BENCH" summarize <"$RAW" >"$RESULTS/summary.csv"
bash "$ROOT/scripts/bench-report.sh" "$RESULTS" "$((QUICK))"
if ((WRITE_DOC)); then
    # Sections this run does not render (other scripts', hand-written ones)
    # are kept from the current document.
    python3 "$ROOT/scripts/doc-section.py" --carry "$ROOT/docs/performance.md" "$RESULTS/performance.md"
    cp "$RESULTS/performance.md" "$ROOT/docs/performance.md"
    cp "$RESULTS/performance.png" "$ROOT/docs/performance.png"
    log "wrote docs/performance.md and docs/performance.png"
fi
log "results in $RESULTS ($(($(date +%s) - STARTED)) s)"
