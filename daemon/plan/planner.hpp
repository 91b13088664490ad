// The planner: desired networks × observed kernel state → what to do. Pure
// functions only, so every decision is covered by unit and golden tests.
#pragma once

#include "model/network.hpp"
#include "plan/kernel_view.hpp"
#include "plan/ruleset.hpp"

#include <cstddef>
#include <string>
#include <variant>
#include <vector>

namespace kvmnet::plan {

inline constexpr const char* table_name = "kvmnet";
// The table of the opt-in flowtable fast path (FirewallAdapter::sync_fast_path).
inline constexpr const char* fast_path_table = "kvmnet_fast";
inline constexpr const char* alias_prefix = "kvmnet:";

// The ifalias that marks a link as owned by network `name`.
std::string owner_alias(const std::string& network_name);

// The whole "inet kvmnet" table for the given active networks, in a stable
// order (by network name). The hooked chains hold a fixed set of rules that
// look the packet's bridge (and its addresses) up in named sets; a network
// adds only elements to those sets (ruleset_parts.hpp), and chains of its own
// only for its limits.
Table build_ruleset(std::vector<model::Network> active);

// ---- the per-network data sets --------------------------------------------------------------------------------
//
// Keyed by bridge name (ifname), one element per network it applies to:
inline constexpr const char* nat_bridges_set = "nat_bridges";                // NAT networks (with IPv4)
inline constexpr const char* routed_bridges_set = "routed_bridges";          // routed networks
inline constexpr const char* forwarding_bridges_set = "forwarding_bridges";  // NAT and routed: guests may go out
inline constexpr const char* uplinked_bridges_set = "uplinked_bridges";      // NAT and routed with an uplink
inline constexpr const char* nat66_bridges_set = "nat66_bridges";            // NAT with ipv6.nat66
// Keyed by two names (ifname . ifname):
inline constexpr const char* uplinks_set = "uplinks";          // bridge . its uplink
inline constexpr const char* same_bridge_set = "same_bridge";  // bridge . bridge: traffic within one network
// Keyed by a bridge and a prefix (flags interval, the kernel's pipapo set):
inline constexpr const char* net4_set = "net4";  // bridge . IPv4 subnet (NAT and routed)
inline constexpr const char* net6_set = "net6";  // bridge . IPv6 subnet (NAT and routed)
// The same subnets as hash sets, one per prefix length in use, keyed by a
// bridge and its network address ("net4_p24": "br0" . 192.168.122.0), for
// the established accepts, which mask the packet's address to the length.
std::string net_prefix_set(bool ipv6, unsigned length);
// guest_forward's established accepts use the hash sets net4_p<length> /
// net6_p<length> while a family has at most this many prefix lengths in use
// (one rule per length, "between guests" one per pair); past it, one lookup
// of the interval set net4 / net6 each (planner.cpp, forward_chain_rules).
inline constexpr std::size_t max_hashed_prefix_lengths = 4;
// Verdict maps to the chains of networks with limits (the only jumps):
inline constexpr const char* limits_by_iif_map = "limits_by_iif";  // net_NAME_limits
inline constexpr const char* limits_by_oif_map = "limits_by_oif";  // net_NAME_limits_in (NAT)

// The drop counters: each counted drop rule of the hooked chains ends with a
// lookup of the input (or output) bridge in a set of its own, whose elements
// have counters and the comment "NAME: what it drops". The lookup comes last,
// so an element counts exactly the drops of its network. In rule order.
struct DropCounterSet {
    const char* set;
    const char* chain;  // the hooked chain of the rule
};
const std::vector<DropCounterSet>& drop_counter_sets();

// A network's chain for its limits ("net_NAME_limits", "net_NAME_limits_in").
std::string limits_chain(const std::string& network, bool inbound);
// The limits chains plan_network_part(n) has (none without limits): the
// only chains whose rules are commented "NAME: ..." (Statistics).
std::vector<std::string> limits_chains(const model::Network& n);
// The hooked chain a network's chain is reached from ("net_web_limits" ->
// "guest_forward"); any other name is returned as it is. Statistics report
// this one.
std::string hook_chain_of(const std::string& chain);

// ---- port forwards
// ---------------------------------------------------------------------------------------------------
//
// Every network's forwards are elements of sets of the one table, so the
// chains never grow with the number of forwards and a change is one batch of
// element additions/deletions (O(1) per packet and per change). Per family
// (fwd4_* with ipv4_addr, fwd6_* with ipv6_addr):
//   fwd4           map  proto . host address . host port : guest address . guest port
//   fwd4_rate      map  the same, each element with its own rate limit
//   fwd4_any       map  proto . host port : guest address . guest port (every host address)
//   fwd4_any_rate  map  the same, rate limited
//   fwd4_over      set  proto . host address . host port: rate-limited forwards (drops)
//   fwd4_any_over  set  proto . host port: rate-limited forwards on every address (drops)
// One element per protocol and port: "both" and port ranges give several.
// Every element has a counter: the maps count forwarded connections (the NAT
// chains see only a connection's first packet), the *_over sets count the
// attempts dropped for exceeding the forward's rate.
inline constexpr const char* fwd4_set = "fwd4";
inline constexpr const char* fwd4_rate_set = "fwd4_rate";
inline constexpr const char* fwd4_any_set = "fwd4_any";
inline constexpr const char* fwd4_any_rate_set = "fwd4_any_rate";
inline constexpr const char* fwd4_over_set = "fwd4_over";
inline constexpr const char* fwd4_any_over_set = "fwd4_any_over";

// True for the *_over sets (drop counters), false for the DNAT maps.
inline bool is_over_set(const std::string& name)
{
    return name.size() > 5 && name.compare(name.size() - 5, 5, "_over") == 0;
}

// The twelve declarations (IPv4 then IPv6), without elements.
std::vector<Set> forward_sets();

// The elements one forward puts into which set (at most two sets: its map
// and, with a rate, its *_over set). Elements are commented with the network.
struct SetElements {
    std::string set;
    std::vector<SetElement> elements;
};
std::vector<SetElements> forward_elements(const model::PortForward& forward, const std::string& network);

// The name of a network's per-source connection meter (limits.connections_per_source).
std::string per_source_set(const std::string& network);

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
    model::IpAddress address;
    std::uint8_t prefix_length;
    std::uint32_t flags = 0;  // IFA_F_* (IPv6: nodad)
};
struct SetUp {
    std::string name;
};
using LinkOp = std::variant<CreateBridge, SetAlias, SetMtu, AddAddress, SetUp>;

