// AddForwardsTyped's argument, a(ssqqsqsu), read with sd-bus directly into
// model::ForwardFields: the strings are copied once, from the message into
// the fields, instead of into sdbus-c++'s Struct tuples first (the unpacking
// was most of kvmnetd's CPU time between the bus and the method at 100,000
// forwards: docs/performance.md, section 11).
#pragma once

#include "model/forward.hpp"

#include <systemd/sd-bus.h>

#include <vector>

namespace kvmnet::api {

// Reads the array at the message's read position. A message that does not
// hold one (sd-bus checks the method's signature before dispatching, so
// only a bug gets here) is InvalidArgument naming "forwards".
std::vector<model::ForwardFields> read_forward_structs(sd_bus_message* message);

}  // namespace kvmnet::api
