// See part_diff.hpp.
#include "plan/part_diff.hpp"

#include <map>
#include <unordered_set>

namespace kvmnet::plan {
namespace {

bool same_declaration(const Set& a, const Set& b)
{
    return a.name == b.name && a.key == b.key && a.data == b.data && a.size == b.size && a.dynamic == b.dynamic &&
           a.counter == b.counter && a.limit == b.limit && a.interval == b.interval;
}

const Chain* chain_named(const NetworkPart* part, const std::string& name)
{
    if (!part) return nullptr;
    for (const Chain& c : part->chains)
        if (c.name == name) return &c;
    return nullptr;
}

// Calls `f(set name, element)` for each element of the part.
template <typename F>
void each_element(const NetworkPart& part, F&& f)
{
    for (const auto& [set, element] : part.elements)
        f(set, element);
    for (const SetElements& s : part.forwards)
        for (const SetElement& e : s.elements)
            f(s.set, e);
}

}  // namespace

void diff_parts(const std::vector<PartChange>& changes, const Table& table, const ElementState& elements,
                TableDiff& diff)
{
    std::map<std::string, const Set*> sets;  // a few: the fixed declarations and the changed meters
    for (const Set& s : table.sets)
        sets.emplace(s.name, &s);
    struct Changes {
        std::vector<SetElement> add, remove;
        std::unordered_set<std::string> added, removed;  // keys, once each
    };
    std::map<std::string, Changes> by_set;
    static const std::unordered_map<std::string, std::uint64_t> none;
    const auto kept = [&](const std::string& set) -> const std::unordered_map<std::string, std::uint64_t>& {
        const auto it = elements.find(set);
        return it == elements.end() ? none : it->second;
    };

    for (const PartChange& c : changes) {
        if (c.to)
            for (const Chain& chain : c.to->chains) {
                const Chain* old = chain_named(c.from, chain.name);
                if (!old)
                    diff.added_chains.push_back(&chain);
                else if (old->rules != chain.rules)
                    diff.changed_chains.push_back(&chain);
            }
        if (c.from)
            for (const Chain& chain : c.from->chains)
                if (!chain_named(c.to, chain.name)) diff.removed_chains.push_back(chain.name);
        const Set* old_meter = c.from && c.from->meter ? &*c.from->meter : nullptr;
        const Set* new_meter = c.to && c.to->meter ? &*c.to->meter : nullptr;
        if (old_meter && new_meter &&
            (old_meter->name != new_meter->name || !same_declaration(*old_meter, *new_meter))) {
            diff.replace = true;
            return;
        }
        if (new_meter && !old_meter) diff.added_sets.push_back(sets.at(new_meter->name));
        if (old_meter && !new_meter) diff.removed_sets.push_back(old_meter->name);
    }
    // Elements: what the new parts have first, so that a key moving from
    // one network to another is removed once and added once.
    std::map<std::string, std::unordered_set<std::string>> wanted;  // set -> keys of the `to` parts
    for (const PartChange& c : changes) {
        if (!c.to) continue;
        each_element(*c.to, [&](const std::string& set, const SetElement& e) {
            std::string key = element_key(e);
            wanted[set].insert(key);
            const auto& have = kept(set);
            const auto found = have.find(key);
            if (found != have.end() && found->second == element_hash(set, e)) return;
            Changes& ch = by_set[set];
            if (found != have.end() && ch.removed.insert(key).second)
                ch.remove.push_back(SetElement{e.key, {}, {}, 0, 5});
            if (ch.added.insert(std::move(key)).second) ch.add.push_back(e);
        });
    }
    for (const PartChange& c : changes) {
        if (!c.from) continue;
        each_element(*c.from, [&](const std::string& set, const SetElement& e) {
            std::string key = element_key(e);
            if (const auto w = wanted.find(set); w != wanted.end() && w->second.count(key) != 0) return;
            if (kept(set).count(key) == 0) return;
            Changes& ch = by_set[set];
            if (ch.removed.insert(std::move(key)).second) ch.remove.push_back(SetElement{e.key, {}, {}, 0, 5});
        });
    }
    for (auto& [name, ch] : by_set) {
        const auto it = sets.find(name);
        if (it == sets.end()) {  // an element of a set the table does not declare: not an increment
            diff.replace = true;
            return;
        }
        if (!ch.remove.empty()) diff.removed_elements.push_back({it->second, std::move(ch.remove), false});
        if (!ch.add.empty()) diff.added_elements.push_back({it->second, std::move(ch.add), true});
    }
}

}  // namespace kvmnet::plan