std::string describe(const LinkOp& op);

// The kernel bridge settings a network asks for; `mac` is used at creation.
BridgeOptions bridge_options(const model::Network& network, const std::optional<model::Mac>& mac = {});

// Throws Conflict when `observed` is a link that another owner has (not our
// alias). `mac` is the bridge address to create it with (bridge mode: the
// uplink's), nothing for a random one.
std::vector<LinkOp> plan_bridge(const model::Network& network, const std::optional<LinkInfo>& observed,
                                const std::vector<AddressInfo>& addresses, const std::optional<model::Mac>& mac = {});

// Which of the uplink's addresses and routes a bridge-mode takeover moves:
// everything but what the kernel makes by itself (IPv6 link-local addresses,
// routes of protocol "kernel"), which it makes again on the bridge.
std::vector<AddressInfo> takeover_addresses(const std::vector<AddressInfo>& all, int uplink_index);
std::vector<RouteInfo> takeover_routes(const std::vector<RouteInfo>& all, int uplink_index);

// A lease time as dnsmasq's dhcp-range takes it: "1h" for the default (the
// text of earlier versions, so a running dnsmasq is still adopted),
// "infinite", or seconds.
std::string dnsmasq_lease_time(std::uint32_t seconds);

// The files of a network's dnsmasq in its runtime directory `dir`: the one
// place that names them (plan_dnsmasq's configuration, core::Dnsmasq,
// store::Layout).
struct DnsmasqPaths {
    std::string conf, hosts, names, pid, log, leases;
};
DnsmasqPaths dnsmasq_paths(const std::string& dir);

// dnsmasq configuration for a network, with its files in `runtime_dir`.
struct DnsmasqFiles {
    std::string config;  // dnsmasq.conf
    std::string hosts;   // dnsmasq.hosts (dhcp-hostsfile, re-read on SIGHUP)
    std::string names;   // dnsmasq.names (addn-hosts: static hosts' names in DNS, re-read on SIGHUP)
    // dnsmasq needs no route or IPv6 address notifications (bind-interfaces):
    // kvmnetd takes its netlink socket out of those groups once it is ready.
    bool quiet_netlink = false;
};
DnsmasqFiles plan_dnsmasq(const model::Network& network, const std::string& runtime_dir, const std::string& user);

}  // namespace kvmnet::plan
