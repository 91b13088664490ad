// EVPN through FRR (core/evpn.hpp): kvmnet's part of FRR follows the set of
// running networks (sync_evpn, from apply_firewall, which every start, stop,
// update, repair and load goes through), and while an EVPN network runs a
// poll reads FRR's sessions every few seconds: it announces EvpnState
// changes (PropertiesChanged) and puts kvmnet's part back into an FRR that
// lost it (restarted).
#include "core/evpn.hpp"
#include "core/log.hpp"
#include "core/manager.hpp"

#include <sys/socket.h>

namespace kvmnet::core {

std::vector<plan::EvpnNetwork> Manager::evpn_networks(const std::vector<model::Network>& active) const
{
    std::vector<plan::EvpnNetwork> out;
    const auto local = [this](const std::string& ifname) -> std::string {
        const auto link = links_.find_link(ifname);
        if (!link) return "";
        for (const plan::AddressInfo& a : links_.list_addresses())
            if (a.link_index == link->index && a.family == AF_INET) return a.address;
        return "";
    };
    for (const model::Network& n : active)
        if (auto e = evpn_network(n, local)) out.push_back(std::move(*e));
    return out;
}

void Manager::check_evpn(const std::string& name)
{
    const auto running = evpn_networks(active_specs(name));
    for (const plan::EvpnNetwork& e : running)
        if (e.network == name) {
            evpn_->check(running);
            return;
        }
}

void Manager::sync_evpn(const std::vector<model::Network>& active)
{
    evpn_->sync(evpn_networks(active));
    if (!evpn_->wanted()) {
        evpn_timer_.reset();
        evpn_poll();  // the stopped networks' EvpnState goes back to ""
        return;
    }
    if (evpn_timer_) return;
    evpn_timer_ = loop_.add_timer(0, [this] {
        evpn_timer_.reset();
        evpn_poll();
        if (evpn_->wanted() && !evpn_timer_)
            evpn_timer_ = loop_.add_timer(Evpn::poll_interval_s * 1'000'000ULL, [this] {
                evpn_timer_.reset();
                sync_evpn(active_specs());
            });
    });
}

void Manager::evpn_poll()
{
    if (evpn_->wanted()) evpn_->refresh();
    for (const auto& [name, e] : networks_) {
        const std::string now = evpn_state(name);
        auto it = evpn_states_.find(name);
        const std::string before = it == evpn_states_.end() ? "" : it->second;
        if (now == before) continue;
        evpn_states_[name] = now;
        if (!now.empty()) log_info("network " + name + ": EVPN " + now, name);
        if (listener_) listener_->network_changed(name);
    }
}

std::string Manager::evpn_state(const std::string& name) const
{
    const Entry& e = entry(name);
    if (e.state != State::active && e.state != State::degraded) return "";
    // Before the copy of the document below: the bus reads this property
    // after every change, and a copy of 100,000 forwards costs milliseconds.
    if (!e.spec.overlay || !e.spec.overlay->evpn) return "";
    const auto mine = evpn_networks({e.spec});
    if (mine.empty() || !evpn_->wanted()) return "";
    return plan::evpn_state(evpn_->status(), mine.front());
}

nlohmann::json Manager::evpn_status(const std::string& name) const
{
    const Entry& e = entry(name);
    if (e.state != State::active && e.state != State::degraded) return nullptr;
    const auto mine = evpn_networks({e.spec});
    if (mine.empty() || !evpn_->wanted()) return nullptr;
    evpn_->refresh_if_stale();
    nlohmann::json j = plan::evpn_status_json(evpn_->status(), mine.front());
    if (!evpn_->problem().empty()) j["problem"] = evpn_->problem();
    return j;
}

std::optional<plan::EvpnView> Manager::evpn_view(const std::string& name) const
{
    const auto mine = evpn_networks({entry(name).spec});
    if (mine.empty() || !evpn_->wanted()) return std::nullopt;
    evpn_->refresh();
    const nlohmann::json j = plan::evpn_status_json(evpn_->status(), mine.front());
    plan::EvpnView v;
    v.state = j["state"];
    for (const nlohmann::json& s : j["sessions"])
        v.sessions.emplace_back(s["neighbor"], s["state"]);
    v.error = evpn_->status().error;
    v.problem = evpn_->problem();
    return v;
}

}  // namespace kvmnet::core
