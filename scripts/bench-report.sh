#!/usr/bin/env bash
# Renders a scripts/bench.sh run: reads RESULTS/summary.csv and
# RESULTS/not-measured.txt, writes RESULTS/performance.md and, with gnuplot,
# RESULTS/performance.png. Only arithmetic on what was measured: a figure
# that is missing is printed as "not measured", never estimated.
# Usage: scripts/bench-report.sh RESULTS-DIR [QUICK(0|1)]
set -euo pipefail

R=${1:?usage: bench-report.sh RESULTS-DIR [QUICK]}
QUICK=${2:-0}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
S=$R/summary.csv
[[ -f $S ]] || {
    echo "bench-report.sh: no $S" >&2
    exit 1
}

# get FIGURE VARIANT N FIELD: a summary field (median, p99, count, min, max), or empty.
get() {
    awk -F, -v f="$1" -v v="$2" -v n="$3" -v col="$4" '
        NR == 1 { for (i = 1; i <= NF; i++) idx[$i] = i; next }
        $1 == f && $2 == v && $3 == n { print $(idx[col]); exit }' "$S"
}
# fmt VALUE: a readable number, "—" for none.
fmt() {
    [[ -n ${1:-} ]] || {
        echo "—"
        return
    }
    awk -v x="$1" 'BEGIN {
        a = x < 0 ? -x : x
        if (a >= 1000) printf "%.0f", x; else if (a >= 100) printf "%.0f", x; else if (a >= 10) printf "%.1f", x;
        else if (a >= 1) printf "%.2f", x; else if (a >= 0.01) printf "%.3f", x; else printf "%.4f", x }'
}
# m FIGURE VARIANT N: formatted median; p FIGURE VARIANT N: "p50 / p99".
m() { fmt "$(get "$1" "$2" "$3" median)"; }
p() {
    local a b
    a=$(get "$1" "$2" "$3" median)
    b=$(get "$1" "$2" "$3" p99)
    if [[ -z $a ]]; then echo "not measured"; else echo "$(fmt "$a") / $(fmt "$b")"; fi
}
# ratio A B: A/B as "×R" (two significant places), "—" when either is missing.
ratio() {
    if [[ -z ${1:-} || -z ${2:-} ]]; then
        echo "—"
        return
    fi
    awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) { print "—"; exit }
        r = a / b; if (r >= 10) printf "×%.0f", r; else if (r >= 0.1) printf "×%.2f", r; else printf "×%.3f", r }'
}
pct() {
    if [[ -z ${1:-} || -z ${2:-} ]]; then
        echo "—"
        return
    fi
    awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f %%", 100 * a / b }'
}
# met VALUE OP LIMIT: yes/no, "not measured" when VALUE is empty.
met() {
    [[ -n ${1:-} ]] || {
        echo "not measured"
        return
    }
    awk -v x="$1" -v op="$2" -v lim="$3" 'BEGIN { ok = (op == "<=") ? x <= lim : x >= lim; print ok ? "**yes**" : "**no**" }'
}
div() {
    [[ -n ${1:-} && -n ${2:-} ]] || return 0
    awk -v a="$1" -v b="$2" 'BEGIN { if (b != 0) printf "%.6g", a / b }'
}
med() { get "$1" "$2" "$3" median; }
p99() { get "$1" "$2" "$3" p99; }
runs() { get "$1" "$2" "$3" count; }
or_nm() { if [[ -z ${1:-} ]]; then echo "not measured"; else echo "$2"; fi; }
# rmed CASE: this tree's median repair time (scripts/bench-repair.sh), or empty.
RV=$(cat "$R/repair-variant.txt" 2>/dev/null || true)
rmed() { if [[ -n $RV && -f $R/repair-summary.csv ]]; then S=$R/repair-summary.csv get "repair-$1" "$RV" 0 median; fi; }
repair_row() { # CASE WHAT
    echo "| Repair after $2, until pings flow again (p50, section 7) | ≤ 200 ms | $(or_nm "$(rmed "$1")" "$(fmt "$(rmed "$1")") ms") | $(met "$(rmed "$1")" "<=" 200) |"
}

SIZES=(1000 10000 100000)
AT=(0 1000 10000 100000)
label() { case $1 in 0) echo 0 ;; 1000) echo 1k ;; 10000) echo 10k ;; 100000) echo 100k ;; *) echo "$1" ;; esac; }

# ---------------------------------------------------------------- plot data

