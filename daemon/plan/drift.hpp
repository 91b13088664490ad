// Desired against observed, judged once. A network's state (active or
// degraded, with StateReason and StateReasonCode) and Diagnose's checks are
// two views of the same findings: the state shows the most urgent finding
// that has a reason code, Diagnose lists every finding that names a check.
// Pure: the caller observes (cheaply for the state, fully for Diagnose) and
// what was not observed is not judged.
#pragma once

#include "model/network.hpp"
#include "plan/converge.hpp"
#include "plan/foreign_rules.hpp"
#include "plan/kernel_view.hpp"
#include "plan/listeners.hpp"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace kvmnet::plan {

// Our nftables table as planned for every running network, and as listed.
struct FirewallView {
    std::string table;                        // its name
    std::vector<std::string> planned_chains;  // every chain the plan has
    std::vector<ChainInfo> chains;            // every table's chains, as listed
    std::string error;                        // listing them failed: why
    // kvmnet's rules for the network in Docker's DOCKER-USER chain, by
    // family ("ip", "ip6"); absent: firewall integration is off.
    std::optional<std::map<std::string, int>> docker_user_rules = std::nullopt;
};

// A network's BGP EVPN as FRR sees it (plan/frr.hpp), for Diagnose.
struct EvpnView {
    std::string state;                                          // plan::evpn_state
    std::vector<std::pair<std::string, std::string>> sessions;  // neighbour, FRR's state of the session
    std::string error;                                          // why FRR could not be asked
    std::string problem;                                        // applying kvmnet's part to FRR failed: why
};

struct Observed {
    bool running = false;
    // Links: always observed.
    std::optional<LinkInfo> bridge;
    std::optional<LinkInfo> uplink;  // bridge mode
    // Diagnose only (nullopt: not observed, not judged).
    std::optional<std::vector<AddressInfo>> addresses;
    // The bridge's addresses and the routes through it, judged against its
    // gateway prefix routes (plan::missing_routes, what the route repair
    // adds again). The state takes what the last repair observed
    // (core::Network::routes_seen), Diagnose lists them afresh.
    std::optional<ConvergeObserved::Routes> routes;
    std::string route_problem;                                            // re-adding a missing route failed: why
    std::optional<std::map<std::string, std::optional<LinkInfo>>> ports;  // port name -> its link, if any
    std::optional<std::string> ip_forward;                                // sysctl text; "" when unreadable
    std::optional<std::string> ipv6_forward;
    std::optional<std::vector<Listener>> listeners;  // read only while dnsmasq runs
    std::optional<FirewallView> firewall;
    // Other programs' tables with a base chain on the forward or input
    // hook, with their rules (plan/foreign_rules.hpp); the daemon re-reads
    // them whenever another program changes a table. nullopt: not read
    // (nft missing, or it failed), not judged.
    std::optional<std::vector<ForeignChain>> foreign_rules;
    std::optional<EvpnView> evpn;  // networks with overlay.evpn
    // What the daemon itself knows of the network (supervision, repairs,
    // its stored document), each empty when all is well.
    std::string dnsmasq_state = "stopped";  // core::Manager::dnsmasq_state
    int dnsmasq_pid = 0;
    std::string dnsmasq_problem;
    std::map<std::string, std::string> port_problems;
    std::string mac_conflict;
    std::string firewall_problem;  // a firewall repair pending or failed
    std::string firewall_problem_code;
    std::string firewalld_problem;   // firewalld refuses the bridge (core/firewalld.hpp)
    std::string forwarding_problem;  // ip_forward turned off behind our back
    std::string stored_problem;      // the stored document does not load
    bool without_document = false;
    std::string repair_wait;  // a repair deferred by the budget: "repair of KINDS over the repair budget ..."
};

// NAT and routed networks route between the bridge and the rest: they need
// IPv4 forwarding (net.ipv4.ip_forward).
bool needs_forwarding(const model::Network& n);

enum class Status { pass, warn, fail };
const char* status_name(Status status);

struct Finding {
    // Diagnose's check ("bridge", "uplink", "port NAME", ...) with its
    // status and sentence; empty check: not a check of its own.
    std::string check;
    Status status = Status::pass;
    std::string detail;
    // A finding that degrades the network: its StateReasonCode and
    // StateReason, and its urgency (lower first).
    std::string code;
    std::string reason;
    int rank = 0;
};

struct Drift {
    std::vector<Finding> findings;  // in Diagnose's order
    // The state of a running network: empty code for active.
    struct Reason {
        std::string code;
        std::string reason;
    };
    Reason state() const;
    // pass, warn or fail: the worst check.
    Status verdict() const;
};

Drift drift(const model::Network& desired, const Observed& observed);

}  // namespace kvmnet::plan
