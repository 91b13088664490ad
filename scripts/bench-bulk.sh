#!/usr/bin/env bash
# Bulk forwards and flat adds (issue 17, items 1 and 2), in one run:
#   1. the floor: kvmnet's nftables adapter committing the forwards' map
#      elements in one batch (`kvmnet-bench nft-elements`, no daemon);
#   2. where the time of one AddForwards goes: core::Manager in-process with
#      the real adapters, the forwards as the JSON text the bus delivers,
#      each phase timed (`kvmnet-bench bulk-breakdown`, core/phases.hpp);
#      one add and one remove at 0 and at N existing;
#   3. the same through D-Bus: kvmnetd on a private bus, `AddForwards` of N
#      (JSON), `AddForwardsTyped` (structs) and `AddForwardsFromFd` (records
#      in a sealed memfd), alternating, the last two split in parts; one add
#      and one remove at 0 and at N existing (`kvmnet-bench dbus-forwards`);
#   4. the peers: iptables-restore and nft -f of the same forwards as one
#      DNAT rule each (as scripts/bench.sh does).
# Results go to RESULTS (raw.csv,
# summary.csv, bulk.md); the section between the "bulk:" markers of
# docs/performance.md is replaced unless --no-doc.
#
# Usage: sudo nice -n 19 scripts/bench-bulk.sh [--results DIR] [--sizes 10000,100000]
#            [--runs N] [--adds N] [--no-doc]
# About 3 minutes on 2 shared cores.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
RESULTS=""
SIZES=10000,100000
RUNS=3
ADDS=100
WRITE_DOC=1
while (($# > 0)); do
    case $1 in
    --results)
        RESULTS=${2:?--results needs a directory}
        shift
        ;;
    --sizes)
        SIZES=${2:?--sizes needs a list}
        shift
        ;;
    --runs)
        RUNS=${2:?--runs needs a number}
        shift
        ;;
    --adds)
        ADDS=${2:?--adds needs a number}
        shift
        ;;
    --no-doc) WRITE_DOC=0 ;;
    -h | --help)
        sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "bench-bulk.sh: unknown option '$1' (see --help)" >&2
        exit 2
        ;;
    esac
    shift
done
if ((EUID != 0)); then
    echo "bench-bulk.sh: needs root (it creates network namespaces)" >&2
    exit 1
