#!/usr/bin/env bash
# E2E: reading is open to every local user; changing needs root or the
# polkit action of the method's kind (org.kvmnet1.network.create-delete,
# .network.start-stop, .network.configure, .forward.manage, .host.manage,
# .port.manage). The bus applies the installed D-Bus policies. An
# unprivileged user (nobody, uid 65534) reads everything, and each changing
# method of both interfaces (the methods annotated Method.Async=server in
# dbus/*.xml but Diagnose, so a new one cannot be forgotten here) is refused with
# org.freedesktop.DBus.Error.AccessDenied naming its action while the
# kernel, the stored documents, the runtime files and the daemon's state
# stay as they were:
#   1. with no polkit on the bus (non-root callers are always refused);
#   2. with the real polkitd on the test's private bus, which the daemon
#      asks and which refuses (no rule grants it, no agent can ask for a
#      password); while polkitd is frozen (SIGSTOP) a question to it stays
#      pending and the daemon keeps serving other callers;
#   3. with a polkit rule that grants only org.kvmnet1.forward.manage to
#      nobody: nobody adds and removes forwards, and every other changing
#      method is still refused (the network is not stopped, nothing
#      changes);
#   4. with a polkit rule that grants the old coarse org.kvmnet1.manage to
#      nobody (which implies every finer action): nobody may change things,
#      results and errors come back as for root; a network deleted while a
#      call on it waits for polkit makes that call NotFound; the daemon
#      stops cleanly with such a call pending;
#   5. kvmnetctl's own polkit agent, with a rule that asks nobody for
#      nobody's password (AUTH_SELF): without a terminal kvmnetctl is
#      refused at once and the message says how to get asked; with
#      --no-ask-password on a terminal there is no prompt and the daemon
#      does not let polkit ask; on a terminal (script's pty) pkttyagent
#      prompts, a wrong password is refused and the right one lets the
#      call through.
# polkitd runs in a private mount namespace in which /usr/share/polkit-1/
# actions holds only kvmnet's action file and the rules directories only the
# test's rule: nothing is installed on the machine. Parts 2 to 5 are skipped
# with a printed reason when polkitd or mount namespaces are not available
# (part 5 also without script, pkttyagent, openssl or polkit's helper).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

command -v setpriv >/dev/null || skip "setpriv (util-linux) is needed to run a command as another user"

# The private bus has the system bus's default policy (that of
# /usr/share/dbus-1/system.conf: nothing may be owned or called unless a
# service's policy file allows it) plus the policy files that are installed:
# kvmnet's dbus/org.kvmnet1.conf and polkit's. So the calls below pass the
# bus policy a real system bus would apply.
policy_bus_start() {
    bus_launch <<EOF
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
  </policy>
  <include>$SRCDIR/dbus/org.kvmnet1.conf</include>
  <include ignore_missing="yes">/usr/share/dbus-1/system.d/org.freedesktop.PolicyKit1.conf</include>
EOF
}

nat_topology
policy_bus_start
daemon_start

NOBODY=65534
as_nobody() { setpriv --reuid=$NOBODY --regid=$NOBODY --clear-groups "$@"; }
MGR=/org/kvmnet1
NET=/org/kvmnet1/network/acc

# acc runs with a static host, a forward and a port; idle is stopped.
ctl create acc --mode nat --bridge kvmbr6 --ipv4 10.44.0.1/24 --dhcp-range 10.44.0.10-10.44.0.20 \
    --dhcp-host 52:54:00:44:00:05,10.44.0.5,web
ctl create idle --mode nat --bridge kvmbr7 --ipv4 10.46.0.1/24
ctl forward add acc tcp 8080 10.44.0.5:80 >/dev/null
ctl port attach acc tap-acc --tap >/dev/null
ctl start acc
wait_state acc active

# ------------------------------------------------------------ the methods

