// Local sockets that a port forward would shadow. The kernel adapter lists
// them (sock_diag, HostFacts::list_listeners); the judgement here is pure.
#pragma once

#include "model/forward.hpp"
#include "model/ip.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace kvmnet::plan {

struct Listener {
    bool tcp = true;           // false: udp
    model::IpAddress address;  // 0.0.0.0, 127.0.0.1, ::, ::1, fd00::1, ::ffff:192.0.2.1
    std::uint16_t port = 0;
};

// Listeners that receive connections to what `forward` takes: same
// protocol, a port in its host range, and an address that is the forward's
// host address, a wildcard, or (for a forward on every address) any.
std::vector<Listener> shadowed_listeners(const model::PortForward& forward, const std::vector<Listener>& listeners);

}  // namespace kvmnet::plan
