#!/usr/bin/env bash
# E2E: a daemon killed between creating a network's bridge and marking it
# ours (the owner alias goes in a second netlink message: the kernel takes
# none with the creation) leaves a bridge without an alias. test_crash found
# it after a kill during `set b dns=...` (an Update that restarts b): the
# next daemon refused to bring b up again ("kvmcr2 already exists and is not
# managed by this network") and the network stayed down. The kill cannot be
# aimed at that window from outside, so this test leaves the kernel and the
# runtime directory exactly as such a kill does - the bridge created without
# an alias, and the runtime file the daemon writes before creating it
# (RUNTIME/NAME/bridge-creating, naming the bridge) - and checks that a new
# daemon
#  - finishes an interrupted restart of "b": b is active on its bridge,
#    which is marked ours again;
#  - removes what an interrupted start of "c" left: c's unmarked bridge is
#    gone and c starts;
#  - adopts "e", running, whose bridge a repair made again and the kill
#    kept from being marked: e is active on a bridge marked ours;
#  - leaves alone a bridge without an alias that the runtime file does not
#    name (someone else's): "d" refuses to start on it, as before.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

nat_topology
bus_start
daemon_start
ctl create b --mode nat --bridge kvmcb2 --ipv4 192.168.125.1/24 --dhcp-range 192.168.125.100-192.168.125.200
ctl create c --mode nat --bridge kvmcb3 --ipv4 192.168.126.1/24
ctl create d --mode nat --bridge kvmcb4 --ipv4 192.168.127.1/24
ctl create e --mode nat --bridge kvmcb5 --ipv4 192.168.128.1/24
ctl start b
ctl start e
wait_state b active
wait_state e active
kill -KILL "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null || true
DAEMON_PID=""
retry 25 not _bus_name_owned || fail "org.kvmnet1 still owned after kvmnetd was killed"

# b: an Update's restart cut off right after the new bridge was created.
ip -n "$H" link del kvmcb2
ip -n "$H" link add kvmcb2 type bridge
echo kvmcb2 >"$T/run/b.restarting"
echo kvmcb2 >"$T/run/b/bridge-creating"
# c: a start cut off at the same point.
ip -n "$H" link add kvmcb3 type bridge
mkdir -p "$T/run/c"
echo kvmcb3 >"$T/run/c/bridge-creating"
# e: running; a repair of its deleted bridge cut off at the same point.
ip -n "$H" link del kvmcb5
ip -n "$H" link add kvmcb5 type bridge
echo kvmcb5 >"$T/run/e/bridge-creating"
# d: a bridge of someone else's, no runtime file names it.
ip -n "$H" link add kvmcb4 type bridge

daemon_start
wait_state b active
alias_of() { ip -n "$H" -j -d link show dev "$1" | jq -r '.[0].ifalias // ""'; }
assert_eq "$(alias_of kvmcb2)" "kvmnet:b" "the alias of b's bridge after the interrupted restart"
[[ ! -e $T/run/b/bridge-creating ]] || fail "b's bridge-creating file outlived the marking of its bridge"
if ip -n "$H" link show dev kvmcb3 >/dev/null 2>&1; then
    fail "c's half-created bridge kvmcb3 was left behind"
fi
ctl start c
wait_state c active
assert_eq "$(alias_of kvmcb3)" "kvmnet:c" "the alias of c's bridge"
wait_state e active
assert_eq "$(alias_of kvmcb5)" "kvmnet:e" "the alias of e's bridge after the interrupted repair"
expect_error Conflict start d
ip -n "$H" link show dev kvmcb4 >/dev/null || fail "someone else's bridge kvmcb4 was deleted"
log "ok"