q() { local v; v=$(get "$@" median); echo "${v:-?}"; }
{
    echo 'N "kvmnet adapter" "kvmnet in daemon" "kvmnet via D-Bus" "iptables -A" "nft add rule"'
    for n in "${AT[@]}"; do
        echo "$(label "$n") $(q add_one kvmnet-adapter "$n") $(q add_one kvmnet-daemon "$n") $(q add_one kvmnet-dbus "$n") $(q add_one iptables "$n") $(q add_one nft "$n")"
    done
} >"$R/plot-add.dat"
{
    echo 'N "kvmnet adapter" "kvmnet in daemon" "kvmnet via D-Bus" "iptables-restore" "nft -f"'
    for n in "${SIZES[@]}"; do
        echo "$(label "$n") $(q commit_bulk kvmnet-adapter "$n") $(q commit_bulk kvmnet-daemon "$n") $(q commit_bulk kvmnet-dbus "$n") $(q commit_bulk iptables-restore "$n") $(q commit_bulk nft-f "$n")"
    done
} >"$R/plot-bulk.dat"
{
    echo 'variant "1 forward" "10,000 forwards"'
    for v in kvmnet kvmnet-nodaemon nft-rules iptables-nft; do
        echo "$v $(q connrate "$v" 1) $(q connrate "$v" 10000)"
    done
} >"$R/plot-conn.dat"
{
    echo 'path "1 stream" "4 streams"'
    for v in raw-veth bridge routed-no-nat routed-upload nat-forward nat-masquerade; do
        echo "$v $(q throughput "$v" 1) $(q throughput "$v" 4)"
    done
} >"$R/plot-tput.dat"

CPU=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
if command -v gnuplot >/dev/null; then
    (
        cd "$R"
        gnuplot <<EOF
set terminal pngcairo size 1400,1000 font "sans,10"
set output "performance.png"
set datafile missing "?"
set multiplot layout 2,2 title "kvmnet benchmarks (medians) — $(nproc) cores, $CPU, Linux $(uname -r)"
set grid ytics
set key outside right top vertical Left reverse
set logscale y
set format y "%g"
set offsets 0.2, 0.2, 0, 0
set ylabel "ms (log scale)"
set xlabel "forwards already installed"
set title "Add one forward (p50)"
plot for [i=2:6] "plot-add.dat" using 0:i:xtic(1) with linespoints lw 2 pt 7 title columnheader(i)
set xlabel "forwards in the request"
set title "Apply N forwards in one request (median)"
plot for [i=2:6] "plot-bulk.dat" using 0:i:xtic(1) with linespoints lw 2 pt 7 title columnheader(i)
unset logscale y
set offsets 0, 0, 0, 0
set key inside top right vertical Left reverse
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set yrange [0:*]
set xlabel ""
set ylabel "new TCP connections/s"
set title "Connection rate through a DNAT forward (higher is better)"
plot "plot-conn.dat" using 2:xtic(1) title columnheader(2), "" using 3 title columnheader(3)
set ylabel "Gbit/s"
set title "iperf3 throughput between namespaces (higher is better)"
plot "plot-tput.dat" using 2:xtic(1) title columnheader(2), "" using 3 title columnheader(3)
unset multiplot
EOF
    ) 2>"$R/gnuplot.log" || echo "bench-report.sh: gnuplot failed: $(tail -3 "$R/gnuplot.log")" >&2
fi

# ---------------------------------------------------------------- the report

add10k_daemon=$(med add_one kvmnet-daemon 10000)
add10k_daemon99=$(p99 add_one kvmnet-daemon 10000)
add10k_dbus=$(med add_one kvmnet-dbus 10000)
add10k_dbus99=$(p99 add_one kvmnet-dbus 10000)
scale() { div "$(med add_one "$1" 100000)" "$(med add_one "$1" 0)"; }
# The datapath's ratios: the median of the per-round ratios (bench-datapath-report.sh).
dp_ratio() { [[ ! -f $R/datapath.csv ]] || bash "$ROOT/scripts/bench-datapath-report.sh" "$R" --ratio "$@"; }
natr1=$(dp_ratio nat-forward routed-no-nat 1)
natr4=$(dp_ratio nat-forward routed-no-nat 4)
nat1=$(dp_ratio nat-forward raw-veth 1)
nat4=$(dp_ratio nat-forward raw-veth 4)
ceil1=$(dp_ratio routed-no-nat raw-veth 1)
ceil4=$(dp_ratio routed-no-nat raw-veth 4)
masqu1=$(dp_ratio nat-masquerade routed-upload 1)
masqu4=$(dp_ratio nat-masquerade routed-upload 4)
masq1=$(dp_ratio nat-masquerade raw-veth 1)
masq4=$(dp_ratio nat-masquerade raw-veth 4)
ceilu1=$(dp_ratio routed-upload raw-veth 1)
ceilu4=$(dp_ratio routed-upload raw-veth 4)
# scripts/bench-masq.sh: kvmnet's ruleset against the same hops routed, same direction.
masqr1=$(div "$(med masq kvmnet 1)" "$(med masq routed 1)")
masqr4=$(div "$(med masq kvmnet 4)" "$(med masq routed 4)")
conn_kvm=$(div "$(med connrate kvmnet 10000)" "$(med connrate kvmnet 1)")
conn_map=$(div "$(med connrate kvmnet-nodaemon 10000)" "$(med connrate kvmnet-nodaemon 1)")
conn_ipt=$(div "$(med connrate iptables-nft 10000)" "$(med connrate iptables-nft 1)")
conn_nft=$(div "$(med connrate nft-rules 10000)" "$(med connrate nft-rules 1)")
conn_ipt_vs_kvm=$(div "$(med connrate iptables-nft 10000)" "$(med connrate kvmnet 1)")
pctv() { if [[ -z ${1:-} ]]; then echo "not measured"; else awk -v x="$1" 'BEGIN { printf "%.1f %%", 100 * x }'; fi; }
x() { if [[ -z ${1:-} ]]; then echo "not measured"; else ratio "$1" 1; fi; }

