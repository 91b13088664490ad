#!/usr/bin/env bash
# E2E: kvmnetd killed with SIGKILL at random moments while a driver streams
# changes at it (create, delete, start, stop, autostart, forward add/remove,
# host add/remove, a live Update (stp) and a restarting one (dns)).
#
# Each cycle: let the driver run, kill -9 the daemon 0-300 ms after the
# driver's k-th call started (k random in 1..4; every other cycle 0-60 ms
# after the first create/delete/start/stop/set/unset from the k-th on, to land
# inside such calls more often), start it again and check:
#  - every STATE/networks/*.json parses, the daemon started without ignoring
#    a stored network (the forwards journal replayed);
#  - the stored state is the driver's model with every call that returned
#    success applied, plus or minus the one call that was cut off (all or
#    nothing); networks with autostart run after a restart;
#  - the kernel converged to it: a running network has its bridge (alias,
#    gateway address, up, STP as stored), its rules and forward elements in
#    table inet kvmnet, its dnsmasq (alive, serving exactly its static hosts
#    and domain); a stopped or deleted one has no bridge, no rule, element,
#    runtime dir or dnsmasq; IPv4 forwarding is on exactly while a NAT
#    network runs; no table when nothing runs.
# The seed is printed; KVMNET_CRASH_SEED=N replays the same call sequence
# (the kill moments are timing-dependent). KVMNET_CRASH_KILLS sets the count.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# A failure anywhere shows the calls of the cycle and the seed.
eval "$(declare -f fail | sed '1s/^fail/_lib_fail/')"
fail() {
    if [[ -n ${cycle:-} && -s $T/cycle.log ]]; then
        log "calls of cycle $cycle (seed $SEED):"
        cat "$T/cycle.log" >&2
    fi
    _lib_fail "$@"
}

SEED=${KVMNET_CRASH_SEED:-$((($$ * 7919 + $(date +%s)) % 100000))}
KILLS=${KVMNET_CRASH_KILLS:-50}
RANDOM=$SEED
log "seed $SEED (replay with KVMNET_CRASH_SEED=$SEED), $KILLS kills"

nat_topology
bus_start

NETS=(a b c)
declare -A NUM=([a]=1 [b]=2 [c]=3)
CALLS=$T/calls.log

# ---------------------------------------------------------------- the model
# {"NAME": {"running", "autostart", "stp", "domain", "forwards": ["tcp:PORT"],
# "hosts": ["MAC"]}} for every existing network, sorted.
model_norm() { jq -S -c '.'; }

# The stored and running state as the daemon reports it, in model form.
actual_model() {
    local n docs=""
    for n in "${NETS[@]}"; do
        docs+=$(ctl show "$n" --json 2>/dev/null | jq -c '.config + .status' || true)
    done
    jq -s -S -c 'map({key: .name, value: {
            running: (.state == "active" or .state == "degraded"),
            state: .state,
            autostart: .autostart,
            stp: (.stp // false),
            domain: (.dns.domain // ""),
            forwards: ([.forwards[]? | "\(.proto):\(.host_port)"] | sort),
            hosts: ([.ipv4.dhcp.hosts[]? | .mac] | sort)}}) | from_entries' <<<"$docs"
}

# After a restart autostart networks run too.
after_restart() { jq -S -c 'map_values(.running = (.running or .autostart))'; }

