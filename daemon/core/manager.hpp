// The manager owns the desired state (through the store) and the runtime
// state of every network, and reconciles the kernel with it: start and stop
// are transactions over links, the nftables table, sysctls and dnsmasq, with
// every step undone in reverse order when a later one fails.
#pragma once

#include "core/clock.hpp"
#include "core/committed_table.hpp"
#include "core/confirmation.hpp"
#include "core/dnsmasq.hpp"
#include "core/event_loop.hpp"
#include "core/lease_watch.hpp"
#include "core/mode_driver.hpp"
#include "core/network.hpp"
#include "core/paging.hpp"
#include "core/process.hpp"
#include "core/read_cache.hpp"
#include "core/repair_trigger.hpp"
#include "core/sysctl_hold.hpp"
#include "core/undo.hpp"
#include "core/work_queue.hpp"
#include "model/forward_text.hpp"
#include "model/network.hpp"
#include "plan/converge.hpp"
#include "plan/drift.hpp"
#include "plan/frr.hpp"
#include "plan/kernel_view.hpp"
#include "plan/planner.hpp"
#include "store/layout.hpp"
#include "store/store.hpp"

#include <nlohmann/json.hpp>

#include <deque>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace kvmnet::core {

class AddressView;
class DockerUser;
class Evpn;
class Firewalld;
class FirewalldBus;

using plan::ip_forward_key;
using plan::ipv6_forwarding_key;
using plan::needs_forwarding;
// ... and IPv6 forwarding (net.ipv6.conf.all.forwarding) when they have IPv6.
inline bool needs_ipv6_forwarding(const model::Network& n) { return n.ipv6 && needs_forwarding(n); }

struct ManagerOptions {
    std::string state_dir = "/var/lib/kvmnet";
    std::string runtime_dir = "/run/kvmnet";
    std::string dnsmasq = "/usr/sbin/dnsmasq";
    std::string dnsmasq_user;  // empty: "dnsmasq" when that user exists, else "nobody"
    // How long a spawned dnsmasq may take to become ready (write its pid
    // file) before its start fails: kvmnetd --dnsmasq-ready-timeout.
    std::uint64_t dnsmasq_ready_timeout_usec = 10'000'000;
    // false (kvmnetd --no-firewall-integration): no rules in other
    // firewalls' chains for any network (core/foreign_firewall.hpp).
    bool firewall_integration = true;
    std::string iptables = "/usr/sbin/iptables-nft";
    std::string ip6tables = "/usr/sbin/ip6tables-nft";
    // Documents are synced on a thread of the store, in groups, and a
    // changing call waits for when_durable (kvmnetd); false: each save
    // syncs before it returns (the unit tests, tools driving the manager).
    bool durable_writes_in_background = false;
    // Reads other programs' firewall tables (core/foreign_firewall.hpp),
    // whatever firewall_integration says; empty: they are not read, and a
    // network is never degraded by them.
    std::string nft = "/usr/sbin/nft";
    // EVPN through FRR (core/evpn.hpp): FRR's vtysh, and the directory of
    // FRR's vty sockets ("" for FRR's default, /var/run/frr).
    std::string vtysh = "/usr/bin/vtysh";
    std::string frr_vty_socket;
    // How documents become durable; nullptr: fsync(2) (store::Syncer; the
    // unit tests inject one that fails).
    store::Syncer* syncer = nullptr;
    // A second handle on the kernel's links, used only on the manager's
    // worker thread (core/work_queue.hpp): a stop's bridge deletion runs
    // there, off the event loop. nullptr: on the loop (the unit tests).
    plan::LinkAdapter* worker_links = nullptr;
    // The host's addresses as notifications tell them, for the conflict
    // check of a create, update or start (core/kernel_conflicts.hpp);
    // nullptr: every address is dumped for each (the unit tests).
    AddressView* addresses = nullptr;
};

// Notified after every change, from inside the event loop.
class ManagerListener {
public:
    virtual ~ManagerListener() = default;
    virtual void network_added(const std::string& name) = 0;
    virtual void network_removed(const std::string& name) = 0;
    virtual void network_changed(const std::string& name) = 0;
    // The same guest MAC was seen behind two bridge ports of `name`.
    virtual void mac_conflict(const std::string& name, const std::string& mac,
                              const std::vector<std::string>& ports) = 0;
    // dnsmasq of `name` added, renewed, released or expired a DHCP lease
    // (`event`); hostname is empty when the guest sent none.
    virtual void lease_changed(const std::string& name, const std::string& event, const std::string& mac,
                               const std::string& ip, const std::string& hostname) = 0;
    // The daemon repaired drift of running network `name` on its own
    // (core/manager_repair.cpp): `what` is "firewall", "bridge", "address",
    // "link", "uplink", "route", "sysctl" or "dnsmasq"; `detail` says what was found and done.
    virtual void network_repaired(const std::string& /*name*/, const std::string& /*what*/,
                                  const std::string& /*detail*/)
    {
    }
    // The overlay of running network `name` changed on its own: `what` is
    // "session" (a BGP EVPN session's state) or "peer" (a VTEP came, went,
    // or its reachability changed); `detail` says which and how.
    virtual void overlay_changed(const std::string& /*name*/, const std::string& /*what*/,
                                 const std::string& /*detail*/)
    {
    }
};

