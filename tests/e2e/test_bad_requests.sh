#!/usr/bin/env bash
# E2E: the table of bad requests in bad_requests.tsv, sent raw over D-Bus
# with dbus-send (not through kvmnetctl, which would check or rewrite some of
# them first). Each must fail with exactly the expected D-Bus error name and
# a message naming the field. One daemon serves them all, with network
# "default" running (so the nftables table exists) and network "late"
# stopped; before the table and after it, the host namespace's nftables
# ruleset, its links (ip -d link) and addresses, and the state directory
# must be byte-for-byte identical (only the bridge's running timers are
# blanked in the link listing).
#
# Arguments larger than one command-line argument may be (128 KiB) cannot go
# through dbus-send; those few (a 1 MB document, 262145 forwards) go through
# `kvmnetctl create --file` / `kvmnetctl forward add --file`. create sends the
# text on (it re-serialises a JSON object, same content); forward add checks
# the file with the daemon's own per-forward code and sends structs
# (AddForwardsTyped), so the 262145 are refused by that same check in
# kvmnetctl, with the daemon's message.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

TABLE=$SRCDIR/tests/e2e/bad_requests.tsv

nat_topology
bus_start
daemon_start

# Network "default": running, with a static host, a forward naming it and a
# tap port with a MAC. Network "late": stopped, with a tap port; afterwards a
# foreign link takes its bridge name, so starting it is a Conflict.
ctl create default --mode nat --bridge kvmbr0 --ipv4 192.168.122.1/24 \
    --dhcp-range 192.168.122.100-192.168.122.254 --dhcp-host 52:54:00:aa:00:01,192.168.122.10,web
ctl port attach default tap-t1 --tap --mac 52:54:00:aa:00:09
ctl forward add default tcp 8080 web:80
ctl start default
wait_state default active
ctl create late --mode isolated --bridge kvmbr7 --ipv4 10.7.0.1/24
ctl port attach late tap-l1 --tap
ip -n "$H" link add kvmbr7 type veth peer name kvmbr7-peer

# The base CreateNetwork document that "jq:" cases transform: valid on its own
# (checked at the end).
base='{"name": "vt", "mode": "nat", "bridge": "kvmbr9",
       "ipv4": {"address": "10.9.0.1/24", "dhcp": {"ranges": ["10.9.0.100-10.9.0.200"]}}}'

# ---- generated arguments
gen_deep() {
    printf '{"name": "vt", "mode": "nat", "ipv4": {"address": "10.9.0.1/24"}, "x": '
    printf '[%.0s' {1..40}
    printf ']%.0s' {1..40}
    printf '}'
}
gen_name_10k() { jq -c --arg n "$(printf 'n%.0s' {1..10000})" '.name = $n' <<<"$base"; }
gen_doc_1mb() {
    head -c 1048576 /dev/zero | tr '\0' u >"$T/uplink"
    jq -c --rawfile u "$T/uplink" '.uplink = $u' <<<"$base"
}
gen_ranges_65() {
    jq -c '.ipv4.dhcp.ranges = [range(65) | "10.9.0.\(. + 2)-10.9.0.\(. + 2)"]' <<<"$base"
}
gen_forwarders_17() { jq -c '.dns = {"forwarders": [range(17) | "9.9.9.\(. + 1)"]}' <<<"$base"; }
gen_ports_4097() { jq -c '.ports = [range(4097) | {"name": "p\(.)"}]' <<<"$base"; }
gen_hosts_4097() {
    jq -c '.ipv4.address = "10.9.0.1/16" | .ipv4.dhcp.ranges = [] |
        .ipv4.dhcp.hosts = [range(4097) | {"mac": "52:54:00:00:\(. / 256 | floor | tostring | ("0" + .) | .[-2:]):00",
        "ip": "10.9.\(. / 256 | floor + 1).\(. % 256)"}]' <<<"$base"
}
gen_tagged_4095() { jq -c '.ports = [{"name": "vnet9", "vlan": {"tagged": [range(1; 4096)]}}]' <<<"$base"; }
gen_description_257() {
    jq -c --arg d "$(printf 'd%.0s' {1..257})" \
        '.forwards = [{"proto": "tcp", "host_port": 80, "guest": "10.9.0.5", "guest_port": 80, "description": $d}]' <<<"$base"
}
gen_forwards_262145() {
    awk 'BEGIN { printf "["; for (i = 0; i < 262145; i++) printf "%s{\"proto\":\"tcp\",\"host_port\":%d,\"guest\":\"192.168.122.11\",\"guest_port\":80}", (i ? "," : ""), i % 65535 + 1; printf "]" }'
}
gen_port_bridge_mac() {
    local mac
    mac=$(ip -n "$H" -j link show dev kvmbr0 | jq -r '.[0].address')
    printf '{"name": "tap-t3", "tap": true, "mac": "%s"}' "$mac"
}

