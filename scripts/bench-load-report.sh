#!/usr/bin/env bash
# Renders the "D-Bus load" section of docs/performance.md from what
# tests/e2e/test_load.sh left in DIR (LOAD_RESULTS=DIR): dbus-load.json (the
# kvmnet-bench dbus-load report), dbus-load-meta.json (open fds and VmRSS of
# kvmnetd before and after, machine load) and dbus-load-samples.txt (VmRSS kB and
# fds every 5 s during the run). Prints the section on stdout, between the
# markers that `scripts/bench.sh --load-only` replaces.
# Usage: scripts/bench-load-report.sh DIR
set -euo pipefail

D=${1:?usage: bench-load-report.sh DIR}
L=$D/dbus-load.json
M=$D/dbus-load-meta.json
[[ -f $L && -f $M ]] || {
    echo "bench-load-report.sh: no $L or $M (run tests/e2e/test_load.sh with LOAD_RESULTS=$D)" >&2
    exit 1
}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
# ms values with three significant digits or so.
F='def f: if . >= 100 then round elif . >= 10 then (. * 10 | round) / 10 elif . >= 1 then (. * 100 | round) / 100
    else (. * 1000 | round) / 1000 end;'
j() { jq -r "$F $1" "$L"; }
mj() { jq -r "$1" "$M"; }
mb() { awk -v k="$1" 'BEGIN { printf "%.1f MB", k / 1024 }'; }

cat <<EOF
<!-- dbus-load: rendered by scripts/bench-load-report.sh; scripts/bench.sh --load-only replaces it -->
## 5. D-Bus load

Measured by \`tests/e2e/test_load.sh\` (run by \`scripts/bench.sh\`, or alone
by \`scripts/bench.sh --load-only\`) on $(date -u -r "$L" +%Y-%m-%d), commit \`$commit\`.
$(j .clients) clients, each with its own connection to the private bus (one
thread each in \`kvmnet-bench dbus-load\`), call kvmnetd back to back, with
no pause between calls, for $(j '.seconds | f') s after a 4 s warm-up. $(j .read_percent) % of the calls are
reads, spread evenly over the nine in the table. The rest are writes: forwards added and removed in
each client's own port range, with at most 20 per client; static hosts added and removed, with at
most 4 per client; \`SetAutostart\`; and, for 5 % of the writes, one step of the client's own
NAT network's create → start → stop → delete cycle. No call is refused by
design, so any error counts as a failure. The machine has $(mj .nproc) shared cores. Its load
average (1, 5, 15 min) was $(mj .loadavg_start) when the test started and $(mj .loadavg_end)
when it ended. Other people's builds ran at the same time.

| | |
|---|---|
| Calls | $(j .calls) ($(j .reads) reads, $(j .writes) writes), **$(j .failed) failed** |
| Calls per second, all clients together | $(j '.calls_per_second | round') |
| All calls, p50 / p90 / p99 / max | $(j '.all_calls | "\(.p50_ms | f) / \(.p90_ms | f) / \(.p99_ms | f) / \(.max_ms | f) ms"') |
| kvmnetd's open fds, before / after | $(mj .fds_before) / $(mj .fds_after) |
| kvmnetd VmRSS: before / 5 s in / at the end / after | $(mb "$(mj .rss_before_kb)") / $(mb "$(mj .rss_warm_kb)") / $(mb "$(mj .rss_last_kb)") / $(mb "$(mj .rss_after_kb)") |
| Forwards at start + added − removed = in ListForwards at the end | $(j .forwards_at_start) + $(j .forwards_added) − $(j .forwards_removed) = $(j '.expected_forwards | length') |

| Call | Calls | p50 ms | p90 ms | p99 ms | max ms |
|---|---|---|---|---|---|
EOF
jq -r "$F"' .per_call | to_entries | sort_by(.value.write, .key)[] | "| `\(.key)`\(if .value.write then " (write)" else "" end) | \(.value.calls) | \(.value.p50_ms | f) | \(.value.p90_ms | f) | \(.value.p99_ms | f) | \(.value.max_ms | f) |"' "$L"
cat <<EOF

kvmnetd handles one call at a time on its event loop. With $(j .clients) clients
calling without pause, a call waits behind the calls queued before it, so the
latencies above are mostly queueing. \`AddHost\`, \`RemoveHost\` and
\`SetAutostart\` rewrite the network document: the loop writes it to a
temporary file, the store's writer thread fsyncs and renames it, grouped with
every other save of the same loop turn and those made while a batch syncs,
and the call's reply waits for that (store/durable.hpp); reads do not.
Starting a network waits for its dnsmasq (an event, not on the loop). Forwards
go to a journal that is not fsynced. VmRSS and the fd count were sampled every 5 s during the run
(kB fds): $(tr '\n' ',' <"$D/dbus-load-samples.txt" | sed 's/,$//; s/,/, /g').
<!-- /dbus-load -->
EOF