class Manager {
public:
    // `clock` times the repairs (first delay, interval, budget, backoff): the loop's
    // when null.
    Manager(ManagerOptions options, EventLoop& loop, plan::LinkAdapter& links, plan::FirewallAdapter& firewall,
            Clock* clock = nullptr);
    ~Manager();
    Manager(const Manager&) = delete;
    Manager& operator=(const Manager&) = delete;

    void set_listener(ManagerListener* listener) { listener_ = listener; }
    // The nftables monitor, paused around element batches of at least
    // `from_elements` elements (CommittedTable::set_notification_pause).
    void set_notification_pause(NotificationPause* pause, std::size_t from_elements)
    {
        committed_.set_notification_pause(pause, from_elements);
    }

    // Loads the stored networks and brings up (or adopts) those marked
    // autostart and those the runtime directory records as active.
    void load();
    // Re-reads the store: new networks appear, removed ones are stopped and
    // vanish, changed ones are updated (restarted when active). A document
    // that does not load leaves its network exactly as it is (reported in
    // its state reason); after everything else is reloaded, reload throws
    // InvalidArgument naming every such file.
    void reload();

    std::vector<std::string> names() const;
    const model::Network& spec(const std::string& name) const;
    State state(const std::string& name) const;
    const std::string& state_reason(const std::string& name) const;
    // state_reason as a code: "none", "start-failed", "mac-conflict", ...
    const std::string& state_reason_code(const std::string& name) const;
    // dnsmasq's supervision state (core/dnsmasq.hpp): "running";
    // "starting" (the network's start waits for it to be ready);
    // "restarting" (it exited, a restart is scheduled or under way);
    // "failed" (the last attempt to start it failed; while the network runs
    // it is retried with backoff); "stopped" (the network is not running, or
    // has no dnsmasq, as in bridge mode).
    std::string_view dnsmasq_state(const std::string& name) const;
    nlohmann::json describe(const std::string& name) const;
    // describe(name).dump() and {"networks": [describe(name), ...]} as
    // text, kept between changes (core/read_cache.hpp): what Describe answers.
    std::string describe_text(const std::string& name) const;
    std::string describe_all_text() const;

    std::string create(const std::string& document);  // returns the network's name
    void remove(const std::string& name);
    // remove() for a call that replies when the stop's bridge deletion is
    // done (stop(name, done)).
    void remove(const std::string& name, Done done);
    // The outcome of a change that waits for dnsmasq: nullptr, or the error.
    using Done = std::function<void(std::exception_ptr)>;
    // With confirm_timeout_s > 0 the start must be confirmed (confirm())
    // within that many seconds, or it is rolled back: the safety net for a
    // bridge takeover that cuts the caller off.
    // The network is activating until dnsmasq is ready; `done` is called
    // then (maybe before start returns), and the event loop serves every
    // other call meanwhile. A second start joins the pending one; a stop or
    // delete cancels it (`done` gets Conflict); other changes of the network
    // get Busy until it is up.
    void start(const std::string& name, std::uint32_t confirm_timeout_s, Done done);
    // As above, waiting for the outcome by running the event loop; only
    // outside the loop's dispatch (tests, and tools that drive the manager).
    void start(const std::string& name, std::uint32_t confirm_timeout_s = 0);
    // The daemon is exiting: starts still waiting for dnsmasq are rolled
    // back (their callers get an error) rather than left half done; an
    // Update's restart among them is finished by the next daemon (its
    // marker stays).
    void cancel_starts();
    void confirm(const std::string& name);
    bool awaiting_confirmation(const std::string& name) const;
    // Tears the network down; with ManagerOptions::worker_links its bridge
    // is deleted on the worker thread and `done` is called once it is gone,
    // while the loop serves every other call. The network is inactive from
    // the moment the stop is asked; a Start, Update or Delete of it asked
    // before the deletion finished waits for it; a second Stop joins it.
    void stop(const std::string& name, Done done);
    // As above, finished before it returns (waiting for a deletion in flight).
    void stop(const std::string& name);
    // Every bridge deletion in flight finished, and its callers answered
    // (the daemon's exit).
    void finish_stops();
    // An update that restarts the network calls `done` once it is up again
    // (or rolled back); others at once. The blocking form runs the loop as
    // start() does.
    void update(const std::string& name, const std::string& document, Done done);
    void update(const std::string& name, const std::string& document);
    // The stored document's revision (store::revision_of), and update()
    // refused with Conflict unless the document is still at `revision`: a
    // client's read-modify-write never overwrites a change made after its
    // read (core/manager_revision.cpp).
    std::string revision(const std::string& name) const;
    void update_at_revision(const std::string& name, const std::string& document, const std::string& revision,
                            Done done);
    void update_at_revision(const std::string& name, const std::string& document, const std::string& revision);
    void set_autostart(const std::string& name, bool autostart);
    // `done` runs on the event loop once every document stored so far is
    // on disk, with the error when that failed (the change is undone by
    // then: document_lost). At once without durable_writes_in_background.
    void when_durable(Done done) { store_.durable().when_durable(std::move(done)); }

