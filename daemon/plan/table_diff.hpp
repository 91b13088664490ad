// The difference between two versions of our nftables table as the few
// kernel operations that turn one into the other, so that starting or
// stopping one network commits only its own chains and map elements instead
// of replacing a table that grows with the number of networks.
#pragma once

#include "plan/kernel_view.hpp"
#include "plan/ruleset.hpp"

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace kvmnet::plan {

// Pointers refer into the `to` table given to diff_tables, which must
// outlive the diff.
struct TableDiff {
    // A change that increments cannot express (a hooked chain's type, hook,
    // priority or policy, a set's declaration, another table name): replace
    // the whole table instead.
    bool replace = false;
    std::vector<const Set*> added_sets;        // with their elements
    std::vector<std::string> removed_sets;     // after the rules that use them are gone
    std::vector<const Chain*> added_chains;    // with their rules
    std::vector<const Chain*> changed_chains;  // flushed, then their rules added again
    std::vector<std::string> removed_chains;   // flushed, then deleted
    // Elements of sets in both tables; an element whose data, comment or
    // limit changed is removed and added again.
    std::vector<ElementChange> removed_elements;
    std::vector<ElementChange> added_elements;
    bool empty() const;
    // "2 chains added, 14 elements added", for logs.
    std::string summary() const;
};

// One element of set `set` (key, data, comment, limit) as a number: what
// the commit record sums (core/committed_table.hpp) and ElementState keeps.
std::uint64_t element_hash(const std::string& set, const SetElement& e);

// The elements of a table's sets in little memory: per set, each element's
// key (its values joined) and its element_hash. Enough to diff against,
// deleting needs only keys, and the record's sum of what a diff removes is
// known without the elements.
// The key of an element in ElementState: its key values joined.
std::string element_key(const SetElement& e);
using ElementState = std::unordered_map<std::string, std::unordered_map<std::string, std::uint64_t>>;
ElementState element_state(const Table& table);
// Applies element changes (as change_elements committed them): O(changes).
// Returns what they add to the sum of element hashes (modulo 2^64).
std::uint64_t apply_element_changes(ElementState& state, const std::vector<ElementChange>& changes);

// `from` is the table's shape (its elements are ignored) and `from_elements`
// its elements. O(rules + elements) of both tables.
TableDiff diff_tables(const Table& from, const ElementState& from_elements, const Table& to);
inline TableDiff diff_tables(const Table& from, const Table& to) { return diff_tables(from, element_state(from), to); }

}  // namespace kvmnet::plan
