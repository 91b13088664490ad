// firewalld (issue 14, item 1): while it runs, the bridge of every running
// NAT, routed and isolated network with firewall_integration is in
// firewalld's zone "kvmnet" (firewalld/kvmnet.xml, installed by meson), at
// run time only, and out of it once the network stops. firewalld otherwise
// puts an unknown bridge into its default zone, which rejects the guests'
// DHCP and DNS and does not forward their traffic. Bridge mode is left to
// firewalld's own zones: the bridge carries the host's address.
//
// The calls go through FirewalldBus (api/firewalld_bus.cpp over the system
// bus; a fake in unit tests). The daemon re-syncs when firewalld reloads or
// (re)appears on the bus: a restart drops run-time bindings, and so does a
// reload with FlushAllOnReload=yes (Debian's default).
#pragma once

#include "model/network.hpp"

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace kvmnet::core {

inline constexpr const char* firewalld_zone = "kvmnet";

// The firewalld D-Bus methods kvmnet uses (org.fedoraproject.FirewallD1.zone).
// Every call but running() throws std::exception on a bus or firewalld error.
class FirewalldBus {
public:
    virtual ~FirewalldBus() = default;
    // firewalld owns its bus name (asked without activating it).
    virtual bool running() = 0;
    virtual std::vector<std::string> zones() = 0;  // the zones firewalld has loaded
    virtual std::vector<std::string> interfaces_of(const std::string& zone) = 0;
    // The zone the interface is bound to; "" when none (firewalld's default
    // zone then applies to it).
    virtual std::string zone_of(const std::string& interface) = 0;
    virtual void change_zone(const std::string& zone, const std::string& interface) = 0;
    virtual void remove_interface(const std::string& zone, const std::string& interface) = 0;
};

// What diagnose says about firewalld for one network; nullopt: nothing to
// say (firewalld not running, or a bridge-mode network).
struct FirewalldCheck {
    bool ok = false;
    std::string detail;
};

class Firewalld {
public:
    explicit Firewalld(FirewalldBus& bus) : bus_(bus) {}

    static bool wanted(const model::Network& n) { return n.mode != model::Mode::bridge && n.firewall_integration; }

    // Puts the bridges of the wanted networks of `running` into the zone and
    // takes every other bridge of `known` (all of kvmnet's networks), or of
    // the last sync, out of it; interfaces someone else put there are left
    // alone. Nothing when
    // firewalld does not run. Never throws: a failure is logged, the network
    // stays up, and diagnose shows the bridge outside the zone.
    // Without `force` it makes no bus call when the wanted bridges are those
    // of the last complete sync, or firewalld was absent then: adding a port
    // forward must not wait for firewalld. Forced: after firewalld reloaded,
    // appeared or vanished.
    void sync(const std::vector<model::Network>& running, const std::set<std::string>& known, bool force);

    // Whether the bridge was in the zone after the last sync (for Describe;
    // no bus call): "kvmnet" when it was, "" otherwise or without firewalld.
    std::string zone_of_last_sync(const std::string& bridge) const;

    // Asks firewalld now (Diagnose). `running`: the network is up; the
    // sentence says when n.firewall_integration is off.
    std::optional<FirewalldCheck> check(const model::Network& n, bool running) const;

private:
    FirewalldBus& bus_;
    std::set<std::string> in_zone_;  // bridges put there by the last sync
    // The wanted bridges of the last sync that made every call it needed.
    std::optional<std::set<std::string>> synced_;
    bool absent_ = false;  // firewalld did not run at the last sync
};

}  // namespace kvmnet::core
