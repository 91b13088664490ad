#include "core/firewalld.hpp"

#include "core/log.hpp"

#include <algorithm>
#include <utility>

namespace kvmnet::core {

void Firewalld::sync(const std::vector<model::Network>& running, const std::set<std::string>& known, bool force)
{
    std::set<std::string> wanted_bridges;
    for (const model::Network& n : running)
        if (wanted(n)) wanted_bridges.insert(n.bridge);
    if (!force && (absent_ || synced_ == wanted_bridges)) return;
    // Ours too: what the last sync put there, e.g. the old bridge of a
    // network whose bridge an update renamed.
    const std::set<std::string> previous = std::exchange(in_zone_, {});
    synced_.reset();
    absent_ = !bus_.running();
    if (absent_) return;
    bool complete = true;
    try {
        for (const std::string& ifname : bus_.interfaces_of(firewalld_zone)) {
            if (wanted_bridges.count(ifname) || (!known.count(ifname) && !previous.count(ifname))) continue;
            bus_.remove_interface(firewalld_zone, ifname);
            log_info("firewalld: bridge " + ifname + " out of zone " + firewalld_zone);
        }
    } catch (const std::exception& e) {
        complete = false;
        log_warning(std::string("firewalld: listing zone ") + firewalld_zone + ": " + e.what());
    }
    for (const std::string& bridge : wanted_bridges) {
        try {
            // changeZoneOfInterface returns at once when the bridge is there
            // already, so a forced re-sync costs one call per bridge.
            bus_.change_zone(firewalld_zone, bridge);
            in_zone_.insert(bridge);
            log_debug("firewalld: bridge " + bridge + " in zone " + firewalld_zone);
        } catch (const std::exception& e) {
            complete = false;
            log_warning("firewalld: putting bridge " + bridge + " into zone " + firewalld_zone + ": " + e.what());
        }
    }
    if (complete) synced_ = std::move(wanted_bridges);
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
