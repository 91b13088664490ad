#!/usr/bin/env bash
# E2E: what happens to connections that are already open when a network's
# rules change (README "Open connections when a network's rules change").
# guest_forward accepts established packets early, but only from a guest's
# own subnet or towards it, after the uplink restriction, so every packet of
# an open connection meets the network's current bridge, subnets and uplink:
#  - an uplink set on a NAT network keeps its guest's connection through
#    that uplink, and a move to another uplink cuts it;
#  - a port forward removed leaves the connection made through it open (as
#    firewalld does) while a new connection to the port is refused;
#  - a guest's connection to a guest of a routed network is cut when an
#    isolated network takes over its bridge and subnet: established packets
#    between guests go only
#    into the output bridge's subnet, never into an isolated bridge (they
#    are dropped as new connections to guests are, and counted there).
# Each open connection is one TCP connection to an echo server; a line goes
# through it whenever the test asks (oc_say), and comes back or not.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

nat_topology
# Another interface for an uplink that the guest's connection does not use.
ip -n "$H" link add uplink9 type veth peer name uplink9p
ip -n "$H" link set uplink9 up
bus_start
daemon_start
listen_tcp "$I" 9100 cat
ECHO_SERVERS=("$SPAWNED_PID")

# A client holding one connection open: it sends the line of each request
# file $DIR/ask.N when it appears and writes what came back (or "timeout")
# to $DIR/got.N.
cat >"$T/holder.py" <<'PY'
import os, socket, sys, time
host, port, d = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = socket.create_connection((host, port), timeout=5)
s.settimeout(4)
n = 0
while True:
    ask = os.path.join(d, "ask.%d" % n)
    while not os.path.exists(ask):
        time.sleep(0.05)
    line = open(ask).read().strip().encode() + b"\n"
    try:
        s.sendall(line)
        got = b""
        while not got.endswith(b"\n"):
            chunk = s.recv(100)
            if not chunk:
                break
            got += chunk
        result = got.decode().strip() or "closed"
    except OSError as e:
        result = "timeout" if isinstance(e, socket.timeout) else "error " + str(e)
    with open(os.path.join(d, "got.%d.tmp" % n), "w") as f:
        f.write(result)
    os.rename(os.path.join(d, "got.%d.tmp" % n), os.path.join(d, "got.%d" % n))
    n += 1
PY
# oc_open NAME NS ADDR PORT: a holder in NS connected to ADDR:PORT.
oc_open() {
    mkdir -p "$T/oc.$1"
    echo 0 >"$T/oc.$1.n"
    spawn_in_ns "$2" python3 "$T/holder.py" "$3" "$4" "$T/oc.$1" >>"$T/holder.$1.log" 2>&1
    track_pid "$SPAWNED_PID"
    HOLDERS+=("$SPAWNED_PID")
}
HOLDERS=()
# oc_say NAME WORD: send WORD through the connection, print what came back.
oc_say() {
    local n
    n=$(cat "$T/oc.$1.n")
    echo "$((n + 1))" >"$T/oc.$1.n"
    echo "$2" >"$T/oc.$1/ask.$n"
    retry 150 test -e "$T/oc.$1/got.$n" || fail "holder $1 did not answer (log: $(cat "$T/holder.$1.log"))"
    cat "$T/oc.$1/got.$n"
}

log "a NAT network without uplink, one open connection of its guest"
ctl create oc --mode nat --bridge kvmbr6 --ipv4 10.63.0.1/24
ctl start oc
wait_state oc active
guest_plug "$G1" vg1 kvmbr6
guest_static "$G1" 10.63.0.10/24 10.63.0.1
oc_open up "$G1" 203.0.113.2 9100
assert_eq "$(oc_say up one)" one "echo through the open connection"

log "the uplink set to the interface it goes through: it stays open"
ctl set oc uplink=uplink0
wait_state oc active
assert_eq "$(oc_say up two)" two "echo after the uplink was set to its own interface"