# ---------------------------------------------------------------- the driver
# driver SEED: random valid calls against the model in $T/model.json until
# one fails (the daemon was killed). Logs "BEGIN i call", then "OK i" and
# the new model in $T/model.ok.json, or "CUT i" and the model the call would
# have made in $T/model.cut.json.
driver() {
    RANDOM=$1
    local model next i=0 n k op port mac args
    model=$(cat "$T/model.json")
    cp "$T/model.json" "$T/model.ok.json"
    rm -f "$T/model.cut.json"
    while :; do
        n=${NETS[RANDOM % 3]}
        k=${NUM[$n]}
        op=$((RANDOM % 14))
        if [[ $(jq -r --arg n "$n" 'has($n)' <<<"$model") == false ]]; then
            args=(create "$n" --mode nat --bridge "kvmcr$k" --ipv4 "10.9$k.0.1/24"
                --dhcp-range "10.9$k.0.100-10.9$k.0.200")
            next=$(jq -c --arg n "$n" '.[$n] = {running: false, autostart: false, stp: false,
                domain: "", forwards: [], hosts: []}' <<<"$model")
        else
            local running
            running=$(jq -r --arg n "$n" '.[$n].running' <<<"$model")
            case $op in
            0)
                args=(delete "$n")
                next=$(jq -c --arg n "$n" 'del(.[$n])' <<<"$model")
                ;;
            1 | 2 | 12)
                if [[ $running == true ]]; then
                    args=(stop "$n")
                    next=$(jq -c --arg n "$n" '.[$n].running = false' <<<"$model")
                else
                    args=(start "$n")
                    next=$(jq -c --arg n "$n" '.[$n].running = true' <<<"$model")
                fi
                ;;
            3)
                if [[ $(jq -r --arg n "$n" '.[$n].autostart' <<<"$model") == true ]]; then
                    args=(autostart "$n" off)
                    next=$(jq -c --arg n "$n" '.[$n].autostart = false' <<<"$model")
                else
                    args=(autostart "$n" on)
                    next=$(jq -c --arg n "$n" '.[$n].autostart = true' <<<"$model")
                fi
                ;;
            4 | 5 | 6)
                port=$((8000 + k * 100 + RANDOM % 10))
                if [[ $(jq -r --arg n "$n" --arg f "tcp:$port" '.[$n].forwards | index($f) != null' <<<"$model") == true ]]; then
                    args=(forward remove "$n" tcp "$port")
                    next=$(jq -c --arg n "$n" --arg f "tcp:$port" '.[$n].forwards -= [$f]' <<<"$model")
                else
                    args=(forward add "$n" tcp "$port" "10.9$k.0.50:80")
                    next=$(jq -c --arg n "$n" --arg f "tcp:$port" '.[$n].forwards = (.[$n].forwards + [$f] | sort)' <<<"$model")
                fi
                ;;
            7 | 8)
                local x=$((10 + RANDOM % 5))
                mac=52:54:00:0$k:00:$x
                if [[ $(jq -r --arg n "$n" --arg m "$mac" '.[$n].hosts | index($m) != null' <<<"$model") == true ]]; then
                    args=(host remove "$n" "$mac")
                    next=$(jq -c --arg n "$n" --arg m "$mac" '.[$n].hosts -= [$m]' <<<"$model")
                else
                    args=(host add "$n" "$mac" "10.9$k.0.$x")
                    next=$(jq -c --arg n "$n" --arg m "$mac" '.[$n].hosts = (.[$n].hosts + [$m] | sort)' <<<"$model")
                fi
                ;;
            9 | 10)
                if [[ $(jq -r --arg n "$n" '.[$n].stp' <<<"$model") == true ]]; then
                    args=(set "$n" stp=off)
                    next=$(jq -c --arg n "$n" '.[$n].stp = false' <<<"$model")
                else
                    args=(set "$n" stp=on forward_delay=4)
                    next=$(jq -c --arg n "$n" '.[$n].stp = true' <<<"$model")
                fi
                ;;
            11 | 13)
                if [[ $(jq -r --arg n "$n" '.[$n].domain' <<<"$model") == "" ]]; then
                    args=(set "$n" "dns={\"domain\": \"$n.lan\"}")
                    next=$(jq -c --arg n "$n" '.[$n].domain = "\($n).lan"' <<<"$model")
                else
                    args=(unset "$n" dns)
                    next=$(jq -c --arg n "$n" '.[$n].domain = ""' <<<"$model")
                fi
                ;;
            esac
        fi
        i=$((i + 1))
        echo "BEGIN $i ${args[*]}" >>"$CALLS"
        if "$KVMNETCTL" "${args[@]}" >/dev/null 2>"$T/driver.err"; then
            echo "OK $i" >>"$CALLS"
            model=$next
            echo "$model" >"$T/model.ok.json"
        else
            # Every call is valid for the model: only a killed daemon makes
            # one fail (no reply, or no daemon on the bus).
            echo "CUT $i $(cat "$T/driver.err")" >>"$CALLS"
            echo "$next" >"$T/model.cut.json"
            return 0
        fi
    done
}

