#!/usr/bin/env bash
# E2E: the opt-in flowtable fast path ("fast_path": true, kvmnetctl create
# --fast-path; issue 17 item 4).
#  - validated: only nat and routed networks, and only with an uplink
#    (InvalidArgument naming fast_path), nothing stored;
#  - on a kernel without nftables flowtables (this CI kernel), Start fails
#    with Unsupported naming the missing feature and changes nothing: the
#    network stays inactive, the kernel's links, addresses and tables are as
#    before; an ordinary network starts beside it and no fast-path table
#    appears; an Update asking a running network for fast_path is refused
#    the same way, as an update (no "starting network"), and the network
#    keeps running untouched (not taken down and up);
#  - on a kernel with flowtables, the network starts with table inet
#    kvmnet_fast holding the flowtable over the bridge and the uplink (the
#    datapath itself is proven in the VM suite, tests/vm/vm_fast_path.sh).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

nat_topology
bus_start
daemon_start

log "validation: bridge mode and a network without an uplink are refused"
expect_error InvalidArgument create fp --mode nat --bridge kvmbfp --ipv4 192.168.140.1/24 --fast-path
assert_contains "$ERR_MSG" "fast_path" "error without uplink"
assert_contains "$ERR_MSG" "uplink" "error without uplink"
expect_error InvalidArgument create fp --mode bridge --bridge kvmbfp --uplink uplink0 --fast-path
assert_contains "$ERR_MSG" "fast_path" "error in bridge mode"
expect_error InvalidArgument create fp --mode isolated --bridge kvmbfp --ipv4 192.168.140.1/24 --fast-path
assert_contains "$ERR_MSG" "fast_path" "error for an isolated network"
[[ $(ctl list --json | jq length) == 0 ]] || fail "a refused create stored a network: $(ctl list)"

ctl create fp --mode nat --bridge kvmbfp --ipv4 192.168.140.1/24 --uplink uplink0 --fast-path
assert_eq "$(ctl export fp | jq -r .fast_path)" true "fast_path in the stored document"
ctl create plain --mode nat --bridge kvmbpl --ipv4 192.168.141.1/24

# Whether this kernel has flowtables, asked the way nft(8) would, in a
# namespace of this test's own.
P=${PFX}probe
ns_create "$P"
if in_ns "$P" nft add table inet probe 2>/dev/null &&
    in_ns "$P" nft add flowtable inet probe f '{ hook ingress priority 0; }' 2>"$T/probe.err"; then
    flowtables=1
else
    flowtables=0
fi

if ((!flowtables)); then
    log "this kernel has no flowtables ($(head -c 200 "$T/probe.err")): Start must refuse, and change nothing"
    before=$(kernel_snapshot "$H")
    expect_error Unsupported start fp
    assert_contains "$ERR_MSG" "fast_path" "Unsupported names the field"
    assert_contains "$ERR_MSG" "flowtables" "Unsupported names the missing kernel feature"
    log "refused: $ERR_MSG"
    assert_eq "$(net_state fp)" inactive "state after the refused start"
    assert_eq "$(kernel_snapshot "$H")" "$before" "kernel after the refused start"
    # Asked again: the daemon's cached answer, the same error.
    expect_error Unsupported start fp
    assert_contains "$ERR_MSG" "flowtables" "the second refusal"

    ctl start plain
    wait_state plain active
    in_ns "$H" nft list table inet kvmnet_fast >/dev/null 2>&1 && fail "a fast-path table exists without a fast-path network"
    ctl stop plain

    log "an Update of a running network that asks for fast_path: refused as an update, the network untouched"
    ctl create up --mode nat --bridge kvmbup --ipv4 192.168.142.1/24 --uplink uplink0
    ctl start up
    wait_state up active
    index=$(ifindex "$H" kvmbup)
    before=$(kernel_snapshot "$H")
    expect_error Unsupported set up fast_path=true
    assert_contains "$ERR_MSG" "fast_path" "the update's refusal names the field"
    assert_contains "$ERR_MSG" "flowtables" "the update's refusal names the missing kernel feature"
    assert_not_contains "$ERR_MSG" "starting network" "the update's refusal"
    log "refused: $ERR_MSG"
    assert_eq "$(net_state up)" active "state after the refused update"
    assert_eq "$(ctl export up | jq -r '.fast_path // false')" false "fast_path in the stored document"
    # The same bridge: the refusal did not take the network down and up.
    assert_eq "$(ifindex "$H" kvmbup)" "$index" "the bridge's ifindex after the refused update"
    assert_eq "$(kernel_snapshot "$H")" "$before" "kernel after the refused update"
    ctl stop up
    echo "SKIP (part): the fast path's datapath: this kernel lacks nftables flowtables; tests/vm/vm_fast_path.sh proves it" >&2
    log "PASS (validation and the Unsupported start checked)"
    exit 0
fi

log "this kernel has flowtables: the network starts with its flowtable"
ctl start fp
wait_state fp active
table=$(in_ns "$H" nft list table inet kvmnet_fast)
assert_contains "$table" "flowtable fast" "the flowtable"
assert_contains "$table" "kvmbfp" "the bridge in the flowtable"
assert_contains "$table" "uplink0" "the uplink in the flowtable"
assert_contains "$table" "flow add @fast" "the rule that adds flows"
ctl stop fp
retry 25 not in_ns "$H" nft list table inet kvmnet_fast || fail "the fast-path table outlived the network's stop"
log PASS