    // Guest ports (core/manager_ports.cpp). attach takes one "ports" entry
    // of the document as JSON; list returns configuration plus live state.
    void attach_port(const std::string& name, const std::string& port_document);
    void detach_port(const std::string& name, const std::string& port_name);
    nlohmann::json list_ports(const std::string& name) const;

    // DHCP (core/manager_leases.cpp). leases: dnsmasq's current leases as a
    // JSON array (empty while the network is stopped). add_host takes one
    // ipv4.dhcp.hosts entry as JSON; on a running network dnsmasq re-reads
    // its hosts file (SIGHUP) and keeps running, with every lease.
    // With `remote`, an EVPN network's list also names the other hosts'
    // guests that FRR knows (plan::add_evpn_lease_hosts; may ask FRR).
    nlohmann::json leases(const std::string& name, bool remote = true) const;
    // How many leases leases(name, false) lists, from the lease watch's last
    // reading of the file (refreshed when the watch fires, before the
    // LeaseChanged events go out), not from a new read per call; without a
    // watch (it could not be set up), from the file.
    std::size_t lease_count(const std::string& name) const;
    void add_host(const std::string& name, const std::string& host_document);
    void remove_host(const std::string& name, const std::string& mac);

    // Port forwards (core/manager_forwards.cpp). add_forwards takes one
    // forward object or an array of them (errors name "forward.<key>" or
    // "forwards[i].<key>"), all or none; on a running network they are one
    // element batch in the kernel, whatever the number already there. The
    // result: warnings (a local process listens on a forwarded port).
    std::vector<std::string> add_forwards(const std::string& name, const std::string& forwards_document);
    std::vector<std::string> add_forwards(const std::string& name, std::vector<model::PortForward> forwards,
                                          bool single = false);
    void remove_forward(const std::string& name, const model::ForwardKey& key);
    // The JSON array of the reply (each forward serialised once): each
    // forward's document plus, while running, "connections" (new
    // connections forwarded), "first_packet_bytes" and "dropped" (attempts
    // over the forward's rate). TooLarge past max_reply_bytes.
    std::string list_forwards_text(const std::string& name) const;
    // Drop counters of the network's rules (spoofed, isolated, limits, ...)
    // and forward totals.
    nlohmann::json statistics(const std::string& name) const;
    // Bounded reads (issue 11): the Describe object without "forwards" but
    // with "forward_count"; the forwards one page at a time (core/paging.hpp).
    nlohmann::json describe_brief(const std::string& name) const;
    Page list_forwards_page(const std::string& name, const std::string& cursor, std::uint32_t limit) const;
    // Read-only checks of a network against the kernel as it is now
    // (core/manager_diagnose.cpp): {"network", "state", "state_reason",
    // "verdict": pass|warn|fail, "checks": [{"check", "status", "detail"}]}.
    // The first without firewalld's check; the second adds it once firewalld
    // answers (or does not, in time): `done` runs from the event loop.
    nlohmann::json diagnose(const std::string& name) const;
    void diagnose(const std::string& name, std::function<void(nlohmann::json report)> done);

    // A link appeared, changed or vanished (rtnetlink notification). A
    // running network whose bridge was deleted or downed by someone else
    // becomes degraded; back to active when the bridge is up again.
    // `removed` (RTM_DELLINK): judged as gone without a lookup, which would
    // wait for RTNL while the deletion finishes (a Stop's, on the worker); a
    // link made again under the name sends a notification of its own.
    // `link_index` (the notification's, 0: unknown): a removal of another
    // index than a running network's bridge is an earlier link of its name.
    void link_changed(const std::string& link_name, bool removed = false, int link_index = 0);
    // A bridge learnt `mac` behind `port_index` (rtnetlink FDB notification).
    void fdb_learned(int bridge_index, const std::string& mac, int port_index);

    // Self-healing (core/manager_repair.cpp). link_changed, address_changed
    // (an address appeared on or left link `link_index`), route_changed, sysctl_changed and
    // firewall_changed (someone else changed table inet kvmnet: `detail`
    // names who, or the monitor lost notifications) only mark what may have
    // drifted; one sync a short moment later (core/repair_trigger.hpp)
    // converges everything marked by then, so one burst of notifications is
    // one repair. It compares the kernel as it is then with the desired state
    // and changes only what differs, so the daemon's own changes never loop.
    void address_changed(int link_index);
    void firewall_changed(const std::string& detail);
    // The nftables monitor lost notifications (ENOBUFS): drift only when the
    // kernel's generation is no longer that of our last commit (a big
    // element batch of our own overflows the socket by itself).
    void firewall_notifications_lost();
    // Link notifications were lost: every running network is re-checked.
    void recheck_links();
    // Another program changed one of its tables (Docker created or
    // recreated DOCKER-USER, someone flushed it, ufw added a rule): a
    // moment later kvmnet's rules there are re-synced, the other tables
    // re-read and every running network's state judged again (degraded
    // while another table drops its guests' traffic;
    // core/manager_foreign.cpp).
    void foreign_firewall_changed();
    // kvmnetd's nftables monitor reports every change of another program's
    // table (foreign_firewall_changed): the other tables' chains are then
    // listed once per such change instead of once per start, a dump that
    // also holds kvmnet's own 7 chains per network. Without a monitor (unit
    // tests) they are listed every time.
    void watch_foreign_tables() { foreign_tables_watched_ = true; }