# scripts/bench-peers.sh: kvmnet's median ÷ libvirt's for FIGURE (start, stop), or empty.
peer_median() {
    [[ -f $R/peers.csv ]] || return 0
    awk -F, -v f="$1" -v v="$2" '$1 == f && $2 == v { print $5 }' "$R/peers.csv" | sort -g |
        awk '{ x[NR] = $1 } END { if (NR) print NR % 2 ? x[(NR + 1) / 2] : (x[NR / 2] + x[NR / 2 + 1]) / 2 }'
}
peer_ratio_value() { div "$(peer_median "$1" kvmnet)" "$(peer_median "$1" libvirt)"; }
peer_ratio() {
    local r
    r=$(peer_ratio_value "$1")
    if [[ -z $r ]]; then echo "not measured"; else echo "$(ratio "$r" 1) ($(fmt "$(peer_median "$1" kvmnet)") vs $(fmt "$(peer_median "$1" libvirt)") ms)"; fi
}

# firewalld: measured in this run when bench-deps.sh could fetch it, else the issue's figure, marked as quoted.
fw_baseline() {
    if [[ -n $(med cli firewall-cmd 0) ]]; then
        echo "firewalld 1.3 \`firewall-cmd --add-forward-port\`: $(m cli firewall-cmd 0) ms ($(fmt "$(p99 cli firewall-cmd 0)")), $(runs cli firewall-cmd 0) runs, measured (the issue quotes 150–170 ms)"
    else
        echo "firewalld \`firewall-cmd --add-forward-port\`: 150–170 ms, *quoted from issue #4, not measured*"
    fi
}
fw_ratio() {
    if [[ -n $(med cli firewall-cmd 0) ]]; then ratio "${1:-}" "$(med cli firewall-cmd 0)"; else echo "$(ratio "${1:-}" 160) (vs. 160 ms, quoted)"; fi
}

commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
{
    cat <<EOF
# kvmnet performance

Measured by \`scripts/bench.sh\` (issue #4, "Benchmarks") on $(date -u +%Y-%m-%d), commit \`$commit\`$( ((QUICK)) && echo ", **quick run: fewer samples, not for conclusions**").
Every figure is measured in the same run as its baseline, inside network
namespaces the script creates. Times are medians over the runs shown
(p50 / p99 where a percentile is asked for); a ratio is kvmnet's figure
divided by its baseline's. Figures marked *quoted* come from issue #4 and
were **not measured** here. "not measured" means exactly that; see
[Not measured](#not-measured).

![kvmnet benchmarks](performance.png)

## Machine

| | |
|---|---|
| CPU | $CPU, $(nproc) cores (\`nproc\`) |
| Memory | $(awk '/^MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) |
| Kernel | $(uname -r) |
| OS | $(. /etc/os-release && echo "$PRETTY_NAME") |
| nft / iptables | $(nft --version 2>/dev/null | head -1) / $(iptables --version 2>/dev/null | head -1) |
| iperf3 / hyperfine | $(iperf3 --version 2>/dev/null | head -1 | awk '{print $1, $2}') / $(hyperfine --version 2>/dev/null | head -1) |

The machine is shared (2 cores, other builds and tests may run at the
same time), so single numbers wobble; the medians and the same-run ratios
are what to compare. Load average (1, 5, 15 min) when the run started:
$(cat "$R/load-start.txt" 2>/dev/null || echo unknown), when it ended: $(cat "$R/load-end.txt" 2>/dev/null || echo unknown)
(the run itself keeps about one core busy); it took $(cat "$R/duration.txt" 2>/dev/null || echo "?") s.

## Targets and results

| Figure | Target | Measured | Met |
|---|---|---|---|
| 10,000 forwards committed, kvmnet's nftables adapter (one batch) | ≤ 100 ms | $(or_nm "$(med commit_bulk kvmnet-adapter 10000)" "$(m commit_bulk kvmnet-adapter 10000) ms") | $(met "$(med commit_bulk kvmnet-adapter 10000)" "<=" 100) |
| 10,000 forwards committed in the daemon (\`Manager::add_forwards\`, in-process) | ≤ 100 ms | $(or_nm "$(med commit_bulk kvmnet-daemon 10000)" "$(m commit_bulk kvmnet-daemon 10000) ms") | $(met "$(med commit_bulk kvmnet-daemon 10000)" "<=" 100) |
| 10,000 forwards in one \`AddForwards\` through D-Bus | ≤ 1 s | $(or_nm "$(med commit_bulk kvmnet-dbus 10000)" "$(m commit_bulk kvmnet-dbus 10000) ms") | $(met "$(med commit_bulk kvmnet-dbus 10000)" "<=" 1000) |
| One add at 10,000 existing, in the daemon, p50 | ≤ 1 ms | $(or_nm "$add10k_daemon" "$(fmt "$add10k_daemon") ms") | $(met "$add10k_daemon" "<=" 1) |
| One add at 10,000 existing, in the daemon, p99 | ≤ 5 ms | $(or_nm "$add10k_daemon99" "$(fmt "$add10k_daemon99") ms") | $(met "$add10k_daemon99" "<=" 5) |
| One add at 10,000 existing, through D-Bus (adds the bus round trip), p50 | (≤ 1 ms asked in the daemon) | $(or_nm "$add10k_dbus" "$(fmt "$add10k_dbus") ms") | $(met "$add10k_dbus" "<=" 1) |
| One add at 10,000 existing, through D-Bus, p99 | (≤ 5 ms asked in the daemon) | $(or_nm "$add10k_dbus99" "$(fmt "$add10k_dbus99") ms") | $(met "$add10k_dbus99" "<=" 5) |
| One add at 100,000 ÷ at 0 (p50), adapter | ≤ 1.5 | $(x "$(scale kvmnet-adapter)") | $(met "$(scale kvmnet-adapter)" "<=" 1.5) |
| One add at 100,000 ÷ at 0 (p50), in the daemon | ≤ 1.5 | $(x "$(scale kvmnet-daemon)") | $(met "$(scale kvmnet-daemon)" "<=" 1.5) |
| One add at 100,000 ÷ at 0 (p50), through D-Bus | ≤ 1.5 | $(x "$(scale kvmnet-dbus)") | $(met "$(scale kvmnet-dbus)" "<=" 1.5) |
| NAT forward ÷ the same hops routed without NAT, 1 stream (like for like: NAT's own cost; [§2](#bulk-throughput-iperf3-gbits), the median of the per-round ratios) | ≥ 95 % | $(pctv "$natr1") | $(met "$natr1" ">=" 0.95) |
| NAT forward ÷ the same hops routed without NAT, 4 streams | ≥ 95 % | $(pctv "$natr4") | $(met "$natr4" ">=" 0.95) |
| NAT forward ÷ raw veth, 1 stream (issue 4's view: two veth pairs, a bridge and routing ÷ one veth pair; the same hops routed without any rule reach $(pctv "$ceil1") of raw veth, the most a ruleset can) | (≥ 95 %) | $(pctv "$nat1") | $(met "$nat1" ">=" 0.95) |
| NAT forward ÷ raw veth, 4 streams (the ceiling: $(pctv "$ceil4")) | (≥ 95 %) | $(pctv "$nat4") | $(met "$nat4" ">=" 0.95) |
| NAT masquerade through kvmnetd ÷ the same hops routed, guest → internet, 1 stream (same run as the forward's) | (≥ 95 %) | $(pctv "$masqu1") | $(met "$masqu1" ">=" 0.95) |
| NAT masquerade through kvmnetd ÷ the same hops routed, 4 streams | (≥ 95 %) | $(pctv "$masqu4") | $(met "$masqu4" ">=" 0.95) |
| NAT masquerade ÷ raw veth, 1 stream (issue 4's view; the ceiling: $(pctv "$ceilu1")) | (≥ 95 %) | $(pctv "$masq1") | $(met "$masq1" ">=" 0.95) |
| NAT masquerade ÷ raw veth, 4 streams (the ceiling: $(pctv "$ceilu4")) | (≥ 95 %) | $(pctv "$masq4") | $(met "$masq4" ">=" 0.95) |
| NAT masquerade ÷ the same hops routed without NAT, 1 stream ([below](#masquerade-where-the-cost-goes-issue-17)) | ≥ 95 % | $(pctv "$masqr1") | $(met "$masqr1" ">=" 0.95) |
| NAT masquerade ÷ the same hops routed without NAT, 4 streams | ≥ 95 % | $(pctv "$masqr4") | $(met "$masqr4" ">=" 0.95) |
| New connections/s with 10,000 forwards ÷ with 1 (kvmnetd) | ≥ 95 % | $(pctv "$conn_kvm") | $(met "$conn_kvm" ">=" 0.95) |
| The same, kvmnet's ruleset committed by the adapter without the daemon | (≥ 95 %) | $(pctv "$conn_map") | $(met "$conn_map" ">=" 0.95) |
| \`kvmnetctl forward add\` wall time (median, none existing) | ≤ 10 ms | $(or_nm "$(med cli kvmnetctl-forward-add 0)" "$(m cli kvmnetctl-forward-add 0) ms") | $(met "$(med cli kvmnetctl-forward-add 0)" "<=" 10) |
| \`kvmnetctl forward add\` wall time (median, 10,000 existing) | ≤ 10 ms | $(or_nm "$(med cli kvmnetctl-forward-add 10000)" "$(m cli kvmnetctl-forward-add 10000) ms") | $(met "$(med cli kvmnetctl-forward-add 10000)" "<=" 10) |
| Network start (\`kvmnetctl start\` returns: bridge, rules, dnsmasq ready) | ≤ 40 ms | $(or_nm "$(med netstart kvmnetctl-start 0)" "$(m netstart kvmnetctl-start 0) ms") | $(met "$(med netstart kvmnetctl-start 0)" "<=" 40) |
| Network stop (\`kvmnetctl stop\`) | ≤ 40 ms | $(or_nm "$(med netstop kvmnetctl-stop 0)" "$(m netstop kvmnetctl-stop 0) ms") | $(met "$(med netstop kvmnetctl-stop 0)" "<=" 40) |
| Network start ÷ libvirt 9.0 \`virsh net-start\`, alternating in one run ([§3](#network-start-and-stop-against-libvirt-issue-17)) | (< 1) | $(peer_ratio start) | $(met "$(peer_ratio_value start)" "<=" 1) |
| Network stop ÷ libvirt 9.0 \`virsh net-destroy\`, same run | (< 1) | $(peer_ratio stop) | $(met "$(peer_ratio_value stop)" "<=" 1) |
| kvmnetd RSS, idle with 10 running networks | ≤ 10 MB | $(or_nm "$(med rss idle-10-networks 10)" "$(m rss idle-10-networks 10) MB") | $(met "$(med rss idle-10-networks 10)" "<=" 10) |
| kvmnetd RSS with 10,000 forwards | ≤ 30 MB | $(or_nm "$(med rss with-10k-forwards 10000)" "$(m rss with-10k-forwards 10000) MB") | $(met "$(med rss with-10k-forwards 10000)" "<=" 30) |
$(repair_row nat-bridge-del "\`ip link del\` of a NAT bridge")
$(repair_row bridge-mode-del "\`ip link del\` of a bridge-mode bridge (a LAN peer's ping)")
$(repair_row ip-forward-off "\`sysctl -w net.ipv4.ip_forward=0\`")
$(repair_row nft-flush "\`nft flush ruleset\`")

Rows with the target in parentheses are not targets of the issue but the
nearest measurable stand-in or a second view of one; they are marked so.

## 1. Control plane

### Apply N forwards in one request (median ms)

"Adapter" is the daemon's ruleset for the bench network
(\`plan::build_ruleset\`) in the kernel, then the forwards' elements
(\`plan::forward_elements\`) committed by \`kernel::Nftables::change_elements\`
in one batch: the time to kernel commit. "In daemon" is \`core::Manager::add_forwards\`
(validation, store, commit). "D-Bus" is one \`AddForwards\` call, client to
reply. The baselines load the same forwards as one DNAT rule each:
\`iptables-restore\` (iptables-nft) into an empty nat table, and \`nft -f\`
of a new table.

| Forwards | kvmnet adapter | kvmnet in daemon | kvmnet via D-Bus | iptables-restore | nft -f | D-Bus ÷ iptables-restore | D-Bus ÷ nft -f | adapter ÷ iptables-restore | adapter ÷ nft -f |
|---|---|---|---|---|---|---|---|---|---|
EOF
    for n in "${SIZES[@]}"; do
        echo "| $(label "$n") | $(m commit_bulk kvmnet-adapter "$n") | $(m commit_bulk kvmnet-daemon "$n") | $(m commit_bulk kvmnet-dbus "$n") | $(m commit_bulk iptables-restore "$n") | $(m commit_bulk nft-f "$n") | $(ratio "$(med commit_bulk kvmnet-dbus "$n")" "$(med commit_bulk iptables-restore "$n")") | $(ratio "$(med commit_bulk kvmnet-dbus "$n")" "$(med commit_bulk nft-f "$n")") | $(ratio "$(med commit_bulk kvmnet-adapter "$n")" "$(med commit_bulk iptables-restore "$n")") | $(ratio "$(med commit_bulk kvmnet-adapter "$n")" "$(med commit_bulk nft-f "$n")") |"
    done
    cat <<EOF

Runs per cell: $(runs commit_bulk kvmnet-adapter 10000) at 10k$( [[ -n $(runs commit_bulk iptables-restore 100000) ]] && echo ", $(runs commit_bulk iptables-restore 100000) at 100k").

### Add one forward with N existing (ms, p50 / p99)

kvmnet: one element (adapter), one \`add_forwards\` of one forward (in the
daemon), one \`AddForwards\` with one forward (D-Bus); each is removed
again, untimed, so N stays N. Baselines: one \`iptables -t nat -A\` process
and one \`nft add rule\` process, each adding a rule to the N there; the
rules stay, so N grows by one per run (N to N+$(runs add_one iptables 0)−1: immaterial next
to N and to process start-up; removing them again would cost each tool more
than adding, \`iptables -D\` compares every rule). The baselines include process start-up, as they do for
the Docker-style tools that run them; kvmnet's own end-to-end process figure
is \`kvmnetctl forward add\` in section 3.

| Existing | kvmnet adapter | kvmnet in daemon | kvmnet via D-Bus | iptables -A | nft add rule | D-Bus ÷ iptables (p50) | D-Bus ÷ nft (p50) |
|---|---|---|---|---|---|---|---|
EOF
    for n in "${AT[@]}"; do
        echo "| $(label "$n") | $(p add_one kvmnet-adapter "$n") | $(p add_one kvmnet-daemon "$n") | $(p add_one kvmnet-dbus "$n") | $(p add_one iptables "$n") | $(p add_one nft "$n") | $(ratio "$(med add_one kvmnet-dbus "$n")" "$(med add_one iptables "$n")") | $(ratio "$(med add_one kvmnet-dbus "$n")" "$(med add_one nft "$n")") |"
    done
    echo "| **100k ÷ 0** (p50) | $(x "$(scale kvmnet-adapter)") | $(x "$(scale kvmnet-daemon)") | $(x "$(scale kvmnet-dbus)") | $(x "$(scale iptables)") | $(x "$(scale nft)") | | |"
    cat <<EOF

Samples per cell: $(runs add_one kvmnet-adapter 10000) (adapter), $(or_nm "$(runs add_one kvmnet-dbus 10000)" "$(runs add_one kvmnet-dbus 10000)") (D-Bus), $(runs add_one iptables 10000) (each baseline).

### Where the time of one add goes (p50, 10,000 existing)

| Part | ms |
|---|---|
| Kernel commit of the forward's map element (adapter, one batch) | $(m add_one kvmnet-adapter 10000) |
| \`Manager::add_forwards\` in-process, in all (validation, listener check, commit, journal) | $(m add_one kvmnet-daemon 10000) |
| For comparison: finding local listeners by reading /proc/net/{tcp,tcp6,udp,udp6} once (what \`AddForwards\` did before it asked sock_diag; component, measured alone in the daemon's namespace) | $(m component listeners-procfs 0) |
| Listeners from NETLINK_SOCK_DIAG, TCP and UDP, IPv4 and IPv6 (\`kernel::NetlinkLinks::list_listeners\`, what \`AddForwards\` calls now) | $(m component listeners-sock-diag 0) |
| The D-Bus round trip on top (\`AddForwards\` through D-Bus − in-process) | $(fmt "$(awk -v a="$(med add_one kvmnet-dbus 10000)" -v b="$(med add_one kvmnet-daemon 10000)" 'BEGIN { if (a != "" && b != "") printf "%.6g", a - b }')") |
| A kvmnetctl process: start-up, bus connection, one call (\`kvmnetctl list\`) | $(m cli kvmnetctl-list 0) |
| \`kvmnetctl forward add\`, end to end | $(m cli kvmnetctl-forward-add 10000) |

/proc/net/tcp and tcp6 are slow to read even in an empty namespace: the
kernel walks its whole established-connection hash table for them. The
daemon asks NETLINK_SOCK_DIAG instead, which filters by socket state in the
kernel. What is left of the daemon's time at 100,000 forwards (×4.4 of the
time at 0) is the overlap check of a few new forwards, linear in the
existing ones (about 3 ns each); an index kept across calls would make it
logarithmic (not done yet).

## 2. Datapath

EOF
    if [[ -f $R/datapath.csv ]]; then
        bash "$ROOT/scripts/bench-datapath-report.sh" "$R"
        echo
    fi
    if [[ -f $R/masq.md ]]; then
        cat "$R/masq.md"
        echo
    else
        printf '### Masquerade: where the cost goes (issue 17)\n\nNot measured in this run (no masq.md; scripts/bench-masq.sh).\n\n'
    fi
    cat <<EOF

### New TCP connections per second through a forward (median of $(or_nm "$(runs connrate kvmnet-nodaemon 1)" "$(runs connrate kvmnet-nodaemon 1)") runs)

\`kvmnet-bench connrate\`: one client in the "internet" namespace connects
to host address 203.0.113.1:8080 and closes with RST, a fixed count per
run (10,000; 1,000 in a quick run), the variants interleaved run by run;
an accept loop in the guest namespace. NAT chains see a connection's
first packet only, so this is where the number of forwards shows. With
10,000 forwards the one in use was added last. kvmnet: through kvmnetd,
$(case $(cat "$R/forward-mode.txt" 2>/dev/null) in
        cli) echo "the forwards added with \`kvmnetctl forward add\` (the others in one \`--file\` request, then the one in use)" ;;
        document) echo "the forwards in the network document at create time (this kvmnetd had no \`AddForwards\` yet; the one in use last in the array)" ;;
        *) echo "not measured (this kvmnetd has no forwards)" ;;
    esac). kvmnet-nodaemon: the daemon's ruleset for such a network
(\`plan::build_ruleset\`, the forwards as map elements, the one in use
added last) committed by kvmnet's adapter on a hand-made router, without
kvmnetd. nft-rules and iptables-nft: one DNAT rule per
forward on the same router. routed, no NAT: the guest reached directly, the
ceiling of that router ($(m connrate routed-no-nat 0) conn/s).

| Variant | 1 forward | 10,000 forwards | 10k ÷ 1 | 10k ÷ kvmnetd with 1 |
|---|---|---|---|---|
EOF
    for v in kvmnet kvmnet-nodaemon nft-rules iptables-nft; do
        echo "| $v | $(m connrate "$v" 1) | $(m connrate "$v" 10000) | $(pct "$(med connrate "$v" 10000)" "$(med connrate "$v" 1)") | $(pct "$(med connrate "$v" 10000)" "$(med connrate kvmnet 1)") |"
    done
    cat <<EOF

The issue quotes a probe that put 10k linear iptables-nft rules at about
30 % of the 1-forward rate; this run measured $(pctv "$conn_ipt") (of its own
1-rule rate) and $(pctv "$conn_ipt_vs_kvm") (of kvmnetd's 1-forward rate).

## 3. End to end

| What | kvmnet, median (p99) | Baseline | kvmnet ÷ baseline |
|---|---|---|---|
| \`kvmnetctl forward add\`, 0 existing (hyperfine, $(or_nm "$(runs cli kvmnetctl-forward-add 0)" "$(runs cli kvmnetctl-forward-add 0)") runs) | $(or_nm "$(med cli kvmnetctl-forward-add 0)" "$(m cli kvmnetctl-forward-add 0) ms ($(fmt "$(p99 cli kvmnetctl-forward-add 0)"))") | $(fw_baseline) | $(fw_ratio "$(med cli kvmnetctl-forward-add 0)") |
| \`kvmnetctl forward add\`, 10,000 existing | $(or_nm "$(med cli kvmnetctl-forward-add 10000)" "$(m cli kvmnetctl-forward-add 10000) ms ($(fmt "$(p99 cli kvmnetctl-forward-add 10000)"))") | same | $(fw_ratio "$(med cli kvmnetctl-forward-add 10000)") |
| \`kvmnetctl list\` (process start-up + one D-Bus call: the floor of any CLI call) | $(or_nm "$(med cli kvmnetctl-list 0)" "$(m cli kvmnetctl-list 0) ms ($(fmt "$(p99 cli kvmnetctl-list 0)"))") | — | — |
| Network start: \`kvmnetctl start\` returns (bridge, rules, dnsmasq ready), $(or_nm "$(runs netstart kvmnetctl-start 0)" "$(runs netstart kvmnetctl-start 0)") runs | $(or_nm "$(med netstart kvmnetctl-start 0)" "$(m netstart kvmnetctl-start 0) ms ($(fmt "$(p99 netstart kvmnetctl-start 0)"))") | libvirt 9.0 \`virsh net-start\`: [below](#network-start-and-stop-against-libvirt-issue-17) | — |
| Network start until a guest holds a DHCP lease, guest with a static host entry (start, then busybox udhcpc in the guest) | $(or_nm "$(med netstart start-until-lease-static-host 0)" "$(m netstart start-until-lease-static-host 0) ms ($(fmt "$(p99 netstart start-until-lease-static-host 0)"))") | — | — |
| The same for a guest with a dynamic address (dnsmasq first pings the address it will offer and waits for no answer), $(or_nm "$(runs netstart start-until-lease-dynamic 0)" "$(runs netstart start-until-lease-dynamic 0)") runs | $(or_nm "$(med netstart start-until-lease-dynamic 0)" "$(m netstart start-until-lease-dynamic 0) ms ($(fmt "$(p99 netstart start-until-lease-dynamic 0)"))") | — | — |
| Network stop: \`kvmnetctl stop\` | $(or_nm "$(med netstop kvmnetctl-stop 0)" "$(m netstop kvmnetctl-stop 0) ms ($(fmt "$(p99 netstop kvmnetctl-stop 0)"))") | libvirt 9.0 \`virsh net-destroy\`: [below](#network-start-and-stop-against-libvirt-issue-17) | — |

firewalld runs in a namespace of its own on the run's private bus, from
its Debian packages unpacked by \`scripts/bench-deps.sh\` (never installed:
installing it would start it on the machine's own firewall); each
\`firewall-cmd\` call is a new process, as a user would run it, and the
forward is removed again untimed. libvirt is measured by
\`scripts/bench-peers.sh\`, alternating with kvmnet's own start and stop
in one run; its ratios are in the next table.

EOF
    if [[ -f $R/peers.md ]]; then
        cat "$R/peers.md"
        echo
    else
        printf '### Network start and stop against libvirt (issue 17)\n\nNot measured in this run (no peers.md; scripts/bench-peers.sh).\n\n'
    fi
    cat <<EOF
## 4. Memory (kvmnetd VmRSS, median of 3 samples a second apart)

| State | RSS | Target |
|---|---|---|
| Idle, no networks | $(or_nm "$(med rss idle-no-networks 0)" "$(m rss idle-no-networks 0) MB") | — |
| Idle, 10 running NAT networks (dnsmasq processes not counted) | $(or_nm "$(med rss idle-10-networks 10)" "$(m rss idle-10-networks 10) MB") | ≤ 10 MB |
| One running network with 10,000 forwards | $(or_nm "$(med rss with-10k-forwards 10000)" "$(m rss with-10k-forwards 10000) MB") | ≤ 30 MB |

EOF
    if [[ -f $R/dbus-load.json ]]; then
        bash "$ROOT/scripts/bench-load-report.sh" "$R"
        echo
    else
        printf '## 5. D-Bus load\n\nNot measured in this run (no dbus-load.json).\n\n'
    fi
    if [[ -f $R/repair.md ]]; then
        cat "$R/repair.md"
        echo
    else
        printf '## 7. Repair time (issue 12)\n\nNot measured in this run (no repair.md; scripts/bench-repair.sh).\n\n'
    fi
    cat <<EOF
## Not measured

EOF
    if [[ -s $R/not-measured.txt ]]; then
        while IFS='|' read -r what why; do
            echo "- **$what**: $why"
        done <"$R/not-measured.txt"
    else
        echo "Everything above was measured in this run."
    fi
    cat <<EOF

## How to reproduce

\`\`\`sh
sudo scripts/bench.sh              # about 6-10 minutes on 2 cores; writes bench-results/DATE/ and docs/performance.*
sudo scripts/bench.sh --quick      # a smoke run (fewer samples, no 100k), results only in bench-results/
sudo scripts/bench.sh --load-only  # only the D-Bus load (about 75 s); replaces only its section of docs/performance.md
sudo scripts/bench.sh --repair-only  # only the repair times against c344358 (about 2 min); replaces only their section
sudo scripts/bench.sh --peers-only   # only network start/stop against libvirt (about 30 s); replaces only its section
sudo scripts/bench.sh --masq-only    # only the masquerade breakdown (about 10 min); replaces only its section
sudo nice -n 19 scripts/bench.sh --datapath-only [--iperf-runs 7] [--iperf-seconds 3]  # only the bulk throughput of §2, every path interleaved round by round (about 6 min: 346 s under load); replaces only its section
\`\`\`

\`scripts/bench-deps.sh\` installs what the run needs (gnuplot-nox, iptables,
hyperfine, iperf3, libvirt's daemon and client with no service started, on top of \`scripts/deps.sh\`); \`bench.sh\` builds
\`kvmnetd\`, \`kvmnetctl\` and \`tests/bench/kvmnet-bench\`. Raw samples are
in \`raw.csv\` (\`figure,variant,n,unit,value\`, one row per sample),
medians and percentiles in \`summary.csv\`, the plot's data in \`plot-*.dat\`.
\`scripts/bench-report.sh DIR\` renders a results directory again.

Method, briefly: everything runs in network namespaces created by the
script with the guards of \`tests/e2e/lib.sh\` (\`ip\`, \`nft\`, \`sysctl\`,
\`iptables\`, \`iperf3\`, \`hyperfine\` refuse anything but the run's own
namespaces; \`kvmnet-bench\` refuses to touch nftables outside one), a
private \`dbus-daemon\`, and \`kvmnetd\` in its own "host" namespace. The
synthetic forwards are TCP, host 203.0.113.11–12 ports 10000–59999, guests
192.168.150.10–209 port 80, the same in every variant. Percentiles are
nearest-rank; medians of an even count average the middle two.
EOF
} >"$R/performance.md"
echo "bench-report.sh: wrote $R/performance.md$([[ -f $R/performance.png ]] && echo " and performance.png")"
