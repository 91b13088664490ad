#!/usr/bin/env bash
# Runs one kernel-adapter check program inside a throwaway network namespace,
# never in the machine's own. Skips (77) without root.
set -u
if [ "$(id -u)" -ne 0 ]; then
  echo "SKIP: kernel adapter checks need root to create a network namespace"
  exit 77
fi
ns="kvmk-$$-$RANDOM"
ip netns add "$ns" || exit 1
trap 'ip netns del "$ns" 2>/dev/null' EXIT
ip -n "$ns" link set lo up
ip netns exec "$ns" "$@"