    // EVPN through FRR (core/evpn.hpp, core/manager_evpn.cpp). The
    // EvpnState property: "" without EVPN or while not running, else
    // established, partial, down or frr-unreachable (as last polled).
    std::string evpn_state(const std::string& name) const;
    // Describe's "evpn" object, read from FRR now (at most once a second);
    // null without EVPN or while not running.
    nlohmann::json evpn_status(const std::string& name) const;
    // OverlayStatus (plan/overlay_status.hpp): the tunnel per remote host,
    // read now (FRR at most once a second). InvalidArgument without an
    // overlay section; a stopped network's has only its configured peers.
    nlohmann::json overlay_status(const std::string& name) const;
    // firewalld on the bus (core/firewalld.hpp): set once the bus connection
    // exists, before load(); it must outlive the manager's use of it.
    void set_firewalld_bus(FirewalldBus& bus);
    // firewalld reloaded, appeared or vanished on the bus: its run-time
    // zone bindings are gone, the bridges go back into the zone a moment later.
    void firewalld_changed();
    void sync_foreign_firewall_now();
    // A sysctl of link `link_index` or, for an index ≤ 0, of every link
    // changed (rtnetlink RTM_NEWNETCONF: forwarding, not route_localnet,
    // which is polled): the sysctls the running networks on that bridge, or
    // all of them, hold on are checked (and repaired) a moment later.
    void sysctl_changed(int link_index = 0);
    // A route through link `link_index` was deleted (rtnetlink
    // RTM_DELROUTE): the routes of the running network on that bridge are
    // checked (and repaired) a moment later. One was added (`added`,
    // RTM_NEWROUTE): checked only when the last check found one missing (a
    // failed or deferred repair, the route then put back by hand), so that
    // the state clears; otherwise it is the kernel's or kvmnet's own.
    void route_changed(int link_index, bool added = false);
    // The last repair of the network: "TIME WHAT: DETAIL", empty when none.
    const std::string& last_repair(const std::string& name) const;

private:
    // Everything the manager keeps per network (core/network.hpp).
    using Entry = Network;

    Entry& entry(const std::string& name);
    const Entry& entry(const std::string& name) const;
    // entry() for a call that stores the document: Conflict while the
    // network was adopted without one.
    Entry& changeable(const std::string& name);
    // The document was stored whole: a problem with the stored file is gone.
    void document_stored(Entry& e);
    // A save that failed after its call returned (store::Store::on_lost):
    // memory and kernel go back to the document on disk
    // (core/manager_durable.cpp).
    void document_lost(const std::string& name, std::exception_ptr error);
    // The network runs (or stays stopped) with `n` from now on, as Reload
    // takes a changed file: torn down and brought up with it unless inactive.
    void take_document(Entry& e, model::Network n);
    std::vector<model::Network> configured_except(const std::string& name) const;
    // The running networks' documents (with `plus`, without `minus`), in
    // place: a start with 1,000 networks running does not copy 1,000
    // documents (active_specs does, for Diagnose).
    using Running = std::vector<const model::Network*>;
    Running active_networks(const std::string& plus = {}, const std::string& minus = {}) const;
    std::vector<model::Network> active_specs(const std::string& plus = {}, const std::string& minus = {}) const;
    std::string pick_bridge_name() const;
    // The dnsmasq supervision's runtime directory (store::Layout).
    // A state without a reason, or with one and its machine-readable code
    // (the StateReasonCode property; each code is listed in docs/dbus-api.md).
    void set_state(Entry& e, State state);
    void set_state(Entry& e, State state, std::string code, std::string reason);

