// IPv6 parts of the planner (plan/planner_ipv6.cpp), kept apart from the
// IPv4 code they mirror: forward and NAT66 rules, the bridge's IPv6 gateway
// address, and dnsmasq's router advertisements and DHCPv6.
#pragma once

#include "model/network.hpp"
#include "plan/kernel_view.hpp"
#include "plan/ruleset.hpp"

#include <optional>
#include <ostream>
#include <vector>

namespace kvmnet::plan {

struct AddAddress;

// The forward groups of build_ruleset (see there), which this appends
// network `n`'s IPv6 rules to, and the NAT postrouting rules.
struct ForwardGroups {
    std::vector<Rule>& replies;
    std::vector<Rule>& barred;
    std::vector<Rule>& inbound;
    std::vector<Rule>& outbound;
    std::vector<Rule>& hairpin;      // NAT postrouting, by output bridge
    std::vector<Rule>& postrouting;  // NAT postrouting, by input bridge
};

// IPv6 rules of one NAT, routed or isolated network. Called before the
// network's IPv4 rules are added, so a routed network's IPv6 accept comes
// before its protocol-independent inbound drop. A network without ipv6 gets
// a drop for all IPv6 from its bridge: its guests have no IPv6 subnet, so
// any IPv6 source they use is spoofed.
void add_ipv6_rules(const model::Network& n, ForwardGroups groups);

// The gateway address to add to the bridge (nodad), unless it is there.
std::optional<AddAddress> plan_ipv6_address(const model::Network& n, const std::optional<LinkInfo>& observed,
                                            const std::vector<AddressInfo>& addresses);

// dnsmasq lines for the network's IPv6: DNS on the gateway, router
// advertisements, DHCPv6 ranges. Nothing without ipv6.
void dnsmasq_ipv6_lines(const model::Network& n, std::ostream& config);

}  // namespace kvmnet::plan
