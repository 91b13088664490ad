#!/usr/bin/env bash
# E2E: bad requests are refused with the right error kind and a message that
# names the offending field, and a refused request changes nothing: the
# host namespace's links, addresses and nftables table, the network list and
# the state directory are compared before and after every case.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

nat_topology
bus_start
daemon_start

# One valid, running network for the overlap / duplicate / bridge cases.
ctl create default --mode nat --bridge kvmbr0 --ipv4 192.168.122.1/24 \
    --dhcp-range 192.168.122.100-192.168.122.254
ctl start default
wait_state default active

# A document that is valid on its own; each case breaks one thing in it.
base='{"name": "vt", "mode": "nat", "bridge": "kvmbr9",
       "ipv4": {"address": "10.9.0.1/24",
                "dhcp": {"ranges": ["10.9.0.100-10.9.0.200"]}}}'

snapshot() {
    kernel_snapshot "$H"
    echo "## list"
    ctl list --json | jq -S .
    echo "## state dir"
    find "$T/state" -printf "%M %s %P\n" | sort
    md5sum "$T"/state/networks/*
}
snapshot >"$T/before"

unchanged() { # CASE
    snapshot >"$T/after"
    if ! diff -u "$T/before" "$T/after" >"$T/diff"; then
        fail "case '$1' was refused but changed state:
$(head -n 60 "$T/diff")"
    fi
}

# refuse_doc CASE KIND FIELD JQ-FILTER [NAME]: create NAME (default "vt") from
# the base document transformed by JQ-FILTER; expect KIND and FIELD in the
# message.
refuse_doc() {
    local case=$1 kind=$2 field=$3 filter=$4 name=${5-vt}
    jq "$filter" <<<"$base" >"$T/doc.json"
    log "case: $case"
    expect_error "$kind" create "$name" --file "$T/doc.json"
    log "  refused: $kind: $ERR_MSG"
    assert_contains "$ERR_MSG" "$field" "message for '$case'"
    unchanged "$case"
}

# refuse_raw CASE KIND FIELD JSON: for documents jq would not produce.
refuse_raw() {
    local case=$1 kind=$2 field=$3
    printf '%s\n' "$4" >"$T/doc.json"
    log "case: $case"
    expect_error "$kind" create vt --file "$T/doc.json"
    log "  refused: $kind: $ERR_MSG"
    assert_contains "$ERR_MSG" "$field" "message for '$case'"
    unchanged "$case"
}

# refuse_cli CASE KIND FIELD CTL-ARGS...
refuse_cli() {
    local case=$1 kind=$2 field=$3
    shift 3
    log "case: $case"
    expect_error "$kind" "$@"
    log "  refused: $kind: $ERR_MSG"
    assert_contains "$ERR_MSG" "$field" "message for '$case'"
    unchanged "$case"
}

long40=$(printf 'n%.0s' {1..40})

# --- names
refuse_doc "name with slash" InvalidArgument name '.name = "bad/name"' bad/name
refuse_doc "40-character name" InvalidArgument name ".name = \"$long40\"" "$long40"
refuse_doc "empty name" InvalidArgument name '.name = ""' ""

# --- addresses
refuse_doc "octet over 255" InvalidArgument ipv4.address '.ipv4.address = "192.168.300.1/24"'
refuse_doc "prefix over 32" InvalidArgument ipv4.address '.ipv4.address = "10.0.0.1/33"'
refuse_doc "gateway is the network address" InvalidArgument ipv4.address \
    '.ipv4.address = "10.9.0.0/24"'
refuse_doc "gateway is the broadcast address" InvalidArgument ipv4.address \
    '.ipv4.address = "10.9.0.255/24"'
refuse_cli "prefix over 32 (CLI flags)" InvalidArgument ipv4 \
    create vt --mode nat --bridge kvmbr9 --ipv4 10.0.0.1/33

# --- DHCP ranges
refuse_doc "range outside the subnet" InvalidArgument dhcp \
    '.ipv4.dhcp.ranges = ["10.10.0.100-10.10.0.200"]'
refuse_doc "reversed range" InvalidArgument dhcp \
    '.ipv4.dhcp.ranges = ["10.9.0.200-10.9.0.100"]'
refuse_cli "range outside the subnet (CLI flags)" InvalidArgument dhcp \
    create vt --mode nat --bridge kvmbr9 --ipv4 10.9.0.1/24 --dhcp-range 10.10.0.1-10.10.0.9

# --- conflicts with what exists
refuse_doc "subnet overlaps network default" Conflict ipv4 \
    '.ipv4 = {"address": "192.168.122.129/25", "dhcp": {"ranges": ["192.168.122.200-192.168.122.250"]}}'
refuse_doc "bridge name of network default" Conflict bridge '.bridge = "kvmbr0"'
refuse_doc "bridge name of a foreign interface" Conflict bridge '.bridge = "uplink0"'
refuse_doc "duplicate network name" AlreadyExists default '.name = "default"' default

# --- bridge name syntax
refuse_doc "bridge name over 15 bytes" InvalidArgument bridge '.bridge = "kvmbr0123456789x"'

# --- schema
refuse_doc "unknown mode" InvalidArgument mode '.mode = "tunnel"'
refuse_doc "unknown field" InvalidArgument colour '.colour = "red"'
refuse_doc "autostart not a boolean" InvalidArgument autostart '.autostart = "yes"'
refuse_doc "mtu not a number" InvalidArgument mtu '.mtu = "big"'
refuse_raw "not JSON at all" InvalidArgument "" '{"name": "vt", '

# --- unknown networks
refuse_cli "start unknown network" NotFound nosuch start nosuch
refuse_cli "stop unknown network" NotFound nosuch stop nosuch
refuse_cli "delete unknown network" NotFound nosuch delete nosuch
refuse_cli "show unknown network" NotFound nosuch show nosuch

# --- usage errors are exit 2, not a request
log "case: usage error"
rc=0
ctl frobnicate >/dev/null 2>&1 || rc=$?
assert_eq "$rc" 2 "exit status of an unknown verb"
unchanged "usage error"

# Control: the base document itself is accepted, so every refusal above came
# from the one thing each case broke.
log "control: base document is accepted"
printf '%s\n' "$base" >"$T/doc.json"
ctl create vt --file "$T/doc.json"
assert_eq "$(ctl show vt --json | jq -r .config.bridge)" kvmbr9 "bridge of the control network"
ctl delete vt
unchanged "control network created and deleted"

daemon_stop
assert_eq "$DAEMON_EXIT" 0 "kvmnetd exit status after SIGTERM"
log "PASS"
