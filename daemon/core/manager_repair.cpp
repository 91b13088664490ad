// Self-healing: drift that someone else causes in a running network's kernel
// objects is repaired without being asked. Notifications (rtnetlink for
// links and addresses, nftables for our table) only schedule a repair a
// short moment later, so a burst of them (`ip link del` also removes the
// addresses and releases the ports) is one repair; the repair then compares
// the kernel as it is with the desired state and changes only what differs.
// The daemon's own changes therefore never loop: by the time their
// notifications are read the kernel already matches. For nftables, where
// reading the table back is costly, the monitor drops our own transactions
// by their process id instead (kernel/nft_monitor.cpp).
#include "core/log.hpp"
#include "core/manager.hpp"
#include "core/mode_driver.hpp"
#include "core/undo.hpp"
#include "model/time_text.hpp"

#include <algorithm>
#include <ctime>

namespace kvmnet::core {
namespace {

// Long enough to coalesce one burst of notifications, short enough that
// guests barely notice.
constexpr std::uint64_t repair_delay_usec = 100'000;
// A repair that keeps coming back (someone fighting the daemon, or a kernel
// that refuses the desired state) must not become a storm: at most this
// many repairs per window run at once (per network for links, one budget
// for the shared table, so neither starves the other); beyond it each
// repair waits for a backoff, but it runs: guests must not stay offline
// until someone restarts the network.
constexpr unsigned repair_budget = 20;
constexpr std::uint64_t repair_window_usec = 60'000'000;
constexpr std::uint64_t first_backoff_usec = 1'000'000;
constexpr std::uint64_t max_backoff_usec = 30'000'000;
// How often the held sysctls are read (route_localnet sends no
// notification), and how long after a forwarding notification: long enough
// for one write's burst (one per link), far below what guests notice.
constexpr std::uint64_t forwarding_poll_usec = 2'000'000;
constexpr std::uint64_t sysctl_notice_usec = 5'000;

std::string timestamp() { return model::rfc3339_utc(std::time(nullptr)); }

std::string join_names(const std::vector<std::string>& names)
{
    std::string text;
    for (const auto& name : names)
        text += (text.empty() ? "" : ", ") + name;
    return text;
}

}  // namespace

const std::string& Manager::last_repair(const std::string& name) const { return entry(name).last_repair; }

void Manager::note_repair(Entry& e, const std::string& what, const std::string& detail)
{
    e.last_repair = timestamp() + " " + what + ": " + detail;
    log_warning("network " + e.spec.name + ": repaired " + what + ": " + detail, e.spec.name, MessageId::repaired);
    if (listener_) {
        listener_->network_repaired(e.spec.name, what, detail);
        listener_->network_changed(e.spec.name);
    }
}

std::uint64_t Manager::repair_delay(RepairBudget& budget)
{
    const std::uint64_t now = clock_.now_usec();
    if (now - budget.window_start_usec > repair_window_usec) {
        budget.window_start_usec = now;
        budget.count = 0;
        budget.deferrals = 0;
    }
    if (std::exchange(budget.granted, false) || budget.count < repair_budget) {
        ++budget.count;
        return 0;
    }
    const std::uint64_t delay = std::min(first_backoff_usec << std::min(budget.deferrals, 5u), max_backoff_usec);
    ++budget.deferrals;
    return delay;
}

std::string Manager::budget_wait(std::uint64_t delay_usec)
{
    return "over the repair budget of " + std::to_string(repair_budget) + " repairs per minute; retrying in " +
           std::to_string(delay_usec / 1'000'000) + " s";
}

void Manager::defer_link_repair(Entry& e, std::uint64_t delay_usec)
{
    e.repair_wait = budget_wait(delay_usec);
    log_warning("network " + e.spec.name + ": link repair deferred: " + e.repair_wait, e.spec.name);
    const std::string name = e.spec.name;
    e.repair_retry = clock_.add_timer(delay_usec, [this, name] {
        auto it = networks_.find(name);
        if (it == networks_.end()) return;
        Entry& entry = it->second;
        entry.repair_retry.reset();
        entry.repair_wait.clear();
        entry.link_budget.granted = true;
        repair_links(entry);
        entry.link_budget.granted = false;  // nothing needed repairing by now
    });
}

void Manager::observe_ports(Entry& e)
{
    const model::Network& n = e.spec;
    const auto bridge = links_.find_link(n.bridge);
    // While the bridge is missing (deleted: the kernel released its ports
    // first) the last observation is what a repair restores.
    if (!bridge || bridge->alias != plan::owner_alias(n.name)) return;
    std::set<std::string> seen;
    for (const plan::LinkInfo& l : links_.list_links())
        if (l.master_index == bridge->index && l.name != n.uplink && !driver(n).owns_link(n, l.name) &&
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
        if (is_running(e.state) && e.bridge_index != 0 && e.bridge_index == link_index) schedule_link_repair(e);
}

void Manager::recheck_links()
{
    for (auto& [name, e] : networks_)
        if (is_running(e.state)) schedule_link_repair(e);
}

void Manager::schedule_link_repair(Entry& e)
{
    // A deferred repair pending: it looks at the kernel as it is then.
    if (e.repair_timer || e.repair_retry || !is_running(e.state)) return;
    const std::string name = e.spec.name;
    e.repair_timer = clock_.add_timer(repair_delay_usec, [this, name] {
        auto it = networks_.find(name);
        if (it == networks_.end()) return;
        it->second.repair_timer.reset();
        repair_links(it->second);
    });
}

void Manager::repair_links(Entry& e)
{
    if (!is_running(e.state)) return;
    const model::Network& n = e.spec;
    auto bridge = links_.find_link(n.bridge);
    e.bridge_index = bridge ? bridge->index : 0;
    std::vector<std::string> done;  // what was repaired, in words
    std::string what;               // the signal's category: the most drastic repair
    bool charged = false;           // this repair has counted against the budget
    // Within the budget (counted once per repair), or deferred: false.
    auto allowed = [&] {
        if (charged) return true;
        if (const auto delay = repair_delay(e.link_budget)) {
            defer_link_repair(e, delay);
            return false;
        }
        return charged = true;
    };
    try {
        if (!bridge) {
            // Renamed behind our back: the bridge is ours by its owner mark,
            // whatever its name. It is renamed back (never a second bridge
            // with the same gateway next to it).
            if (const auto renamed = renamed_bridge(e)) {
                if (!allowed()) return assess(e);
                rename_back(*renamed, n.bridge);
                done.push_back("renamed bridge " + renamed->name + " back to " + n.bridge);
                what = "link";
                bridge = links_.find_link(n.bridge);
                e.bridge_index = bridge ? bridge->index : 0;
            }
        }
        if (bridge && bridge->alias != plan::owner_alias(n.name)) {
            // Someone else's interface took the name: never touched.
            assess(e);
            if (e.state == State::active)
                set_state(e, State::degraded, "bridge-replaced",
                          "bridge " + n.bridge + " was replaced by an interface kvmnet does not manage");
            return;
        }
        LinkRepair r = driver(n).repair(n, bridge, allowed);
        if (r.done.empty()) return done.empty() ? assess(e) : note_done(e, done, what);
        for (auto& d : r.done)
            done.push_back(std::move(d));
        // The driver's repair outranks a rename, which is only "link".
        if (what.empty() || r.what != "address") what = r.what;
        if (r.recreated) {
            // A new bridge: what hung on the old one goes onto it again.
            attach_ports(e);
            if (const auto back = reattach_foreign_ports(e); !back.empty())
                done.push_back("re-attached " + join_names(back) + " (enslaved outside kvmnet)");
            if (!e.dnsmasq_unreported.empty()) done.push_back(std::exchange(e.dnsmasq_unreported, {}));
            const auto created = links_.find_link(n.bridge);
            e.bridge_index = created ? created->index : 0;
            e.fdb.clear();
        }
    } catch (const std::exception& err) {
        log_error("network " + n.name + ": repairing " + n.bridge + " failed: " + err.what(), n.name);
        assess(e);
        if (e.state == State::active)
            set_state(e, State::degraded, "repair-failed", "repairing bridge " + n.bridge + " failed: " + err.what());
        return;
    }
    if (done.empty()) return assess(e);  // every step was refused (logged)
    note_done(e, done, what);
}

void Manager::note_done(Entry& e, const std::vector<std::string>& done, const std::string& what)
{
    std::string detail;
    for (const auto& d : done)
        detail += (detail.empty() ? "" : "; ") + d;
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

void Manager::rename_back(const plan::LinkInfo& bridge, const std::string& name)
{
    try {
        links_.rename_link(bridge.name, name);
    } catch (const std::exception&) {
        // Kernels that rename only links that are down (EBUSY).
        if (!bridge.up) throw;
        links_.set_up(bridge.name, false);
        links_.rename_link(bridge.name, name);
        links_.set_up(name, true);
    }
}

void Manager::firewall_changed(const std::string& detail)
{
    const auto running = active_specs();
    if (running.empty()) return;  // nothing of ours to repair (the table should not exist)
    firewall_drift_ = detail;
    if (firewall_deferred_) return;  // the deferred repair will re-apply it
    for (auto& [name, e] : networks_) {
        if (!is_running(e.state)) continue;
        e.firewall_problem = "nftables table inet kvmnet was changed outside kvmnet (" + detail + "); repairing";
        e.firewall_problem_code = "firewall-changed";
        assess(e);
    }
    if (!firewall_timer_)
        firewall_timer_ = clock_.add_timer(repair_delay_usec, [this] {
            firewall_timer_.reset();
            repair_firewall();
        });
}

void Manager::ensure_forwarding_watch()
{
    if (!forwarding_timer_) forwarding_timer_ = clock_.add_timer(forwarding_poll_usec, [this] { check_forwarding(); });
}

void Manager::sysctl_changed()
{
    const auto running = active_specs();
    if (std::none_of(running.begin(), running.end(), needs_forwarding)) return;
    // Replaces the poll's timer; check_forwarding arms the poll again.
    forwarding_timer_ = clock_.add_timer(sysctl_notice_usec, [this] { check_forwarding(); });
}

void Manager::repair_held_sysctls()
{
    std::vector<std::pair<std::string, std::vector<Entry*>>> held;  // key, the networks that need it
    std::vector<Entry*> v6;
    for (auto& [name, e] : networks_) {
        if (!is_running(e.state)) continue;
        if (needs_ipv6_forwarding(e.spec)) v6.push_back(&e);
        if (!needs_forwarding(e.spec)) continue;
        const auto bridge = links_.find_link(e.spec.bridge);
        // A missing bridge gets them when the repair recreates it.
        if (!bridge || bridge->alias != plan::owner_alias(name)) continue;
        // IPv4 forwards only what arrives on a link with forwarding on: the
        // bridge's own setting counts besides ip_forward.
        held.push_back({"net/ipv4/conf/" + e.spec.bridge + "/forwarding", {&e}});
        if (e.spec.mode == model::Mode::nat)
            held.push_back({"net/ipv4/conf/" + e.spec.bridge + "/route_localnet", {&e}});
    }
    if (!v6.empty()) held.push_back({ipv6_forwarding_key, v6});
    for (const auto& [key, networks] : held) {
        std::string dotted = key;
        std::replace(dotted.begin(), dotted.end(), '/', '.');
        try {
            if (links_.read_sysctl(key).value_or("1").substr(0, 1) == "1") continue;
            links_.write_sysctl(key, "1");
        } catch (const std::exception& err) {
            log_error("turning " + dotted + " on again failed: " + err.what());
            continue;
        }
        for (Entry* e : networks)
            note_repair(*e, "sysctl", "turned " + dotted + " on again after it was turned off outside kvmnet");
    }
}

void Manager::check_forwarding()
{
    forwarding_timer_.reset();
    const auto running = active_specs();
    if (std::none_of(running.begin(), running.end(), needs_forwarding)) return;  // re-armed by the next start
    ensure_forwarding_watch();
    // ip_forward first: turning it on also turns on every link's own
    // forwarding, which the kernel turned off with it.
    repair_ip_forward();
    repair_held_sysctls();
}

void Manager::repair_ip_forward()
{
    std::string value;
    try {
        value = links_.read_sysctl(ip_forward_key).value_or("");
    } catch (const std::exception& err) {
        log_error(std::string("reading net.ipv4.ip_forward failed: ") + err.what());
        return;
    }
    if (value.substr(0, 1) == "1") return;
    // No budget: the poll interval already limits these repairs to one per
    // interval, and without forwarding no guest reaches anything.
    forwarding_problem_ = "net.ipv4.ip_forward was turned off outside kvmnet";
    for (auto& [name, e] : networks_)
        if (is_running(e.state) && needs_forwarding(e.spec)) assess(e);
    try {
        links_.write_sysctl(ip_forward_key, "1");
    } catch (const std::exception& err) {
        forwarding_problem_ += std::string("; turning it on again failed: ") + err.what();
        log_error(forwarding_problem_);
        for (auto& [name, e] : networks_)
            if (is_running(e.state) && needs_forwarding(e.spec)) assess(e);
        return;
    }
    forwarding_problem_.clear();
    for (auto& [name, e] : networks_)
        if (is_running(e.state) && needs_forwarding(e.spec))
            note_repair(e, "sysctl", "turned net.ipv4.ip_forward on again after it was turned off outside kvmnet");
    for (auto& [name, e] : networks_)
        if (is_running(e.state)) assess(e);
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
    const auto running = active_specs();
    if (running.empty()) return;
    if (const auto delay = repair_delay(firewall_budget_)) {
        const std::string wait = budget_wait(delay);
        log_warning("nftables table inet kvmnet keeps being changed outside kvmnet; repair deferred: " + wait);
        for (auto& [name, e] : networks_)
            if (is_running(e.state)) {
                e.firewall_problem =
                    "nftables table inet kvmnet keeps being changed outside kvmnet (" + firewall_drift_ + "); " + wait;
                e.firewall_problem_code = "repair-budget";
                assess(e);
            }
        firewall_deferred_ = true;
        firewall_timer_ = clock_.add_timer(delay, [this] {
            firewall_timer_.reset();
            firewall_deferred_ = false;
            firewall_budget_.granted = true;
            repair_firewall();
            firewall_budget_.granted = false;
        });
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
