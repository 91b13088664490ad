// Self-healing: drift that someone else causes in a running network's kernel
// objects is repaired without being asked, along one converge path.
// Notifications (rtnetlink for links, addresses, deleted routes and
// forwarding sysctls, nftables for our table) and the sysctl poll only mark what may have
// drifted; one sync of the repair trigger (core/repair_trigger.hpp) a short
// moment later observes each marked network and converges it
// (Manager::converge with Failure::repair: plan::plan_converge, pure, then
// every step, keeping what it achieved when a step fails).
// A burst of notifications (`ip link del` also removes the addresses and
// releases the ports) is therefore one repair, and the daemon's own changes
// never loop: by the time their notifications are read the kernel already
// matches. For nftables, where reading the table back is costly, the
// monitor drops our own transactions by their process id instead
// (kernel/nft_monitor.cpp), and a marked table is re-applied whole.
#include "core/log.hpp"
#include "core/manager.hpp"
#include "core/mode_driver.hpp"
#include "core/undo.hpp"
#include "plan/converge.hpp"
#include "plan/route_text.hpp"

#include <algorithm>
#include <utility>

namespace kvmnet::core {
namespace {

// How often route_localnet is read: of the held sysctls it alone sends no
// notification (forwarding comes as RTM_NEWNETCONF: sysctl_changed).
constexpr std::uint64_t forwarding_poll_usec = 2'000'000;
// At most this many bridges are read in one turn of the loop, the next ones
// a moment later: a turn costs the same with 1,000 NAT networks running, and
// a start never waits behind a pass over all of them.
constexpr std::size_t forwarding_poll_batch = 64;
constexpr std::uint64_t forwarding_batch_gap_usec = 1'000;
// The repair trigger's scope of the one nftables table of every network (a
// network's name is never empty), so that neither starves the other.
const std::string table_scope;

std::string join_names(const std::vector<std::string>& names)
{
    std::string text;
    for (const auto& name : names)
        text.append(text.empty() ? "" : ", ").append(name);
    return text;
}

std::string dotted(std::string key)
{
    std::replace(key.begin(), key.end(), '/', '.');
    return key;
}

}  // namespace

const std::string& Manager::last_repair(const std::string& name) const { return entry(name).last_repair; }

void Manager::note_repair(Entry& e, const std::string& what, const std::string& detail)
{
    e.repaired(what, detail);
    if (listener_) {
        listener_->network_repaired(e.spec.name, what, detail);
        listener_->network_changed(e.spec.name);
    }
}

void Manager::mark_dirty(Entry& e, plan::DriftKinds kinds)
{
    if (is_running(e.state)) repairs_.mark(e.spec.name, kinds);
}

void Manager::observe_ports(Entry& e)
{
    const model::Network& n = e.spec;
    const auto bridge = links_.find_link(n.bridge);
    // While the bridge is missing (deleted: the kernel released its ports
    // first) the last observation is what a repair restores.
    if (!bridge || bridge->alias != plan::owner_alias(n.name)) return;
    std::set<std::string> seen;
    for (const plan::LinkInfo& l : links_.list_ports(bridge->index))
        if (l.name != n.uplink && !driver(n).owns_link(n, l.name) &&
            std::none_of(n.ports.begin(), n.ports.end(), [&](const model::Port& p) { return p.name == l.name; }))
            seen.insert(l.name);
    e.foreign_ports = std::move(seen);
}

std::vector<std::string> Manager::reattach_foreign_ports(Entry& e)
{
    std::vector<std::string> back;
    for (const std::string& name : e.foreign_ports) {
        const auto link = links_.find_link(name);
        if (!link || link->master_index != 0) continue;  // gone, or someone else's now
        try {
            links_.set_master(name, e.spec.bridge);
            back.push_back(name);
        } catch (const std::exception& err) {
            log_error("network " + e.spec.name + ": re-attaching " + name + " to " + e.spec.bridge +
                          " failed: " + err.what(),
                      e.spec.name);
        }
    }
    observe_ports(e);
    return back;
}

void Manager::address_changed(int link_index)
{
    for (auto& [name, e] : networks_)
        if (is_running(e.state) && e.bridge_index != 0 && e.bridge_index == link_index)
            mark_dirty(e, plan::drift_addresses);
}

void Manager::recheck_links()
{
    for (auto& [name, e] : networks_)
        mark_dirty(e, plan::drift_links | plan::drift_ports | plan::drift_routes);
}

void Manager::sync(const std::map<std::string, plan::DriftKinds>& due)
{
    RepairSync shared;
    for (const auto& [scope, kinds] : due) {
        if (scope == table_scope) continue;
        const auto it = networks_.find(scope);
        if (it != networks_.end() && is_running(it->second.state)) repair(it->second, kinds, shared);
    }
    if (due.count(table_scope)) repair_firewall();
}

plan::ConvergeObserved Manager::observe_drift(Entry& e, plan::DriftKinds kinds, RepairSync& shared)
{
    const model::Network& n = e.spec;
    plan::ConvergeObserved o;
    o.running = &n;  // a repair converges to the document the network runs with
    // The bridge is looked up only when needed: a change of "all"
    // (ip_forward) brings every running network here, and a sysctl that is
    // on needs no bridge to be told so.
    bool looked_up = false;
    const auto ours = [&] {
        if (!looked_up) {
            o.bridge = links_.find_link(n.bridge);
            looked_up = true;
        }
        return o.bridge && o.bridge->alias == plan::owner_alias(n.name);
    };
    if (kinds & (plan::drift_links | plan::drift_addresses)) {
        o.links = true;
        ours();
        if (!o.bridge) o.renamed = renamed_bridge(e);
        e.bridge_index = o.bridge ? o.bridge->index : 0;
    }
    if (kinds & plan::drift_ports) {
        ours();
        o.ports.emplace();
        for (const model::Port& p : n.ports)
            (*o.ports)[p.name] = links_.find_link(p.name);
        for (const auto& [port, problem] : e.port_problems)
            o.port_problems.insert(port);
    }
    if (kinds & plan::drift_sysctls) {
        o.sysctls.emplace();
        for (const std::string& key : plan::held_sysctls(n)) {
            auto cached = shared.sysctls.find(key);
            if (cached == shared.sysctls.end()) {
                std::string value;
                try {
                    value = links_.read_sysctl(key).value_or("");
                } catch (const std::exception& err) {
                    log_error("reading " + dotted(key) + " failed: " + err.what());
                }
                cached = shared.sysctls.emplace(key, value).first;
            }
            // A missing bridge gets its own when the repair recreates it.
            const bool on = !cached->second.empty() && cached->second[0] == '1';
            if (key.rfind("net/ipv4/conf/", 0) == 0 && !on && !ours()) continue;
            (*o.sysctls)[key] = cached->second;
        }
    }
    if ((kinds & plan::drift_routes) && !o.links && ours()) {
        // One dump of the routes per sync, whatever the number of networks.
        if (!shared.routes) shared.routes = links_.list_routes();
        o.routes = routes_through(o.bridge->index, *shared.routes);
        // The state judges this observation until the next one.
        e.routes_seen = o.routes;
        e.route_problem.clear();
    }
    return o;
}

plan::ConvergeObserved::Routes Manager::routes_through(int bridge_index, const std::vector<plan::RouteInfo>& all) const
{
    plan::ConvergeObserved::Routes seen;
    seen.addresses = links_.list_addresses_of(bridge_index);
    for (const plan::RouteInfo& r : all)
        if (r.link_index == bridge_index) seen.routes.push_back(r);
    return seen;
}

void Manager::repair(Entry& e, plan::DriftKinds kinds, RepairSync& shared)
{
    const std::string name = e.spec.name;
    e.repair_wait.clear();
    RepairRun run{shared};
    // Within the budget (counted once per sync), or deferred: false.
    run.allowed = [this, &e, &run, name] {
        if (run.stopped) return false;
        if (repairs_.allow(name)) return true;
        run.stopped = true;
        e.repair_wait = repairs_.waiting(name);
        log_warning("network " + name + ": repair deferred: " + e.repair_wait, name);
        return false;
    };
    // Drift => converge again: the next round observes what this one's
    // steps changed besides (a recreated bridge's own sysctls, every link's
    // forwarding that ip_forward turns on, ports and routes after a links
    // repair). Routes are observed in a round without links.
    const plan::DriftKinds marked = kinds;
    plan::DriftKinds seen = 0;
    for (int round = 0; round < 3 && kinds != 0 && !run.stopped; ++round) {
        seen |= kinds;
        run.again = 0;
        converge(e, e.spec, observe_drift(e, kinds, shared), Failure::repair, &run);
        kinds = run.again & (marked | plan::drift_sysctls);
        if (round == 0 && (marked & plan::drift_routes) && (marked & (plan::drift_links | plan::drift_addresses)))
            kinds |= plan::drift_routes;
        kinds &= ~(plan::drift_links | plan::drift_addresses);
    }
    if (run.ports_changed && listener_) listener_->network_changed(name);
    if (run.replaced) return;
    // Every network holding a sysctl turned on in this sync hears of it.
    if (seen & plan::drift_sysctls)
        for (const std::string& key : plan::held_sysctls(e.spec))
            if (shared.turned_on.count(key))
                note_repair(e, "sysctl", "turned " + dotted(key) + " on again after it was turned off outside kvmnet");
    // A change of "all" (ip_forward) brings every running network here: an
    // active network whose sysctls were all on has nothing new to judge,
    // and judging it (a link lookup) would be 1,000 lookups per change.
    if (run.done.empty() && marked == plan::drift_sysctls && e.state == State::active && e.repair_wait.empty() &&
        !run.stopped && shared.turned_on.empty() && run.failure.empty())
        return;
    if (run.done.empty())
        assess(e);
    else
        note_done(e, run.done, run.what);
    if (!run.failure.empty() && e.state == State::active) set_state(e, State::degraded, "repair-failed", run.failure);
}

void Manager::apply_repair(Entry& e, const plan::ConvergeStep& step, RepairRun& run)
{
    const model::Network& n = e.spec;
    if (const auto* rename = std::get_if<plan::RenameBridgeBack>(&step)) {
        if (!run.allowed()) return;
        rename_back(rename->from, rename->to, rename->up);
        run.done.push_back("renamed bridge " + rename->from + " back to " + rename->to);
        run.what = "link";
        run.again |= plan::drift_ports | plan::drift_routes;
    } else if (std::holds_alternative<plan::LeaveReplacedBridge>(step)) {
        run.stopped = run.replaced = true;
        assess(e);
        if (e.state == State::active)
            set_state(e, State::degraded, "bridge-replaced",
                      "bridge " + n.bridge + " was replaced by an interface kvmnet does not manage");
    } else if (std::holds_alternative<plan::RepairLinks>(step)) {
        const auto bridge = links_.find_link(n.bridge);
        e.bridge_index = bridge ? bridge->index : 0;
        LinkRepair r;
        try {
            r = driver(n).repair(n, bridge, run.allowed);
        } catch (const std::exception& err) {
            run.failure = "repairing bridge " + n.bridge + " failed: " + err.what();
            throw;
        }
        if (run.stopped) return;
        for (auto& d : r.done)
            run.done.push_back(std::move(d));
        // The driver's repair outranks a rename, which is only "link".
        if (!r.done.empty() && (run.what.empty() || r.what != "address")) run.what = r.what;
        if (!r.done.empty()) {
            run.again |= plan::drift_ports | plan::drift_routes;
            // Its routes are the kernel's again (or another bridge's): the
            // next route observation is judged, not the last one, and it
            // dumps them afresh (the sync's dump may predate this bridge).
            e.routes_seen.reset();
            e.route_problem.clear();
            run.sync.routes.reset();
        }
        if (r.recreated) {
            // A new bridge: what hung on the old one goes onto it again.
            attach_ports(e);
            if (const auto back = reattach_foreign_ports(e); !back.empty())
                run.done.push_back("re-attached " + join_names(back) + " (enslaved outside kvmnet)");
            if (!e.dnsmasq_unreported.empty()) run.done.push_back(std::exchange(e.dnsmasq_unreported, {}));
            // A dnsmasq bound to its interface (bind-interfaces) cannot start
            // without the bridge: one that exited meanwhile waits for its
            // backoff; it starts now. One that runs binds its DHCP socket to
            // the new bridge (it hears of no address change to do it itself).
            if (e.dnsmasq) {
                e.dnsmasq->restart_now();
                e.dnsmasq->rebind();
            }
            const auto created = links_.find_link(n.bridge);
            e.bridge_index = created ? created->index : 0;
            e.mac_watch.forget_ports();
            run.again |= plan::drift_sysctls;
        }
    } else if (const auto* missing = std::get_if<plan::PortMissing>(&step)) {
        e.port_problems[missing->name] = "interface is missing";
        run.ports_changed = true;
    } else if (const auto* attach = std::get_if<plan::AttachPort>(&step)) {
        if (!run.allowed()) return;
        const auto port =
            std::find_if(n.ports.begin(), n.ports.end(), [&](const model::Port& p) { return p.name == attach->name; });
        if (port == n.ports.end()) return;
        log_info("network " + n.name + ": port " + attach->name + " appeared, attaching it", n.name);
        // A port that fails is reported per port, as at start.
        try {
            apply_port(e, *port);
            e.port_problems.erase(attach->name);
        } catch (const std::exception& err) {
            e.port_problems[attach->name] = err.what();
        }
        run.ports_changed = true;
    } else if (const auto* sysctl = std::get_if<plan::TurnOnSysctl>(&step)) {
        if (!run.allowed()) return;
        RepairSync& shared = run.sync;
        // Held by several networks (ip_forward): written once per sync.
        if (shared.turned_on.count(sysctl->key) || !turn_on_sysctl(sysctl->key)) return;
        shared.turned_on.insert(sysctl->key);
        shared.sysctls[sysctl->key] = "1";
        run.again |= plan::drift_sysctls;
        // The kernel sets every link's IPv4 forwarding with it: read again.
        if (sysctl->key == ip_forward_key)
            for (auto it = shared.sysctls.begin(); it != shared.sysctls.end();)
                it = it->first.rfind("net/ipv4/conf/", 0) == 0 && it->first.find("/forwarding") != std::string::npos
                         ? shared.sysctls.erase(it)
                         : std::next(it);
    } else if (const auto* route = std::get_if<plan::AddRoute>(&step)) {
        if (!run.allowed()) return;
        run.sync.routes.reset();
        try {
            links_.add_route(n.bridge, route->route);
        } catch (const std::exception& err) {
            e.route_problem = std::string("re-adding it failed: ") + err.what();
            throw;
        }
        if (e.routes_seen) e.routes_seen->routes.push_back(route->route);
        run.done.push_back("re-added route " + plan::destination_text(route->route) + " through " + n.bridge);
        if (run.what.empty() || run.what == "address") run.what = "route";
    }
}

bool Manager::turn_on_sysctl(const std::string& key)
{
    const bool ip_forward = key == ip_forward_key;
    if (ip_forward) {
        // Degraded while it is off: guests reach nothing.
        forwarding_problem_ = "net.ipv4.ip_forward was turned off outside kvmnet";
        for (auto& [name, e] : networks_)
            if (is_running(e.state) && needs_forwarding(e.spec)) assess(e);
    }
    try {
        links_.write_sysctl(key, "1");
    } catch (const std::exception& err) {
        log_error("turning " + dotted(key) + " on again failed: " + err.what());
        if (ip_forward) {
            forwarding_problem_ += std::string("; turning it on again failed: ") + err.what();
            for (auto& [name, e] : networks_)
                if (is_running(e.state) && needs_forwarding(e.spec)) assess(e);
        }
        return false;
    }
    if (ip_forward) forwarding_problem_.clear();
    return true;
}

void Manager::note_done(Entry& e, const std::vector<std::string>& done, const std::string& what)
{
    std::string detail;
    for (const auto& d : done)
        detail.append(detail.empty() ? "" : "; ").append(d);
    note_repair(e, what, detail);
    assess(e);
}

std::optional<plan::LinkInfo> Manager::renamed_bridge(const Entry& e)
{
    for (plan::LinkInfo& l : links_.list_links())
        if (l.kind == "bridge" && l.alias == plan::owner_alias(e.spec.name) && l.name != e.spec.bridge)
            return std::move(l);
    return std::nullopt;
}

void Manager::rename_back(const std::string& from, const std::string& to, bool up)
{
    try {
        links_.rename_link(from, to);
    } catch (const std::exception&) {
        // Kernels that rename only links that are down (EBUSY).
        if (!up) throw;
        links_.set_up(from, false);
        links_.rename_link(from, to);
        links_.set_up(to, true);
    }
}

void Manager::firewall_changed(const std::string& detail)
{
    if (active_networks().empty()) return;  // nothing of ours to repair (the table should not exist)
    firewall_drift_ = detail;
    const bool deferred = !repairs_.waiting(table_scope).empty();
    repairs_.mark(table_scope, plan::drift_firewall);
    if (deferred) return;  // the deferred repair will re-apply it; the state says so already
    for (auto& [name, e] : networks_) {
        if (!is_running(e.state)) continue;
        e.firewall_problem = "nftables table inet kvmnet was changed outside kvmnet (" + detail + "); repairing";
        e.firewall_problem_code = "firewall-changed";
        assess(e);
    }
}

void Manager::ensure_forwarding_watch()
{
    if (!forwarding_timer_) forwarding_timer_ = clock_.add_timer(forwarding_poll_usec, [this] { poll_forwarding(); });
}

void Manager::sysctl_changed(int link_index)
{
    // A link's own netconf concerns only the network whose bridge it is;
    // "all" (ip_forward too) concerns every network.
    for (auto& [name, e] : networks_)
        if (needs_forwarding(e.spec) && (link_index <= 0 || e.bridge_index == link_index))
            mark_dirty(e, plan::drift_sysctls);
}

void Manager::route_changed(int link_index, bool added)
{
    for (auto& [name, e] : networks_) {
        if (!is_running(e.state) || e.bridge_index == 0 || e.bridge_index != link_index) continue;
        if (added && !route_seen_missing(e)) continue;
        mark_dirty(e, plan::drift_routes);
    }
}

bool Manager::route_seen_missing(const Entry& e)
{
    if (!e.routes_seen) return false;
    // The bridge as up: one that was down has no routes seen, and a check
    // too many only observes again.
    plan::LinkInfo bridge;
    bridge.index = e.bridge_index;
    bridge.up = true;
    return !plan::missing_routes(e.spec, bridge, *e.routes_seen).empty();
}

void Manager::poll_forwarding()
{
    forwarding_timer_.reset();
    bool any = false;
    std::size_t read = 0;
    bool read_failed = false;
    auto it = networks_.lower_bound(forwarding_cursor_);
    for (; it != networks_.end(); ++it) {
        Entry& e = it->second;
        if (!is_running(e.state) || !needs_forwarding(e.spec)) continue;
        any = true;
        if (read == forwarding_poll_batch) break;
        // What a notification may not have told (a repair that failed or
        // was deferred, ip_forward off): every held sysctl, as at a
        // notification. An active network: route_localnet alone, which no
        // notification tells (NAT only).
        if (e.state != State::active || !e.repair_wait.empty() || !forwarding_problem_.empty()) {
            mark_dirty(e, plan::drift_sysctls);
            continue;
        }
        if (e.spec.mode != model::Mode::nat) continue;
        ++read;
        std::string key{"net/ipv4/conf/"};
        key += e.spec.bridge;
        key += "/route_localnet";
        std::optional<std::string> value;
        try {
            value = links_.read_sysctl(key);
        } catch (const std::exception& err) {
            // Once per slice of the pass, not once per bridge: a /proc/sys
            // that refuses every read would otherwise log 1,000 lines each 2 s.
            if (!std::exchange(read_failed, true)) log_error("reading " + dotted(key) + " failed: " + err.what());
        }
        // Missing: the bridge is, which its link notifications repair.
        if (value && (value->empty() || (*value)[0] != '1')) mark_dirty(e, plan::drift_sysctls);
    }
    if (it != networks_.end()) {
        forwarding_cursor_ = it->first;
        forwarding_timer_ = clock_.add_timer(forwarding_batch_gap_usec, [this] { poll_forwarding(); });
        return;
    }
    forwarding_cursor_.clear();
    if (any) ensure_forwarding_watch();  // else re-armed by the next start
}

void Manager::firewall_notifications_lost()
{
    if (committed_.unchanged_since_commit()) {
        log_info("nftables notifications were lost, but the ruleset generation is still that of kvmnet's last "
                 "commit: nothing changed since");
        return;
    }
    firewall_changed("nftables notifications were lost, state unknown");
}

void Manager::repair_firewall()
{
    const auto running = active_networks();
    if (running.empty()) return;
    if (!repairs_.allow(table_scope)) {
        const std::string wait = repairs_.waiting(table_scope);
        log_warning("nftables table inet kvmnet keeps being changed outside kvmnet; repair deferred: " + wait);
        for (auto& [name, e] : networks_)
            if (is_running(e.state)) {
                e.firewall_problem =
                    "nftables table inet kvmnet keeps being changed outside kvmnet (" + firewall_drift_ + "); " + wait;
                e.firewall_problem_code = "repair-budget";
                assess(e);
            }
        return;
    }
    try {
        apply_firewall(running);
    } catch (const std::exception& err) {
        log_error(std::string("repairing nftables table inet kvmnet failed: ") + err.what());
        for (auto& [name, e] : networks_)
            if (is_running(e.state)) {
                e.firewall_problem = std::string("repairing nftables table inet kvmnet failed: ") + err.what();
                e.firewall_problem_code = "repair-failed";
                assess(e);
            }
        return;
    }
    const std::string detail =
        "re-applied table inet kvmnet after it was changed outside kvmnet (" + firewall_drift_ + ")";
    for (auto& [name, e] : networks_) {
        if (!is_running(e.state)) continue;
        e.firewall_problem.clear();
        note_repair(e, "firewall", detail);
        assess(e);
    }
}

}  // namespace kvmnet::core
