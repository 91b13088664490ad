// AddForwardsTyped and AddForwardsFromFd on the wire with sd-bus directly: `kvmnetctl forward add
// --file` and kvmnet-bench (so the benchmark measures the product's client).
// The structs are appended straight from model::ForwardFields, without the
// copy into sdbus-c++'s Struct tuples; the call is sent, flushed and waited
// for in steps so the benchmark can time each.
#pragma once

#include "model/forward.hpp"

#include <sdbus-c++/IProxy.h>
#include <systemd/sd-bus.h>

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

namespace kvmnet::client {

// When each step of one call ended (steady_clock; the benchmark's split of
// "the bus"): the message built, the whole message written to the socket
// (sd_bus_flush), the reply read.
struct TypedCallTimes {
    std::chrono::steady_clock::time_point built;
    std::chrono::steady_clock::time_point sent;
    std::chrono::steady_clock::time_point replied;
};

// Appends the forwards as AddForwardsTyped's argument, a(ssqqsqsu), to a
// message being built (the daemon reads it with api/forward_structs.hpp).
void append_forward_structs(sd_bus_message* message, const std::vector<model::ForwardFields>& forwards);

// org.kvmnet1.Network.AddForwardsTyped(forwards) on `network` (a proxy of a
// network object), waiting up to `timeout`; the warnings of the reply. An
// error reply throws sdbus::Error with its name and message, as the
// generated proxy would.
std::vector<std::string> add_forwards_typed(sdbus::IProxy& network, const std::vector<model::ForwardFields>& forwards,
                                            std::chrono::microseconds timeout, TypedCallTimes* times = nullptr);

// A memfd holding `bytes`, sealed against writing, shrinking, growing and
// further seals (what AddForwardsFromFd requires); the caller closes it.
// Failures throw sdbus::Error.
int sealed_memfd(std::string_view bytes);

// org.kvmnet1.Network.AddForwardsFromFd: the forwards as version-1 records
// (model/forward_records.hpp) in a sealed memfd, the descriptor on the bus;
// otherwise as add_forwards_typed. `times->built` includes encoding and
// sealing the records.
std::vector<std::string> add_forwards_from_fd(sdbus::IProxy& network, const std::vector<model::ForwardFields>& forwards,
                                              std::chrono::microseconds timeout, TypedCallTimes* times = nullptr);

}  // namespace kvmnet::client
