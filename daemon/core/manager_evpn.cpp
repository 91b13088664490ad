// EVPN through FRR (core/evpn.hpp): kvmnet's part of FRR follows the set of
// running networks (sync_evpn, from apply_firewall, which every start, stop,
// update, repair and load goes through), and while an EVPN network runs a
// poll reads FRR's sessions every few seconds: it announces EvpnState
// changes (PropertiesChanged) and puts kvmnet's part back into an FRR that
// lost it (restarted). The same poll runs while any overlay network runs:
// it compares each one's overlay status (sessions, VTEPs) with the last and
// emits OverlayChanged for what moved.
#include "core/evpn.hpp"
#include "core/log.hpp"
#include "core/manager.hpp"
#include "model/error.hpp"
#include "plan/overlay_status.hpp"

#include <algorithm>

namespace kvmnet::core {

std::vector<plan::EvpnNetwork> Manager::evpn_networks(const std::vector<model::Network>& active) const
{
    std::vector<plan::EvpnNetwork> out;
    const auto local = [this](const std::string& ifname) -> std::optional<model::Ipv4> {
        const auto link = links_.find_link(ifname);
        if (!link) return std::nullopt;
        for (const plan::AddressInfo& a : links_.list_addresses())
            if (a.link_index == link->index && a.address.is_v4()) return *a.address.v4();
        return std::nullopt;
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
    const bool overlays =
        std::any_of(active.begin(), active.end(), [](const model::Network& n) { return n.overlay.has_value(); });
    if (!evpn_->wanted() && !overlays) {
        evpn_timer_.reset();
        evpn_poll();  // the stopped networks' EvpnState goes back to ""
        return;
    }
    if (evpn_timer_) return;
    evpn_timer_ = loop_.add_timer(0, [this] {
        evpn_timer_.reset();
        evpn_poll();
        if (!evpn_timer_)
            evpn_timer_ = loop_.add_timer(Evpn::poll_interval_s * 1'000'000ULL, [this] {
                evpn_timer_.reset();
                sync_evpn(active_specs());
            });
    });
}

void Manager::evpn_poll()
{
    if (evpn_->wanted()) evpn_->refresh();
    for (auto& [name, e] : networks_) {
        const std::string now = evpn_state(name);
        auto it = evpn_states_.find(name);
        const std::string before = it == evpn_states_.end() ? "" : it->second;
        if (now == before) continue;
        evpn_states_[name] = now;
        if (!now.empty()) log_info("network " + name + ": EVPN " + now, name);
        // No session up makes it degraded (evpn-session), one up active again.
        assess(e);
        if (listener_) listener_->network_changed(name);
    }
    for (auto& [name, e] : networks_) {
        if (!e.spec.overlay || !is_running(e.state)) {
            overlay_seen_.erase(name);
            continue;
        }
        nlohmann::json now;
        try {
            now = overlay_status_now(e);
        } catch (const std::exception& err) {
            log_debug("network " + name + ": reading the overlay status: " + err.what(), name);
            continue;
        }
        auto it = overlay_seen_.find(name);
        if (it != overlay_seen_.end())
            for (const auto& [what, detail] : plan::overlay_changes(it->second, now)) {
                log_info("network " + name + ": overlay " + what + " " + detail, name);
                if (listener_) listener_->overlay_changed(name, what, detail);
            }
        overlay_seen_[name] = std::move(now);
    }
}

nlohmann::json Manager::overlay_status_now(const Entry& e) const
{
    const model::Network& n = e.spec;
    const std::string device = model::overlay_device_name(n.overlay->vni);
    plan::OverlayObserved o;
    if (n.overlay->local)
        o.local = n.overlay->local->str();
    else if (const auto link = links_.find_link(n.overlay->local_interface))
        for (const plan::AddressInfo& a : links_.list_addresses())
            if (a.link_index == link->index && a.address.is_v4()) {
                o.local = a.address.str();
                break;
            }
    if (is_running(e.state) && links_.find_link(device)) {
        o.device = true;
        o.port_flags = links_.vxlan_port_flags(device);
        o.flood = links_.list_flood(device);
        o.fdb = links_.vxlan_fdb(device);
    }
    for (const std::string& vtep : plan::overlay_vteps(n, o))
        if (o.device) o.neighbours[vtep] = links_.neighbour_state(vtep);
    if (is_running(e.state)) {
        const auto mine = evpn_networks({n});
        if (!mine.empty() && evpn_->wanted()) {
            o.evpn = plan::evpn_status_json(evpn_->status(), mine.front());
            if (!evpn_->problem().empty()) o.evpn["problem"] = evpn_->problem();
        }
    }
    nlohmann::json j = plan::overlay_status_json(n, o);
    j["state"] = state_name(e.state);
    return j;
}

nlohmann::json Manager::overlay_status(const std::string& name) const
{
    const Entry& e = entry(name);
    if (!e.spec.overlay)
        throw Error(ErrorKind::InvalidArgument,
                    "network '" + name + "' has no overlay section (it does not span hosts; see docs/overlay.md)");
    if (is_running(e.state) && e.spec.overlay->evpn && evpn_->wanted()) evpn_->refresh_if_stale();
    return overlay_status_now(e);
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
    if (!e.spec.overlay || !e.spec.overlay->evpn) return nullptr;  // no copy of the forwards (evpn_view)
    const auto mine = evpn_networks({e.spec});
    if (mine.empty() || !evpn_->wanted()) return nullptr;
    evpn_->refresh_if_stale();
    nlohmann::json j = plan::evpn_status_json(evpn_->status(), mine.front());
    if (!evpn_->problem().empty()) j["problem"] = evpn_->problem();
    return j;
}

std::optional<plan::EvpnView> Manager::evpn_view(const std::string& name, bool fresh) const
{
    // Before the copy of the document below: every repair's observe() asks
    // this, and the nftables monitor's echo of each forward change starts
    // one (a copy of 100,000 forwards made one add through D-Bus x2.2).
    const model::Network& spec = entry(name).spec;
    if (!spec.overlay || !spec.overlay->evpn) return std::nullopt;
    const auto mine = evpn_networks({spec});
    if (mine.empty() || !evpn_->wanted()) return std::nullopt;
    if (fresh)
        evpn_->refresh();
    else if (!evpn_->asked())
        return std::nullopt;
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
