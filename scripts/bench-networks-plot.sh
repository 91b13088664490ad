#!/usr/bin/env bash
# Plots a scripts/bench-networks.sh run (issue 17): the start of the n-th
# network against n, and at each checkpoint the start of one more network
# (median) and the memory (kvmnetd RSS; kvmnetd RSS plus the dnsmasq
# processes' PSS). Writes RESULTS/networks.png; needs gnuplot (skipped with
# a note without it).
# Usage: scripts/bench-networks-plot.sh RESULTS
set -euo pipefail
R=$(cd "${1:?usage: bench-networks-plot.sh RESULTS}" && pwd)
command -v gnuplot >/dev/null || {
    echo "bench-networks-plot.sh: no gnuplot; no plot" >&2
    exit 0
}
awk -F, '$1 == "start_nth" { print $2, $4 }' "$R/raw.csv" >"$R/plot-start-nth.dat"
awk -F, '
    $1 == "start_one_more" { v[$2] = v[$2] " " $4; seen[$2] = 1 }
    $1 == "daemon_rss" { rss[$2] = $4 }
    $1 == "dnsmasq_pss" { pss[$2] = $4 }
    END {
        for (n in seen) {
            c = split(substr(v[n], 2), a, " ")
            for (i = 1; i <= c; i++) for (j = i + 1; j <= c; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
            m = (c % 2) ? a[(c + 1) / 2] : (a[c / 2] + a[c / 2 + 1]) / 2
            printf "%d %.1f %.1f %.1f\n", n, m, rss[n] / 1024, (rss[n] + pss[n]) / 1024
        }
    }' "$R/raw.csv" | sort -n >"$R/plot-checkpoints.dat"
(
    cd "$R"
    gnuplot <<GNUPLOT
set terminal pngcairo size 1200,500 font "sans,10"
set output "networks.png"
set multiplot layout 1,2 title "Networks per host (scripts/bench-networks.sh, $(nproc) cores, load $(cat load-start.txt 2>/dev/null) at the start)"
set grid
set key top left
set xlabel "networks already running"
set ylabel "ms"
set title "Start time"
plot "plot-start-nth.dat" using 1:2 with points pt 7 ps 0.3 title "start of the n-th network (create + start)", \
     "plot-checkpoints.dat" using 1:2 with linespoints lw 2 pt 7 title "start of one more (median)"
set ylabel "MB"
set title "Memory"
plot "plot-checkpoints.dat" using 1:3 with linespoints lw 2 pt 7 title "kvmnetd RSS", \
     "" using 1:4 with linespoints lw 2 pt 7 title "kvmnetd RSS + dnsmasq PSS"
unset multiplot
GNUPLOT
) 2>"$R/gnuplot.log" || echo "bench-networks-plot.sh: gnuplot failed: $(tail -3 "$R/gnuplot.log")" >&2
echo "bench-networks-plot.sh: $R/networks.png" >&2