# Every changing method, as "Interface Method dbus-send-arguments...". The
# arguments are valid requests that would change something if allowed.
changing_calls=(
    "Manager CreateNetwork string:{\"name\":\"other\",\"mode\":\"nat\",\"ipv4\":{\"address\":\"10.45.0.1/24\"}}"
    "Manager DeleteNetwork string:acc"
    "Manager Reload"
    "Network Start idle"
    "Network StartWithConfirmation idle uint32:30"
    "Network Confirm"
    "Network Stop"
    "Network Update string:{\"name\":\"acc\",\"mode\":\"nat\",\"ipv4\":{\"address\":\"10.44.0.1/24\"}}"
    "Network UpdateIfRevision string:{\"name\":\"acc\",\"mode\":\"nat\",\"ipv4\":{\"address\":\"10.44.0.1/24\"}} string:$(ctl show acc --json | jq -r .status.revision)"
    "Network SetAutostart boolean:true"
    "Network AttachPort string:{\"name\":\"tap-new\",\"tap\":true}"
    "Network DetachPort string:tap-acc"
    "Network AddHost string:{\"mac\":\"52:54:00:44:00:06\",\"ip\":\"10.44.0.6\"}"
    "Network RemoveHost string:52:54:00:44:00:05"
    "Network AddForwards string:{\"proto\":\"tcp\",\"host_port\":8081,\"guest\":\"10.44.0.5\",\"guest_port\":81}"
    "Network AddForwardsTyped [('tcp','',8082,0,'10.44.0.5',82,'',0)]"
    "Network AddForwardsFromFd [[\"tcp\",\"\",8083,0,\"10.44.0.5\",83,\"\",0]]"
    "Network RemoveForward string:tcp string: uint32:8080"
)
# Every other method is a read, with arguments that make it succeed.
read_calls=(
    "Manager GetNetwork string:acc"
    "Manager ListNetworks"
    "Manager Describe"
    "Manager DescribeBrief"
    "Network Describe"
    "Network DescribeBrief"
    "Network Export"
    "Network ListPorts"
    "Network ListPortsPage string: uint32:100"
    "Network Leases"
    "Network LeasesPage string: uint32:100"
    "Network ListForwards"
    "Network ListForwardsPage string: uint32:100"
    "Network Statistics"
    "Network Diagnose"
    "Network LeasesTyped string: uint32:100"
    "Network ListPortsTyped string: uint32:100"
    "Network ListForwardsTyped string: uint32:100"
    "Network StatisticsTyped"
    "Network OverlayStatus"
)

# methods_in XML async|sync: changing method names (with the Async
# annotation) / read ones (without it, and Diagnose: a read answered
# asynchronously, since it waits for firewalld).
methods_in() {
    awk -v want="$2" '
        /<method name="/ { match($0, /name="[^"]*"/); name = substr($0, RSTART + 6, RLENGTH - 7); async = 0
                           if ($0 ~ /\/>/) { if (want == "sync") print name; name = "" } next }
        /org.freedesktop.DBus.Method.Async/ && name != "" && name != "Diagnose" { async = 1 }
        /<\/method>/ && name != "" { if ((async && want == "async") || (!async && want == "sync")) print name; name = "" }
    ' "$SRCDIR/dbus/org.kvmnet1.$1.xml" | sort
}
listed() { # ARRAY-NAME INTERFACE: the method names of that interface in the list
    local -n list=$1
    local entry iface method
    for entry in "${list[@]}"; do
        read -r iface method _ <<<"$entry"
        if [[ $iface == "$2" ]]; then echo "$method"; fi
    done | sort -u
}
log "the test covers every method of both interfaces"
for iface in Manager Network; do
    assert_eq "$(listed changing_calls "$iface" | tr '\n' ' ')" "$(methods_in "$iface" async | tr '\n' ' ')" \
        "changing methods of org.kvmnet1.$iface (annotated Async=server) vs. the test's list"
    assert_eq "$(listed read_calls "$iface" | tr '\n' ' ')" "$(methods_in "$iface" sync | tr '\n' ' ')" \
        "read methods of org.kvmnet1.$iface vs. the test's list"
done

