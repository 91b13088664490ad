#!/usr/bin/env bash
# E2E of the harness itself: lib.sh's tcp_get prints what a server sends
# however late it sends it within the timeout. Its client's stdin is
# /dev/null, so socat half-closes at once and (with socat's default -t 0.5)
# used to quit half a second later, and so did listen_tcp's server after
# that half-close: a server slower than that to answer (a shell forked
# under load, a TCG guest) read as an empty reply and failed tests that had
# nothing wrong. Two namespaces and a veth; no daemon.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

a=${PFX}a b=${PFX}b
ns_create "$a"
ns_create "$b"
veth_pair "$a" eth0 "$b" eth0
ip -n "$a" addr add 10.250.9.1/24 dev eth0
ip -n "$b" addr add 10.250.9.2/24 dev eth0

listen_tcp "$b" 9000 'echo now'
assert_eq "$(tcp_get "$a" 10.250.9.2 9000)" now "a reply sent at once"
listen_tcp "$b" 9001 'sleep 1.5; echo late'
assert_eq "$(tcp_get "$a" 10.250.9.2 9001)" late "a reply sent 1.5 s after the connection (timeout 3 s)"
# The timeout still bounds a server that never answers nor closes.
listen_tcp "$b" 9002 'sleep 30'
if out=$(tcp_get "$a" 10.250.9.2 9002 1); then
    assert_eq "$out" "" "what a silent server sent"
fi
# The listeners are tracked; the connection they forked for the silent one
# is stopped here, by its PID.
for pid in $(command ip netns pids "$b"); do
    [[ $(proc_cmdline "$pid") == *"sleep 30"* ]] && stop_pid "$pid" 2
done
log "PASS"
