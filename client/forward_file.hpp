// `kvmnetctl forward add --file`: the file's forwards in the typed form that
// AddForwardsTyped takes. Pure (no bus), shared with the unit tests.
#pragma once

#include "model/forward.hpp"

#include <string>
#include <vector>

namespace kvmnet::client {

// The file holds what AddForwards takes: one forward object or a JSON array
// of them (the entries of a network document's "forwards"). Checked as the
// daemon checks them on their own (model::parse_forwards: kvmnet::Error
// InvalidArgument naming "forwards[i].<field>", or "forward.<field>" for one
// object); what needs the network (guest in the subnet, overlaps) is the
// daemon's.
std::vector<model::ForwardFields> forward_file_fields(const std::string& text);

}  // namespace kvmnet::client
