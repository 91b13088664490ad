// The converge plan of a network: desired × observed → the steps that bring
// the kernel to the document, for a start, a live update and a repair alike
// (core::Manager::converge applies them; the three differ only in how a
// failure is undone). Pure: for a repair the manager observes what the
// repair trigger marked dirty (links, addresses, ports, sysctls, routes) and
// plans here; what was not observed is not planned. The firewall is one
// table for every network: it is re-applied whole, not planned per network.
#pragma once

#include "model/network.hpp"
#include "plan/kernel_view.hpp"

#include <cstdint>
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
    drift_routes = 1u << 5,
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

// The routes the kernel keeps for a network of the routed family (its
// gateway addresses' prefix routes on the bridge, `bridge_index`): deleted,
// the guests are cut off although every address is there. None in bridge
// mode (the takeover's routes are the driver's).
std::vector<RouteInfo> network_routes(const model::Network& n, int bridge_index);

// ---- the steps ------------------------------------------------------------
// The steps of a start (nothing of the network exists yet), of a live
// update (the running document differs from the desired one only in what
// UpdatePath::live may change) and of a repair (what the observation found
// drifted). core::Manager::converge applies them; start, live update and
// repair differ only in how a failure is undone (core::Manager::Failure).
struct SetUpLinks {};      // the mode driver validates, then makes the bridge and what hangs on it
struct CommitTable {};     // the network's rules into table inet kvmnet
struct HoldForwarding {};  // the IPv4 (and IPv6) forwarding the network needs
struct AttachPorts {};     // every port; one that fails is reported per port, not fatal
struct StartDnsmasq {};    // waited for without blocking the loop: its readiness resumes the start
struct RecordActive {};    // the runtime record: the network is active from here on
struct SetBridgeOptions {
    BridgeOptions options;
};
struct SetBridgeMtu {
    std::uint32_t mtu = 0;
};
struct DetachPort {
    std::string name;  // a port of the running document
};
struct ApplyPort {
    std::string name;  // a port of the desired document
};
// Repairs. Our bridge renamed behind our back: renamed back (never a second
// bridge with the same gateway next to it); `up`: it was up (kernels that
// rename only links that are down).
struct RenameBridgeBack {
    std::string from, to;
    bool up = false;
};
// Someone else's interface took the bridge's name: never touched; the
// network stays degraded, and nothing else of it is repaired.
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
// A route of network_routes missing from the bridge.
struct AddRoute {
    RouteInfo route;
};
using ConvergeStep = std::variant<SetUpLinks, CommitTable, HoldForwarding, AttachPorts, StartDnsmasq, RecordActive,
                                  SetBridgeOptions, SetBridgeMtu, DetachPort, ApplyPort, RenameBridgeBack,
                                  LeaveReplacedBridge, RepairLinks, AttachPort, PortMissing, TurnOnSysctl, AddRoute>;

// A step only a repair plans, from what it observed.
bool is_repair_step(const ConvergeStep& step);

struct ConvergeObserved {
    // The document the kernel carries now (the caller keeps it alive; a
    // repair's is the desired one itself); null: nothing of the network
    // exists yet (a whole start is planned).
    const model::Network* running = nullptr;
    // The bridge's MTU as it was before the running document set one: what
    // a desired document without an MTU goes back to (0: unknown, left).
    std::uint32_t bridge_mtu = 0;

    // What a repair observed of a running network (nothing, for a start or
    // a live update). Links (observed when links or addresses are dirty):
    // the link under the bridge's name, and our bridge (owner alias) under
    // another name.
    bool links = false;
    std::optional<LinkInfo> bridge{};
    std::optional<LinkInfo> renamed{};
    // Ports (nullopt: not observed): each desired port's link, if any, and
    // the ports whose last attach failed.
    std::optional<std::map<std::string, std::optional<LinkInfo>>> ports{};
    std::set<std::string> port_problems{};
    // Sysctls (nullopt: not observed): the held keys as read, "" when
    // unreadable (never repaired: nothing to compare).
    std::optional<std::map<std::string, std::string>> sysctls{};
    // Routes (nullopt: not observed; needs `bridge`): the bridge's addresses
    // and the routes through it.
    struct Routes {
        std::vector<AddressInfo> addresses;
        std::vector<RouteInfo> routes;
    };
    std::optional<Routes> routes{};
};

// The routes of network_routes that `seen` lacks although the address the
// kernel makes each with is on the bridge (an address re-added brings its
// route back itself; a bridge that is down has none, setting it up brings
// them): what a repair adds again (AddRoute) and what plan::drift reports.
std::vector<RouteInfo> missing_routes(const model::Network& n, const LinkInfo& bridge,
                                      const ConvergeObserved::Routes& seen);

// In the order they apply. A start: links, table, forwarding, ports,
// dnsmasq (with IPv4), the record. A live update: bridge options, MTU,
// ports that went, then ports that are new or differ (every port when the
// MTU changes: theirs follows the bridge's). A bridge option the desired
// document leaves to the kernel but the running one set goes back to the
// kernel's default (kvmnet makes its bridges with them), as the MTU goes
// back to the observed one: left alone, it would keep the running value.
// Then what a repair observed drifted: links first (ports and a bridge's
// own sysctls need the bridge), then ports, sysctls with IPv4 forwarding
// first (writing net.ipv4.ip_forward sets every link's IPv4 forwarding
// with it, so those are not planned besides it), then routes. Routes are
// planned only in a converge that observed no links: a links repair that
// re-adds an address or sets the bridge up brings the kernel's own routes
// back, so what is still missing is seen by the next observation.
std::vector<ConvergeStep> plan_converge(const model::Network& desired, const ConvergeObserved& observed);
std::string describe(const ConvergeStep& step);

// How an Update reaches a new document, the cheapest way that gets there
// (core::Manager::update applies it; the restart is a stop and a start).
enum class UpdatePath {
    store,    // the network is not running: only the document changes
    hosts,    // only static hosts differ and dnsmasq.conf stays: dnsmasq re-reads them (SIGHUP)
    table,    // only forwards and limits differ: one table replacement
    live,     // only bridge options, MTU, autostart and ports differ: applied to the running links
    restart,  // anything else
};
const char* update_path_name(UpdatePath path);
// `next` differs from `current` (an equal document is no update at all).
UpdatePath plan_update(const model::Network& current, const model::Network& next, bool running);

}  // namespace kvmnet::plan