    // Start, live update and repair run one converge: observe, plan
    // (plan::plan_converge: pure), apply. They differ only in how a failure
    // is undone.
    enum class Failure {
        start,   // tear down what the start made (its undo journal), in reverse order
        update,  // converge back to the old document (planned from the new one as running)
        repair,  // keep what was achieved, go on with the next step
    };
    // The repairs of one sync (manager_repair.cpp): what its networks share,
    // read once per sync.
    struct RepairSync {
        std::map<std::string, std::string> sysctls;  // held sysctls as read
        std::set<std::string> turned_on;             // written in this sync (ip_forward: once for all)
        std::optional<std::vector<plan::RouteInfo>> routes;
    };
    // One network's repair within a sync: its budget, and what it did.
    struct RepairRun {
        RepairSync& sync;
        std::function<bool()> allowed{};  // the budget, asked before a change; no: deferred
        std::vector<std::string> done{};  // what was repaired, in words
        std::string what{};               // the signal's category: the most drastic repair
        bool stopped = false;             // deferred, or the bridge is someone else's: no more steps
        bool replaced = false;            // someone else's interface has the bridge's name
        bool ports_changed = false;
        plan::DriftKinds again = 0;  // what the steps changed besides: observed again
        std::string failure{};       // a links repair that failed: the state reason
    };
    // Brings e (whose spec is `desired`) from `observed` to `desired`. A
    // start (nothing running) goes through bring_up, which waits for
    // dnsmasq's readiness without blocking the loop; a live update applies
    // at once and throws after converging back; a repair (`run`: the sync's;
    // none: an update converging back) applies what it can.
    void converge(Entry& e, const model::Network& desired, const plan::ConvergeObserved& observed, Failure policy,
                  RepairRun* run = nullptr);
    // One step towards e.spec; `running`: the document it comes from (none: a start).
    void apply_step(Entry& e, const model::Network* running, const plan::ConvergeStep& step, Undo& undo,
                    std::string& what, RepairRun* run = nullptr);
    // A repair's step (apply_step's, for the steps only a repair plans).
    void apply_repair(Entry& e, const plan::ConvergeStep& step, RepairRun& run);
    // The start's converge from its next step up to dnsmasq's readiness
    // (which calls it again) or to its end, then finish_start.
    void advance_start(const std::string& name, std::exception_ptr error);

