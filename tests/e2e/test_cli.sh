#!/usr/bin/env bash
# E2E: kvmnetctl's command line (CLI11) and output conventions, and its bash
# completion, on a running daemon:
#  - usage errors exit 2 naming the problem before any bus connection (the
#    bus address points nowhere, which would be exit 1); --version, --help,
#    `help VERB` (the same text as `VERB --help`);
#  - options in any order (`start --confirm-timeout 30 NET`), global options
#    after the verb, a value never taken for an option (`--description -h`
#    adds the forward with that description);
#  - tables measured from the data (a 32-character name keeps the columns
#    aligned), --no-legend, -o COL,..., -t with ':' escaped;
#  - --json: ports as numbers with *_end, absent values as null;
#  - the completion (client/completion/kvmnetctl sourced in bash): verbs,
#    sub-verbs, options of a verb, values of --event and -o, and network
#    names from the daemon.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
COMPLETION=${KVMNETCTL_COMPLETION:-$SRCDIR/client/completion/kvmnetctl}

log "usage errors, before the bus"
# usage_error WANTED-MESSAGE ARGS...: exit 2, the message on stderr, nothing on stdout.
usage_error() {
    local wanted=$1 rc=0
    shift
    DBUS_SYSTEM_BUS_ADDRESS=unix:path=$T/no-such-bus "$KVMNETCTL" "$@" >"$T/usage.out" 2>"$T/usage.err" || rc=$?
    assert_eq "$rc" 2 "exit status of 'kvmnetctl $*' ($(cat "$T/usage.err"))"
    assert_contains "$(cat "$T/usage.err")" "$wanted" "the message of 'kvmnetctl $*'"
    [[ ! -s $T/usage.out ]] || fail "'kvmnetctl $*' printed on stdout: $(cat "$T/usage.out")"
}
usage_error "unknown command 'frobnicate'" frobnicate
usage_error "--confirm-timeout: Value 0 not in range 1 to 3600" start --confirm-timeout 0 demo
usage_error "--confirm-timeout" start demo --confirm-timeout
usage_error "NET is required" show
usage_error "unexpected argument 'b'" show a b
usage_error "unknown forward command 'frob'" forward frob demo
usage_error "--file or options, not both" forward add demo tcp 80 10.0.0.5:80 --file "$T/none"
usage_error "create: --file or options, not both (--mtu)" create demo --file "$T/none" --mtu 1400
usage_error "cannot read $T/none" create demo --file "$T/none"
usage_error "--stp" create demo --mode nat --ipv4 10.0.0.1/24 --stp maybe
usage_error "--mtu" create demo --mode nat --ipv4 10.0.0.1/24 --mtu lots
usage_error "unknown column 'bogus'" list -o name,bogus
usage_error "-o, -t and --no-legend go with the verbs that print a table" show demo -t
usage_error "--json or -t, not both" list --json -t
usage_error "help: no command 'frobnicate'" help frobnicate
usage_error "expected GUEST:GUESTPORT" forward add demo tcp 80 web
usage_error "takes a number" port attach demo vg1 --inbound lots

assert_eq "$(ctl --version)" "kvmnetctl $(sed -n "s/^  version: '\(.*\)',/\1/p" "$SRCDIR/meson.build")" "--version"
assert_eq "$(ctl help forward add)" "$(ctl forward add --help)" "help forward add and forward add --help"
assert_contains "$(ctl help start)" "--confirm-timeout SECONDS" "help start names its option"
assert_contains "$(ctl --help)" "import-libvirt" "--help lists the verbs"

nat_topology
bus_start
daemon_start

log "options in any order; a value is never an option"
long=abcdefghijklmnopqrstuvwxyz012345 # 32 characters, the longest name
ctl create --ipv4 10.61.0.1/24 "$long" --mode nat --bridge kvmbr61 \
    --dhcp-range 10.61.0.100-10.61.0.150 >/dev/null
ctl create demo --mode nat --bridge kvmbr62 --ipv4 10.62.0.1/24 >/dev/null
ctl start --confirm-timeout 30 demo >/dev/null
ctl confirm demo >/dev/null
assert_eq "$(ctl show demo --json | jq -r .status.state)" active "demo after start --confirm-timeout 30 demo"
ctl forward add demo tcp 8081 10.62.0.5:81 --description -h >/dev/null
ctl forward add demo --description "a:b\\c" --host-port 9000-9002 --guest 10.62.0.6 --guest-port 7000-7002 >/dev/null
ctl forward add --rate 5 demo udp 5353 10.62.0.7:53 >/dev/null
forwards=$(ctl --json forward list demo)
assert_eq "$(jq -r '.[] | select(.host_port == 8081) | .description' <<<"$forwards")" "-h" \
    "the description of forward add ... --description -h"

