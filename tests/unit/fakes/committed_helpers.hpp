// What the CommittedTable tests share: a firewall that only counts its
// transactions in a generation (as the kernel's ruleset generation), the
// NAT network "web" with forwards to given host ports, and the element
// batch an AddForwards of some of its forwards sends.
#pragma once
#include "model/network.hpp"
#include "plan/planner.hpp"
#include "plan/ruleset.hpp"
#include "plan/table_diff.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace kvmnet::testing {

// Every transaction raises the generation; tests override what they count.
class GenerationFirewall : public plan::FirewallAdapter {
public:
    explicit GenerationFirewall(std::uint32_t first = 0) : generation_(first) {}
    void replace_table(const plan::Table&) override { ++generation_; }
    void delete_table(const std::string&) override { ++generation_; }
    void change_elements(const std::string&, const std::vector<plan::ElementChange>&) override { ++generation_; }
    std::vector<plan::ElementCounters> list_elements(const std::string&, const plan::Set&) override { return {}; }
    std::vector<plan::RuleCounter> rule_counters(const std::string&) override { return {}; }
    std::vector<plan::ChainInfo> list_chains() override { return {}; }
    std::optional<std::uint32_t> generation() override { return generation_; }
    void foreign_commit() { ++generation_; }

protected:
    std::uint32_t generation_;
};

// The table as text that does not depend on the order of chains, sets or
// elements (an incremental commit appends where a planned table sorts).
inline std::multiset<std::string> table_contents(const plan::Table& t)
{
    std::multiset<std::string> out;
    for (const plan::Chain& c : t.chains)
        out.insert(plan::render_chain(c));
    for (const plan::Set& s : t.sets) {
        out.insert(plan::render_declaration(s));
        for (const plan::SetElement& e : s.elements)
            out.insert(s.name + " " + plan::element_key(e) + " " + std::to_string(plan::element_hash(s.name, e)));
    }
    return out;
}

// NAT network "web" (kvmbr5, 10.5.0.1/24) forwarding each host port to 10.5.0.10:22.
inline model::Network web_forwarding(const std::vector<int>& host_ports)
{
    nlohmann::json forwards = nlohmann::json::array();
    for (int p : host_ports)
        forwards.push_back({{"proto", "tcp"}, {"host_port", p}, {"guest", "10.5.0.10"}, {"guest_port", 22}});
    return model::parse_network(nlohmann::json{
        {"name", "web"},
        {"mode", "nat"},
        {"bridge", "kvmbr5"},
        {"ipv4", {{"address", "10.5.0.1/24"}}},
        {"forwards", forwards}}.dump());
}

// The element batch AddForwards (or RemoveForwards: add false) sends for
// n's forwards from index `from` on (core/manager_forwards.cpp does the same).
inline std::vector<plan::ElementChange> forward_changes(const std::vector<plan::Set>& sets, const model::Network& n,
                                                        std::size_t from, bool add)
{
    std::map<std::string, std::vector<plan::SetElement>> by_set;
    for (std::size_t i = from; i < n.forwards.size(); ++i)
        for (plan::SetElements& part : plan::forward_elements(n.forwards[i], n.name))
            by_set[part.set].insert(by_set[part.set].end(), part.elements.begin(), part.elements.end());
    std::vector<plan::ElementChange> changes;
    for (const plan::Set& set : sets)
        if (auto it = by_set.find(set.name); it != by_set.end()) changes.push_back({&set, it->second, add});
    return changes;
}

}  // namespace kvmnet::testing