    // The start transaction. Everything up to dnsmasq runs at once; the
    // rest (recording the network as active) when dnsmasq is ready, in
    // finish_start. `done` gets the outcome.
    // With `defer`, the kernel work starts on the next turn of the loop
    // (the network is activating from now on).
    void bring_up(Entry& e, std::uint32_t confirm_timeout_s, Done done, bool defer = false);
    void run_start(Entry& e);
    // Runs the first queued start's kernel steps and, while more wait, asks
    // for another turn.
    void run_queued_start();
    void finish_start(const std::string& name, std::exception_ptr error);
    // For callers that only log the outcome (load, reload, rollbacks).
    Done log_outcome(const std::string& name);
    // Runs the loop until `op` calls its Done; rethrows its error.
    void wait(const std::function<void(Done)>& op);
    // Busy while a start waits for dnsmasq: changes would race it.
    void check_not_starting(const Entry& e) const;
    // After the restart of an update: the marker goes, and a failed start
    // brings back the previous document.
    void update_or_restart(const std::string& name, const std::string& document, Done& done);
    // The lease file of a running network, when its leases still hold with
    // `next` (same subnet); restore_leases puts it back after a tear_down.
    std::optional<std::string> leases_to_keep(const Entry& e, const model::Network& next) const;
    void restore_leases(const std::string& name, const std::optional<std::string>& leases);
    void restarted(const std::string& name, const model::Network& old, const model::Network& next,
                   const std::set<std::string>& foreign, std::exception_ptr error, const Done& done);
    // The network's mode driver (core/mode_driver.hpp).
    ModeDriver& driver(const model::Network& n);
    // Self-healing (core/manager_repair.cpp): marks for the one repair
    // trigger, and its sync, which repairs each marked network and
    // re-applies the table when it is marked.
    void mark_dirty(Entry& e, plan::DriftKinds kinds);
    void sync(const std::map<std::string, plan::DriftKinds>& due);
    // Observes what `kinds` marks, converges (Failure::repair), and again
    // while the steps changed what another observation would see.
    void repair(Entry& e, plan::DriftKinds kinds, RepairSync& sync);
    plan::ConvergeObserved observe_drift(Entry& e, plan::DriftKinds kinds, RepairSync& sync);
    // The bridge's addresses and, of `all`, the routes through it: what
    // the route repair (observe_drift) and Diagnose (observe) judge.
    plan::ConvergeObserved::Routes routes_through(int bridge_index, const std::vector<plan::RouteInfo>& all) const;
    // The last route observation of `e` lacked one of its routes.
    static bool route_seen_missing(const Entry& e);
    // Turns a held sysctl on again; false (logged) when that failed.
    bool turn_on_sysctl(const std::string& key);
    void repair_firewall();
    void note_repair(Entry& e, const std::string& what, const std::string& detail);
    // Logs and signals one repair made of `done` (in words), then assesses.
    void note_done(Entry& e, const std::vector<std::string>& done, const std::string& what);
    // Our bridge (owner mark) under a name other than the network's, if any.
    std::optional<plan::LinkInfo> renamed_bridge(const Entry& e);
    void rename_back(const std::string& from, const std::string& to, bool up);
    // Refreshes e.foreign_ports from the kernel while our bridge exists.
    void observe_ports(Entry& e);
    // Enslaves the remembered foreign ports that are free to a recreated bridge; their names.
    std::vector<std::string> reattach_foreign_ports(Entry& e);
    // The sysctls held on while a NAT or routed network runs
    // (plan::held_sysctls) are marked dirty at every forwarding
    // notification (sysctl_changed). route_localnet sends none: this poll
    // reads it every 2 s on each NAT network's bridge, at most 64 bridges
    // per turn of the loop (forwarding_cursor_: where the pass goes on), and
    // marks only a network where it is off, or that is not active (its
    // every held sysctl, whatever notifications said).
    void ensure_forwarding_watch();
    void poll_forwarding();
    std::unique_ptr<Timer> forwarding_timer_;
    std::string forwarding_cursor_;
    std::string forwarding_problem_;  // while ip_forward is off behind our back (part of the state reason)
    std::string firewall_drift_;      // what the pending firewall repair was marked for
    // The end of a deletion once the network is stopped: its taps, the
    // stored document, the entry.
    void delete_stopped(Entry& e);
    // Deletes `bridge` if it carries this network's alias (logs failures).
    void delete_owned_bridge(const std::string& name, const std::string& bridge);
    // The same on the worker thread (ManagerOptions::worker_links), as a
    // stop's deletion: calls on the network wait for it, `then` runs on
    // the loop once it is done (at once without a worker or a bridge).
    void delete_owned_bridge(Entry& e, const std::string& bridge, std::function<void()> then);
    // The stop of an Update's restart, then `then` on the loop (with the
    // stop's problems, logged: the new document starts all the same).
    void stop_for_restart(const std::string& name, Done then);
    // Rolls the network back unless confirm() comes before `deadline` (Unix time).
    void arm_confirmation(Entry& e, std::int64_t deadline);
    ConfirmationDeadline& confirmation(Entry& e);
    // Keeps the forwarding-database poll running while any network has ports.
    void ensure_fdb_poll();
    // Ports (core/manager_ports.cpp).
    // `previous`: the port's configuration before this change, if any.
    void apply_port(Entry& e, const model::Port& port, const model::Port* previous = nullptr);
    void attach_ports(Entry& e);
    void check_port_mac(const Entry& e, const model::Port& port);
    void poll_fdb();
    // A MAC learnt behind a port of e's bridge (core/mac_watch.hpp): a conflict is reported.
    void note_fdb(Entry& e, const std::string& mac, int port_index);
    // Applies a new document to a running network without a restart
    // (plan::UpdatePath::live: only bridge settings, autostart and ports
    // differ), on the converge path. All or nothing: the document is stored
    // first (a failed save changes nothing), and a kernel step that fails
    // stores the old document again and converges back to it.
    void update_live(Entry& e, const model::Network& next);
    // The kernel side of detaching `port` from e's bridge: a tap goes, an
    // existing interface gets back what it had.
    void release_port(Entry& e, const model::Port& port);
    std::unique_ptr<EventSource> fdb_timer_;
    // Adds (or removes) the forwards' elements on a running network, then
    // calls `journal`; undoes the elements when that throws.
    void journalled_change(Entry& e, const std::vector<model::PortForward>& forwards, bool add,
                           const std::function<void()>& journal);
    // Counts a journalled forward change; rewrites the document now and then.
    void note_journal(Entry& e);
    // The forward maps' per-element counters, dumped from the kernel at most
    // every 20 x the last dump's duration (at most 1 s, at least 4 x) and reused meanwhile, so
    // that queued reads cost one dump (2.7 s at 100k forwards), not one each.
    // Kept across forward changes, whose keys are remembered (`changed`:
    // they read as new), and across table applies that touched no forward
    // map (keep_counters); dropped by any other.
    struct ForwardCounters {
        bool valid = false;
        std::uint64_t taken_usec = 0;
        std::uint64_t reuse_usec = 0;
        std::map<std::string, std::map<std::vector<std::string>, plan::ElementCounters>> by_set;
        std::map<std::string, std::pair<std::uint64_t, std::uint64_t>> totals;  // network -> connections, dropped
        std::set<model::ForwardKey> changed;                                    // added or removed since the dump
        // Per network and forward, its elements' counters summed (forward_listing).
        struct Counted {
            model::ForwardKey key;
            std::uint16_t host_port_last = 0;
            bool rate = false;
            auto operator<=>(const Counted&) const = default;
        };
        struct Sums {
            std::uint64_t connections = 0;
            std::uint64_t bytes = 0;
            std::uint64_t dropped = 0;
            std::size_t missing = 0;
        };
        mutable std::map<std::string, std::map<Counted, Sums>> per_forward;
    };
    const ForwardCounters& forward_counters() const;
    // Statistics' drop counters, dumped and reused under the same rule: the
    // elements of the drop counter sets (`drops`, commented "NAME: what";
    // `stale`: the bridges whose elements a table apply added or deleted
    // since) and the table's commented rules (`rules`, read only for a
    // network with limits chains; `stale`: the chains an apply changed
    // since). A network with nothing stale is served from the dump.
    struct RuleCounters {
        bool valid = false;
        std::uint64_t taken_usec = 0;
        std::uint64_t reuse_usec = 0;
        std::vector<plan::RuleCounter> rules;
        std::set<std::string> stale;
        // Fresh for a network whose part of the table is named by `names`.
        bool fresh(const std::vector<std::string>& names, std::uint64_t now) const;
    };
    mutable RuleCounters drop_counters_;
    mutable RuleCounters rule_counters_;
    const std::vector<plan::RuleCounter>& drop_counters(const std::string& bridge) const;
    const std::vector<plan::RuleCounter>& rule_counters(const std::vector<std::string>& chains) const;
    // After a table apply: the counter dumps stay in use for what it did
    // not touch (invalidated exactly: an element or rule it deleted or
    // added, or whose set or chain it replaced, reads anew).
    void keep_counters(const TableTouched& touched);
    void forget_counters();
    // What ListForwards says of f besides its members (`counters` are
    // forward_counters(), or none when e is not running).
    model::ForwardListing forward_listing(const Entry& e, const model::PortForward& f,
                                          const ForwardCounters& counters) const;
    nlohmann::json forward_json(const Entry& e, const model::PortForward& f, const ForwardCounters& counters) const;
    mutable ForwardCounters forward_counters_;
    // Per network, kept across forward changes (core/manager_forwards.cpp):
    // the overlap index of its forwards and their part of its revision, so
    // that one add or remove costs the same at 100,000 forwards as at none.
    // Any other change of a network may change its forwards: changeable(),
    // load, reload, remove and an update's restart forget its cache
    // (forget_forwards), and one made for another forwards vector (address
    // or size) is made again.
    struct ForwardCache {
        model::ForwardIndex index;
        std::uint64_t revision_part = 0;
        const model::PortForward* data = nullptr;
        std::size_t size = 0;
        // The forwards' text in Describe (model::append_json_text, joined
        // by commas) once a Describe asked for it, and where each ends.
        bool texts_made = false;
        std::string texts;
        std::vector<std::size_t> text_ends;
    };
    mutable std::map<std::string, ForwardCache> forward_caches_;
    // The local listeners (sock_diag, four dumps) as add_forwards last
    // listed them, and the loop iteration that did (sd_event_get_iteration):
    // the AddForwards calls that one turn of the bus dispatch serves share
    // one listing. A new iteration lists again; before the loop's first
    // iteration every call does.
    struct ListenerDump {
        std::uint64_t turn = 0;
        std::vector<plan::Listener> listeners;
    };
    std::optional<ListenerDump> listener_dump_;
    const std::vector<plan::Listener>& local_listeners();
    ForwardCache& forward_cache(const Entry& e) const;
    // The items of Describe's "forwards" array (ForwardCache::texts).
    const std::string& forwards_text(const Entry& e) const;
    void forget_forwards(const std::string& name) const
    {
        forward_caches_.erase(name);
        reads_.forget(name);
    }
    // The revision's document part and the Describe text of each network.
    mutable ReadCache reads_;
    // firewalld's zone of e's bridge as Describe reports it, if it reports one.
    std::optional<std::string> firewalld_zone(const Entry& e) const;
    // changeable(), keeping the network's forward cache: for AddForwards and
    // RemoveForward, which keep it up to date themselves.
    Entry& forwards_changeable(const std::string& name);
    std::vector<std::string> tear_down(Entry& e);
    // tear_down in two halves around the bridge deletion: the first does
    // everything before it and names the link to delete (none when the
    // bridge is gone or not ours); the second, what comes after (the
    // runtime directory, a cancelled start's callers).
    struct TearDown {
        std::string name;
        std::string bridge;                    // to delete; empty: nothing
        std::shared_ptr<const PidFd> dnsmasq;  // to stop (with `on_worker`); null: none
        std::vector<std::string> problems;
        std::unique_ptr<Entry::PendingStart> cancelled;
    };
    // `on_worker`: dnsmasq's signal and wait are left to the caller too.
    TearDown begin_tear_down(Entry& e, bool on_worker = false);
    void end_tear_down(TearDown& t);
    // The end of an asynchronous stop, on the loop: its problems, its
    // callers, and what waited for it.
    void stop_finished(const std::string& name, Entry::PendingStop* token, TearDown t, std::exception_ptr error);
    // Runs `then` now, or once the stop in flight of e finished.
    bool defer_while_stopping(Entry& e, std::function<void()> then);
    // Finishes the stop in flight of network `name`, if any (before the
    // daemon itself erases the network: a reload, a creation undone).
    void settle_stop(const std::string& name);
    // Unsupported when `n` asks for the fast path and the kernel has no flowtables.
    void check_fast_path(const model::Network& n);
    // The flowtable fast path of the running fast_path networks (kernel/nft_fastpath.cpp).
    void sync_fast_path(const Running& active);
    void apply_firewall(const Running& active);
    // kvmnet's part of FRR brought to the running EVPN networks; the poll
    // armed while there are any.
    void sync_evpn(const Running& active);
    std::vector<plan::EvpnNetwork> evpn_networks(const Running& active) const;
    // A start refused before anything changes when FRR cannot take its EVPN settings.
    void check_evpn(const std::string& name);
    void evpn_poll();
    // The overlay status from the kernel and FRR's state as last read.
    nlohmann::json overlay_status_now(const Entry& e) const;
    // The network's view of FRR, read now (`fresh`, Diagnose) or as last
    // polled (the state); nullopt without EVPN or before FRR was first asked.
    std::optional<plan::EvpnView> evpn_view(const std::string& name, bool fresh) const;
    void update_ip_forward(const Running& active);
    // IPv6 (core/manager_ipv6.cpp): net.ipv6.conf.all.forwarding.
    void update_ipv6_forward(const Running& active);
    // Sets active or degraded (with the reason) from the bridge and dnsmasq as they are now.
    void assess(Entry& e);
    // The kernel and the daemon's own knowledge of the network, for
    // plan::drift: its links only, or (`full`, Diagnose) everything it checks.
    plan::Observed observe(const Entry& e, bool full) const;
    // The supervisor of e's dnsmasq, made on first use.
    Dnsmasq& dnsmasq_of(Entry& e);
    DirectoryWatch& directory_watch();
    // Starts reporting lease changes of a running network with DHCP (logs, never throws).
    void watch_leases(Entry& e);
    // Stores a document that differs from e.spec only in its static hosts and
    // hands the hosts to a running dnsmasq.
    // `forwards_aside`: next has none of e's forwards, which stay as they
    // are (host_change_base).
    void commit_hosts(Entry& e, model::Network next, bool forwards_aside = false);
    model::Network host_change_base(Entry& e, bool& aside);
    // dnsmasq's hosts and names files and their SIGHUP, when it reads them; PropertiesChanged.
    void reload_hosts(Entry& e, bool dnsmasq_reads_hosts);