fi
LARGEST=${SIZES##*,}

RESULTS=${RESULTS:-$ROOT/bench-results/bulk-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$RESULTS"
RESULTS=$(cd "$RESULTS" && pwd)

[[ -f build/build.ninja ]] || meson setup build
ninja -C build -j2 daemon/kvmnetd client/kvmnetctl tests/bench/kvmnet-bench
COMMIT=$(git -C "$ROOT" rev-parse --short HEAD)
if [[ -n $(git -C "$ROOT" status --porcelain -- daemon) ]]; then COMMIT="$COMMIT+changes"; fi

export SRCDIR=$ROOT KVMNETCTL=$ROOT/build/client/kvmnetctl KVMNETD=$ROOT/build/daemon/kvmnetd
BENCH=$ROOT/build/tests/bench/kvmnet-bench
RAW=$RESULTS/raw.csv
echo "figure,variant,n,unit,value" >"$RAW"
cut -d' ' -f1-3 /proc/loadavg >"$RESULTS/load-start.txt"
STARTED=$(date +%s)

export KVMNET_LIB_MODE=demo
# shellcheck source=../tests/e2e/lib.sh
source "$ROOT/tests/e2e/lib.sh"
PFX=kvmk$$-
iptables-restore() { _guard_refuse iptables-restore "$@"; }
record() { "$@" >>"$RAW"; }

# The i-th synthetic forward as kvmnet-bench's forward_spec, as iptables-restore or nft lines.
gen_rules() {
    awk -v n="$1" -v fmt="$2" 'BEGIN {
        for (i = 0; i < n; i++) {
            a = "203.0.113." (11 + int(i / 50000)); p = 10000 + i % 50000; g = "192.168.150." (10 + i % 200)
            if (fmt == "iptables")
                printf "-A PREROUTING -d %s/32 -p tcp -m tcp --dport %d -j DNAT --to-destination %s:80\n", a, p, g
            else
                printf "ip daddr %s tcp dport %d dnat to %s:80\n", a, p, g
        }
    }'
}

# 1. The floor and the peers, each in a namespace of its own.
ADAPTER=${PFX}nft PEERS=${PFX}ipt
ns_create "$ADAPTER"
ns_create "$PEERS"
echo "bench-bulk.sh: the adapter's kernel commit" >&2
record in_ns "$ADAPTER" "$BENCH" nft-elements --sizes "$SIZES" --at "0,$LARGEST" --runs "$RUNS" --adds "$ADDS"
echo "bench-bulk.sh: iptables-restore and nft -f" >&2
for n in ${SIZES//,/ }; do
    { echo "*nat" && echo ":PREROUTING ACCEPT [0:0]" && gen_rules "$n" iptables && echo "COMMIT"; } >"$T/ipt-$n.rules"
    record in_ns "$PEERS" "$BENCH" exec --runs "$RUNS" --figure commit_bulk --variant iptables-restore --n "$n" \
        --prepare "iptables -t nat -F PREROUTING" -- iptables-restore "$T/ipt-$n.rules"
    {
        echo "table ip nftbase {" && echo "  chain prerouting {"
        echo "    type nat hook prerouting priority dstnat; policy accept;"
        gen_rules "$n" nft && echo "  }" && echo "}"
    } >"$T/nft-$n.nft"
    record in_ns "$PEERS" "$BENCH" exec --runs "$RUNS" --figure commit_bulk --variant nft-f --n "$n" \
        --prepare "nft delete table ip nftbase 2>/dev/null; true" -- nft -f "$T/nft-$n.nft"
done

# 2. In-process, with the phases.
echo "bench-bulk.sh: in-process breakdown" >&2
ns_create "${PFX}mgr"
mkdir -p "$T/mgr"
record in_ns "${PFX}mgr" "$BENCH" bulk-breakdown --state-dir "$T/mgr/state" --runtime-dir "$T/mgr/run" \
    --sizes "$SIZES" --at "0,$LARGEST" --runs "$RUNS" --adds "$ADDS" --variant daemon 2>>"$T/mgr.log"

# 3. Through D-Bus: lib.sh's host namespace, bus and daemon.
echo "bench-bulk.sh: AddForwards through D-Bus" >&2
nat_topology
bus_start
# The daemon's phase marks (bench only), which split the typed call's time on the bus.
KVMNET_PHASES=$T/phases daemon_start --log-level warning
printf '{"name":"fwbench","mode":"nat","bridge":"kvmbfw","ipv4":{"address":"192.168.150.1/24","dhcp":{"ranges":["192.168.150.220-192.168.150.250"]}}}\n' >"$T/fwbench.json"
"$BENCH" dbus-forwards --document "$T/fwbench.json" --bulk "$SIZES" --bulk-runs "$RUNS" --max-runs-100k "$RUNS" \
    --at "0,$LARGEST" --adds "$ADDS" --phases "$T/phases" --bus-pid "$BUS_PID" --daemon-pid "$DAEMON_PID" |
    sed "s/,kvmnet-dbus,/,dbus,/; s/,kvmnet-dbus-typed,/,dbus-typed,/; s/,kvmnet-dbus-fd,/,dbus-fd,/" >>"$RAW"
daemon_stop
"$BENCH" summarize <"$RAW" >"$RESULTS/summary.csv"
cut -d' ' -f1-3 /proc/loadavg >"$RESULTS/load-end.txt"

# ---------------------------------------------------------------- report
med() { # FIGURE VARIANT N [COLUMN]: the figure's median (or another column of summary.csv)
    awk -F, -v f="$1" -v v="$2" -v n="$3" -v c="${4:-median}" 'NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
        $1 == f && $2 == v && $3 == n { x = $col[c]; printf (x >= 100 ? "%.0f" : x >= 10 ? "%.1f" : x >= 1 ? "%.2f" : "%.3f"), x }' \
        "$RESULTS/summary.csv"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a != "" && b > 0) printf "×%.2f", a / b; else print "–" }'; }
phases() { # N VARIANT...: the phases measured, in the order of the first run
    awk -F, -v n="$1" -v vs="${*:2}" 'BEGIN { split(vs, a, " "); for (i in a) want[a[i]] = 1 }
        want[$2] && $3 == n && $1 ~ /^phase:/ && !seen[$1]++ { print substr($1, 7) }' "$RAW"
}
minus() { awk -v a="$1" -v b="$2" 'BEGIN { if (a != "" && b != "") printf "%.1f", a - b }'; }
# table TITLE SUFFIXES CELLS ROW...: a Markdown table of one row per ROW and,
# per size, one column per word of SUFFIXES ("JSON typed"; "" for one
# column); `CELLS ROW N` prints that row's cells at size N, each ending " |".
table() {
    local title=$1 cells=$3 n s row line rule="|---|"
    local -a suffixes
    read -ra suffixes <<<"$2"
    ((${#suffixes[@]})) || suffixes=("")
    line="| $title |"
    for n in ${SIZES//,/ }; do
        for s in "${suffixes[@]}"; do
            line="$line $n${s:+ $s} |"
            rule="$rule---|"
        done
    done
    echo "$line"
    echo "$rule"
    shift 3
    for row in "$@"; do
        line="| $row |"
        for n in ${SIZES//,/ }; do line="$line $("$cells" "$row" "$n")"; done
        echo "$line"
    done
}
# phase_cells ROW N: the in-process phase ROW (or a total) at size N, JSON and typed.
phase_cells() {
    case $1 in
    "*in the daemon, in all*") echo "$(med commit_bulk daemon "$2") | $(med commit_bulk daemon-typed "$2") |" ;;
    "the bus (D-Bus − in the daemon)")
        echo "$(minus "$(med commit_bulk dbus "$2")" "$(med commit_bulk daemon "$2")") |" \
            "$(minus "$(med commit_bulk dbus-typed "$2")" "$(med commit_bulk daemon-typed "$2")") |"
        ;;
    "*through D-Bus, in all*") echo "$(med commit_bulk dbus "$2") | $(med commit_bulk dbus-typed "$2") |" ;;
    *) echo "$(med "phase:$1" daemon "$2") | $(med "phase:$1" daemon-typed "$2") |" ;;
    esac
}
# bus_cells ROW N: the part ROW of one call through D-Bus at size N (kvmnetd's:
# wall / CPU), or the whole call; the call is BUS_VARIANT's (dbus-typed:
# AddForwardsTyped, dbus-fd: AddForwardsFromFd).
BUS_VARIANT=dbus-typed
bus_cells() {
    local cell
    case $1 in
    "*through D-Bus, in all*") cell=$(med commit_bulk "$BUS_VARIANT" "$2") ;;
    "kvmnetd: "*) cell="$(med "bus:$1" "$BUS_VARIANT" "$2") / $(med "bus:kvmnetd CPU: ${1#kvmnetd: }" "$BUS_VARIANT" "$2")" ;;
    *) cell=$(med "bus:$1" "$BUS_VARIANT" "$2") ;;
    esac
    echo "$cell |"
}
# What the load average at the start says about the figures: above 2.5 (on
# 2 cores) other work shared the CPUs, so absolute times are upper bounds.
load_words() {
    local one
    read -r one _ <"$1"
    if awk -v l="$one" 'BEGIN { exit !(l > 2.5) }'; then
        echo "other work shared the CPUs: absolute times are upper bounds, the same-run ratios are what to read"
    else
        echo "an idle machine otherwise"
    fi
}
{
    echo "<!-- bulk: rendered by scripts/bench-bulk.sh; it replaces this section -->"
    echo "### Bulk forwards and flat adds, after (issue 17)"
    echo
    echo "Measured by \`scripts/bench-bulk.sh\` on $(date -u +%Y-%m-%d), $COMMIT, in one run on"
    echo "$(nproc) shared cores, at nice $(nice) (load average $(cat "$RESULTS/load-start.txt") at the start,"
    echo "$(cat "$RESULTS/load-end.txt") at the end; $(load_words "$RESULTS/load-start.txt")). Medians of $RUNS runs; adds and"
    echo "removes $ADDS samples each. The forwards are those of \`scripts/bench.sh\`."
    echo
    echo "JSON: \`AddForwards\` (the forwards as JSON text); typed: \`AddForwardsTyped\` (as structs,"
    echo "\`a(ssqqsqsu)\`); fd: \`AddForwardsFromFd\` (as records in a sealed memfd, one \`h\` on the bus);"
    echo "their runs alternating. The peers are compared with the fd form."
    echo
    echo "| N | floor (adapter) | in the daemon, JSON / typed | D-Bus, JSON / typed / fd | D-Bus ÷ floor, JSON / typed / fd | iptables-restore | nft -f | iptables-restore ÷ D-Bus fd | nft -f ÷ D-Bus fd |"
    echo "|---|---|---|---|---|---|---|---|---|"
    for n in ${SIZES//,/ }; do
        floor=$(med commit_bulk kvmnet-adapter "$n")
        dbus=$(med commit_bulk dbus "$n")
        typed=$(med commit_bulk dbus-typed "$n")
        fd=$(med commit_bulk dbus-fd "$n")
        ipt=$(med commit_bulk iptables-restore "$n")
        nftf=$(med commit_bulk nft-f "$n")
        echo "| $n | $floor | $(med commit_bulk daemon "$n") / $(med commit_bulk daemon-typed "$n") | $dbus / $typed / $fd |" \
            "$(ratio "$dbus" "$floor") / $(ratio "$typed" "$floor") / $(ratio "$fd" "$floor") | $ipt | $nftf | $(ratio "$ipt" "$fd") | $(ratio "$nftf" "$fd") |"
    done
    echo
    echo "Where the time goes (ms, medians; in the daemon, in-process):"
    echo
    mapfile -t names < <(phases "$LARGEST" daemon daemon-typed)
    table Phase "JSON typed" phase_cells "${names[@]}" "*in the daemon, in all*" "the bus (D-Bus − in the daemon)" \
        "*through D-Bus, in all*"
    echo
    split_table() { # VARIANT METHOD: one call of METHOD through D-Bus, in parts
        echo "One \`$2\` through D-Bus, split (ms, medians; \`kvmnet-bench dbus-forwards --phases\`:"
        echo "the client's own times and kvmnetd's phase marks on the same clock; \"kvmnetd:\" rows are wall / CPU"
        echo "of kvmnetd's loop thread; the wall times without \"CPU\" add up to the call, except the client's"
        echo "write, which is within the way to the method):"
        echo
        BUS_VARIANT=$1
        mapfile -t names < <(awk -F, -v n="$LARGEST" -v v="$1" '$2 == v && $3 == n && $1 ~ /^bus:/ && $1 !~ /^bus:kvmnetd CPU: / && !seen[$1]++ { print substr($1, 5) }' "$RAW")
        table Part "" bus_cells "${names[@]}" "*through D-Bus, in all*"
        echo
    }
    split_table dbus-typed AddForwardsTyped
    split_table dbus-fd AddForwardsFromFd
    echo "One add and one remove at N existing (ms, p50 / p99):"
    echo
    echo "| | at 0 | at $LARGEST | $LARGEST ÷ 0 (p50) |"
    echo "|---|---|---|---|"
    for row in "add_one kvmnet-adapter adapter, one element" "add_one daemon add, in the daemon" \
        "remove_one daemon remove, in the daemon" "add_one dbus add, D-Bus" "remove_one dbus remove, D-Bus"; do
        read -r fig var what <<<"$row"
        a=$(med "$fig" "$var" 0)
        b=$(med "$fig" "$var" "$LARGEST")
        [[ -n $a ]] || continue
        echo "| $what | $a / $(med "$fig" "$var" 0 p99) | $b / $(med "$fig" "$var" "$LARGEST" p99) | $(ratio "$b" "$a") |"
    done
    echo
    echo "<!-- /bulk -->"
} >"$RESULTS/bulk.md"
if ((WRITE_DOC)); then
    python3 "$ROOT/scripts/doc-section.py" bulk "$ROOT/docs/performance.md" "$RESULTS/bulk.md"
fi
cat "$RESULTS/bulk.md"
echo "bench-bulk.sh: results in $RESULTS ($(($(date +%s) - STARTED)) s)" >&2