# action_of METHOD: the polkit action the daemon asks about for METHOD
# (daemon/api/authorization.cpp, dbus/org.kvmnet1.policy).
action_of() {
    case $1 in
        CreateNetwork | DeleteNetwork | Reload) echo org.kvmnet1.network.create-delete ;;
        Start | StartWithConfirmation | Confirm | Stop) echo org.kvmnet1.network.start-stop ;;
        Update | UpdateIfRevision | SetAutostart) echo org.kvmnet1.network.configure ;;
        AddForwards | AddForwardsTyped | AddForwardsFromFd | RemoveForward) echo org.kvmnet1.forward.manage ;;
        AddHost | RemoveHost) echo org.kvmnet1.host.manage ;;
        AttachPort | DetachPort) echo org.kvmnet1.port.manage ;;
        *) fail "no polkit action known for $1" ;;
    esac
}

# call_as_nobody "Interface Method args...": dbus-send as nobody; prints the
# reply or "Error NAME: message", returns dbus-send's status. A Network
# method's first argument may name the network (default acc).
call_as_nobody() {
    local iface method rest path=$NET
    read -r iface method rest <<<"$1"
    local -a args=()
    [[ -n ${rest:-} ]] && read -r -a args <<<"$rest"
    [[ $iface == Manager ]] && path=$MGR
    if [[ $iface == Network && ${args[0]:-} =~ ^[a-z]+$ ]]; then
        path=/org/kvmnet1/network/${args[0]}
        args=("${args[@]:1}")
    fi
    if [[ $method == AddForwardsFromFd ]]; then
        # The forwards as records in a sealed memfd (fd_client.py: Gio passes the fd).
        as_nobody /usr/bin/python3 "$SRCDIR/tests/e2e/fd_client.py" "$path" "${args[0]}" 2>&1
        return
    fi
    if [[ $method == AddForwardsTyped ]]; then
        # dbus-send cannot build an array of structs: Gio can, and prints
        # the error as dbus-send does ("Error NAME: MESSAGE").
        as_nobody /usr/bin/python3 - "$path" "${args[0]}" 2>&1 <<'PY'
import ast, sys
from gi.repository import Gio, GLib
bus = Gio.bus_get_sync(Gio.BusType.SYSTEM, None)
try:
    bus.call_sync("org.kvmnet1", sys.argv[1], "org.kvmnet1.Network", "AddForwardsTyped",
                  GLib.Variant("(a(ssqqsqsu))", (ast.literal_eval(sys.argv[2]),)), None,
                  Gio.DBusCallFlags.NONE, 60000, None)
except GLib.Error as e:
    name = Gio.DBusError.get_remote_error(e)
    print("Error %s: %s" % (name, e.message.removeprefix("GDBus.Error:%s: " % name)))
    sys.exit(1)
PY
        return
    fi
    as_nobody dbus-send --system --print-reply --reply-timeout=60000 --dest=org.kvmnet1 "$path" \
        "org.kvmnet1.$iface.$method" "${args[@]}" 2>&1
}

# Everything a refused call must leave alone: the kernel, the stored
# documents (and the forwards journal), the daemon's runtime files (dnsmasq
# configuration and hosts), and the state the daemon reports.
snapshot() {
    kernel_snapshot "$H"
    echo "## files"
    (cd "$T" && find state run -type f ! -name '*.leases' -print0 | sort -z | xargs -0 sha256sum)
    echo "## daemon"
    ctl list --json
    ctl show acc --json
    ctl port list acc --json | jq 'map(del(.rx_bytes, .rx_packets, .tx_bytes, .tx_packets))'
    ctl forward list acc --json
}

# all_refused REASON-PART [GRANTED-ACTION]: each changing method as nobody
# (but those of GRANTED-ACTION) is AccessDenied with the daemon's message
# naming the method's action and containing REASON-PART; nothing changes.
all_refused() {
    local before after entry out rc iface method
    before=$(snapshot)
    for entry in "${changing_calls[@]}"; do
        read -r iface method _ <<<"$entry"
        [[ $(action_of "$method") == "${2:-}" ]] && continue
        out=$(call_as_nobody "$entry") && rc=0 || rc=$?
        ((rc != 0)) || fail "$entry as nobody succeeded: $out"
        assert_contains "$out" "Error org.freedesktop.DBus.Error.AccessDenied: changing kvmnet networks needs root or polkit authorization for $(action_of "$method") (caller uid $NOBODY): " "$entry as nobody"
        assert_contains "$out" "$1" "$entry as nobody"
    done
    # The writable property: the bus lets the Set through, the daemon refuses it.
    out=$(as_nobody dbus-send --system --print-reply --dest=org.kvmnet1 $NET org.freedesktop.DBus.Properties.Set \
        string:org.kvmnet1.Network string:Autostart variant:boolean:true 2>&1) && fail "Set Autostart as nobody: $out"
    assert_contains "$out" "Error org.freedesktop.DBus.Error.AccessDenied: " "Set Autostart as nobody"
    assert_contains "$out" "call SetAutostart" "Set Autostart as nobody"
    after=$(snapshot)
    [[ $after == "$before" ]] || fail "refused calls changed something: $(diff <(echo "$before") <(echo "$after"))"
}

