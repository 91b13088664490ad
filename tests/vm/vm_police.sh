#!/usr/bin/env bash
# VM check (full kernel): outbound port limits (`port attach --outbound`,
# a u32 filter with a tc police action on the port's ingress), which the CI
# kernel lacks (there test_ports.sh sees `Unsupported` and changes nothing).
# Two guests on an isolated network; iperf3 from G1 to G2 unlimited, then
# with vg1 limited to a tenth of the unlimited rate, then with the limit
# removed. Asserts ratios and the filter, never absolute times: under TCG the
# unlimited rate is whatever the emulation gives.
set -euo pipefail
source "$SRCDIR/tests/e2e/lib.sh"
command -v iperf3 >/dev/null || fail "missing tool 'iperf3' (run scripts/deps.sh)"

ok() { echo "ok: $*"; }

H=${PFX}h
ns_create "$H"
guest_add 1
guest_add 2
bus_start
daemon_start
ctl create lab --mode isolated --bridge kvmbr0 --ipv4 10.30.0.1/24
ctl start lab
wait_state lab active
ctl port attach lab vg1
ctl port attach lab vg2
ip -n "$G1" addr add 10.30.0.11/24 dev eth0
ip -n "$G2" addr add 10.30.0.12/24 dev eth0
retry 10 pings "$G1" 10.30.0.12 || fail "G1 cannot reach G2"

spawn_in_ns "$G2" iperf3 -s -B 10.30.0.12 -p 5201 >"$T/iperf3-server.log" 2>&1
track_pid "$SPAWNED_PID"
retry 100 _listening "$G2" 5201 || fail "iperf3 server did not listen: $(cat "$T/iperf3-server.log")"
# rate: bits/s G2 received from G1 in 4 s.
rate() {
    local out
    out=$(in_ns "$G1" timeout 60 iperf3 -c 10.30.0.12 -p 5201 -t 4 -J 2>&1) ||
        fail "iperf3 failed: $(jq -r '.error // empty' <<<"$out" 2>/dev/null || echo "$out")"
    jq -r '.end.sum_received.bits_per_second | floor' <<<"$out"
}
unl=$(rate)
# A tenth of what this emulation manages, in kB/s of 1000 bytes (at least 50).
limit=$((unl / 8 / 1000 / 10))
((limit >= 50)) || limit=50
echo "  unlimited: $((unl / 1000)) kbit/s; limiting vg1 to $limit kB/s ($((limit * 8)) kbit/s)"

ctl port attach lab vg1 --outbound "$limit"
assert_eq "$(port_json lab vg1 | jq -c '[.bandwidth.outbound.average, (.problem // "")]')" "[$limit,\"\"]" \
    "vg1 outbound in port list"
filters=$(in_ns "$H" tc -j filter show dev vg1 ingress)
assert_eq "$(jq -c '[.[] | .options.actions[]? | .kind]' <<<"$filters")" '["police"]' "vg1's ingress actions"
ok "--outbound $limit: vg1 has an ingress u32 filter with a police action"
lim=$(rate)
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }
echo "  limited: $((lim / 1000)) kbit/s, $(ratio "$lim" "$unl") of unlimited, $(ratio "$lim" $((limit * 8000))) of the limit"
awk -v l="$lim" -v u="$unl" -v c=$((limit * 8000)) 'BEGIN { exit !(l > 0 && l < 0.3 * u && l < 2 * c) }' ||
    fail "limited rate $((lim / 1000)) kbit/s: want below 30% of unlimited ($((unl / 1000)) kbit/s) and below twice the limit"
ok "outbound limited to $(ratio "$lim" "$unl") of the unlimited rate (limit is 0.1 of it)"

ctl port attach lab vg1
assert_eq "$(in_ns "$H" tc -j filter show dev vg1 ingress | jq length)" 0 "filters on vg1 after removing the limit"
back=$(rate)
echo "  limit removed: $((back / 1000)) kbit/s, $(ratio "$back" "$lim") of the limited rate"
awk -v b="$back" -v l="$lim" 'BEGIN { exit !(b > 2 * l) }' ||
    fail "rate after removing the limit ($((back / 1000)) kbit/s) is not above twice the limited one ($((lim / 1000)) kbit/s)"
ok "limit removed: no filter left, the rate is back to $(ratio "$back" "$unl") of unlimited"
