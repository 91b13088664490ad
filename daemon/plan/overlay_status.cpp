#include "plan/overlay_status.hpp"

#include "model/overlay.hpp"

#include <algorithm>
#include <set>

namespace kvmnet::plan {

std::vector<std::string> overlay_vteps(const model::Network& n, const OverlayObserved& o)
{
    std::set<std::string> out;
    if (!n.overlay) return {};
    for (const model::Ipv4& p : n.overlay->peers)
        out.insert(p.str());
    if (n.overlay->evpn) {
        for (const model::Ipv4& a : n.overlay->evpn->neighbors)
            out.insert(a.str());
        for (const model::Ipv4& f : o.flood)
            out.insert(f.str());
        for (const Vxlans::VxlanFdbEntry& e : o.fdb)
            out.insert(e.vtep.str());
    }
    // With local_interface the same EVPN document lists this host too.
    out.erase(o.local);
    return {out.begin(), out.end()};
}

std::string vtep_reachability(const std::string& state)
{
    const auto has = [&](const char* word) { return state.find(word) != std::string::npos; };
    if (state.empty()) return "unknown";
    if (has("reachable") || has("permanent") || has("noarp")) return "reachable";
    if (has("stale") || has("delay") || has("probe")) return "stale";
    return "unreachable";  // incomplete, failed
}

nlohmann::json overlay_status_json(const model::Network& n, const OverlayObserved& o)
{
    const model::Overlay& ov = *n.overlay;
    nlohmann::json j = {{"network", n.name},
                        {"vni", ov.vni},
                        {"device", model::overlay_device_name(ov.vni)},
                        {"device_present", o.device},
                        {"local", o.local.empty() ? nlohmann::json() : nlohmann::json(o.local)},
                        {"port", ov.port},
                        {"control", ov.evpn ? "evpn" : "static"}};
    if (o.port_flags)
        j["port_flags"] = {{"neigh_suppress", o.port_flags->neigh_suppress}, {"learning", o.port_flags->learning}};
    else
        j["port_flags"] = nullptr;
    std::set<std::string> flood;
    for (const model::Ipv4& f : o.flood)
        flood.insert(f.str());
    std::set<std::string> configured;
    for (const model::Ipv4& p : ov.peers)
        configured.insert(p.str());
    if (ov.evpn)
        for (const model::Ipv4& a : ov.evpn->neighbors)
            configured.insert(a.str());
    nlohmann::json peers = nlohmann::json::array();
    for (const std::string& vtep : overlay_vteps(n, o)) {
        std::vector<std::string> macs;
        bool learned_by_frr = false;
        for (const Vxlans::VxlanFdbEntry& e : o.fdb)
            if (e.vtep.str() == vtep) {
                macs.push_back(e.mac.str());
                learned_by_frr = learned_by_frr || e.extern_learn;
            }
        std::sort(macs.begin(), macs.end());
        const auto it = o.neighbours.find(vtep);
        const std::string state = it == o.neighbours.end() ? "" : it->second;
        nlohmann::json p = {{"vtep", vtep},
                            {"configured", configured.count(vtep) > 0},
                            {"flood", flood.count(vtep) > 0},
                            {"reachability", vtep_reachability(state)},
                            {"neighbour_state", state.empty() ? nlohmann::json() : nlohmann::json(state)},
                            {"remote_macs", macs}};
        peers.push_back(std::move(p));
    }
    j["peers"] = std::move(peers);
    if (!o.evpn.is_null()) j["evpn"] = o.evpn;
    return j;
}

namespace {

std::map<std::string, std::string> by_key(const nlohmann::json& j, const char* list, const char* key, const char* value)
{
    std::map<std::string, std::string> out;
    if (!j.is_object() || !j.contains(list) || !j[list].is_array()) return out;
    for (const nlohmann::json& e : j[list])
        if (e.is_object() && e.contains(key) && e[key].is_string())
            out[e[key].get<std::string>()] =
                e.contains(value) && e[value].is_string() ? e[value].get<std::string>() : "";
    return out;
}

void compare(const std::map<std::string, std::string>& before, const std::map<std::string, std::string>& after,
             const std::string& what, std::vector<std::pair<std::string, std::string>>& out)
{
    for (const auto& [k, v] : after) {
        const auto it = before.find(k);
        if (it == before.end())
            out.emplace_back(what, k + " added (" + v + ")");
        else if (it->second != v)
            out.emplace_back(what, k + ": " + it->second + " -> " + v);
    }
    for (const auto& [k, v] : before)
        if (!after.count(k)) out.emplace_back(what, k + " removed");
}

}  // namespace

std::vector<std::pair<std::string, std::string>> overlay_changes(const nlohmann::json& before,
                                                                 const nlohmann::json& after)
{
    std::vector<std::pair<std::string, std::string>> out;
    const nlohmann::json none = nlohmann::json::object();
    const nlohmann::json& b = before.is_object() && before.contains("evpn") ? before["evpn"] : none;
    const nlohmann::json& a = after.is_object() && after.contains("evpn") ? after["evpn"] : none;
    compare(by_key(b, "sessions", "neighbor", "state"), by_key(a, "sessions", "neighbor", "state"), "session", out);
    // A reachable VTEP's ARP entry goes stale within a minute without
    // traffic: that is no change worth a signal.
    const auto coarse = [](std::map<std::string, std::string> m) {
        for (auto& [vtep, r] : m)
            if (r == "stale") r = "reachable";
        return m;
    };
    compare(coarse(by_key(before, "peers", "vtep", "reachability")),
            coarse(by_key(after, "peers", "vtep", "reachability")), "peer", out);
    return out;
}

}  // namespace kvmnet::plan
