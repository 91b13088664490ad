// See table_diff.hpp.
#include "plan/table_diff.hpp"

#include <algorithm>
#include <charconv>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

namespace kvmnet::plan {
namespace {

std::string key_text(const SetElement& e)
{
    std::string text;
    std::size_t size = 0;
    for (const std::string& k : e.key)
        size += k.size() + 1;
    text.reserve(size);
    for (const std::string& k : e.key) {
        text += k;
        text += '\x1f';
    }
    return text;
}

std::uint64_t fnv1a(std::string_view text, std::uint64_t hash = 14695981039346656037ull)
{
    for (const unsigned char c : text) {
        hash ^= c;
        hash *= 1099511628211ull;
    }
    return hash;
}

// The keys of a key_text.
SetElement keys_of(std::string_view text)
{
    SetElement e;
    std::size_t at = 0;
    while (at < text.size()) {
        const std::size_t end = text.find('\x1f', at);
        e.key.emplace_back(text.substr(at, end - at));
        at = end + 1;
    }
    return e;
}

bool same_declaration(const Set& a, const Set& b)
{
    return a.name == b.name && a.key == b.key && a.data == b.data && a.size == b.size && a.dynamic == b.dynamic &&
           a.counter == b.counter && a.limit == b.limit && a.interval == b.interval;
}

bool same_hook(const Chain& a, const Chain& b)
{
    return a.type == b.type && a.hook == b.hook && a.priority == b.priority && a.policy_accept == b.policy_accept;
}

}  // namespace

// FNV-1a of set, "\x1f" key..., "\x1e", "\x1f" data..., "\x1e", comment,
// "\x1e", "RATE/BURST", fed part by part: no string is built (an element
// batch of 100,000 forwards hashes 100,000 elements).
std::uint64_t element_hash(const std::string& set, const SetElement& e)
{
    std::uint64_t hash = fnv1a(set);
    const auto byte = [&hash](char c) { hash = fnv1a(std::string_view(&c, 1), hash); };
    for (const std::string& k : e.key) {
        byte('\x1f');
        hash = fnv1a(k, hash);
    }
    byte('\x1e');
    for (const std::string& d : e.data) {
        byte('\x1f');
        hash = fnv1a(d, hash);
    }
    byte('\x1e');
    hash = fnv1a(e.comment, hash);
    byte('\x1e');
    char limit[48];  // "%llu/%llu" as before (the sum is on disk), without printf's cost per element
    char* end = std::to_chars(limit, limit + 20, e.limit_per_second).ptr;
    *end++ = '/';
    end = std::to_chars(end, end + 20, e.limit_burst).ptr;
    return fnv1a(std::string_view(limit, static_cast<std::size_t>(end - limit)), hash);
}

std::string element_key(const SetElement& e) { return key_text(e); }

bool TableDiff::empty() const
{
    return !replace && added_sets.empty() && removed_sets.empty() && added_chains.empty() && changed_chains.empty() &&
           removed_chains.empty() && removed_elements.empty() && added_elements.empty();
}

std::string TableDiff::summary() const
{
    if (replace) return "table replaced";
    std::string text;
    auto part = [&](std::size_t n, const char* what) {
        if (n == 0) return;
        text += (text.empty() ? "" : ", ") + std::to_string(n);
        text += what;
    };
    std::size_t added = 0, removed = 0;
    for (const ElementChange& c : added_elements)
        added += c.elements.size();
    for (const ElementChange& c : removed_elements)
        removed += c.elements.size();
    part(added_sets.size(), " set(s) added");
    part(removed_sets.size(), " set(s) removed");
    part(added_chains.size(), " chain(s) added");
    part(changed_chains.size(), " chain(s) changed");
    part(removed_chains.size(), " chain(s) removed");
    part(added, " element(s) added");
    part(removed, " element(s) removed");
    return text.empty() ? "no change" : text;
}

TableDiff diff_tables(const Table& from, const ElementState& from_elements, const Table& to)
{
    TableDiff diff;
    if (from.name != to.name) {
        diff.replace = true;
        return diff;
    }
    std::unordered_map<std::string_view, const Set*> old_sets;
    for (const Set& s : from.sets)
        old_sets.emplace(s.name, &s);
    std::unordered_set<std::string_view> kept_sets;
    for (const Set& s : to.sets) {
        const auto it = old_sets.find(s.name);
        if (it == old_sets.end()) {
            diff.added_sets.push_back(&s);
            continue;
        }
        kept_sets.insert(s.name);
        const Set& old = *it->second;
        if (!same_declaration(old, s)) {
            diff.replace = true;
            return diff;
        }
        static const std::unordered_map<std::string, std::uint64_t> none;
        const auto state = from_elements.find(s.name);
        const auto& before = state == from_elements.end() ? none : state->second;
        ElementChange add{&s, {}, true}, remove{&s, {}, false};
        std::unordered_set<std::string_view> seen;
        seen.reserve(s.elements.size());
        for (const SetElement& e : s.elements) {
            const auto found = before.find(key_text(e));
            if (found == before.end()) {
                add.elements.push_back(e);
                continue;
            }
            seen.insert(found->first);
            if (found->second != element_hash(s.name, e)) {
                remove.elements.push_back(keys_of(found->first));
                add.elements.push_back(e);
            }
        }
        if (seen.size() != before.size()) {
            std::vector<std::string_view> left;
            for (const auto& [key, hash] : before)
                if (seen.count(key) == 0) left.push_back(key);
            std::sort(left.begin(), left.end());  // deterministic
            for (std::string_view key : left)
                remove.elements.push_back(keys_of(key));
        }
        if (!add.elements.empty()) diff.added_elements.push_back(std::move(add));
        if (!remove.elements.empty()) diff.removed_elements.push_back(std::move(remove));
    }
    for (const Set& s : from.sets)
        if (kept_sets.count(s.name) == 0) diff.removed_sets.push_back(s.name);

    std::unordered_map<std::string_view, const Chain*> old_chains;
    for (const Chain& c : from.chains)
        old_chains.emplace(c.name, &c);
    std::unordered_set<std::string_view> kept_chains;
    for (const Chain& c : to.chains) {
        const auto it = old_chains.find(c.name);
        if (it == old_chains.end()) {
            diff.added_chains.push_back(&c);
            continue;
        }
        kept_chains.insert(c.name);
        const Chain& old = *it->second;
        if (old.base() != c.base() || !same_hook(old, c)) {
            diff.replace = true;
            return diff;
        }
        if (old.rules != c.rules) diff.changed_chains.push_back(&c);
    }
    for (const Chain& c : from.chains)
        if (kept_chains.count(c.name) == 0) diff.removed_chains.push_back(c.name);
    return diff;
}

ElementState element_state(const Table& table)
{
    ElementState state;
    for (const Set& s : table.sets) {
        auto& elements = state[s.name];
        elements.reserve(s.elements.size());
        for (const SetElement& e : s.elements)
            elements[key_text(e)] = element_hash(s.name, e);
    }
    return state;
}

std::uint64_t apply_element_changes(ElementState& state, const std::vector<ElementChange>& changes)
{
    std::uint64_t sum = 0;
    for (const ElementChange& c : changes) {
        if (c.set == nullptr) continue;
        const auto set = state.find(c.set->name);
        if (set == state.end()) continue;  // not in the table: the commit failed
        // Grown once for the batch, not rehashed step by step on the way.
        if (c.add) set->second.reserve(set->second.size() + c.elements.size());
        for (const SetElement& e : c.elements) {
            if (c.add) {
                const std::uint64_t hash = element_hash(c.set->name, e);
                const auto [it, added] = set->second.try_emplace(key_text(e), hash);
                if (!added) {
                    sum -= it->second;
                    it->second = hash;
                }
                sum += hash;
            } else if (const auto it = set->second.find(key_text(e)); it != set->second.end()) {
                sum -= it->second;
                set->second.erase(it);
            }
        }
    }
    return sum;
}

}  // namespace kvmnet::plan