# ---------------------------------------------------------------- checks

daemon_kill9() {
    kill -KILL "$DAEMON_PID"
    wait "$DAEMON_PID" 2>/dev/null || true
    DAEMON_PID=""
    retry 25 _bus_name_free || fail "org.kvmnet1 still owned after kvmnetd was killed"
}

check_kernel() { # ACTUAL-MODEL
    local actual=$1 n k table any_running=false pid running stp domain ports hosts link alias addrs flags bridge_stp f
    table=$(in_ns "$H" nft list table inet kvmnet 2>/dev/null || true)
    for n in "${NETS[@]}"; do
        k=${NUM[$n]}
        IFS='|' read -r running stp domain ports hosts < <(jq -r --arg n "$n" '.[$n] // {} |
            [(.running // false), (.stp // false), (.domain // ""),
             ((.forwards // []) | map(ltrimstr("tcp:")) | join(" ")), ((.hosts // []) | join(" "))] |
            map(tostring) | join("|")' <<<"$actual")
        if [[ $running == true ]]; then
            any_running=true
            link=$(ip -n "$H" -j -d addr show dev "kvmcr$k" 2>/dev/null) || fail "$n runs but has no bridge kvmcr$k"
            IFS='|' read -r alias addrs flags bridge_stp < <(jq -r '.[0] | [(.ifalias // ""),
                ([.addr_info[] | "\(.local)/\(.prefixlen)"] | join(" ")), (.flags | join(",")),
                (.linkinfo.info_data.stp_state != 0)] | map(tostring) | join("|")' <<<"$link")
            assert_eq "$alias" "kvmnet:$n" "kvmcr$k alias"
            assert_contains "$addrs" "10.9$k.0.1/24" "kvmcr$k addresses"
            assert_contains "$flags" "UP" "kvmcr$k flags"
            assert_eq "$bridge_stp" "$stp" "kvmcr$k STP as stored"
            assert_contains "$table" "\"$n: " "rules of $n in table inet kvmnet"
            # Exactly the stored forwards: none missing, none left over.
            assert_eq "$({ grep -oE "tcp \. 8${k}[0-9]{2} counter" <<<"$table" || true; } | awk '{print $3}' | sort | xargs)" \
                "$(xargs -n1 <<<"$ports" | sort | xargs)" "forward elements of $n in table inet kvmnet"
            pid=$(dnsmasq_pid "$n")
            is_dnsmasq "$pid" || fail "$n runs but its dnsmasq ($pid) does not"
            assert_eq "$(dnsmasqs_of "$n")" "$pid" "dnsmasq processes of $n"
            assert_eq "$({ grep -o '52:54:00:[0-9a-f:]*' "$T/run/$n/dnsmasq.hosts" || true; } | sort | xargs)" \
                "$hosts" "static hosts dnsmasq serves for $n"
            if [[ -n $domain ]]; then
                assert_contains "$(cat "$T/run/$n/dnsmasq.conf")" "domain=$domain" "dnsmasq domain of $n"
            else
                assert_not_contains "$(cat "$T/run/$n/dnsmasq.conf")" "domain=" "dnsmasq domain of $n"
            fi
        else
            if ip -n "$H" link show "kvmcr$k" >/dev/null 2>&1; then fail "$n does not run but kvmcr$k exists"; fi
            assert_not_contains "$table" "\"$n: " "rules of stopped or deleted $n"
            assert_not_contains "$table" "tcp . 8$k" "forward elements of stopped or deleted $n"
            [[ ! -e $T/run/$n ]] || fail "$n does not run but $T/run/$n exists: $(ls "$T/run/$n")"
            assert_eq "$(dnsmasqs_of "$n")" "" "dnsmasq processes of stopped or deleted $n"
        fi
        if [[ $actual != *"\"$n\":"* && -e $T/state/networks/$n.json ]]; then
            fail "$n is deleted but $T/state/networks/$n.json exists"
        fi
    done
    local forwarding
    forwarding=$(in_ns "$H" cat /proc/sys/net/ipv4/ip_forward)
    if [[ $any_running == true ]]; then
        assert_eq "$forwarding" 1 "ip_forward while NAT networks run"
    else
        assert_eq "$table" "" "table inet kvmnet when no network runs"
        assert_eq "$forwarding" 0 "ip_forward restored when nothing runs"
    fi
}

check_disk() {
    local f
    for f in "$T"/state/networks/*.json; do
        [[ -e $f ]] || continue
        jq -e . "$f" >/dev/null || fail "$f does not parse: $(cat "$f")"
    done
    local started
    started=$(sed -n "/===== kvmnetd start #$_daemon_starts /,\$p" "$T/kvmnetd.log")
    assert_not_contains "$started" "ignoring stored network" "daemon start-up log"
}

fail_cycle() { fail "$1 (seed $SEED, cycle $cycle)"; }

# ---------------------------------------------------------------- the run

echo '{}' >"$T/model.json"
start_s=$(date +%s)
applied=0
in_call=0
daemon_start
for ((cycle = 1; cycle <= KILLS; cycle++)); do
    : >"$T/cycle.log"
    CALLS=$T/cycle.log
    driver $((SEED * 1000 + cycle)) &
    driver_pid=$!
    track_pid "$driver_pid"
    # Kill 0-300 ms after the k-th call started; every other time 0-60 ms
    # after the first call from the k-th on that takes the daemon a while
    # (create, delete, start, stop, set, unset), to land inside it more often.
    k=$((1 + RANDOM % 4))
    if ((cycle % 2)); then
        delay=$(printf '0.%03d' $((RANDOM % 300)))
        started="^BEGIN $k "
    else
        delay=$(printf '0.%03d' $((RANDOM % 60)))
        started="^BEGIN ([$k-9]|[0-9][0-9]+) (create|delete|start|stop|set|unset) "
    fi
    for ((w = 0; w < 200; w++)); do
        grep -qE "$started" "$CALLS" && break
        _pid_alive "$driver_pid" || break
        sleep 0.01
    done
    sleep "$delay"
    daemon_kill9
    wait "$driver_pid" || true
    echo "killed ${delay}s after a call matching '$started' started" >>"$CALLS"
    { echo "== cycle $cycle"; cat "$CALLS"; } >>"$T/calls.log"
    [[ -e $T/model.cut.json ]] || fail_cycle "the driver ended without a cut-off call"
    if ! grep -qE "^CUT .*(NoReply|Unavailable)" "$CALLS"; then
        fail_cycle "a valid call failed before the kill: $(grep '^CUT' "$CALLS")"
    fi
    grep -q "^CUT .*NoReply" "$CALLS" && in_call=$((in_call + 1))

    daemon_start
    check_disk
    actual=$(actual_model)
    without=$(after_restart <"$T/model.ok.json")
    with=$(after_restart <"$T/model.cut.json")
    bare=$(jq -S -c 'map_values(del(.state))' <<<"$actual")
    if [[ $bare != "$without" && $bare != "$with" ]]; then
        log "stored state: $bare"
        log "expected:     $without"
        log "or (the cut-off call applied): $with"
        fail_cycle "the stored state after the restart is neither"
    fi
    [[ $bare == "$with" && $bare != "$without" ]] && applied=$((applied + 1))
    states=$(jq -r '[.[] | .state] | unique | join(" ")' <<<"$actual")
    [[ $states =~ ^(active|inactive| )*$ ]] || fail_cycle "network states after the restart: $actual"
    check_kernel "$actual"
    jq -c 'map_values(del(.state))' <<<"$actual" >"$T/model.json"
done
CALLS=$T/calls.log
log "$KILLS kills, $(grep -c '^OK' "$CALLS") calls succeeded; $in_call kill(s) cut a call short (no reply), $applied cut-off call(s) found applied, the others not; $(($(date +%s) - start_s)) s"

log "final: stop every network; no dnsmasq is left"
for n in $(jq -r 'keys[]' "$T/model.json"); do ctl stop "$n"; done
check_kernel "$(actual_model)"
daemon_stop
assert_eq "$DAEMON_EXIT" 0 "kvmnetd exit status after SIGTERM"
for pid in $(command ip netns pids "$H"); do
    fail "process $pid ($(proc_cmdline "$pid")) left in the host namespace"
done
log "PASS"
