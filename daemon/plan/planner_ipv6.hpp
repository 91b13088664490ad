// IPv6 parts of the planner (plan/planner_ipv6.cpp), kept apart from the
// IPv4 code they mirror: a network's IPv6 data set elements, the bridge's IPv6 gateway
// address, and dnsmasq's router advertisements and DHCPv6.
#pragma once

#include "model/network.hpp"
#include "plan/kernel_view.hpp"
#include "plan/ruleset.hpp"

#include <functional>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

namespace kvmnet::plan {

struct AddAddress;

// Network `n`'s elements in the IPv6 data sets (planner.hpp: net6 for a
// NAT or routed network with ipv6, nat66_bridges with nat66), given to
// `add(set, key, comment)`. The IPv6 rules are the fixed ones of
// build_ruleset; a network without ipv6 has no element in net6, so that
// any IPv6 source of its guests counts as spoofed.
void add_ipv6_elements(const model::Network& n,
                       const std::function<void(const char*, std::vector<std::string>, const std::string&)>& add);

// The gateway address to add to the bridge (nodad), unless it is there.
std::optional<AddAddress> plan_ipv6_address(const model::Network& n, const std::optional<LinkInfo>& observed,
                                            const std::vector<AddressInfo>& addresses);

// dnsmasq lines for the network's IPv6: DNS on the gateway, router
// advertisements, DHCPv6 ranges. Nothing without ipv6.
void dnsmasq_ipv6_lines(const model::Network& n, std::ostream& config);

}  // namespace kvmnet::plan
