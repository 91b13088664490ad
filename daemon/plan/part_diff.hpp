// The table difference of a few networks' parts (plan/ruleset_parts.hpp):
// what a start, stop or update of one network commits, planned and diffed
// in O(that network's part), whatever the number of networks running.
#pragma once

#include "plan/ruleset_parts.hpp"
#include "plan/table_diff.hpp"

#include <string>
#include <vector>

namespace kvmnet::plan {

struct PartChange {
    const NetworkPart* from = nullptr;  // as last committed; nullptr: the network was not in the table
    const NetworkPart* to = nullptr;    // as planned now; nullptr: it leaves the table
};

// Adds to `diff` what turns the `from` parts into the `to` parts. Chains and
// meters are compared with `from`; elements with `elements` (what the table
// has, so element batches committed since are respected): an element of
// `to` is added unless the table has it as it is, an element of `from`
// that `to` lacks is removed if the table has it. Sets are looked up in
// `table` (the fixed declarations and the `to` parts' meters), which with
// the parts must outlive the diff. Sets `diff.replace` when a meter's
// declaration changed (increments cannot say that).
void diff_parts(const std::vector<PartChange>& changes, const Table& table, const ElementState& elements,
                TableDiff& diff);

}  // namespace kvmnet::plan
