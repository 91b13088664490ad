// A fake nftables behind plan::FirewallAdapter for unit tests of
// core::Manager: the last committed table, element batches all or nothing.
#pragma once

#include "model/error.hpp"
#include "plan/ruleset.hpp"

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

namespace kvmnet::test {

class FakeFirewall final : public plan::FirewallAdapter {
public:
    std::optional<plan::Table> table;  // the last one committed; none when deleted or never set
    int commits = 0;
    void replace_table(const plan::Table& t) override
    {
        table = t;
        ++commits;
    }
    void delete_table(const std::string&) override
    {
        table.reset();
        ++commits;
    }
    // Like the kernel: all changes or none; adding a key that is there or
    // deleting one that is not fails the whole batch.
    bool fail_elements = false;
    int element_batches = 0;
    void change_elements(const std::string& name, const std::vector<plan::ElementChange>& changes) override
    {
        if (!table || table->name != name) throw kvmnet::Error(kvmnet::ErrorKind::Kernel, "no such table");
        if (fail_elements) throw kvmnet::Error(kvmnet::ErrorKind::Kernel, "injected element failure");
        plan::Table next = *table;
        for (const plan::ElementChange& c : changes) {
            auto set = std::find_if(next.sets.begin(), next.sets.end(),
                                    [&](const plan::Set& x) { return x.name == c.set->name; });
            if (set == next.sets.end()) throw kvmnet::Error(kvmnet::ErrorKind::Kernel, "no such set " + c.set->name);
            for (const plan::SetElement& e : c.elements) {
                auto at = std::find_if(set->elements.begin(), set->elements.end(),
                                       [&](const plan::SetElement& x) { return x.key == e.key; });
                if (c.add && at != set->elements.end())
                    throw kvmnet::Error(kvmnet::ErrorKind::Kernel, "element exists in " + set->name);
                if (!c.add && at == set->elements.end())
                    throw kvmnet::Error(kvmnet::ErrorKind::Kernel, "no such element in " + set->name);
                if (c.add)
                    set->elements.push_back(e);
                else
                    set->elements.erase(at);
            }
        }
        table = std::move(next);
        ++element_batches;
    }
    std::vector<plan::ElementCounters> list_elements(const std::string&, const plan::Set& wanted) override
    {
        std::vector<plan::ElementCounters> out;
        if (!table) throw kvmnet::Error(kvmnet::ErrorKind::NotFound, "no table");
        for (const plan::Set& set : table->sets)
            if (set.name == wanted.name)
                for (const plan::SetElement& e : set.elements)
                    out.push_back({e, set.counter, 0, 0});
        return out;
    }
    std::vector<plan::RuleCounter> rule_counters(const std::string&) override { return {}; }
    // The committed table's chains, plus foreign ones a test adds.
    std::vector<plan::ChainInfo> foreign_chains;
    int chain_listings = 0;
    std::vector<plan::ChainInfo> list_chains() override
    {
        ++chain_listings;
        std::vector<plan::ChainInfo> out = foreign_chains;
        if (table)
            for (const plan::Chain& c : table->chains)
                out.push_back({"inet", table->name, c.name, !c.hook.empty(), c.hook, c.priority,
                               c.policy_accept ? "accept" : "drop"});
        return out;
    }
    // The elements of one set of the committed table.
    std::vector<plan::SetElement> elements(const std::string& set_name) const
    {
        if (!table) return {};
        for (const plan::Set& set : table->sets)
            if (set.name == set_name) return set.elements;
        return {};
    }
};

}  // namespace kvmnet::test
