// The planner: desired networks × observed kernel state → what to do. Pure
// functions only, so every decision is covered by unit and golden tests.
#pragma once

#include "model/network.hpp"
#include "plan/kernel_view.hpp"
#include "plan/ruleset.hpp"

#include <string>
#include <variant>
#include <vector>

namespace kvmnet::plan {

inline constexpr const char* table_name = "kvmnet";
inline constexpr const char* alias_prefix = "kvmnet:";

// The ifalias that marks a link as owned by network `name`.
std::string owner_alias(const std::string& network_name);

// The whole "inet kvmnet" table for the given active networks, in a stable
// order (by network name). Chains are fixed; rules grow with the number of
// networks only.
Table build_ruleset(std::vector<model::Network> active);

// Link operations that bring a network's bridge to the desired state.
struct CreateBridge {
    std::string name;
    BridgeOptions options;
};
struct SetAlias {
    std::string name;
    std::string alias;
};
struct SetMtu {
    std::string name;
    std::uint32_t mtu;
};
struct AddAddress {
    std::string name;
    std::string address;
    std::uint8_t prefix_length;
};
struct SetUp {
    std::string name;
};
using LinkOp = std::variant<CreateBridge, SetAlias, SetMtu, AddAddress, SetUp>;

std::string describe(const LinkOp& op);

// The kernel bridge settings a network asks for; `mac` is used at creation.
BridgeOptions bridge_options(const model::Network& network, const std::string& mac = {});

// Throws Conflict when `observed` is a link that another owner has (not our
// alias). `mac` is the bridge address to create it with (bridge mode: the
// uplink's), empty for a random one.
std::vector<LinkOp> plan_bridge(const model::Network& network, const std::optional<LinkInfo>& observed,
                                const std::vector<AddressInfo>& addresses, const std::string& mac = {});

// Which of the uplink's addresses and routes a bridge-mode takeover moves:
// everything but what the kernel makes by itself (IPv6 link-local addresses,
// routes of protocol "kernel"), which it makes again on the bridge.
std::vector<AddressInfo> takeover_addresses(const std::vector<AddressInfo>& all, int uplink_index);
std::vector<RouteInfo> takeover_routes(const std::vector<RouteInfo>& all, int uplink_index);

// dnsmasq configuration for a network, with its files in `runtime_dir`.
struct DnsmasqFiles {
    std::string config;  // dnsmasq.conf
    std::string hosts;   // dnsmasq.hosts (dhcp-hostsfile, re-read on SIGHUP)
};
DnsmasqFiles plan_dnsmasq(const model::Network& network, const std::string& runtime_dir, const std::string& user);

}  // namespace kvmnet::plan
