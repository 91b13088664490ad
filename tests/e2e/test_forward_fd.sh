#!/usr/bin/env bash
# E2E: AddForwardsFromFd (issue 17, item 1: the bulk form whose forwards
# travel in a sealed memfd, one unix fd on the bus) through a real
# dbus-daemon.
#  - `kvmnetctl forward add --file` with 1,000 forwards or more uses it
#    (seen in a dbus-monitor of the call): all 1,500 of the file are
#    stored, in the kernel's forward map, and a connection through one
#    reaches the guest;
#  - records encoded by an independent encoder of the documented format
#    (fd_client.py) are accepted as AddForwardsTyped's structs would be;
#  - bad input, each refused with its typed error naming the descriptor,
#    the header or the record, nothing changed (forward maps, document,
#    journal, revision): an unsealed memfd, one that may still shrink, a
#    plain file, another version, a count past the records, a record cut
#    short, a guest outside the subnet in record 1, a clash in record 2.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

nat_topology
bus_start
daemon_start

ctl create default --mode nat --bridge kvmbr0 --ipv4 192.168.122.1/24 >/dev/null
ctl start default
wait_state default active
ctl port attach default vg1 >/dev/null
guest_static "$G1" 192.168.122.10/24 192.168.122.1
listen_tcp "$G1" 80 'echo web'
NET=/org/kvmnet1/network/default
fd_call() { /usr/bin/python3 "$SRCDIR/tests/e2e/fd_client.py" "$NET" "$@"; } # the system one, with Gio

forward_state() {
    in_ns "$H" nft list table inet kvmnet | sed -n '/map fwd4/,/^\t}/p' | sed -E 's/packets [0-9]+ bytes [0-9]+//g'
    jq -S .forwards "$T/state/networks/default.json"
    cat "$T/state/networks/default.forwards" 2>/dev/null || true
    ctl show default --json | jq -r .status.revision
}

log "kvmnetctl forward add --file: 1,500 forwards through AddForwardsFromFd"
jq -n '[range(0; 1500) | {proto: "tcp", host_port: (20000 + .), guest: "192.168.122.10", guest_port: 80}]' >"$T/big.json"
command -v dbus-monitor >/dev/null || fail "dbus-monitor missing (package dbus)"
dbus-monitor --system "type='signal',member='NameLost'" "type='method_call',interface='org.kvmnet1.Network'" \
    >"$T/monitor.log" 2>&1 &
MONITOR_PID=$!
track_pid "$MONITOR_PID"
retry 25 grep -q 'member=NameLost' "$T/monitor.log" || sleep 0.5
ctl forward add default --file "$T/big.json" >/dev/null
retry 25 grep -q 'member=AddForwardsFromFd' "$T/monitor.log" || true
stop_pid "$MONITOR_PID"
assert_contains "$(cat "$T/monitor.log")" "member=AddForwardsFromFd" "the CLI's call for 1,500 forwards"
assert_not_contains "$(cat "$T/monitor.log")" "member=AddForwardsTyped" "no structs on the bus"
assert_eq "$(ctl forward list default --json | jq length)" 1500 "forward list"
assert_eq "$(ctl export default | jq -c '[.forwards[].host_port] | map(tostring) | sort')" \
    "$(jq -c '[.[].host_port] | map(tostring) | sort' "$T/big.json")" "the stored forwards are the file's"
assert_eq "$(in_ns "$H" nft list table inet kvmnet | sed -n '/map fwd4/,/^\t}/p' | grep -o 'comment "default"' | wc -l)" 1500 \
    "1,500 elements in the map"
assert_eq "$(tcp_get "$I" 203.0.113.1 21499)" "web" "a connection through the last forward"

log "records from an independent encoder are accepted"
out=$(fd_call '[["both","203.0.113.1",9100,9101,"192.168.122.10",7100,"via fd",50],["udp","",5000,0,"192.168.122.10",5353,"",0]]')
assert_eq "$out" "" "no warnings"
assert_eq "$(ctl export default | jq -c '.forwards[] | select(.host_port == "9100-9101") | [.proto, .host_address, .guest_port, .description, .rate]')" \
    '["both","203.0.113.1","7100-7101","via fd",50]' "the forward from the records"
table=$(in_ns "$H" nft list table inet kvmnet)
assert_contains "$table" "udp . 203.0.113.1 . 9100 limit rate 50/second" "its element, first port"
assert_contains "$table" "tcp . 203.0.113.1 . 9101 limit rate 50/second" "its element, last port"

log "bad input: refused naming the descriptor, header or record; nothing changed"
before=$(forward_state)
good='[["tcp","",9200,0,"192.168.122.10",80,"",0],["tcp","",9201,0,"192.168.122.10",80,"",0]]'
refused() { # KIND TEXT WHAT ARGS...: fd_call ARGS fails with KIND and TEXT
    local kind=$1 text=$2 what=$3 out rc
    shift 3
    out=$(fd_call "$@") && rc=0 || rc=$?
    ((rc != 0)) || fail "$what: accepted"
    assert_contains "$out" "Error org.kvmnet1.Error.$kind: " "$what: the error's kind"
    assert_contains "$out" "$text" "$what"
}
refused InvalidArgument "fd: not sealed" "an unsealed memfd" "$good" --seals none
refused InvalidArgument "fd: not sealed" "a memfd that may shrink" "$good" --seals no-shrink
refused InvalidArgument "fd: not sealed" "a plain file" "$good" --plain-file
refused InvalidArgument "records: version 2 is not supported" "another version" "$good" --version 2
refused InvalidArgument "forwards[1].guest: truncated" "a record cut short" "$good" --cut 3
refused InvalidArgument "forwards[1].guest: 10.9.9.9 is not inside the network's subnet" "a guest outside the subnet" \
    '[["tcp","",9200,0,"192.168.122.10",80,"",0],["tcp","",9201,0,"10.9.9.9",80,"",0]]'
refused Conflict "forwards[2]: udp *:5000 is already forwarded by this network" "a clash with a forward there" \
    '[["tcp","",9200,0,"192.168.122.10",80,"",0],["tcp","",9201,0,"192.168.122.10",80,"",0],["udp","",5000,0,"192.168.122.10",80,"",0]]'
refused InvalidArgument "forwards[0].host_port: must be between 1 and 65535" "port 0" '[["tcp","",0,0,"192.168.122.10",80,"",0]]'
refused InvalidArgument "forwards: no forwards given" "no records" '[]'
assert_eq "$(forward_state)" "$before" "forward maps, document, journal and revision after the refusals"

log "PASS"
