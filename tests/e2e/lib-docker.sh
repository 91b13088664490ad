# shellcheck shell=bash
# Sourced after lib.sh by the tests and benchmarks that run a real dockerd
# (Debian docker.io 20.10, iptables-nft) in the host namespace $H, in a
# mount namespace of its own with its own --data-root, --exec-root,
# --pidfile, unix socket and containerd namespace, and a cgroup2 mount
# private to it (this machine's hybrid cgroup v1 tree is not one dockerd
# accepts), so the machine's own Docker, if any, is never touched.
# Packages: scripts/deps-coexist.sh (docker.io, never started by the
# machine).

command -v dockerd >/dev/null || skip "dockerd not installed (run scripts/deps-coexist.sh)"
command -v iptables-nft >/dev/null || skip "iptables-nft not installed"

# DOCKERD_ARGS: extra dockerd arguments (e.g. --ip6tables); set before
# dockerd_start.
DOCKERD_ARGS=()
docker_chain() { in_ns "$H" iptables-nft -S DOCKER-USER 2>/dev/null; }
docker6_chain() { in_ns "$H" ip6tables-nft -S DOCKER-USER 2>/dev/null; }
_dockerd_listening() { (($(grep -c "API listen on" "$T/dockerd.log" || true) >= $1)); }
# Starts dockerd (its PID in DOCKERD_PID, tracked) without waiting for it.
dockerd_spawn() {
    local d=$T/docker
    mkdir -p "$d"
    spawn_in_ns "$H" unshare --mount --propagation private sh -c \
        'mount -t cgroup2 none /sys/fs/cgroup && exec "$@"' dockerd \
        dockerd --data-root "$d/data" --exec-root "$d/exec" --pidfile "$d/dockerd.pid" \
        -H "unix://$d/docker.sock" --iptables=true --containerd-namespace "$PFX" "${DOCKERD_ARGS[@]}" \
        >>"$T/dockerd.log" 2>&1
    DOCKERD_PID=$SPAWNED_PID
    track_pid "$DOCKERD_PID"
    _dockerd_starts=$((${_dockerd_starts:-0} + 1))
}
# Whether the dockerd started last is ready: its API listens, i.e. it has
# written its iptables rules.
dockerd_ready() { _dockerd_listening "$_dockerd_starts"; }
# Waits for the dockerd started last to be ready; tracks its containerd.
dockerd_wait() {
    local d=$T/docker
    # dockerd's own containerd: stopped by the test by its pid too.
    retry 100 test -s "$d/exec/containerd/containerd.pid" || {
        tail -20 "$T/dockerd.log" >&2
        fail "dockerd did not start its containerd"
    }
    track_pid "$(cat "$d/exec/containerd/containerd.pid")"
    retry 100 dockerd_ready || {
        tail -20 "$T/dockerd.log" >&2
        fail "dockerd did not finish starting"
    }
    docker_chain >/dev/null || fail "dockerd did not create DOCKER-USER"
}
dockerd_start() {
    dockerd_spawn
    dockerd_wait
}
# Stops dockerd by its PID (it stops its containerd).
dockerd_stop() {
    stop_pid "$DOCKERD_PID" 15
    rm -f "$T/docker/exec/containerd/containerd.pid"
}