all_read() {
    local entry out
    for entry in "${read_calls[@]}"; do
        # acc spans no hosts: OverlayStatus answers nobody with its typed error, not a refusal.
        out=$(call_as_nobody "$entry") ||
            [[ $entry == "Network OverlayStatus" && $out == *Error.InvalidArgument*"no overlay section"* ]] ||
            fail "$entry as nobody failed: $out"
    done
    out=$(as_nobody dbus-send --system --print-reply --dest=org.kvmnet1 $NET \
        org.freedesktop.DBus.Properties.GetAll string:org.kvmnet1.Network 2>&1) || fail "GetAll as nobody: $out"
    assert_contains "$out" kvmbr6 "Network properties as nobody"
    out=$(as_nobody dbus-send --system --print-reply --dest=org.kvmnet1 $MGR \
        org.freedesktop.DBus.Properties.Get string:org.kvmnet1.Manager string:Version 2>&1) || fail "Version as nobody: $out"
    out=$(as_nobody dbus-send --system --print-reply --dest=org.kvmnet1 $MGR \
        org.freedesktop.DBus.ObjectManager.GetManagedObjects 2>&1) || fail "GetManagedObjects as nobody: $out"
    assert_contains "$out" /org/kvmnet1/network/idle "GetManagedObjects as nobody"
    as_nobody dbus-send --system --print-reply --dest=org.kvmnet1 $NET \
        org.freedesktop.DBus.Introspectable.Introspect >/dev/null 2>&1 || fail "Introspect as nobody"
}

# cli_refused ACTION ARGS...: the CLI shows the refusal as one line naming
# the action, for the verbs it has.
cli_refused() {
    local rc err action=$1
    shift
    err=$(as_nobody "$KVMNETCTL" "$@" 2>&1 >/dev/null </dev/null) && rc=0 || rc=$?
    ((rc == 1)) || fail "kvmnetctl $* as nobody: expected exit 1, got $rc ($err)"
    [[ $err == "kvmnetctl: AccessDenied: changing kvmnet networks needs root or polkit authorization for $action (caller uid $NOBODY): "* ]] ||
        fail "kvmnetctl $* as nobody: expected AccessDenied for $action, got: $err"
}

# ------------------------------------------------------------ 1: no polkit

log "reads work for nobody"
all_read
assert_eq "$(as_nobody "$KVMNETCTL" list --json | jq -r 'map(.name) | join(",")')" acc,idle "list as nobody"
assert_eq "$(as_nobody "$KVMNETCTL" show acc --json | jq -r .config.bridge)" kvmbr6 "show as nobody"
assert_eq "$(as_nobody "$KVMNETCTL" forward list acc --json | jq -r '.[0].host_port')" 8080 "forward list as nobody"
as_nobody "$KVMNETCTL" stats acc >/dev/null
as_nobody "$KVMNETCTL" leases acc >/dev/null
as_nobody "$KVMNETCTL" port list acc >/dev/null

log "the bus policy lets only root own org.kvmnet1"
out=$(as_nobody dbus-send --system --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \
    org.freedesktop.DBus.RequestName string:org.kvmnet1 uint32:0 2>&1) && fail "nobody may own org.kvmnet1: $out"
assert_contains "$out" "Error org.freedesktop.DBus.Error.AccessDenied" "RequestName org.kvmnet1 as nobody"

