// A fake nftables behind plan::FirewallAdapter for unit tests of
// core::Manager: the last committed table, element batches all or nothing,
// and counters that restart as the kernel's do.
#pragma once

#include "model/error.hpp"
#include "plan/kernel_view.hpp"
#include "plan/ruleset.hpp"
#include "plan/table_diff.hpp"

#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace kvmnet::test {

class FakeFirewall final : public plan::FirewallAdapter {
public:
    std::optional<plan::Table> table;  // the last one committed; none when deleted or never set
    int commits = 0;
    void replace_table(const plan::Table& t) override
    {
        table = t;
        element_packets.clear();
        rule_packets.clear();
        ++commits;
        ++replaced;
        ++generation_;
    }
    void delete_table(const std::string&) override
    {
        table.reset();
        element_packets.clear();
        rule_packets.clear();
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
                element_packets.erase({c.set->name, e.key});
                ++u.removed_elements;
            }
        }
        for (const std::string& name : d.removed_chains) {
            next.chains.erase(chain(name));
            forget_rules(name);
        }
        for (const std::string& name : d.removed_sets) {
            next.sets.erase(set(name));
            forget_elements(name);
        }
        for (const plan::Set* s : d.added_sets) {
            next.sets.push_back(*s);
            forget_elements(s->name);
        }
        for (const plan::Chain* c : d.added_chains) {
            if (chain(c->name) != next.chains.end()) throw kvmnet::Error(kvmnet::ErrorKind::Kernel, "chain exists");
            next.chains.push_back(*c);
            forget_rules(c->name);
        }
        for (const plan::Chain* c : d.changed_chains) {
            chain(c->name)->rules = c->rules;
            forget_rules(c->name);
        }
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
                element_packets.erase({set->name, e.key});
            }
        }
        table = std::move(next);
        ++element_batches;
        ++generation_;
    }
    // Counters: 0 until traffic() counts `packets` (64 bytes each) on
    // every element of a counted set and every counted, commented rule of
    // the table. An element deleted, a set declared anew, a chain flushed
    // or the table replaced starts from 0 again, as in the kernel.
    std::map<std::pair<std::string, std::vector<std::string>>, std::uint64_t> element_packets;  // set, key
    std::map<std::pair<std::string, std::string>, std::uint64_t> rule_packets;                  // chain, comment
    void traffic(std::uint64_t packets)
    {
        if (!table) return;
        for (const plan::Set& set : table->sets)
            if (set.counter)
                for (const plan::SetElement& e : set.elements)
                    element_packets[{set.name, e.key}] += packets;
        for (const plan::Chain& chain : table->chains)
            for (const plan::Rule& r : chain.rules)
                if (r.counter && !r.comment.empty()) rule_packets[{chain.name, r.comment}] += packets;
    }
    // Set dumps and rule dumps read; `dumping` runs at the start of each
    // (a test moves its clock there: a dump that takes time).
    int element_dumps = 0, rule_dumps = 0;
    std::function<void()> dumping;
    std::vector<plan::ElementCounters> list_elements(const std::string&, const plan::Set& wanted) override
    {
        ++element_dumps;
        if (dumping) dumping();
        std::vector<plan::ElementCounters> out;
        if (!table) throw kvmnet::Error(kvmnet::ErrorKind::NotFound, "no table");
        for (const plan::Set& set : table->sets)
            if (set.name == wanted.name)
                for (const plan::SetElement& e : set.elements) {
                    const auto it = element_packets.find({set.name, e.key});
                    const std::uint64_t packets = set.counter && it != element_packets.end() ? it->second : 0;
                    out.push_back({e, set.counter, packets, 64 * packets});
                }
        return out;
    }
    std::vector<plan::RuleCounter> rule_counters(const std::string&) override
    {
        ++rule_dumps;
        if (dumping) dumping();
        std::vector<plan::RuleCounter> out;
        if (!table) return out;
        for (const plan::Chain& chain : table->chains)
            for (const plan::Rule& r : chain.rules)
                if (r.counter && !r.comment.empty()) {
                    const auto it = rule_packets.find({chain.name, r.comment});
                    const std::uint64_t packets = it != rule_packets.end() ? it->second : 0;
                    out.push_back({chain.name, r.comment, packets, 64 * packets});
                }
        return out;
    }
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
    void forget_elements(const std::string& set)
    {
        std::erase_if(element_packets, [&](const auto& entry) { return entry.first.first == set; });
    }
    void forget_rules(const std::string& chain)
    {
        std::erase_if(rule_packets, [&](const auto& entry) { return entry.first.first == chain; });
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