log "--json: one shape"
assert_eq "$(jq -c '.[] | select(.host_port == 9000) | [.host_port, .host_port_end, .guest_port, .guest_port_end]' \
    <<<"$forwards")" "[9000,9002,7000,7002]" "a range: numbers with *_end"
assert_eq "$(jq -c '.[] | select(.host_port == 8081) | [.host_port_end, .guest_port, .guest_port_end, .rate, .host_address]' \
    <<<"$forwards")" "[8081,81,81,null,null]" "one port: *_end the same; absent values null"
assert_eq "$(ctl list --json | jq -c '[.[] | select(.name == "demo") | .ipv6]')" "[null]" "list --json: no IPv6 is null"
assert_eq "$(ctl host list demo --json)" "[]" "host list --json of a network without DHCP"
assert_eq "$(ctl show demo --json | jq -c .status.last_repair)" null "show --json: no repair yet is null"

log "tables measured from the data"
table=$(ctl list)
# Every line's MODE column starts where the legend's does.
mode_at=$(head -n1 <<<"$table" | awk '{ print index($0, "MODE") }')
while read -r line; do
    name=${line%% *}
    assert_eq "$(awk -v m="$mode_at" '{ print substr($0, m, 3) }' <<<"$line")" nat "the MODE column of $name"
done < <(tail -n +2 <<<"$table")
assert_contains "$table" "$long  nat" "the 32-character name and two spaces before its mode"
assert_eq "$(ctl list --no-legend -o name)" "$(printf '%s\ndemo' "$long")" "list --no-legend -o name"
assert_eq "$(ctl -o state,name list | head -n1)" "STATE     NAME" "-o puts the columns in its order (inactive: 8 letters)"
assert_eq "$(ctl list -t -o name,mode,autostart)" "$(printf '%s:nat:no\ndemo:nat:no' "$long")" "list -t"
assert_eq "$(ctl forward list demo -t -o host,description | grep 9000)" '*\:9000-9002:a\:b\\c' \
    "forward list -t escapes ':' and '\\'"
assert_eq "$(ctl forward list demo -t -o rate,host | grep 5353)" '5/s:*\:5353' "forward list -t -o rate,host"

log "bash completion"
# complete WORDS...: the completions of the last word, in a bash that
# sourced bash-completion (when installed) and kvmnetctl's completion.
complete_words() {
    # shellcheck disable=SC2016 # expanded by the inner bash
    bash -c '
        [[ -r /usr/share/bash-completion/bash_completion ]] && source /usr/share/bash-completion/bash_completion
        source "$1"
        shift
        COMP_WORDS=("$@")
        COMP_CWORD=$(($# - 1))
        COMP_LINE="$*"
        COMP_POINT=${#COMP_LINE}
        COMPREPLY=()
        _kvmnetctl
        printf "%s\n" "${COMPREPLY[@]}" | sort | tr "\n" " "
    ' bash "$COMPLETION" "$KVMNETCTL" "$@"
}
assert_eq "$(complete_words st)" "start stats stop " "verbs starting with st"
assert_eq "$(complete_words forward "")" "add list remove " "forward's verbs"
assert_eq "$(complete_words forward add demo --de)" "--description " "an option of forward add"
assert_eq "$(complete_words list --no)" "--no-ask-password --no-legend " "global options after the verb"
assert_eq "$(complete_words monitor --event Lea)" "LeaseChanged " "--event kinds"
assert_eq "$(complete_words start "")" "$long demo " "network names from the daemon"
assert_eq "$(complete_words start --confirm-timeout 30 d)" "demo " "a network name after an option's value"
assert_eq "$(complete_words forward list a)" "$long " "the network of forward list"
assert_eq "$(complete_words autostart demo "")" "off on " "autostart's second argument"
assert_eq "$(complete_words leases demo -o mac,ex)" "mac,expires mac,expires_at " "-o: the table's columns after the comma"

ctl delete demo >/dev/null
ctl delete "$long" >/dev/null
daemon_stop
assert_eq "$DAEMON_EXIT" 0 "kvmnetd exit status after SIGTERM"
log "PASS"
