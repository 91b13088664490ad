// Local sockets that a port forward would shadow: parsed from the kernel's
// /proc/net/{tcp,tcp6,udp,udp6} tables. Pure parsing, unit-tested.
#pragma once

#include "model/forward.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace kvmnet::plan {

struct Listener {
    bool tcp = true;      // false: udp
    std::string address;  // "0.0.0.0", "127.0.0.1", "::", "::1", "fd00::1"
    std::uint16_t port = 0;
};

// The listening TCP sockets (state LISTEN) or bound UDP sockets (state
// unconnected, 07) in one /proc/net table. Malformed lines are skipped.
std::vector<Listener> parse_proc_net(const std::string& text, bool tcp, bool ipv6);

// Listeners that receive connections to what `forward` takes: same
// protocol, a port in its host range, and an address that is the forward's
// host address, a wildcard, or (for a forward on every address) any.
std::vector<Listener> shadowed_listeners(const model::PortForward& forward, const std::vector<Listener>& listeners);

}  // namespace kvmnet::plan