# ---- the snapshot compared before and after the table
snapshot() {
    echo "## nft list ruleset"
    in_ns "$H" nft list ruleset
    echo "## ip -d link"
    # The bridge's timers run down by themselves; nothing else is touched.
    ip -n "$H" -d link | sed -E 's/((hello|tcn|topology_change|gc)_timer) +[0-9.]+/\1 -/g'
    echo "## ip addr"
    ip -n "$H" addr
    echo "## state dir"
    (cd "$T/state" && find . -printf '%M %s %p\n' | sort && find . -type f -print0 | sort -z | xargs -0 md5sum)
}

declare -A signature=(
    [CreateNetwork]=s [GetNetwork]=s [DeleteNetwork]=s [Update]=s [AddForwards]=s [AddHost]=s
    [RemoveHost]=s [AttachPort]=s [DetachPort]=s [RemoveForward]=ssu [StartWithConfirmation]=u
    [SetAutostart]=b [Start]= [Stop]= [Confirm]=
)
declare -A object_path=()

# path_of TARGET: its object path into OBJECT_PATH (a network's looked up
# once with GetNetwork).
path_of() {
    case $1 in
    manager) OBJECT_PATH=/org/kvmnet1 ;;
    /*) OBJECT_PATH=$1 ;;
    *)
        if [[ -z ${object_path[$1]:-} ]]; then
            object_path[$1]=$(dbus-send --system --print-reply=literal --dest=org.kvmnet1 /org/kvmnet1 \
                org.kvmnet1.Manager.GetNetwork "string:$1" | tr -d ' \n')
        fi
        OBJECT_PATH=${object_path[$1]}
        ;;
    esac
}

# argument_text ARGS: the text of a one-string argument, into $T/arg.
argument_text() {
    case $1 in
    jq:*) jq -c "${1#jq:}" <<<"$base" >"$T/arg" ;;
    raw:*) printf '%s' "${1#raw:}" >"$T/arg" ;;
    gen:*) "gen_${1#gen:}" >"$T/arg" ;;
    *) printf '%s' "$1" >"$T/arg" ;;
    esac
}

# send TARGET METHOD ARGS: the call ("-": no arguments); sets GOT_ERROR and GOT_MESSAGE (empty
# GOT_ERROR: it succeeded).
send() {
    local target=$1 method=$2 args=$3 path iface sig typed=() i parts=() out rc
    path_of "$target"
    path=$OBJECT_PATH
    iface=org.kvmnet1.Network
    [[ $target == manager ]] && iface=org.kvmnet1.Manager
    if [[ $method == */* ]]; then # METHOD/SIGNATURE: send other D-Bus types than the method takes
        sig=${method#*/} method=${method%/*}
    else
        [[ -v "signature[$method]" ]] || fail "no signature known for $method"
        sig=${signature[$method]}
    fi
    if [[ $sig == s ]]; then
        argument_text "$args"
        if (($(stat -c %s "$T/arg") > 120000)); then
            send_large "$target" "$method"
            return
        fi
        typed=("string:$(cat "$T/arg")")
    elif [[ -n $sig ]]; then
        IFS='|' read -r -a parts <<<"$args"
        for ((i = 0; i < ${#sig}; i++)); do
            case ${sig:i:1} in
            s) typed+=("string:${parts[i]-}") ;;
            u) typed+=("uint32:${parts[i]-}") ;;
            b) typed+=("boolean:${parts[i]-}") ;;
            esac
        done
    fi
    out=$(dbus-send --system --print-reply --dest=org.kvmnet1 "$path" "$iface.$method" "${typed[@]}" 2>&1) &&
        rc=0 || rc=$?
    if ((rc == 0)); then
        GOT_ERROR="" GOT_MESSAGE=$out
        return
    fi
    [[ $out == "Error "* ]] || fail "dbus-send $method: unexpected output: $out"
    out=${out#Error }
    GOT_ERROR=${out%%: *}
    GOT_MESSAGE=${out#*: }
}

# Arguments too large for a command line: through kvmnetctl, from the file.
send_large() {
    local target=$1 method=$2 rc err
    case $method in
    CreateNetwork) set -- create vt --file "$T/arg" ;;
    AddForwards) set -- forward add "$target" --file "$T/arg" ;;
    *) fail "no way to send a large argument to $method" ;;
    esac
    "$KVMNETCTL" "$@" >/dev/null 2>"$T/ctl.err" && rc=0 || rc=$?
    err=$(cat "$T/ctl.err")
    if ((rc == 0)); then
        GOT_ERROR="" GOT_MESSAGE=""
        return
    fi
    [[ $err =~ ^kvmnetctl:\ ([A-Za-z]+):\ (.*)$ ]] || fail "kvmnetctl $*: unexpected output: $err"
    GOT_ERROR=org.kvmnet1.Error.${BASH_REMATCH[1]}
    GOT_MESSAGE=${BASH_REMATCH[2]}
}

