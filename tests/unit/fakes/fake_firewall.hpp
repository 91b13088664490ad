// A fake nftables behind plan::FirewallAdapter for unit tests of
// core::Manager: the last committed table, element batches all or nothing.
#pragma once

#include "model/error.hpp"
#include "plan/kernel_view.hpp"
#include "plan/ruleset.hpp"
#include "plan/table_diff.hpp"

#include <algorithm>
#include <cstdint>
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
        ++replaced;
        ++generation_;
    }
    void delete_table(const std::string&) override
    {
        table.reset();
        ++commits;
        ++generation_;
    }
    // Off by default: without a generation every apply replaces the table.
    // On, commits of differences come to update_table.
    bool generations = false;
    std::uint32_t generation_ = 1;
    std::optional<std::uint32_t> generation() override
    {
        if (!generations) return std::nullopt;
        return generation_;
    }
    int replaced = 0;
    // What the last update_table got: the table it was handed (its chains
    // and sets) and the diff's size.
    struct Update {
        std::size_t table_chains = 0, table_sets = 0;
        std::size_t added_chains = 0, changed_chains = 0, removed_chains = 0, added_sets = 0, removed_sets = 0;
        std::size_t added_elements = 0, removed_elements = 0;
    };
    std::vector<Update> updates;
    void update_table(const plan::Table& t, const plan::TableDiff& d) override
    {
        if (d.replace) return replace_table(t);
        if (!table || table->name != t.name) throw kvmnet::Error(kvmnet::ErrorKind::Kernel, "no such table");
        Update u{t.chains.size(),         t.sets.size(),       d.added_chains.size(), d.changed_chains.size(),
                 d.removed_chains.size(), d.added_sets.size(), d.removed_sets.size()};
        plan::Table next = *table;
        const auto chain = [&](const std::string& name) {
            return std::find_if(next.chains.begin(), next.chains.end(),
                                [&](const plan::Chain& c) { return c.name == name; });
        };
        const auto set = [&](const std::string& name) {
            return std::find_if(next.sets.begin(), next.sets.end(), [&](const plan::Set& x) { return x.name == name; });
        };
        for (const plan::ElementChange& c : d.removed_elements) {
            auto s = set(c.set->name);
            for (const plan::SetElement& e : c.elements) {
                auto at = std::find_if(s->elements.begin(), s->elements.end(),
                                       [&](const plan::SetElement& x) { return x.key == e.key; });
                if (at == s->elements.end()) throw kvmnet::Error(kvmnet::ErrorKind::Kernel, "no such element");
                s->elements.erase(at);
                ++u.removed_elements;
            }
        }
        for (const std::string& name : d.removed_chains)
            next.chains.erase(chain(name));
        for (const std::string& name : d.removed_sets)
            next.sets.erase(set(name));
        for (const plan::Set* s : d.added_sets)
            next.sets.push_back(*s);
        for (const plan::Chain* c : d.added_chains) {
            if (chain(c->name) != next.chains.end()) throw kvmnet::Error(kvmnet::ErrorKind::Kernel, "chain exists");
            next.chains.push_back(*c);
        }
        for (const plan::Chain* c : d.changed_chains)
            chain(c->name)->rules = c->rules;
        for (const plan::ElementChange& c : d.added_elements) {
            auto s = set(c.set->name);
            for (const plan::SetElement& e : c.elements) {
                if (std::any_of(s->elements.begin(), s->elements.end(),
                                [&](const plan::SetElement& x) { return x.key == e.key; }))
                    throw kvmnet::Error(kvmnet::ErrorKind::Kernel, "element exists");
                s->elements.push_back(e);
                ++u.added_elements;
            }
        }
        table = std::move(next);
        updates.push_back(u);
        ++commits;
        ++generation_;
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
        ++generation_;
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
