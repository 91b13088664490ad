#include "core/firewalld.hpp"

#include "core/log.hpp"

#include <algorithm>
#include <string>
#include <utility>

namespace kvmnet::core {

bool firewalld_no_reply(const std::string& error)
{
    return error.find("org.freedesktop.DBus.Error.NoReply") != std::string::npos ||
           error.find("org.freedesktop.DBus.Error.Timeout") != std::string::npos ||
           error.find("timed out") != std::string::npos;
}

namespace {
// What diagnose says once firewalld told the bridge's zone (not kvmnet) and
// whether zone kvmnet is loaded.
FirewalldCheck judge_zone(const model::Network& n, const std::string& zone, bool installed)
{
    std::string detail = "firewalld runs and bridge " + n.bridge + " is ";
    if (zone.empty())
        detail += "in no zone: firewalld's default zone applies, which rejects guests' DHCP and DNS and does "
                  "not forward their traffic";
    else
        detail += "in zone " + zone + ", not " + firewalld_zone + ": that zone decides what guests may do";
    if (!n.firewall_integration) detail += " (firewall integration is off)";
    if (!installed) {
        detail += "; firewalld has no zone ";
        detail += firewalld_zone;
        detail += ": install kvmnet's zone and policies (firewalld/*.xml in the source; meson install puts them "
                  "under /usr/lib/firewalld) and run firewall-cmd --reload";
        return FirewalldCheck{false, detail};
    }
    detail += "; let them through with: firewall-cmd --zone=";
    detail += firewalld_zone;
    detail += " --change-interface=" + n.bridge;
    return FirewalldCheck{false, detail};
}

// The StateReason while firewalld refuses the bridge.
std::string zone_problem(const std::string& bridge, const std::string& error)
{
    std::string text = "firewalld could not put bridge " + bridge + " into its zone ";
    text.append(firewalld_zone).append(" (").append(error).append(")");
    if (error.find("INVALID_ZONE") != std::string::npos) {
        text.append(": firewalld has no zone ").append(firewalld_zone);
        text.append(", install kvmnet's zone files and run firewall-cmd --reload");
    }
    text.append("; its default zone rejects the guests' DHCP and DNS and does not forward their traffic");
    return text;
}
}  // namespace

void Firewalld::sync(const std::vector<model::Network>& running, const std::set<std::string>& known, bool force)
{
    std::vector<const model::Network*> in_place;
    for (const model::Network& n : running)
        in_place.push_back(&n);
    sync(in_place, known, force);
}

void Firewalld::sync(const std::vector<const model::Network*>& running, const std::set<std::string>& known, bool force)
{
    Request request{{}, known};
    for (const model::Network* n : running)
        if (wanted(*n)) request.wanted.insert(n->bridge);
    if (run_) {
        if (!force && !next_ && run_->request.wanted == request.wanted) return;
        next_ = std::move(request);
        return;
    }
    if (!force && (absent_ || synced_ == request.wanted)) return;
    start(std::move(request));
}

void Firewalld::start(Request request)
{
    synced_.reset();
    absent_ = !bus_.running();
    // Without firewalld nothing of it stands in the guests' way.
    if (absent_) {
        for (auto it = problems_.begin(); it != problems_.end();) {
            const std::string bridge = (it++)->first;
            set_problem(bridge, "");
        }
        return;
    }
    run_ = std::make_unique<Run>();
    run_->request = std::move(request);
    run_->previous = in_zone_;
    run_->outstanding = 1;
    bus_.interfaces_of(firewalld_zone, [this, alive = std::weak_ptr<bool>(alive_)](std::vector<std::string> interfaces,
                                                                                   const std::string& error) {
        if (alive.lock()) listed(std::move(interfaces), error);
    });
}

void Firewalld::listed(std::vector<std::string> interfaces, const std::string& error)
{
    Run& run = *run_;
    if (!error.empty()) {
        run.complete = false;
        log_warning(std::string("firewalld: listing zone ") + firewalld_zone + ": " + error);
    } else {
        run.listed.emplace(interfaces.begin(), interfaces.end());
    }
    // Superseded: the newer sync lists the zone itself once this one's
    // calls are answered.
    if (next_) return replied();
    const Request& request = run.request;
    for (auto it = problems_.begin(); it != problems_.end();) {
        const std::string bridge = (it++)->first;
        if (!request.wanted.count(bridge)) set_problem(bridge, "");
    }
    // Held while the calls go out, so that a reply given at once (a fake)
    // cannot finish the run before the last call is made.
    ++run.outstanding;
    const auto alive = std::weak_ptr<bool>(alive_);
    for (const std::string& ifname : interfaces) {
        if (request.wanted.count(ifname) || (!request.known.count(ifname) && !run.previous.count(ifname))) continue;
        ++run.outstanding;
        bus_.remove_interface(firewalld_zone, ifname, [this, alive, ifname](const std::string& e) {
            if (!alive.lock()) return;
            if (e.empty()) {
                in_zone_.erase(ifname);
                log_info("firewalld: bridge " + ifname + " out of zone " + firewalld_zone);
            } else {
                run_->complete = false;
                log_warning("firewalld: taking bridge " + ifname + " out of zone " + firewalld_zone + ": " + e);
            }
            replied();
        });
    }
    for (const std::string& bridge : request.wanted) {
        // changeZoneOfInterface returns at once when the bridge is there
        // already, so a forced re-sync costs one call per bridge.
        ++run.outstanding;
        bus_.change_zone(firewalld_zone, bridge, [this, alive, bridge](const std::string& e) {
            if (!alive.lock()) return;
            if (e.empty()) {
                in_zone_.insert(bridge);
                run_->changed.insert(bridge);
                log_debug("firewalld: bridge " + bridge + " in zone " + firewalld_zone);
                set_problem(bridge, "");
            } else {
                run_->complete = false;
                log_warning("firewalld: putting bridge " + bridge + " into zone " + firewalld_zone + ": " + e);
                // A hung firewalld is not known to refuse the bridge: the
                // state follows what firewalld said.
                if (!firewalld_no_reply(e)) set_problem(bridge, zone_problem(bridge, e));
            }
            replied();
        });
    }
    replied();  // the hold
    replied();  // the listing
}

void Firewalld::replied()
{
    if (--run_->outstanding == 0) finish();
}

void Firewalld::finish()
{
    const std::unique_ptr<Run> run = std::move(run_);
    if (next_) {
        Request request = std::move(*next_);
        next_.reset();
        start(std::move(request));
        return;
    }
    // A bridge the zone had lost (firewalld restarted) and no call put back
    // is not in it.
    if (run->listed) {
        std::set<std::string> still;
        for (const std::string& bridge : in_zone_)
            if (run->listed->count(bridge) || run->changed.count(bridge)) still.insert(bridge);
        in_zone_ = std::move(still);
    }
    if (run->complete) {
        synced_ = run->request.wanted;
        failures_ = 0;
        return;
    }
    const std::uint64_t delay =
        failures_ >= 6 ? retry_max_usec : std::min(retry_max_usec, retry_first_usec << failures_);
    ++failures_;
    log_info("firewalld: syncing again in " + std::to_string(delay / 1'000'000) + " s");
    if (retry_) retry_(delay);
}

std::string Firewalld::zone_of_last_sync(const std::string& bridge) const
{
    return in_zone_.count(bridge) ? firewalld_zone : "";
}

std::string Firewalld::problem_of(const std::string& bridge) const
{
    const auto it = problems_.find(bridge);
    return it == problems_.end() ? "" : it->second;
}

void Firewalld::set_problem(const std::string& bridge, std::string problem)
{
    const auto it = problems_.find(bridge);
    if (problem.empty()) {
        if (it == problems_.end()) return;
        problems_.erase(it);
    } else {
        if (it != problems_.end() && it->second == problem) return;
        problems_[bridge] = std::move(problem);
    }
    if (problems_changed_) problems_changed_();
}

void Firewalld::check(const model::Network& n, bool running, CheckDone done)
{
    if (n.mode == model::Mode::bridge || !running || !bus_.running()) return done(std::nullopt);
    const auto alive = std::weak_ptr<bool>(alive_);
    bus_.zone_of(n.bridge, [this, alive, n, done = std::move(done)](const std::string& zone,
                                                                    const std::string& error) mutable {
        if (!alive.lock()) return;
        if (!error.empty()) {
            if (firewalld_no_reply(error))
                return done(FirewalldCheck{false, "firewalld does not answer: no reply within " +
                                                      std::to_string(firewalld_diagnose_timeout_seconds) +
                                                      " s when asked for bridge " + n.bridge + "'s zone"});
            return done(FirewalldCheck{false, "firewalld runs but could not be asked for bridge " + n.bridge +
                                                  "'s zone: " + error});
        }
        if (zone == firewalld_zone)
            return done(
                FirewalldCheck{true, "firewalld runs; bridge " + n.bridge + " is in its zone " + firewalld_zone});
        bus_.zones([alive, n, zone, done = std::move(done)](const std::vector<std::string>& zones,
                                                            const std::string& e) {
            if (!alive.lock()) return;
            // Without the list, the command to type is still the likely remedy.
            const bool installed = !e.empty() || std::find(zones.begin(), zones.end(), firewalld_zone) != zones.end();
            done(judge_zone(n, zone, installed));
        });
    });
}

}  // namespace kvmnet::core
