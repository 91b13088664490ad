// AddForwardsTyped's argument, a(ssqqsqsu), read with sd-bus directly into
// model::ForwardFields: the strings are copied once, from the message into
// the fields, not into sdbus-c++'s Struct tuples first and then again. The
// reading itself (sd-bus checking each field) is most of what is left:
// ~50 ms of CPU per 100,000 forwards (docs/performance.md, section 11).
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
