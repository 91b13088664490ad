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

#include <optional>
#include <vector>

namespace kvmnet::plan {

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
};

NetworkPart plan_network_part(const model::Network& n);

// build_ruleset from the networks' parts, which must be in network name
// order; `parts` are consumed (moved from).
Table assemble_ruleset(std::vector<NetworkPart*> parts);

// The fixed part alone: the hooked chains and the declarations of the
// data sets and forward sets (without elements) as assemble_ruleset makes
// them when `any_nat` (no meters, no network chains).
Table fixed_ruleset(bool any_nat);

}  // namespace kvmnet::plan