log "every change is refused for nobody when no polkit runs"
all_refused "polkit is not running on this bus (org.freedesktop.DBus.Error.ServiceUnknown"
before=$(snapshot)
cli_refused org.kvmnet1.network.start-stop start idle
cli_refused org.kvmnet1.network.start-stop stop acc
cli_refused org.kvmnet1.network.configure autostart acc on
cli_refused org.kvmnet1.network.create-delete delete acc
cli_refused org.kvmnet1.network.create-delete create other --mode nat --ipv4 10.45.0.1/24
cli_refused org.kvmnet1.network.configure set acc mtu=1400
cli_refused org.kvmnet1.network.configure unset acc stp
cli_refused org.kvmnet1.port.manage port detach acc tap-acc
cli_refused org.kvmnet1.host.manage host remove acc 52:54:00:44:00:05
cli_refused org.kvmnet1.forward.manage forward remove acc tcp 8080
[[ $(snapshot) == "$before" ]] || fail "refused kvmnetctl commands changed something"
assert_eq "$(net_state acc)" active "acc after refused calls"
assert_eq "$(net_state idle)" inactive "idle after refused calls"

# ------------------------------------------------------------ 2 and 3: real polkitd

POLKITD=/usr/lib/polkit-1/polkitd
# asked WHAT: how often the daemon has asked polkit whether nobody may WHAT.
asked() { grep -F "asking polkit whether uid $NOBODY (" "$T/kvmnetd.log" | grep -c -F "may $1 (" || true; }
# pending_call "Interface Method args..." WHAT: starts the call as nobody in
# the background (its reply goes to $T/pending.out, its pid to $pending) and
# waits until the daemon has asked polkit about it.
pending_call() {
    local before
    before=$(asked "$2")
    (trap - ERR; call_as_nobody "$1") >"$T/pending.out" 2>&1 &
    pending=$!
    track_pid "$pending"
    retry 50 _asked_more "$2" "$before" || fail "the daemon did not ask polkit whether nobody may $2"
}
_asked_more() { (($(asked "$1") > $2)); }
PK_PID=""
polkit_part() {
    [[ -x $POLKITD ]] || { echo "$POLKITD is not installed (Debian package polkitd)"; return 1; }
    unshare --mount --propagation private true 2>/dev/null || { echo "cannot create a mount namespace"; return 1; }
    getent passwd polkitd >/dev/null || { echo "there is no polkitd user"; return 1; }
    return 0
}

_polkit_owned() {
    [[ $(dbus-send --system --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \
        org.freedesktop.DBus.NameHasOwner string:org.freedesktop.PolicyKit1 2>/dev/null) == *"boolean true"* ]]
}

# polkit_start [RULE-FILE]: polkitd on the test's bus, seeing only kvmnet's
# action and the given rule. Returns once it owns its name.
polkit_start() {
    local dir=$T/polkit.$RANDOM
    mkdir -p "$dir/actions" "$dir/rules" "$dir/empty"
    cp "$SRCDIR/dbus/org.kvmnet1.policy" "$dir/actions/"
    [[ -n ${1:-} ]] && cp "$1" "$dir/rules/"
    chmod -R a+rX "$dir"
    # unshare execs sh, which execs polkitd: $! is polkitd's pid.
    # shellcheck disable=SC2016 # $1 and $2 are expanded by that sh
    unshare --mount --propagation private -- sh -c '
        mount --bind "$1/actions" /usr/share/polkit-1/actions &&
        mount --bind "$1/rules" /etc/polkit-1/rules.d &&
        mount --bind "$1/empty" /usr/share/polkit-1/rules.d &&
        exec "$2"' sh "$dir" "$POLKITD" >>"$T/polkitd.log" 2>&1 &
    PK_PID=$!
    track_pid "$PK_PID"
    retry 50 _polkit_owned || fail "polkitd did not take its name: $(cat "$T/polkitd.log")"
}
polkit_stop() {
    stop_pid "$PK_PID" 3
    retry 25 not _polkit_owned || fail "org.freedesktop.PolicyKit1 still owned after polkitd exited"
}

# ------------------------------------------------------------ 4: kvmnetctl's own polkit agent

