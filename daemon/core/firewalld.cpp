#include "core/firewalld.hpp"

#include "core/log.hpp"

#include <algorithm>
#include <string>
#include <utility>

namespace kvmnet::core {

void Firewalld::sync(const std::vector<model::Network>& running, const std::set<std::string>& known, bool force)
{
    Request request{{}, known};
    for (const model::Network& n : running)
        if (wanted(n)) request.wanted.insert(n.bridge);
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
    if (absent_) return;
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
            } else {
                run_->complete = false;
                log_warning("firewalld: putting bridge " + bridge + " into zone " + firewalld_zone + ": " + e);
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

std::optional<FirewalldCheck> Firewalld::check(const model::Network& n, bool running) const
{
    if (n.mode == model::Mode::bridge || !running || !bus_.running()) return std::nullopt;
    std::string zone;
    try {
        zone = bus_.zone_of(n.bridge);
    } catch (const std::exception& e) {
        return FirewalldCheck{false,
                              "firewalld runs but could not be asked for bridge " + n.bridge + "'s zone: " + e.what()};
    }
    if (zone == firewalld_zone)
        return FirewalldCheck{true, "firewalld runs; bridge " + n.bridge + " is in its zone " + firewalld_zone};
    std::string detail = "firewalld runs and bridge " + n.bridge + " is ";
    if (zone.empty())
        detail += "in no zone: firewalld's default zone applies, which rejects guests' DHCP and DNS and does "
                  "not forward their traffic";
    else
        detail += "in zone " + zone + ", not " + firewalld_zone + ": that zone decides what guests may do";
    if (!n.firewall_integration) detail += " (firewall integration is off)";
    bool installed = true;
    try {
        const auto zones = bus_.zones();
        installed = std::find(zones.begin(), zones.end(), firewalld_zone) != zones.end();
    } catch (const std::exception&) {
        // Then the command below is still the likely remedy.
    }
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

}  // namespace kvmnet::core