    ManagerOptions options_;
    store::Layout layout_;
    EventLoop& loop_;
    std::unique_ptr<Clock> loop_clock_;  // when no clock was given
    Clock& clock_;
    plan::LinkAdapter& links_;
    plan::FirewallAdapter& firewall_;
    CommittedTable committed_;
    store::Store store_;
    SysctlHold ip_forward_hold_;
    SysctlHold ipv6_forward_hold_;
    // While load() adopts networks left running: they count as running for
    // the table, so adopting one does not drop the others' rules.
    std::set<std::string> adopting_;
    std::string dnsmasq_user_;
    // The one inotify instance of every network's dnsmasq readiness and
    // lease file (core/dir_watch.hpp), made on first use; outlives networks_.
    std::unique_ptr<DirectoryWatch> dir_watch_;
    std::map<std::string, Entry> networks_;
    std::map<model::Mode, std::unique_ptr<ModeDriver>> drivers_;  // made on first use
    ManagerListener* listener_ = nullptr;
    std::unique_ptr<DockerUser> docker_user_;  // null: --no-firewall-integration
    std::unique_ptr<EventSource> foreign_timer_;
    std::unique_ptr<Evpn> evpn_;
    std::unique_ptr<EventSource> evpn_timer_;         // the poll, while an EVPN network runs
    std::map<std::string, std::string> evpn_states_;  // EvpnState as last announced
    std::unique_ptr<EventSource> firewalld_retry_;    // a failed firewalld sync is retried
    std::unique_ptr<Firewalld> firewalld_;            // null: no bus given (unit tests)
    bool exiting_ = false;                            // cancel_starts ran: the daemon exits
    bool firewalld_changed_ = false;                  // the next sync asks firewalld whatever
    std::unique_ptr<EventSource> firewalld_assess_;   // firewalld's problems changed: judge the states
    // Each overlay network's status as the poll last compared it (OverlayChanged).
    std::map<std::string, nlohmann::json> overlay_seen_;
    std::set<std::string> known_bridges() const;
    // Other programs' tables as last read (read_foreign_rules).
    std::optional<std::vector<plan::ForeignChain>> foreign_rules_;
    void read_foreign_rules_now();
    // The chains of every table but ours as last listed (nullopt: the
    // listing failed), kept while watched and no other table changed.
    const std::optional<std::vector<plan::ChainInfo>>& other_chains();
    std::optional<std::vector<plan::ChainInfo>> other_chains_;
    bool other_chains_valid_ = false;
    bool foreign_tables_watched_ = false;
    // With durable_writes_in_background: the store's finished batches, and
    // the hand-over of each loop turn's saves as one batch.
    std::unique_ptr<EventSource> durable_done_;
    std::unique_ptr<EventSource> durable_submit_;
    // Starts asked over the bus, by name, oldest first: one runs per turn of
    // the loop (start_turn_), so a caller that comes meanwhile waits behind
    // one start's kernel steps, not behind every start asked before it.
    std::deque<std::string> start_queue_;
    std::unique_ptr<EventSource> start_turn_;
    // The worker thread of the bridge deletions (ManagerOptions::worker_links).
    std::unique_ptr<WorkQueue> worker_;
    // Last: destroyed first, before the members its sync uses.
    RepairTrigger repairs_;
};

}  // namespace kvmnet::core