# Duplicate address detection of the links' IPv6 link-local addresses takes
# about a second; the snapshot starts once the kernel has settled them.
_settled() { [[ $(ip -n "$H" addr) != *tentative* ]]; }
retry 50 _settled || fail "IPv6 duplicate address detection did not finish: $(ip -n "$H" addr)"
snapshot >"$T/before"

cases=0 failures=0
started=${EPOCHREALTIME/./}
while IFS=$'\t' read -r label target method args error field; do
    [[ -z $label || $label == \#* ]] && continue
    cases=$((cases + 1))
    [[ $error == *.* ]] || error=org.kvmnet1.Error.$error
    case_started=${EPOCHREALTIME/./}
    send "$target" "$method" "$args"
    case_ms=$(((${EPOCHREALTIME/./} - case_started) / 1000))
    if [[ $GOT_ERROR != "$error" || $GOT_MESSAGE != *"$field"* ]]; then
        log "FAIL case '$label': expected $error naming '$field', got ${GOT_ERROR:-success}: ${GOT_MESSAGE:0:300}"
        failures=$((failures + 1))
    else
        log "ok   $label (${case_ms} ms): $GOT_ERROR: ${GOT_MESSAGE:0:160}"
    fi
done <"$TABLE"
elapsed=$(((${EPOCHREALTIME/./} - started) / 1000))
log "$cases cases in $elapsed ms, $failures failed"

snapshot >"$T/after"
if ! diff -u "$T/before" "$T/after" >"$T/diff"; then
    fail "the refused requests changed the host namespace or the state directory:
$(head -n 80 "$T/diff")"
fi
((failures == 0)) || fail "$failures of $cases bad requests were not refused as expected (see above)"
((cases >= 60)) || fail "only $cases cases in $TABLE"
_pid_alive "$DAEMON_PID" || fail "kvmnetd died during the table"

# Control: the base document is accepted, so each "jq:" refusal came from
# what its filter broke.
log "control: the base document is accepted"
dbus-send --system --print-reply --dest=org.kvmnet1 /org/kvmnet1 org.kvmnet1.Manager.CreateNetwork \
    "string:$(jq -c . <<<"$base")" >/dev/null
assert_eq "$(ctl show vt --json | jq -r .config.bridge)" kvmbr9 "bridge of the control network"

daemon_stop
assert_eq "$DAEMON_EXIT" 0 "kvmnetd exit status after SIGTERM"
log "PASS"