log "the uplink moved to another interface: it is cut"
ctl set oc uplink=uplink9
wait_state oc active
assert_eq "$(oc_say up three)" timeout "echo after the uplink moved elsewhere"
assert_contains "$(in_ns "$H" nft list set inet kvmnet drops_uplink)" '"kvmbr6" counter packets' "uplink drops counted"
if [[ $(in_ns "$H" nft list set inet kvmnet drops_uplink) == *'"kvmbr6" counter packets 0 '* ]]; then
    fail "the cut connection's packets were not counted as uplink drops"
fi

log "no uplink again: a new connection goes through"
ctl unset oc uplink
wait_state oc active
oc_open again "$G1" 203.0.113.2 9100
assert_eq "$(oc_say again four)" four "echo through a new connection"

log "a port forward removed: the connection made through it stays open, new ones are refused"
listen_tcp "$G1" 9100 cat
ECHO_SERVERS+=("$SPAWNED_PID")
ctl forward add oc tcp 8022 10.63.0.10:9100
oc_open fwd "$I" 203.0.113.1 8022
assert_eq "$(oc_say fwd five)" five "echo through the forward"
ctl forward remove oc tcp 8022
assert_eq "$(oc_say fwd six)" six "echo through the removed forward's open connection"
if out=$(echo x | in_ns "$I" socat -t 2 -T 2 - TCP:203.0.113.1:8022,connect-timeout=2 2>&1); then
    fail "a new connection to the removed forward got through (saw '$out')"
fi

log "a connection between guests of two routed networks, then an isolated network on the target's bridge: it is cut"
# Routed to routed: no masquerade, whose conntrack entries the kernel
# flushes when their output bridge goes; this one stays (established).
G2=${PFX}g2 G3=${PFX}g3
ns_create "$G2"
ns_create "$G3"
veth_pair "$H" vg2 "$G2" eth0
veth_pair "$H" vg3 "$G3" eth0
ctl create src --mode routed --bridge kvmbr7 --ipv4 10.64.0.1/24
ctl start src
wait_state src active
guest_plug "$G3" vg3 kvmbr7
guest_static "$G3" 10.64.0.10/24 10.64.0.1
ctl create rt --mode routed --bridge kvmbr5 --ipv4 10.62.0.1/24
ctl start rt
wait_state rt active
guest_plug "$G2" vg2 kvmbr5
guest_static "$G2" 10.62.0.10/24 10.62.0.1
listen_tcp "$G2" 9100 cat
ECHO_SERVERS+=("$SPAWNED_PID")
oc_open between "$G3" 10.62.0.10 9100
assert_eq "$(oc_say between seven)" seven "echo between the two routed guests"
ctl stop rt
wait_state rt inactive
ctl delete rt # a mode cannot be changed: an isolated network on the same bridge and subnet
ctl create lab --mode isolated --bridge kvmbr5 --ipv4 10.62.0.1/24
ctl start lab
wait_state lab active
guest_plug "$G2" vg2 kvmbr5 # the bridge was made again
# The connection's conntrack entry is still there (established), so only
# the established accepts of guest_forward stand in its way.
assert_contains "$(in_ns "$H" conntrack -L -p tcp --dport 9100 -d 10.62.0.10 2>/dev/null)" ESTABLISHED \
    "the connection is still in conntrack"
assert_eq "$(oc_say between eight)" timeout "echo into the bridge that is now isolated"
inbound=$(in_ns "$H" nft list set inet kvmnet drops_inbound)
assert_contains "$inbound" '"kvmbr5" counter packets' "inbound drops of the isolated bridge counted"
if [[ $inbound == *'"kvmbr5" counter packets 0 '* ]]; then
    fail "the open connection's packets into the isolated bridge were not dropped as inbound"
fi
ctl stop lab
wait_state lab inactive
ctl stop src
wait_state src inactive

# The holders, then the echo servers' children that served them (a cut
# connection's server side would wait for its peer's retransmissions).
for pid in "${HOLDERS[@]}"; do stop_pid "$pid"; done
for server in "${ECHO_SERVERS[@]}"; do
    for pid in $(ps -o pid= --ppid "$server" || true); do stop_pid "$pid"; done
done
ctl stop oc
wait_state oc inactive
daemon_stop
assert_eq "$DAEMON_EXIT" 0 "kvmnetd exit status after SIGTERM"
log "PASS"
