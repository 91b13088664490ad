#!/usr/bin/env bash
# VM check (full kernel): the flowtable fast path of a NAT network, i.e.
# vm_fast_path.sh with masquerade and a port forward: the guest's
# masqueraded connection to the "internet" namespace and one from there
# through the forward work, and the open masqueraded connection is
# [OFFLOAD]ed to the flowtable and keeps delivering.
set -euo pipefail
KVMNET_VM_FAST_MODE=nat exec bash "$SRCDIR/tests/vm/vm_fast_path.sh"