# A rule makes polkit ask nobody for nobody's own password (AUTH_SELF).
# kvmnetctl, run as nobody on a terminal (script's pty), starts pkttyagent;
# polkit's setuid helper checks the password with PAM. All of that runs in a
# private mount namespace where /etc/shadow is a file of the test's that
# gives nobody a known password (the machine's own is neither read nor
# changed), and /run/dbus/system_bus_socket is the test's bus: the helper
# clears its environment, so it connects to the standard address.
AGENT_HELPER=/usr/lib/polkit-1/polkit-agent-helper-1
agent_part() {
    command -v script >/dev/null || { echo "script (util-linux) is needed for a terminal"; return 1; }
    command -v pkttyagent >/dev/null || { echo "pkttyagent (Debian package polkitd) is not installed"; return 1; }
    command -v openssl >/dev/null || { echo "openssl is needed to hash the test password"; return 1; }
    [[ -u $AGENT_HELPER ]] || { echo "$AGENT_HELPER is not installed setuid root"; return 1; }
    [[ -d /run/dbus ]] || { echo "there is no /run/dbus to mount the test's bus on"; return 1; }
    return 0
}

# on_tty ANSWER ARGS...: kvmnetctl ARGS as nobody on its own terminal in
# the mount namespace above; when the terminal shows "Password:", types
# ANSWER (empty: types nothing). The terminal's text goes to $TTY_OUT;
# returns kvmnetctl's status.
on_tty() {
    local answer=$1 rc tty_in pid command file=$T/tty.$RANDOM
    shift
    command=$(printf '%q ' setpriv --reuid=$NOBODY --regid=$NOBODY --clear-groups "$KVMNETCTL" "$@")
    mkfifo "$file.in"
    # Held open read-write so that script never sees the end of its input.
    exec {tty_in}<>"$file.in"
    # shellcheck disable=SC2016 # $1 and $2 are expanded by that sh
    SHELL=/bin/bash unshare --mount --propagation private -- sh -c '
        mount --bind "$1/shadow" /etc/shadow &&
        mount --bind "$1/run-dbus" /run/dbus &&
        exec script --quiet --return --command "$2" /dev/null' sh "$AGENT_DIR" "$command" \
        <"$file.in" >"$file" 2>&1 &
    pid=$!
    track_pid "$pid"
    if [[ -n $answer ]]; then
        retry 150 grep -q "Password:" "$file" || fail "kvmnetctl $* on a terminal: no password prompt: $(cat "$file")"
        printf '%s\n' "$answer" >&"$tty_in"
    fi
    wait "$pid" && rc=0 || rc=$?
    exec {tty_in}>&-
    TTY_OUT=$(cat "$file")
    return "$rc"
}

# The last question the daemon put to polkit about nobody.
last_question() { grep -F "asking polkit whether uid $NOBODY (" "$T/kvmnetd.log" | tail -n1; }
stored_autostart() { jq -r .autostart "$T/state/networks/acc.json"; }

agent_tests() {
    AGENT_DIR=$T/agent
    mkdir -p "$AGENT_DIR/run-dbus"
    ln -s "$T/bus" "$AGENT_DIR/run-dbus/system_bus_socket"
    local password="kvmnet-test-$RANDOM$RANDOM" out rc stored
    (umask 077 && echo "nobody:$(openssl passwd -6 "$password"):20000:0:99999:7:::" >"$AGENT_DIR/shadow")
    cat >"$T/60-kvmnet-auth-self.rules" <<'EOF'
polkit.addRule(function(action, subject) {
    if (action.id.indexOf("org.kvmnet1.") == 0 && subject.user == "nobody")
        return polkit.Result.AUTH_SELF;
});
EOF
    polkit_start "$T/60-kvmnet-auth-self.rules"
    stored=$(stored_autostart)

    log "agent: without a terminal kvmnetctl starts no agent and is refused at once, saying how to get asked"
    out=$(as_nobody timeout 60 "$KVMNETCTL" autostart acc off 2>&1 </dev/null) && rc=0 || rc=$?
    ((rc == 1)) || fail "kvmnetctl autostart as nobody without a terminal: expected exit 1, got $rc ($out)"
    assert_contains "$out" "polkit: authentication is required and no polkit agent of the caller answered (run kvmnetctl from a terminal without --no-ask-password and it asks for the password itself" "without a terminal"
    assert_contains "$(last_question)" "(org.kvmnet1.network.configure, interactive)" "the daemon's question without a terminal"

    log "agent: --no-ask-password on a terminal: no prompt, and the daemon does not let polkit ask"
    on_tty "" --no-ask-password autostart acc off && fail "--no-ask-password on a terminal succeeded: $TTY_OUT"
    assert_not_contains "$TTY_OUT" "Password:" "--no-ask-password on a terminal"
    assert_contains "$TTY_OUT" "but the call did not allow interactive authorization" "--no-ask-password on a terminal"
    assert_contains "$(last_question)" "(org.kvmnet1.network.configure, not interactive)" "the daemon's question with --no-ask-password"

    log "agent: on a terminal kvmnetctl asks for the password; a wrong one is refused"
    on_tty "wrong-$password" autostart acc off && fail "a wrong password let the call through: $TTY_OUT"
    assert_contains "$TTY_OUT" "org.kvmnet1.network.configure" "the prompt names the action"
    assert_contains "$TTY_OUT" "kvmnetctl: AccessDenied: " "after a wrong password"
    assert_eq "$(stored_autostart)" "$stored" "stored autostart after a wrong password"

    log "agent: the right password lets the call through"
    on_tty "$password" autostart acc off || fail "the right password did not let the call through: $TTY_OUT"
    assert_contains "$TTY_OUT" "Network acc will not start with the daemon." "after the right password"
    assert_eq "$(stored_autostart)" false "stored autostart after the right password"
    assert_contains "$(cat "$T/kvmnetd.log")" "polkit authorized uid $NOBODY" "daemon log"
    polkit_stop
}

