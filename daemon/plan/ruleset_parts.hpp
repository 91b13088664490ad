// The ruleset of build_ruleset, by part: the fixed part (hooked chains, the
// data sets' and forward sets' declarations, which depend only on whether
// any NAT network runs) and each network's own part (its elements in the
// data sets, its forwards' elements; chains and a connection meter only
// with limits).
// A start or stop plans only the part of the network it changes, so that
// its cost does not grow with the networks already running (issue 17).
#pragma once

#include "model/network.hpp"
#include "plan/planner.hpp"
#include "plan/ruleset.hpp"

#include <cstdint>
#include <optional>
#include <vector>

namespace kvmnet::plan {

// The prefix lengths of a network's subnets in the hash sets net4_p<length>
// and net6_p<length> (NAT and routed networks; 0: none).
struct SubnetPrefixes {
    std::uint8_t ipv4 = 0, ipv6 = 0;
};
SubnetPrefixes subnet_prefixes(const model::Network& n);

// What the fixed part depends on: whether a NAT network runs (the NAT
// chains and the forward sets), and the prefix lengths in use (a hash set
// and established accepts in guest_forward per length).
struct Shape {
    bool any_nat = false;
    std::vector<std::uint8_t> prefixes4, prefixes6;  // sorted, no repeats
    void add(const SubnetPrefixes& p);
    bool operator==(const Shape&) const = default;
};
Shape table_shape(const std::vector<const model::Network*>& active);

struct NetworkPart {
    // net_NAME_limits(_in): only for a network with limits.
    std::vector<Chain> chains;
    // Its elements in the fixed sets (planner.hpp: net4, nat_bridges, the
    // drop counters, ...): set name, element.
    std::vector<std::pair<std::string, SetElement>> elements;
    std::optional<Set> meter;  // conns_NAME (limits.connections_per_source)
    // A NAT network's forwards (empty otherwise), set by set as
    // forward_elements gives them.
    std::vector<SetElements> forwards;
    // A NAT network with IPv4: the NAT hooked chains exist while one runs.
    bool nat = false;
    SubnetPrefixes prefixes;
};

NetworkPart plan_network_part(const model::Network& n);

// build_ruleset from the networks' parts, which must be in network name
// order; `parts` are consumed (moved from). With `shape`, that one (it
// must cover the parts' own), else the parts'.
Table assemble_ruleset(std::vector<NetworkPart*> parts);
Table assemble_ruleset(std::vector<NetworkPart*> parts, const Shape& shape);

// The fixed part alone: the hooked chains and the declarations of the
// data sets and forward sets (without elements) as assemble_ruleset makes
// them for networks of that shape (no meters, no network chains).
Table fixed_ruleset(const Shape& shape);

}  // namespace kvmnet::plan
