// Network lifecycle: create/update/delete of the desired state, and the
// start/stop transactions that make the kernel match it.
#include "core/manager.hpp"

#include "core/evpn.hpp"
#include "core/firewalld.hpp"
#include "core/foreign_firewall.hpp"
#include "core/kernel_conflicts.hpp"
#include "core/log.hpp"
#include "core/loop_trace.hpp"
#include "core/undo.hpp"
#include "plan/planner.hpp"
#include "store/files.hpp"

#include <algorithm>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <functional>
#include <pwd.h>
#include <set>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <systemd/sd-event.h>
#include <thread>
#include <unistd.h>

namespace kvmnet::core {
namespace {

std::string trim(std::string s)
{
    while (!s.empty() && (s.back() == '\n' || s.back() == ' '))
        s.pop_back();
    return s;
}

}  // namespace

Manager::Manager(ManagerOptions options, EventLoop& loop, plan::LinkAdapter& links, plan::FirewallAdapter& firewall,
                 Clock* clock)
    : options_(std::move(options)), layout_(options_.state_dir, options_.runtime_dir), loop_(loop),
      loop_clock_(clock ? nullptr : std::make_unique<LoopClock>(loop)), clock_(clock ? *clock : *loop_clock_),
      links_(links), firewall_(firewall), committed_(firewall, layout_.committed_table()),
      store_(layout_, options_.syncer), ip_forward_hold_(links, ip_forward_key, layout_.saved_sysctl("ip_forward")),
      ipv6_forward_hold_(links, ipv6_forwarding_key, layout_.saved_sysctl("ipv6_forwarding")),
      repairs_(clock_, [this](const std::map<std::string, plan::DriftKinds>& due) { sync(due); })
{
    store::make_directories(layout_.runtime_dir(), 0755);
    dnsmasq_user_ = options_.dnsmasq_user;
    if (dnsmasq_user_.empty()) dnsmasq_user_ = ::getpwnam("dnsmasq") ? "dnsmasq" : "nobody";
    if (options_.firewall_integration)
        docker_user_ = std::make_unique<DockerUser>(firewall_, options_.iptables, options_.ip6tables);
    if (options_.durable_writes_in_background) {
        store::DurableWriter& durable = store_.durable();
        durable.start_thread();
        durable_done_ =
            loop_.add_io(durable.completion_fd(), EPOLLIN, [&durable](std::uint32_t) { durable.complete(); });
        durable_submit_ = loop_.add_post([&durable] { durable.submit(); });
        store_.on_lost([this](const std::string& name, std::exception_ptr error) { document_lost(name, error); });
    }
    evpn_ = std::make_unique<Evpn>(options_.vtysh, options_.frr_vty_socket, layout_.frr_fragment());
    if (options_.worker_links) worker_ = std::make_unique<WorkQueue>(loop_);
}

Manager::~Manager() = default;

ModeDriver& Manager::driver(const model::Network& n)
{
    auto& slot = drivers_[n.mode];
    if (!slot) slot = make_driver(n.mode, {links_, layout_, options_.addresses});
    return *slot;
}

Manager::Entry& Manager::entry(const std::string& name)
{
    auto it = networks_.find(name);
    if (it == networks_.end()) throw Error(ErrorKind::NotFound, "no network named '" + name + "'");
    return it->second;
}

const Manager::Entry& Manager::entry(const std::string& name) const { return const_cast<Manager*>(this)->entry(name); }

Manager::Entry& Manager::changeable(const std::string& name)
{
    Entry& e = entry(name);
    forget_forwards(name);
    // Its document would be the placeholder: stored, it would replace the
    // file that someone is about to fix.
    if (e.without_document) throw Error(ErrorKind::Conflict, "network '" + name + "': " + e.stored_problem);
    check_not_starting(e);
    // An Update's restart stores the new document first and sets it in
    // memory only once the old run has stopped (on the worker): a change
    // taken meanwhile would start from the old document and be overwritten.
    if (e.stopping && e.stopping->comes_back)
        throw Error(ErrorKind::Busy, "network '" + name + "' is restarting; change it once it is active");
    return e;
}

void Manager::document_stored(Entry& e)
{
    if (e.stored_problem.empty()) return;
    e.stored_problem.clear();
    if (is_running(e.state))
        assess(e);
    else
        set_state(e, e.state);
}

std::vector<std::string> Manager::names() const
{
    std::vector<std::string> result;
    for (const auto& [name, e] : networks_)
        result.push_back(name);
    return result;
}

const model::Network& Manager::spec(const std::string& name) const { return entry(name).spec; }
State Manager::state(const std::string& name) const { return entry(name).state; }
const std::string& Manager::state_reason(const std::string& name) const { return entry(name).reason; }
const std::string& Manager::state_reason_code(const std::string& name) const { return entry(name).reason_code; }

std::string_view Manager::dnsmasq_state(const std::string& name) const
{
    const Entry& e = entry(name);
    return e.dnsmasq ? e.dnsmasq->state() : "stopped";
}

nlohmann::json Manager::describe(const std::string& name) const
{
    const Entry& e = entry(name);
    nlohmann::json j = model::to_json(e.spec);
    j["state"] = state_name(e.state);
    j["state_reason"] = e.reason;
    if (nlohmann::json evpn = evpn_status(name); !evpn.is_null()) j["evpn"] = std::move(evpn);
    if (auto zone = firewalld_zone(e)) j["firewalld_zone"] = std::move(*zone);
    return j;
}

std::optional<std::string> Manager::firewalld_zone(const Entry& e) const
{
    // Whether the last sync put the bridge into firewalld's zone: the
    // answer without a bus call; diagnose asks firewalld itself.
    if (firewalld_ && is_running(e.state) && Firewalld::wanted(e.spec) && options_.firewall_integration)
        return firewalld_->zone_of_last_sync(e.spec.bridge);
    return std::nullopt;
}

std::string Manager::describe_text(const std::string& name) const
{
    const Entry& e = entry(name);
    // EVPN's part is FRR's state, read when asked (at most once a second): never kept.
    if (e.spec.overlay && e.spec.overlay->evpn) return describe(name).dump();
    // Everything describe() is made of. The forwards' vector (its address
    // and size) too: the revision's forwards part is blind to their order,
    // and whatever changes them in place forgets the text (forget_forwards,
    // journalled_change).
    const auto zone = firewalld_zone(e);
    std::string key = revision(name);
    key.append("\n").append(std::to_string(reinterpret_cast<std::uintptr_t>(e.spec.forwards.data())));
    key.append("\n").append(std::to_string(e.spec.forwards.size()));
    key.append("\n").append(state_name(e.state));
    key.append("\n").append(zone ? "zone " + *zone : "no zone");
    key.append("\n").append(e.reason);
    if (const std::string* kept = reads_.describe(name, key)) return *kept;
    // describe(name).dump(), the forwards' part from their kept texts (a
    // host change does not write some 700 forwards again, a forward change
    // only its own).
    nlohmann::json extra = {{"state", state_name(e.state)}, {"state_reason", e.reason}};
    if (zone) extra["firewalld_zone"] = *zone;
    std::string text = model::network_text(e.spec, true, -1, extra, &forwards_text(e));
    return reads_.keep_describe(name, std::move(key), std::move(text));
}

std::string Manager::describe_all_text() const
{
    // {"networks":[...]} with each network's text as it is kept.
    std::string text = R"({"networks":[)";
    bool first = true;
    for (const auto& [name, e] : networks_) {
        if (!first) text += ',';
        first = false;
        text += describe_text(name);
    }
    text += "]}";
    return text;
}

void Manager::set_state(Entry& e, State state) { set_state(e, state, "none", {}); }

void Manager::set_state(Entry& e, State state, std::string code, std::string reason)
{
    if (e.set_state(state, std::move(code), std::move(reason)) && listener_) listener_->network_changed(e.spec.name);
}

std::vector<model::Network> Manager::configured_except(const std::string& name) const
{
    std::vector<model::Network> result;
    for (const auto& [n, e] : networks_)
        if (n != name) result.push_back(e.spec);
    return result;
}

Manager::Running Manager::active_networks(const std::string& plus, const std::string& minus) const
{
    Running result;
    for (const auto& [n, e] : networks_) {
        // A start waiting for dnsmasq has its rules in the table already.
        const bool running = is_running(e.state) || adopting_.count(n) > 0 || e.starting;
        if (n != minus && (running || n == plus)) result.push_back(&e.spec);
    }
    return result;
}

std::vector<model::Network> Manager::active_specs(const std::string& plus, const std::string& minus) const
{
    std::vector<model::Network> result;
    for (const model::Network* n : active_networks(plus, minus))
        result.push_back(*n);
    return result;
}

std::string Manager::pick_bridge_name() const
{
    // The networks' bridges first, then one lookup by name per candidate
    // left: no dump of every link of a host with 1,000 networks' bridges.
    std::set<std::string> configured;
    for (const auto& [name, e] : networks_)
        configured.insert(e.spec.bridge);
    for (int i = 0;; ++i) {
        const std::string candidate = "kvmbr" + std::to_string(i);
        if (configured.count(candidate) == 0 && !links_.find_link(candidate)) return candidate;
    }
}

// ---- lifecycle of the desired state -------------------------------------

void Manager::load()
{
    forward_caches_.clear();
    reads_ = ReadCache{};
    std::vector<std::string> problems;
    auto loaded = store_.load(problems);
    for (const auto& p : problems)
        log_error("ignoring stored network " + p);
    auto& stored = loaded.networks;
    for (const auto& [name, why] : loaded.unreadable) {
        log_error("ignoring stored network " + why, name);
        // Still running from before: adopted (leaving its kernel state as it
        // is) rather than left running without its rules and unmanageable.
        if (!std::filesystem::exists(layout_.active_marker(name))) continue;
        Entry& e = networks_.try_emplace(name, clock_).first->second;
        e.stored_problem = why + "; running with the last configuration kvmnet stored until the file is fixed "
                                 "and reloaded";
        std::vector<std::string> mirror_problems;
        if (auto last = store_.last_good(name, mirror_problems)) {
            e.spec = std::move(*last);
        } else {
            for (const auto& p : mirror_problems)
                log_error(p, name);
            e.spec.name = name;
            e.without_document = true;
            e.stored_problem = why + "; it was running, and no copy of its last configuration is left: it can "
                                     "only be stopped until the file is fixed and reloaded";
            for (const auto& link : links_.list_links())
                if (link.alias == plan::owner_alias(name) && link.kind == "bridge") e.spec.bridge = link.name;
        }
        log_warning("network " + name + ": " + e.stored_problem, name);
        if (listener_) listener_->network_added(name);
    }
    for (auto& n : stored) {
        // Hand-edited files may contradict each other; the first one (by
        // name) wins and the others are left on disk, unused, with a log line.
        try {
            model::validate_against(n, configured_except(n.name));
        } catch (const Error& err) {
            log_error("ignoring stored network " + n.name + ": " + err.what(), n.name);
            continue;
        }
        const std::string name = n.name;
        if (store_.has_journal(name)) {
            // Fold the forwards journal into the document.
            try {
                store_.save(n);
            } catch (const std::exception& err) {
                log_error("network " + name + ": rewriting the stored document failed: " + err.what(), name);
            }
        }
        networks_.try_emplace(name, clock_).first->second.spec = std::move(n);
        if (listener_) listener_->network_added(name);
    }
    // Networks an earlier daemon left running are adopted together: each
    // counts as running for the table from the start, so adopting (or
    // clearing) one keeps the others' rules, and a table that is already
    // exactly as planned is not written at all (CommittedTable). A deletion
    // that a crash interrupted is finished first.
    // Markers of networks that are not stored (a deletion killed after the
    // document went, before its marker did) must not hit a later network of
    // that name.
    std::error_code ec;
    for (const auto& file : std::filesystem::directory_iterator(layout_.runtime_dir(), ec)) {
        const auto network = store::Layout::marker_network(file.path());
        if (network && !networks_.count(*network)) std::filesystem::remove(file.path(), ec);
    }
    std::vector<std::string> deleting;
    for (auto& [name, e] : networks_) {
        if (e.without_document) {
            set_state(e, State::failed, "document-lost", e.stored_problem);
            continue;
        }
        if (std::filesystem::exists(layout_.delete_marker(name)))
            deleting.push_back(name);
        else if (std::filesystem::exists(layout_.active_marker(name)))
            adopting_.insert(name);
    }
    for (const std::string& name : deleting) {
        log_warning("network " + name + ": finishing a deletion that was interrupted", name);
        Entry& e = networks_.try_emplace(name, clock_).first->second;
        const auto problems = tear_down(e);
        if (problems.empty()) {
            try {
                delete_stopped(e);
            } catch (const std::exception& err) {
                log_error("network " + name + ": " + err.what(), name);
            }
        } else {
            // Kept, as a DeleteNetwork whose stop fails keeps it.
            std::string joined;
            for (const auto& p : problems)
                joined += (joined.empty() ? "" : "; ") + p;
            set_state(e, State::failed, "stop-incomplete", "stop incomplete: " + joined);
        }
        store::remove_file(layout_.delete_marker(name));
    }
    for (auto& [name, e] : networks_) {
        if (e.without_document) continue;
        // A restart of the network (Update) that a crash interrupted: the new
        // document is stored; clear what either configuration left and bring
        // the stored one up.
        const std::string marker = layout_.restart_marker(name);
        if (const auto old_bridge = store::read_file(marker)) {
            log_warning("network " + name + ": finishing a restart that was interrupted", name);
            adopting_.erase(name);
            for (const auto& p : tear_down(e))
                log_error("network " + name + ": " + p, name);
            delete_owned_bridge(name, trim(*old_bridge));
            adopting_.insert(name);
            store::remove_file(marker);
            continue;
        }
        if (adopting_.count(name)) {
            // A bridge a repair made again and a crash kept from being
            // marked: deleted, the adoption below creates it once more.
            try {
                if (const auto b = links_.find_link(e.spec.bridge); b && half_created_bridge(layout_, name, *b))
                    links_.delete_link(b->name);
            } catch (const std::exception& err) {
                log_error("network " + name + ": " + err.what(), name);
            }
            continue;
        }
        // A start that a crash interrupted (no "active" record yet), or a
        // stop: remove whatever of it reached the kernel.
        const auto bridge = links_.find_link(e.spec.bridge);
        if (std::filesystem::exists(layout_.network_dir(name)) ||
            (bridge && bridge->alias == plan::owner_alias(name))) {
            log_warning("network " + name + ": removing what an interrupted start or stop left behind", name);
            for (const auto& p : tear_down(e))
                log_error("network " + name + ": " + p, name);
        }
    }
    for (auto& [name, e] : networks_) {
        const bool was_active = adopting_.count(name) > 0;
        if (!e.spec.autostart && !was_active) continue;
        log_info("network " + name + (was_active ? ": adopting running network" : ": autostart"), name);
        if (was_active) driver(e.spec).adopt(e.spec);
        const auto deadline = confirmation(e).recorded();
        // Every network's dnsmasq starts before any is waited for.
        bring_up(e, 0, [this, name, deadline, log = log_outcome(name)](std::exception_ptr error) {
            log(error);
            auto it = networks_.find(name);
            if (error || !deadline || it == networks_.end()) return;
            arm_confirmation(it->second, *deadline);
        });
        adopting_.erase(name);
    }
    adopting_.clear();
    // The daemon is not on the bus yet: its readiness (READY=1, the bus
    // name) means the networks are up, so their dnsmasq are waited for
    // here, all at once, by running the loop (dnsmasq's 10 s limit bounds it).
    while (
        std::any_of(networks_.begin(), networks_.end(), [](const auto& kv) { return kv.second.starting != nullptr; }))
        if (const int r = sd_event_run(loop_.get(), UINT64_MAX); r < 0) {
            log_error(std::string("waiting for the networks to start: ") + std::strerror(-r));
            break;
        }
}

void Manager::delete_owned_bridge(const std::string& name, const std::string& bridge)
{
    if (bridge.empty()) return;
    try {
        const auto link = links_.find_link(bridge);
        if (link && link->alias == plan::owner_alias(name)) links_.delete_link(bridge);
    } catch (const std::exception& err) {
        log_error("network " + name + ": deleting bridge " + bridge + ": " + err.what(), name);
    }
}

void Manager::delete_owned_bridge(Entry& e, const std::string& bridge, std::function<void()> then)
{
    const std::string name = e.spec.name;
    bool ours = false;
    try {
        const auto link = bridge.empty() ? std::nullopt : links_.find_link(bridge);
        ours = link && link->alias == plan::owner_alias(name);
    } catch (const std::exception& err) {
        log_error("network " + name + ": deleting bridge " + bridge + ": " + err.what(), name);
    }
    if (!ours) return then();
    if (!worker_) {
        delete_owned_bridge(name, bridge);
        return then();
    }
    e.stopping = std::make_unique<Entry::PendingStop>();
    e.stopping->comes_back = true;
    Entry::PendingStop* token = e.stopping.get();
    worker_->submit(
        [links = options_.worker_links, bridge] {
            try {
                links->delete_link(bridge);
            } catch (const Error& err) {
                if (err.kind() != ErrorKind::NotFound) throw;  // gone meanwhile: what we wanted
            }
        },
        [this, name, bridge, token, then = std::move(then)](std::exception_ptr error) {
            if (error) try {
                    std::rethrow_exception(error);
                } catch (const std::exception& err) {
                    log_error("network " + name + ": deleting bridge " + bridge + ": " + err.what(), name);
                }
            std::unique_ptr<Entry::PendingStop> pending;
            if (const auto it = networks_.find(name); it != networks_.end() && it->second.stopping.get() == token)
                pending = std::move(it->second.stopping);
            then();
            if (pending)
                for (const auto& after : pending->after)
                    after();
        });
}

void Manager::reload()
{
    forward_caches_.clear();
    reads_ = ReadCache{};
    std::vector<std::string> problems;
    auto loaded = store_.load(problems);
    for (const auto& p : problems)
        log_error("reload: ignoring " + p);
    std::vector<std::string> unreadable;
    for (const auto& [name, why] : loaded.unreadable) {
        auto it = networks_.find(name);
        if (it == networks_.end()) {
            log_error("reload: ignoring stored network " + why, name);
            unreadable.push_back(why);
            continue;
        }
        // A document that does not load changes nothing: the network keeps
        // what it has, in memory and in the kernel, and says why.
        Entry& e = it->second;
        const std::string problem = e.without_document
                                        ? e.stored_problem
                                        : why + "; network '" + name +
                                              "' keeps its previous configuration until the file is fixed and reloaded";
        log_error("reload: " + problem, name);
        unreadable.push_back(problem);
        e.stored_problem = problem;
        if (is_running(e.state))
            assess(e);
        else
            set_state(e, e.state, e.without_document ? "document-lost" : "document-unparsable", problem);
    }
    std::vector<std::string> gone;
    for (const auto& [name, e] : networks_)
        if (!loaded.unreadable.count(name) &&
            std::none_of(loaded.networks.begin(), loaded.networks.end(), [&](const auto& n) { return n.name == name; }))
            gone.push_back(name);
    for (const auto& name : gone) {
        // A stop in flight ends first: its callers get their answer and what
        // waited on it runs before the network goes (which may delete it).
        settle_stop(name);
        if (!networks_.count(name)) continue;
        try {
            Entry& e = entry(name);
            if (e.state != State::inactive) tear_down(e);
        } catch (const std::exception& err) {
            log_error("reload: " + std::string(err.what()), name);
        }
        networks_.erase(name);
        if (listener_) listener_->network_removed(name);
    }
    for (auto& n : loaded.networks) {
        auto it = networks_.find(n.name);
        if (it == networks_.end()) {
            const std::string name = n.name;
            Entry& e = networks_.try_emplace(name, clock_).first->second;
            e.spec = std::move(n);
            if (listener_) listener_->network_added(name);
            if (e.spec.autostart) bring_up(e, 0, log_outcome(name));
            continue;
        }
        Entry& e = it->second;
        const bool had_problem = !e.stored_problem.empty();
        e.stored_problem.clear();
        if (e.without_document) {
            // Adopted at start without a document: what runs under the name
            // is taken over with the fixed one, as a restarted daemon adopts.
            e.without_document = false;
            e.spec = std::move(n);
            if (listener_) listener_->network_changed(e.spec.name);
            if (e.state == State::inactive) continue;
            adopting_.insert(e.spec.name);
            bring_up(e, 0, log_outcome(e.spec.name));
            adopting_.erase(e.spec.name);
        } else if (!(e.spec == n)) {
            take_document(e, std::move(n));
        } else if (had_problem) {
            if (is_running(e.state))
                assess(e);
            else
                set_state(e, e.state);
        }
    }
    if (!unreadable.empty()) {
        std::string joined;
        for (const auto& u : unreadable)
            joined += (joined.empty() ? "" : "; ") + u;
        throw Error(ErrorKind::InvalidArgument, "reload: " + joined);
    }
}

std::string Manager::create(const std::string& document)
{
    model::Network n = model::parse_network(document);
    model::validate_against(n, configured_except(""));
    if (n.bridge.empty()) n.bridge = pick_bridge_name();
    check_kernel_conflicts(links_, n, options_.addresses);
    // No marker of an earlier network of this name may apply to this one.
    store::remove_file(layout_.delete_marker(n.name));
    store::remove_file(layout_.restart_marker(n.name));
    store_.save(n);
    const std::string name = n.name;
    networks_.try_emplace(name, clock_).first->second.spec = std::move(n);
    log_info("network " + name + ": created", name, MessageId::network_created);
    if (listener_) listener_->network_added(name);
    return name;
}

void Manager::remove(const std::string& name)
{
    // A Stop's deletion in flight finishes first: its caller is answered
    // before the entry goes.
    if (entry(name).stopping) finish_stops();
    Entry& e = entry(name);
    // A document that cannot be removed (a read-only state directory) fails
    // the call before anything is stopped.
    store_.check_writable();
    // Marked first: a daemon killed during the deletion finishes it at its
    // next start (load) instead of leaving the network stopped but there.
    const std::string marker = layout_.delete_marker(name);
    store::write_replace(marker, "1\n", 0644);
    const bool was_running = is_running(e.state);
    bool stopped = false;
    try {
        if (e.state != State::inactive) stop(name);
        stopped = true;
        delete_stopped(e);
    } catch (...) {
        // The deletion did not happen: its marker must not finish it at a
        // later start. A network stopped for it runs again.
        try {
            store::remove_file(marker);
        } catch (const std::exception& err) {
            log_error("network " + name + ": " + err.what(), name);
        }
        if (stopped && was_running) bring_up(e, 0, log_outcome(name));
        throw;
    }
    store::remove_file(marker);
}

void Manager::remove(const std::string& name, Done done)
{
    try {
        Entry& e = entry(name);
        if (defer_while_stopping(e, [this, name, done] { remove(name, done); })) return;
        if (!worker_ || e.state == State::inactive) {
            remove(name);
            done(nullptr);
            return;
        }
        store_.check_writable();
        // Marked first, as remove(name) does.
        const std::string marker = layout_.delete_marker(name);
        store::write_replace(marker, "1\n", 0644);
        const bool was_running = is_running(e.state);
        stop(name, [this, name, marker, was_running, done](std::exception_ptr error) {
            const auto unmark = [&] {
                try {
                    store::remove_file(marker);
                } catch (const std::exception& err) {
                    log_error("network " + name + ": " + err.what(), name);
                }
            };
            if (!error) {
                try {
                    delete_stopped(entry(name));
                } catch (...) {
                    error = std::current_exception();
                    // Not deleted: the network stopped for it runs again.
                    if (auto it = networks_.find(name); was_running && it != networks_.end())
                        bring_up(it->second, 0, log_outcome(name));
                }
            }
            unmark();
            done(error);
        });
    } catch (...) {
        if (done) done(std::current_exception());
    }
}

void Manager::delete_stopped(Entry& e)
{
    const std::string name = e.spec.name;
    // The document first: when it cannot go, nothing else does.
    store_.remove(name);
    // Taps the daemon created belong to the network and go with it.
    for (const model::Port& p : e.spec.ports) {
        if (!p.tap || !links_.find_link(p.name)) continue;
        try {
            links_.delete_link(p.name);
        } catch (const std::exception& err) {
            log_error("network " + name + ": deleting tap " + p.name + ": " + err.what(), name);
        }
    }
    networks_.erase(name);
    forget_forwards(name);
    reads_.erase(name);
    log_info("network " + name + ": deleted", name, MessageId::network_deleted);
    if (listener_) listener_->network_removed(name);
}

void Manager::start(const std::string& name, std::uint32_t confirm_timeout_s)
{
    wait([&](Done done) { start(name, confirm_timeout_s, std::move(done)); });
}

void Manager::start(const std::string& name, std::uint32_t confirm_timeout_s, Done done)
{
    try {
        Entry& e = entry(name);
        if (defer_while_stopping(e, [this, name, confirm_timeout_s, done] { start(name, confirm_timeout_s, done); }))
            return;
        if (e.starting && confirm_timeout_s == 0) {
            // The same start, asked twice: both callers hear its outcome.
            e.starting->waiters.push_back(std::move(done));
            return;
        }
        if (e.starting || (is_running(e.state) && confirm_timeout_s > 0))
            throw Error(ErrorKind::Conflict, "network '" + name + "' is already " +
                                                 (e.starting ? "starting" : "running") +
                                                 "; a confirmation deadline only applies to a start that takes the "
                                                 "network up");
        changeable(name);
        if (is_running(e.state)) {
            done(nullptr);
            return;
        }
        check_fast_path(e.spec);
        bring_up(e, confirm_timeout_s, std::move(done), true);
    } catch (...) {
        if (done) done(std::current_exception());
    }
}

void Manager::wait(const std::function<void(Done)>& op)
{
    bool finished = false;
    std::exception_ptr error;
    op([&](std::exception_ptr outcome) {
        finished = true;
        error = outcome;
    });
    while (!finished)
        if (const int r = sd_event_run(loop_.get(), UINT64_MAX); r < 0)
            throw Error(ErrorKind::Kernel, std::string("waiting for the event loop: ") + std::strerror(-r));
    if (error) std::rethrow_exception(error);
}

Manager::Done Manager::log_outcome(const std::string& name)
{
    return [name](std::exception_ptr error) {
        if (!error) return;
        try {
            std::rethrow_exception(error);
        } catch (const std::exception& err) {
            log_error(err.what(), name);
        }
    };
}

void Manager::check_not_starting(const Entry& e) const
{
    if (e.starting)
        throw Error(ErrorKind::Busy,
                    "network '" + e.spec.name + "' is starting (waiting for dnsmasq); change it once it is active");
}

void Manager::cancel_starts()
{
    // A restart rolled back here keeps its marker: the next daemon brings
    // the stored (new) document up instead of leaving the network stopped.
    exiting_ = true;
    for (auto& [name, e] : networks_) {
        if (!e.starting) continue;
        log_warning("network " + name + ": the daemon exits while the network starts: rolling the start back", name);
        for (const auto& p : tear_down(e))
            log_error("network " + name + ": " + p, name);
    }
}

ConfirmationDeadline& Manager::confirmation(Entry& e)
{
    if (!e.confirmation) {
        const std::string name = e.spec.name;
        e.confirmation = std::make_unique<ConfirmationDeadline>(loop_, layout_.confirm_deadline(name), [this, name] {
            auto it = networks_.find(name);
            if (it == networks_.end()) return;
            Entry& entry = it->second;
            log_warning("network " + name + ": start not confirmed in time, rolling back", name,
                        MessageId::start_rolled_back);
            auto problems = tear_down(entry);
            std::string reason = "start was not confirmed in time and was rolled back";
            for (const auto& p : problems)
                reason += "; " + p;
            set_state(entry, State::failed, "confirm-timeout", reason);
        });
    }
    return *e.confirmation;
}

void Manager::arm_confirmation(Entry& e, std::int64_t deadline)
{
    confirmation(e).arm(deadline);
    if (listener_) listener_->network_changed(e.spec.name);
}

void Manager::confirm(const std::string& name)
{
    Entry& e = entry(name);
    if (!e.confirmation || !e.confirmation->pending())
        throw Error(ErrorKind::Conflict, "network '" + name + "' has no start waiting for confirmation");
    e.confirmation->confirm();
    log_info("network " + name + ": start confirmed", name, MessageId::start_confirmed);
    if (listener_) listener_->network_changed(name);
}

bool Manager::awaiting_confirmation(const std::string& name) const
{
    const Entry& e = entry(name);
    return e.confirmation && e.confirmation->pending();
}

namespace {

// A piece of a stop's turn, named in KVMNET_LOOP_TRACE's log.
TraceSpan stop_span(const std::string& network, const std::string& what)
{
    return TraceSpan(loop_trace::enabled() ? "stop " + network + ": " + what : "");
}

// Runs one step of a teardown: a failure is logged and collected, and the
// teardown goes on.

void attempt(std::vector<std::string>& problems, const std::string& network, const std::string& what,
             const std::function<void()>& action)
{
    try {
        const TraceSpan span = stop_span(network, what);
        action();
    } catch (const std::exception& err) {
        problems.push_back(what + ": " + err.what());
        log_error("network " + network + ": " + what + ": " + err.what(), network);
    }
}

std::string deleting_bridge(const std::string& bridge) { return "deleting bridge " + bridge; }

Error stop_incomplete(const std::string& name, const std::vector<std::string>& problems, std::string& joined)
{
    for (const auto& p : problems)
        joined += (joined.empty() ? "" : "; ") + p;
    return Error(ErrorKind::Kernel, "stopping network '" + name + "' left problems: " + joined);
}

}  // namespace

void Manager::stop(const std::string& name)
{
    Entry& e = entry(name);
    // A deletion in flight (a Stop over the bus) finishes first: rare, and
    // only the daemon's own callers (reload, --stop-networks-on-exit) wait.
    if (e.stopping) {
        finish_stops();
        return stop(name);
    }
    if (e.state == State::inactive) return;
    auto problems = tear_down(e);
    if (!problems.empty()) {
        std::string joined;
        const Error error = stop_incomplete(name, problems, joined);
        set_state(e, State::failed, "stop-incomplete", "stop incomplete: " + joined);
        throw error;
    }
    set_state(e, State::inactive);
}

void Manager::stop(const std::string& name, Done done)
{
    try {
        Entry& e = entry(name);
        if (e.stopping && e.stopping->comes_back) {  // an Update's restart: stopped once it is up again
            defer_while_stopping(e, [this, name, done] { stop(name, done); });
            return;
        }
        if (e.stopping) {  // the same stop, asked twice: both callers hear its outcome
            e.stopping->waiters.push_back(std::move(done));
            return;
        }
        if (!worker_ || e.state == State::inactive) {
            stop(name);
            done(nullptr);
            return;
        }
        TearDown t = begin_tear_down(e, true);
        if (t.bridge.empty() && !t.dnsmasq) {  // nothing left to wait for
            auto pending = std::make_unique<Entry::PendingStop>();
            pending->waiters.push_back(std::move(done));
            e.stopping = std::move(pending);
            stop_finished(name, e.stopping.get(), std::move(t), nullptr);
            return;
        }
        e.stopping = std::make_unique<Entry::PendingStop>();
        e.stopping->waiters.push_back(std::move(done));
        Entry::PendingStop* token = e.stopping.get();
        const TraceSpan span = stop_span(name, "handed to the worker");
        // The worker gets the pid and the link's name by value and its own
        // netlink socket; the rest of the stop waits for its outcome on the
        // loop. dnsmasq goes first, as on the loop: it serves the bridge.
        auto shared = std::make_shared<TearDown>(std::move(t));
        auto dnsmasq_problem = std::make_shared<std::string>();  // the worker's until its Done
        worker_->submit(
            [links = options_.worker_links, bridge = shared->bridge, process = shared->dnsmasq, dnsmasq_problem] {
                if (process) try {
                        Dnsmasq::stop_pid(*process);
                    } catch (const std::exception& err) {
                        *dnsmasq_problem = std::string("stopping dnsmasq: ") + err.what();
                    }
                if (!bridge.empty()) try {
                        links->delete_link(bridge);
                    } catch (const Error& err) {
                        // Gone already (someone else deleted it while the
                        // deletion waited in the queue): what the stop wanted.
                        if (err.kind() != ErrorKind::NotFound) throw;
                    }
            },
            [this, name, token, shared, dnsmasq_problem](std::exception_ptr error) {
                if (!dnsmasq_problem->empty()) {
                    log_error("network " + name + ": " + *dnsmasq_problem, name);
                    shared->problems.push_back(*dnsmasq_problem);
                }
                stop_finished(name, token, std::move(*shared), error);
            });
    } catch (...) {
        if (done) done(std::current_exception());
    }
}

void Manager::stop_finished(const std::string& name, Entry::PendingStop* token, TearDown t, std::exception_ptr error)
{
    if (error) {
        try {
            std::rethrow_exception(error);
        } catch (const std::exception& err) {
            t.problems.push_back(deleting_bridge(t.bridge) + ": " + err.what());
            log_error("network " + name + ": " + t.problems.back(), name);
        }
    }
    end_tear_down(t);
    const auto it = networks_.find(name);
    // Deleted meanwhile by the daemon itself (a reload whose file is gone):
    // nobody of this stop is left to answer.
    if (it == networks_.end() || it->second.stopping.get() != token) return;
    Entry& e = it->second;
    const auto pending = std::move(e.stopping);
    std::exception_ptr outcome;
    if (!t.problems.empty()) {
        std::string joined;
        outcome = std::make_exception_ptr(stop_incomplete(name, t.problems, joined));
        set_state(e, State::failed, "stop-incomplete", "stop incomplete: " + joined);
    }
    // Last: a waiter or what waited may change the network (or delete it).
    for (const auto& waiter : pending->waiters)
        if (waiter) waiter(outcome);
    for (const auto& then : pending->after)
        then();
}

void Manager::finish_stops()
{
    if (worker_) worker_->drain();
}

void Manager::settle_stop(const std::string& name)
{
    const auto it = networks_.find(name);
    if (it != networks_.end() && it->second.stopping) finish_stops();
}

bool Manager::defer_while_stopping(Entry& e, std::function<void()> then)
{
    if (!e.stopping) return false;
    e.stopping->after.push_back(std::move(then));
    return true;
}

void Manager::update(const std::string& name, const std::string& document)
{
    wait([&](Done done) { update(name, document, std::move(done)); });
}

void Manager::update(const std::string& name, const std::string& document, Done done)
{
    try {
        if (defer_while_stopping(entry(name), [this, name, document, done] { update(name, document, done); })) return;
        update_or_restart(name, document, done);
    } catch (...) {
        if (done) done(std::current_exception());
    }
}

void Manager::update_or_restart(const std::string& name, const std::string& document, Done& done)
{
    Entry& e = changeable(name);
    model::Network n = model::parse_network(document);
    if (n.name != name)
        throw invalid_field("name", "'" + n.name + "' does not match the network being updated ('" + name +
                                        "'); networks cannot be renamed");
    if (n.bridge.empty()) n.bridge = e.spec.bridge;
    model::validate_against(n, configured_except(name));
    if (n == e.spec) return done(nullptr);
    if (n.bridge != e.spec.bridge || n.ipv4 != e.spec.ipv4 || n.ipv6 != e.spec.ipv6)
        check_kernel_conflicts(links_, n, options_.addresses);
    // Before the restart it would take: refused there, the network would go
    // down and up again and the caller hear of a failed start.
    if (is_running(e.state)) check_fast_path(n);

    switch (plan::plan_update(e.spec, n, is_running(e.state))) {
    case plan::UpdatePath::hosts: commit_hosts(e, std::move(n)); return done(nullptr);
    case plan::UpdatePath::store:
        store_.save(n);
        e.spec = std::move(n);
        document_stored(e);
        if (listener_) listener_->network_changed(name);
        return done(nullptr);
    case plan::UpdatePath::table: {
        // One atomic table replacement, no restart (established connections
        // keep flowing; counters restart).
        auto active = active_networks("", name);
        active.push_back(&n);
        apply_firewall(active);
        try {
            store_.save(n);
        } catch (...) {
            apply_firewall(active_networks());
            throw;
        }
        e.spec = std::move(n);
        e.journal_lines = 0;
        document_stored(e);
        if (listener_) listener_->network_changed(name);
        return done(nullptr);
    }
    case plan::UpdatePath::live:
        update_live(e, n);  // stores n itself, before the kernel changes
        document_stored(e);
        if (listener_) listener_->network_changed(name);
        return done(nullptr);
    case plan::UpdatePath::restart: break;
    }
    // A restart. The new document is stored first, with a marker naming the
    // old bridge: a daemon that crashes in between finishes the restart with
    // the new document at its next start (load) instead of leaving the
    // network stopped or half old, half new.
    model::Network old = e.spec;
    store::write_replace(layout_.restart_marker(name), old.bridge + "\n", 0644);
    try {
        store_.save(n);
    } catch (...) {
        store::remove_file(layout_.restart_marker(name));
        throw;
    }
    e.stored_problem.clear();  // the file is n now
    const auto leases = leases_to_keep(e, n);
    // Interfaces someone else enslaved to the bridge (libvirt's taps) go
    // onto the new one: the guests behind them stay connected.
    const auto foreign = e.foreign_ports;
    // The old run stops as a Stop does (dnsmasq's SIGTERM-and-wait and the
    // bridge's deletion on the worker, every other call served meanwhile);
    // the new document starts when that is done, and the call is answered
    // once it is up (or rolled back).
    stop_for_restart(
        name, [this, name, old, n, leases, foreign, done = std::exchange(done, Done{})](std::exception_ptr) {
            const auto it = networks_.find(name);
            if (it == networks_.end()) {  // erased by the daemon meanwhile (a reload)
                if (done) done(std::make_exception_ptr(Error(ErrorKind::Conflict, "network '" + name + "' went away")));
                return;
            }
            Entry& e = it->second;
            restore_leases(name, leases);
            e.spec = n;
            forget_forwards(name);
            bring_up(
                e, 0,
                [this, name, old, n, foreign, done](std::exception_ptr error) {
                    restarted(name, old, n, foreign, error, done);
                },
                true);
        });
}

void Manager::stop_for_restart(const std::string& name, Done then)
{
    // The stop's problems are logged by it; as a stop on the loop did, the
    // restart goes on (the start of the new document reports what is wrong).
    stop(name, [then = std::move(then)](std::exception_ptr error) { then(error); });
    const auto it = networks_.find(name);
    if (it != networks_.end() && it->second.stopping) it->second.stopping->comes_back = true;
}

void Manager::restarted(const std::string& name, const model::Network& old, const model::Network& next,
                        const std::set<std::string>& foreign, std::exception_ptr error, const Done& done)
{
    const auto reattach = [this, name, foreign] {
        auto it = networks_.find(name);
        if (it == networks_.end() || !is_running(it->second.state)) return;
        it->second.foreign_ports = foreign;
        if (const auto back = reattach_foreign_ports(it->second); !back.empty())
            log_info("network " + name + ": " + std::to_string(back.size()) +
                         " interfaces enslaved outside kvmnet attached to " + it->second.spec.bridge + " again",
                     name);
    };
    const auto remove_marker = [this, name] {
        try {
            store::remove_file(layout_.restart_marker(name));
        } catch (const std::exception& err) {
            log_error("network " + name + ": " + err.what(), name);
        }
    };
    auto it = networks_.find(name);
    // Stopped or deleted while it started: the new document stays, stopped.
    const bool cancelled = it == networks_.end() || it->second.state == State::inactive;
    if (!error || cancelled) {
        if (!error) reattach();
        if (!error || !exiting_) remove_marker();
        if (!error && listener_) listener_->network_changed(name);
        if (done) done(error);
        return;
    }
    Entry& e = it->second;
    e.spec = old;
    forget_forwards(name);
    try {
        store_.save(old);
    } catch (const std::exception& err) {
        log_error("network " + name + ": storing the previous document again failed: " + err.what(), name);
    }
    const auto restore = [this, name, error, done, remove_marker, reattach] {
        const auto again_it = networks_.find(name);
        if (again_it == networks_.end()) {  // erased by the daemon meanwhile (a reload)
            remove_marker();
            if (done) done(error);
            return;
        }
        bring_up(again_it->second, 0, [name, error, done, remove_marker, reattach](std::exception_ptr again) {
            if (!again) reattach();
            if (again) try {
                    std::rethrow_exception(again);
                } catch (const std::exception& err) {
                    log_error("network " + name + ": restoring the previous configuration failed too: " + err.what(),
                              name);
                }
            remove_marker();
            if (done) done(error);
        });
    };
    if (old.bridge != next.bridge)
        delete_owned_bridge(e, next.bridge, restore);
    else
        restore();
}

std::optional<std::string> Manager::leases_to_keep(const Entry& e, const model::Network& next) const
{
    // Guests keep their addresses across the restart, and dnsmasq reads its
    // lease file at start: kept, the leases stay in Leases() and dnsmasq
    // renews them. Not when the subnet changes: they would name addresses
    // of the old one.
    if (!e.spec.ipv4 || !next.ipv4 || !(e.spec.ipv4->address == next.ipv4->address)) return std::nullopt;
    return store::read_file(layout_.dnsmasq_leases(e.spec.name));
}

void Manager::restore_leases(const std::string& name, const std::optional<std::string>& leases)
{
    if (!leases) return;
    try {
        store::make_directories(layout_.network_dir(name), 0755);
        store::write_replace(layout_.dnsmasq_leases(name), *leases, 0644);
    } catch (const std::exception& err) {
        log_error("network " + name + ": keeping the DHCP leases across the restart: " + err.what(), name);
    }
}

void Manager::set_autostart(const std::string& name, bool autostart)
{
    // The forwards stay as they are (and their cache with them: a copy of
    // the network would be a new vector, and the next AddForwards and
    // Describe would index and write every forward again).
    Entry& e = forwards_changeable(name);
    if (e.spec.autostart == autostart) return;
    const std::uint64_t forwards_part = forward_cache(e).revision_part;
    e.spec.autostart = autostart;
    // Nothing but the document changes: its text is made off the loop, and
    // a full disk comes back through document_lost, which puts memory back
    // without touching the running network (autostart is only read when
    // the daemon starts).
    try {
        store_.save(e.spec, reads_.revision(e.spec, forwards_part), store::Store::Text::on_writer);
    } catch (...) {
        e.spec.autostart = !autostart;
        throw;
    }
    document_stored(e);
    if (listener_) listener_->network_changed(name);
}

void Manager::link_changed(const std::string& link_name, bool removed, int link_index)
{
    // Notifications describe the past (our own create-then-up arrives after
    // start finished), so judge by the link as it is now, not by the event;
    // but a removal needs no lookup (a link made again under the name sends
    // a notification of its own). Named in KVMNET_LOOP_TRACE's log: the
    // lookup of a link a Stop's worker deletes waited for RTNL until the
    // deletion was done (12-30 ms, which the next call, a start, waited
    // behind).
    // Likewise the notifications of a bridge that a Stop's worker deletes
    // (its down, then its removal): ours, going, and not a running network's.
    const bool ours_going = std::any_of(networks_.begin(), networks_.end(), [&](const auto& n) {
        return n.second.stopping && n.second.spec.bridge == link_name;
    });
    const auto changed = [&]() -> std::optional<plan::LinkInfo> {
        if (removed || ours_going) return std::nullopt;
        const TraceSpan span(loop_trace::enabled() ? "link " + link_name + ": looking it up" : "");
        return links_.find_link(link_name);
    }();
    for (auto& [name, e] : networks_) {
        if (!is_running(e.state)) continue;
        // The removal of an earlier link of the bridge's name (a stop's old
        // bridge, heard after a start made the new one) says nothing about
        // the running bridge: its index stays, and nothing is looked at.
        if (removed && link_index != 0 && e.bridge_index != 0 && e.spec.bridge == link_name &&
            link_index != e.bridge_index)
            continue;
        // Our bridge under another name (renamed behind our back).
        if (changed && changed->kind == "bridge" && changed->name != e.spec.bridge &&
            changed->alias == plan::owner_alias(name))
            mark_dirty(e, plan::drift_links);
        if (e.spec.bridge == link_name) e.bridge_index = changed ? changed->index : 0;
        if (e.spec.bridge == link_name || e.spec.uplink == link_name || driver(e.spec).owns_link(e.spec, link_name)) {
            assess(e);
            mark_dirty(e, plan::drift_links);  // manager_repair.cpp
        }
        // Only a link that is or was on this bridge can change its foreign
        // ports: one link dump per event, not one per running network.
        if ((changed && e.bridge_index != 0 && changed->master_index == e.bridge_index) ||
            e.foreign_ports.count(link_name) != 0)
            observe_ports(e);
        // A guest's interface came back (a VM restarted on the same tap
        // name) or went: attached again, or reported, by the repair.
        if (std::any_of(e.spec.ports.begin(), e.spec.ports.end(),
                        [&](const model::Port& p) { return p.name == link_name; }))
            mark_dirty(e, plan::drift_ports);
    }
}

// ---- kernel reconciliation ----------------------------------------------

void Manager::apply_firewall(const Running& active)
{
    // No write at all when the kernel already has exactly this table (a
    // restarted daemon adopting its networks); otherwise one transaction.
    // Only the networks whose document changed are planned and committed,
    // and only what it touched drops the counters read before.
    try {
        committed_.apply_networks(active);
    } catch (...) {
        forget_counters();
        throw;
    }
    keep_counters(committed_.touched());
    sync_fast_path(active);
    if (docker_user_) docker_user_->sync(active, other_chains());
    if (firewalld_ && options_.firewall_integration) firewalld_->sync(active, known_bridges(), false);
    read_foreign_rules_now();
    sync_evpn(active);
}

void Manager::check_fast_path(const model::Network& n)
{
    if (!n.fast_path) return;
    if (const std::string missing = firewall_.flowtables_missing(); !missing.empty())
        throw Error(ErrorKind::Unsupported, "fast_path: " + missing);
}

void Manager::sync_fast_path(const Running& active)
{
    std::vector<plan::FirewallAdapter::FastPathLink> links;
    for (const model::Network* n : active)
        if (n->fast_path && !n->uplink.empty()) links.push_back({n->bridge, n->uplink});
    // The networks' own rules are committed already; a fast path that
    // cannot be set up leaves their traffic on the ordinary path.
    try {
        firewall_.sync_fast_path(links);
    } catch (const std::exception& e) {
        log_warning(std::string("flowtable fast path: ") + e.what() + "; forwarded traffic takes the ordinary path");
    }
}

void Manager::update_ip_forward(const Running& active)
{
    ip_forward_hold_.want(
        std::any_of(active.begin(), active.end(), [](const model::Network* n) { return needs_forwarding(*n); }));
}

void Manager::bring_up(Entry& e, std::uint32_t confirm_timeout_s, Done done, bool defer)
{
    set_state(e, State::activating);
    e.starting = std::make_unique<Entry::PendingStart>();
    e.starting->confirm_timeout_s = confirm_timeout_s;
    e.starting->waiters.push_back(std::move(done));
    if (!defer) {
        run_start(e);
        return;
    }
    // Ten starts asked at once are ten turns of the loop, with the bus
    // served between them, not one long turn that every read waits behind.
    // Queued, not ten timers: ten timers due at once are all dispatched
    // before a message that arrives after them (sd-event serves what became
    // pending first), so a read waited for all ten starts (issue 12 item 4's
    // loop trace).
    e.starting->queued = true;
    start_queue_.push_back(e.spec.name);
    if (!start_turn_) start_turn_ = loop_.add_timer(0, [this] { run_queued_start(); });
}

void Manager::run_queued_start()
{
    // The source goes with this handler's return, not now: the handler's
    // own cell must outlive it.
    auto turn = std::move(start_turn_);
    while (!start_queue_.empty()) {
        const std::string name = std::move(start_queue_.front());
        start_queue_.pop_front();
        auto it = networks_.find(name);
        // Stopped or deleted while queued, or queued again after that and
        // already run: nothing to do, and no turn spent on it.
        if (it == networks_.end() || !it->second.starting || !it->second.starting->queued) continue;
        it->second.starting->queued = false;
        run_start(it->second);
        break;
    }
    if (!start_queue_.empty() && !start_turn_) start_turn_ = loop_.add_timer(0, [this] { run_queued_start(); });
}

void Manager::run_start(Entry& e)
{
    // Before any kernel step: a daemon killed from here on leaves the
    // runtime directory, by which the next one finds and removes what the
    // interrupted start made, even a bridge not yet marked as kvmnet's
    // (test_crash). Removed again (when empty) if the start fails. Should
    // it fail to be made, the start's own runtime record step reports it.
    const std::string dir = layout_.network_dir(e.spec.name);
    std::error_code ec;
    if (!std::filesystem::exists(dir, ec)) {
        try {
            store::make_directories(dir, 0755);
            e.starting->undo.push("remove the runtime directory", [dir] {
                std::error_code ignored;
                std::filesystem::remove(dir, ignored);
            });
        } catch (const std::exception&) {
        }
    }
    converge(e, e.spec, {}, Failure::start);
}

void Manager::converge(Entry& e, const model::Network& desired, const plan::ConvergeObserved& observed, Failure policy,
                       RepairRun* run)
{
    const auto steps = plan::plan_converge(desired, observed);
    const model::Network* running = observed.running;
    switch (policy) {
    case Failure::start:
        // bring_up made the pending start that carries the journal.
        e.starting->steps = steps;
        e.starting->next = 0;
        advance_start(desired.name, nullptr);
        return;
    case Failure::update: {
        Undo undo;
        std::string what;
        try {
            for (const auto& step : steps)
                apply_step(e, running, step, undo, what);
        } catch (...) {
            // Back to the old document as a converge of its own, from the
            // new one as running: every step the update may have made is
            // planned back, however far it got.
            model::Network old = *running;
            const model::Network next = desired;
            plan::ConvergeObserved back{&next, observed.bridge_mtu};
            e.spec = old;
            try {
                store_.save(old);
            } catch (const std::exception& err) {
                log_error("network " + old.name + ": storing the previous document again failed: " + err.what(),
                          old.name);
            }
            converge(e, old, back, Failure::repair);
            throw;
        }
        undo.commit();
        return;
    }
    case Failure::repair:
        for (const auto& step : steps) {
            if (run && run->stopped) break;
            Undo undo;
            std::string what;
            try {
                apply_step(e, running, step, undo, what, run);
                undo.commit();
            } catch (const std::exception& err) {
                log_error("network " + desired.name + ": " + plan::describe(step) + ": " + err.what(), desired.name);
            }
        }
        return;
    }
}

void Manager::apply_step(Entry& e, const model::Network* running, const plan::ConvergeStep& step, Undo& undo,
                         std::string& what, RepairRun* run)
{
    if (plan::is_repair_step(step)) {
        if (!run) throw Error(ErrorKind::Kernel, plan::describe(step) + " is a repair's step");
        what = plan::describe(step);
        apply_repair(e, step, *run);
        return;
    }
    const model::Network& n = e.spec;
    const auto port_of = [](const model::Network& in, const std::string& name) -> const model::Port* {
        const auto it =
            std::find_if(in.ports.begin(), in.ports.end(), [&](const model::Port& p) { return p.name == name; });
        return it == in.ports.end() ? nullptr : &*it;
    };
    if (std::holds_alternative<plan::SetUpLinks>(step)) {
        what = "checking for conflicts";
        check_fast_path(n);
        ModeDriver& mode = driver(n);
        mode.validate(n);
        check_evpn(n.name);
        mode.setup(n, undo, what);
    } else if (std::holds_alternative<plan::CommitTable>(step)) {
        what = "committing nftables table inet kvmnet";
        apply_firewall(active_networks(n.name));
        // The running networks as they are when undone, without this one:
        // not a copy of every document kept for the whole start, and a
        // start that finished meanwhile keeps its rules.
        undo.push("restore firewall", [this, name = n.name] { apply_firewall(active_networks("", name)); });
    } else if (std::holds_alternative<plan::HoldForwarding>(step)) {
        what = "enabling IPv4 forwarding";
        update_ip_forward(active_networks(n.name));
        undo.push("restore IPv4 forwarding", [this, name = n.name] { update_ip_forward(active_networks("", name)); });
        what = "enabling IPv6 forwarding";
        update_ipv6_forward(active_networks(n.name));
        undo.push("restore IPv6 forwarding", [this, name = n.name] { update_ipv6_forward(active_networks("", name)); });
    } else if (std::holds_alternative<plan::AttachPorts>(step)) {
        // A port that is missing or half-configured does not fail the
        // network: it is reported per port (list_ports) and retried when
        // its interface appears.
        what = "attaching ports";
        attach_ports(e);
        observe_ports(e);
    } else if (std::holds_alternative<plan::StartDnsmasq>(step)) {
        throw Error(ErrorKind::Kernel, "dnsmasq starts only within a start");  // advance_start's, never here
    } else if (std::holds_alternative<plan::RecordActive>(step)) {
        what = "recording runtime state";
        store::make_directories(layout_.network_dir(n.name), 0755);
        // In the runtime directory, which a reboot empties: no fsync.
        store::write_replace(layout_.active_marker(n.name), "1\n");
        undo.push("remove the runtime record",
                  [this, name = n.name] { store::remove_file(layout_.active_marker(name)); });
    } else if (const auto* options = std::get_if<plan::SetBridgeOptions>(&step)) {
        what = "setting the bridge options";
        links_.set_bridge_options(n.bridge, options->options);
    } else if (const auto* mtu = std::get_if<plan::SetBridgeMtu>(&step)) {
        what = "setting the bridge MTU";
        links_.set_mtu(n.bridge, mtu->mtu);
    } else if (const auto* detach = std::get_if<plan::DetachPort>(&step)) {
        what = "detaching port " + detach->name;
        if (const model::Port* p = running ? port_of(*running, detach->name) : nullptr) release_port(e, *p);
        e.port_problems.erase(detach->name);
    } else if (const auto* apply = std::get_if<plan::ApplyPort>(&step)) {
        what = "applying port " + apply->name;
        const model::Port* p = port_of(n, apply->name);
        if (!p) return;
        apply_port(e, *p, running ? port_of(*running, apply->name) : nullptr);
        e.port_problems.erase(apply->name);
    }
}

void Manager::advance_start(const std::string& name, std::exception_ptr error)
{
    auto it = networks_.find(name);
    if (it == networks_.end() || !it->second.starting) return;
    Entry& e = it->second;
    Entry::PendingStart& pending = *e.starting;
    while (!error && pending.next < pending.steps.size()) {
        const plan::ConvergeStep step = pending.steps[pending.next++];
        if (!std::holds_alternative<plan::StartDnsmasq>(step)) {
            try {
                const TraceSpan span(loop_trace::enabled() ? "start " + name + ": " + plan::describe(step) : "");
                apply_step(e, nullptr, step, pending.undo, pending.step);
            } catch (const std::exception&) {
                error = std::current_exception();
            }
            continue;
        }
        // The loop serves every other call while dnsmasq gets ready; its
        // readiness (or failure) comes back here, maybe before start returns.
        pending.step = "starting dnsmasq";
        pending.undo.push("stop dnsmasq", [this, name] {
            if (auto it = networks_.find(name); it != networks_.end() && it->second.dnsmasq) it->second.dnsmasq->stop();
        });
        try {
            const TraceSpan span(loop_trace::enabled() ? "start " + name + ": spawning dnsmasq" : "");
            const model::Network& n = e.spec;
            dnsmasq_of(e).start(plan::plan_dnsmasq(driver(n).effective(n), layout_.network_dir(name), dnsmasq_user_),
                                [this, name](std::exception_ptr ready) { advance_start(name, ready); });
            return;
        } catch (const std::exception&) {
            error = std::current_exception();
        }
    }
    finish_start(name, error);
}

void Manager::finish_start(const std::string& name, std::exception_ptr error)
{
    auto it = networks_.find(name);
    if (it == networks_.end() || !it->second.starting) return;
    Entry& e = it->second;
    const model::Network& n = e.spec;
    const auto pending = std::move(e.starting);
    std::string& step = pending->step;
    const std::uint32_t confirm_timeout_s = pending->confirm_timeout_s;
    if (!error) try {
            const TraceSpan span(loop_trace::enabled() ? "start " + name + ": finishing" : "");
            const auto bridge = links_.find_link(n.bridge);
            const int bridge_index = bridge ? bridge->index : 0;
            pending->undo.commit();
            const TraceSpan leases(loop_trace::enabled() ? "start " + name + ": watching leases" : "");
            watch_leases(e);
            e.mac_watch.reset();
            e.bridge_index = bridge_index;
            if (confirm_timeout_s > 0)
                arm_confirmation(e, static_cast<std::int64_t>(::time(nullptr)) + confirm_timeout_s);
            if (needs_forwarding(n)) ensure_forwarding_watch();
            set_state(e, State::active);
            if (!e.stored_problem.empty() || foreign_rules_) assess(e);
        } catch (const std::exception&) {
            error = std::current_exception();
        }
    if (error) {
        pending->undo.unwind();
        std::string what = "unknown error";
        std::optional<ErrorKind> kind;
        try {
            std::rethrow_exception(error);
        } catch (const Error& err) {
            what = err.what();
            kind = err.kind();
        } catch (const std::exception& err) {
            what = err.what();
        }
        const std::string reason = step + ": " + what;
        set_state(e, State::failed, "start-failed", reason);
        error = std::make_exception_ptr(
            Error(kind.value_or(ErrorKind::Kernel), "starting network '" + n.name + "' failed while " + reason));
    }
    // Last: a waiter may change the network (an update's rollback starts it again).
    const TraceSpan replies(loop_trace::enabled() ? "start " + name + ": replies" : "");
    for (const auto& waiter : pending->waiters)
        if (waiter) waiter(error);
}

std::vector<std::string> Manager::tear_down(Entry& e)
{
    TearDown t = begin_tear_down(e);
    if (!t.bridge.empty())
        attempt(t.problems, t.name, deleting_bridge(t.bridge), [&] { links_.delete_link(t.bridge); });
    end_tear_down(t);
    return std::move(t.problems);
}

Manager::TearDown Manager::begin_tear_down(Entry& e, bool on_worker)
{
    const model::Network& n = e.spec;
    TearDown t;
    t.name = n.name;
    // A start still waiting for dnsmasq ends here: what it did is undone
    // below as a whole, and its callers hear that it was cancelled.
    t.cancelled = std::move(e.starting);
    if (t.cancelled) t.cancelled->undo.commit();
    repairs_.forget(n.name);
    e.repair_wait.clear();
    e.firewall_problem.clear();
    {
        // A watch removed from the daemon's one inotify instance, not an
        // instance closed (which waits for an SRCU grace period).
        const TraceSpan span = stop_span(n.name, "ending the lease watch");
        e.lease_watch.reset();
    }
    {
        const TraceSpan span = stop_span(n.name, "ending the confirmation");
        const bool was_awaiting = e.confirmation && e.confirmation->pending();
        if (e.confirmation) e.confirmation->cancel();
        if (was_awaiting && listener_) listener_->network_changed(n.name);
    }
    attempt(t.problems, n.name, "stopping dnsmasq", [&] {
        if (on_worker)
            t.dnsmasq = dnsmasq_of(e).stop_later();
        else
            dnsmasq_of(e).stop();
    });
    attempt(t.problems, n.name, "updating nftables", [&] { apply_firewall(active_networks("", n.name)); });
    {
        const TraceSpan span = stop_span(n.name, "the mode's teardown");
        for (auto& p : driver(n).teardown(n))
            t.problems.push_back(p);
    }
    // Which link is our bridge is decided here; deleting it is the caller's
    // (on the loop, or on the worker thread: Manager::stop).
    attempt(t.problems, n.name, deleting_bridge(n.bridge), [&] {
        auto link = links_.find_link(n.bridge);
        if (link && (link->alias == plan::owner_alias(n.name) || half_created_bridge(layout_, n.name, *link)))
            t.bridge = n.bridge;
        // Renamed by someone else and not renamed back (yet): ours all the same.
        if (!link)
            if (const auto renamed = renamed_bridge(e)) t.bridge = renamed->name;
    });
    // The network counts as stopped from here on, whatever failed above or
    // fails in the deletion: no repair is marked for it, no table or
    // sysctl counts it, a link notification is not drift.
    {
        const TraceSpan span = stop_span(n.name, "forgetting the run");
        e.forget_run();
        set_state(e, State::inactive);
    }
    attempt(t.problems, n.name, "restoring IPv4 forwarding", [&] { update_ip_forward(active_networks()); });
    attempt(t.problems, n.name, "restoring IPv6 forwarding", [&] { update_ipv6_forward(active_networks()); });
    return t;
}

void Manager::end_tear_down(TearDown& t)
{
    // The takeover record outlives a restore that failed, so a later stop can
    // still put the uplink back; everything else of the run goes. Last, so
    // that a daemon killed before it finds the network's run recorded.
    const TraceSpan span = stop_span(t.name, "removing the runtime directory");
    std::error_code ec;
    const std::string record = layout_.takeover_record(t.name);
    const bool keep_record = !t.problems.empty() && std::filesystem::exists(record);
    for (const auto& entry : std::filesystem::directory_iterator(layout_.network_dir(t.name), ec))
        if (!keep_record || entry.path() != record) std::filesystem::remove_all(entry.path(), ec);
    if (!keep_record) std::filesystem::remove(layout_.network_dir(t.name), ec);
    if (t.cancelled) {
        const auto error = std::make_exception_ptr(
            Error(ErrorKind::Conflict, "network '" + t.name + "' was stopped before it became active"));
        for (const auto& waiter : t.cancelled->waiters)
            if (waiter) waiter(error);
    }
}

Dnsmasq& Manager::dnsmasq_of(Entry& e)
{
    if (e.dnsmasq) return *e.dnsmasq;
    const std::string name = e.spec.name;
    DnsmasqOptions options;
    options.binary = options_.dnsmasq;
    options.user = dnsmasq_user_;
    options.dir = layout_.network_dir(name);
    options.ready_timeout_usec = options_.dnsmasq_ready_timeout_usec;
    options.network = name;
    options.watch = &directory_watch();
    Dnsmasq::Events events;
    events.exited = [this, name](const std::string&) {
        if (auto it = networks_.find(name); it != networks_.end()) assess(it->second);
    };
    events.restarted = [this, name](const std::string& detail) {
        auto it = networks_.find(name);
        if (it == networks_.end()) return;
        Entry& entry = it->second;
        // Without its bridge dnsmasq serves nobody (bind-dynamic: it will,
        // once the bridge is back; bind-interfaces: it does not start until
        // then): the bridge's repair reports it.
        const auto bridge = links_.find_link(entry.spec.bridge);
        if (bridge && bridge->alias == plan::owner_alias(entry.spec.name)) {
            note_repair(entry, "dnsmasq", detail);
        } else {
            log_info("network " + name + ": " + detail + "; serving once bridge " + entry.spec.bridge + " is back",
                     name);
            entry.dnsmasq_unreported = detail;
        }
        assess(entry);
    };
    e.dnsmasq = std::make_unique<Dnsmasq>(loop_, std::move(options), std::move(events));
    return *e.dnsmasq;
}

DirectoryWatch& Manager::directory_watch()
{
    if (!dir_watch_) dir_watch_ = std::make_unique<DirectoryWatch>(loop_);
    return *dir_watch_;
}

void Manager::assess(Entry& e)
{
    if (!is_running(e.state)) return;
    auto [code, reason] = plan::drift(e.spec, observe(e, false)).state();
    if (reason.empty())
        set_state(e, State::active);
    else
        set_state(e, State::degraded, std::move(code), std::move(reason));
}

}  // namespace kvmnet::core
