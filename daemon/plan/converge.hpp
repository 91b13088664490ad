// The converge plan of a running network: desired × observed → the steps
// that bring the kernel back to the document. Pure: the manager observes
// what a repair trigger marked dirty (links, addresses, ports, sysctls),
// plans here and applies the steps (core/manager_repair.cpp); what was not
// observed is not planned. The firewall is one table for every network:
// it is re-applied whole, not planned per network.
#pragma once

#include "model/network.hpp"
#include "plan/kernel_view.hpp"

#include <map>
#include <optional>
#include <set>
#include <string>
#include <variant>
#include <vector>

namespace kvmnet::plan {

// What may have drifted: the marks of the repair trigger, as a bit set.
enum DriftKind : unsigned {
    drift_links = 1u << 0,
    drift_addresses = 1u << 1,
    drift_ports = 1u << 2,
    drift_sysctls = 1u << 3,
    drift_firewall = 1u << 4,
};
using DriftKinds = unsigned;
// "links, sysctls": for logs and tests.
std::string drift_kinds_text(DriftKinds kinds);

inline constexpr const char* ip_forward_key = "net/ipv4/ip_forward";
inline constexpr const char* ipv6_forwarding_key = "net/ipv6/conf/all/forwarding";

// The sysctls (keys under /proc/sys) a running network holds on ("1"):
// IPv4 forwarding and the bridge's own for NAT and routed networks (IPv4
// forwards only what arrives on a link with forwarding on), IPv6 forwarding
// with IPv6, and route_localnet for NAT (forwards reached as 127.0.0.1).
std::vector<std::string> held_sysctls(const model::Network& n);

struct RepairObserved {
    // Links (observed when links or addresses are dirty): the link under
    // the bridge's name, and our bridge (owner alias) under another name.
    bool links = false;
    std::optional<LinkInfo> bridge;
    std::optional<LinkInfo> renamed;
    // Ports (nullopt: not observed): each desired port's link, if any, and
    // the ports whose last attach failed.
    std::optional<std::map<std::string, std::optional<LinkInfo>>> ports;
    std::set<std::string> port_problems;
    // Sysctls (nullopt: not observed): the held keys as read, "" when
    // unreadable (never repaired: nothing to compare).
    std::optional<std::map<std::string, std::string>> sysctls;
};

// Our bridge renamed behind our back: renamed back (never a second bridge
// with the same gateway next to it).
struct RenameBridgeBack {
    std::string from, to;
};
// Someone else's interface took the bridge's name: never touched; the
// network stays degraded.
struct LeaveReplacedBridge {};
// The mode driver re-plans the bridge and what hangs on it
// (core::ModeDriver::repair) and applies the difference.
struct RepairLinks {};
// A desired port's interface is there but not (fully) attached.
struct AttachPort {
    std::string name;
};
// A desired port's interface is missing: reported until it comes back.
struct PortMissing {
    std::string name;
};
struct TurnOnSysctl {
    std::string key;
};
using RepairStep =
    std::variant<RenameBridgeBack, LeaveReplacedBridge, RepairLinks, AttachPort, PortMissing, TurnOnSysctl>;

// Steps in the order they apply: links first (ports and a bridge's own
// sysctls need the bridge), then ports, then sysctls with IPv4 forwarding
// first. Writing net.ipv4.ip_forward sets every link's IPv4 forwarding with
// it, so those are not planned besides it.
std::vector<RepairStep> plan_repair(const model::Network& desired, const RepairObserved& observed);

// A step in words, for logs and tests.
std::string describe(const RepairStep& step);

// How an Update reaches a new document, the cheapest way that gets there
// (core::Manager::update applies it; the restart is a stop and a start).
enum class UpdatePath {
    unchanged,  // the same document
    store,      // the network is not running: only the document changes
    hosts,      // only static hosts differ and dnsmasq.conf stays: dnsmasq re-reads them (SIGHUP)
    table,      // only forwards and limits differ: one table replacement
    live,       // only bridge options, MTU, autostart and ports differ: applied to the running links
    restart,    // anything else
};
const char* update_path_name(UpdatePath path);
UpdatePath plan_update(const model::Network& current, const model::Network& next, bool running);

}  // namespace kvmnet::plan