if reason=$(polkit_part); then
    log "with polkitd on the bus: the daemon asks it, and it refuses nobody"
    polkit_start
    asked_before=$(grep -c "asking polkit whether uid $NOBODY" "$T/kvmnetd.log" || true)
    # dbus-send does not set ALLOW_INTERACTIVE_AUTHORIZATION.
    all_refused "polkit: authentication is required, but the call did not allow interactive authorization (run kvmnetctl from a terminal without --no-ask-password"
    asked=$(grep -c "asking polkit whether uid $NOBODY" "$T/kvmnetd.log" || true)
    # Each of the changing methods was put to polkit.
    ((asked - asked_before == ${#changing_calls[@]})) ||
        fail "expected ${#changing_calls[@]} questions to polkit in the daemon log, found $((asked - asked_before))"
    assert_contains "$(cat "$T/kvmnetd.log")" "refused uid $NOBODY" "daemon log"
    all_read

    log "while polkit has not answered, the daemon keeps serving"
    kill -STOP "$PK_PID"
    pending_call "Network Stop" "call Stop on network 'acc'"
    ctl autostart idle on >/dev/null # root: no polkit round trip
    assert_eq "$(ctl show idle --json | jq -r .config.autostart)" true "autostart set by root while a question to polkit is pending"
    _pid_alive "$pending" || fail "the call waiting for polkit returned before polkit answered: $(cat "$T/pending.out")"
    kill -CONT "$PK_PID"
    wait "$pending" && fail "nobody's Stop succeeded: $(cat "$T/pending.out")"
    assert_contains "$(cat "$T/pending.out")" "Error org.freedesktop.DBus.Error.AccessDenied" "the pending call after polkit answered"
    ctl autostart idle off >/dev/null
    assert_eq "$(net_state acc)" active "acc after the refused pending Stop"
    polkit_stop

    log "with a polkit rule granting only org.kvmnet1.forward.manage to nobody, nobody may add a forward but not stop the network"
    cat >"$T/50-kvmnet-forward.rules" <<'EOF'
polkit.addRule(function(action, subject) {
    if (action.id == "org.kvmnet1.forward.manage" && subject.user == "nobody")
        return polkit.Result.YES;
});
EOF
    polkit_start "$T/50-kvmnet-forward.rules"
    as_nobody "$KVMNETCTL" forward add acc tcp 8082 10.44.0.5:82 >/dev/null || fail "forward add as nobody with the forward rule"
    assert_eq "$(ctl forward list acc --json | jq -r 'map(.host_port) | sort | join(",")')" 8080,8082 "forwards after nobody's forward add"
    cli_refused org.kvmnet1.network.start-stop stop acc
    assert_eq "$(net_state acc)" active "acc after nobody's refused stop"
    as_nobody "$KVMNETCTL" forward remove acc tcp 8082 >/dev/null || fail "forward remove as nobody with the forward rule"
    assert_eq "$(ctl forward list acc --json | jq -r 'map(.host_port) | join(",")')" 8080 "forwards after nobody's forward remove"
    # Every method of another kind is refused (the rule answers nothing for
    # them, so the default asks for a password, which dbus-send does not
    # allow), and nothing changes.
    all_refused "polkit: authentication is required, but the call did not allow interactive authorization" org.kvmnet1.forward.manage
    polkit_stop

    log "with a polkit rule granting the old org.kvmnet1.manage to nobody (it implies every action), nobody may change things"
    cat >"$T/50-kvmnet-test.rules" <<'EOF'
polkit.addRule(function(action, subject) {
    if (action.id == "org.kvmnet1.manage" && subject.user == "nobody")
        return polkit.Result.YES;
});
EOF
    polkit_start "$T/50-kvmnet-test.rules"
    out=$(call_as_nobody "Network AddForwards string:{\"proto\":\"tcp\",\"host_port\":8081,\"guest\":\"10.44.0.5\",\"guest_port\":81}") ||
        fail "AddForwards as nobody with the rule: $out"
    assert_contains "$out" "array [" "AddForwards' reply (its warnings)"
    assert_eq "$(ctl forward list acc --json | jq -r 'map(.host_port) | sort | join(",")')" 8080,8081 "forwards after nobody's AddForwards"
    as_nobody "$KVMNETCTL" autostart acc on >/dev/null
    assert_eq "$(jq -r .autostart "$T/state/networks/acc.json")" true "stored autostart after nobody's autostart"
    as_nobody "$KVMNETCTL" stop acc >/dev/null
    assert_eq "$(net_state acc)" inactive "acc after nobody's stop"
    # A failing method still returns its own error after authorization.
    out=$(call_as_nobody "Network StartWithConfirmation idle uint32:0") && fail "timeout 0 accepted: $out"
    assert_contains "$out" "Error org.kvmnet1.Error.InvalidArgument: timeout_seconds" "StartWithConfirmation(0) as nobody"
    assert_contains "$(cat "$T/kvmnetd.log")" "polkit authorized uid $NOBODY" "daemon log"

    log "a network deleted while its call waits for polkit: the call is NotFound"
    kill -STOP "$PK_PID"
    pending_call "Network Start idle" "call Start on network 'idle'"
    ctl delete idle
    kill -CONT "$PK_PID"
    wait "$pending" && fail "Start of a deleted network succeeded: $(cat "$T/pending.out")"
    assert_contains "$(cat "$T/pending.out")" "Error org.kvmnet1.Error.NotFound: no network named 'idle'" "the pending Start"
    _pid_alive "$DAEMON_PID" || fail "kvmnetd died"
    if ip -n "$H" link show dev kvmbr7 >/dev/null 2>&1; then fail "the deleted network's bridge kvmbr7 exists"; fi
    ctl create idle --mode nat --bridge kvmbr7 --ipv4 10.46.0.1/24

    log "the daemon stops cleanly while a call waits for polkit; the call fails, nothing runs"
    kill -STOP "$PK_PID"
    pending_call "Network Start idle" "call Start on network 'idle'"
    daemon_stop
    assert_eq "$DAEMON_EXIT" 0 "kvmnetd exit status with a question to polkit pending"
    wait "$pending" && fail "the pending Start succeeded without a daemon: $(cat "$T/pending.out")"
    assert_contains "$(cat "$T/pending.out")" "Error org.freedesktop.DBus.Error.NoReply" "the pending Start"
    kill -CONT "$PK_PID"
    daemon_start
    assert_eq "$(net_state idle)" inactive "idle after the daemon restart"
    polkit_stop
    ctl start acc
    wait_state acc active

    if reason=$(agent_part); then
        agent_tests
    else
        log "SKIP kvmnetctl's own polkit agent: $reason"
    fi
else
    log "SKIP polkit part: $reason"
fi

log "root may"
ctl stop acc
ctl start idle
wait_state idle active
ctl delete acc
ctl delete idle
log PASS
