// The deterministic generator of the randomised forward cross-checks
// (test_forwards, test_forward_index, test_forward_cache) and the random
// forward they share: the same seed gives the same forwards in every test.
#pragma once

#include "model/forward.hpp"

#include <cstdint>
#include <string>

namespace kvmnet::testing {

struct Lcg {
    std::uint64_t state;
    std::uint32_t next(std::uint32_t bound)
    {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        return static_cast<std::uint32_t>((state >> 33) % bound);
    }
};

// Host ports in 1..ports, mostly short ranges, now and then a long one that
// covers later ones; every host address or one of three. With `ipv6_too`,
// one in four is an IPv6 forward.
inline model::PortForward random_forward(Lcg& rng, std::uint32_t ports, bool ipv6_too = false)
{
    model::PortForward f;
    f.proto = static_cast<model::Proto>(rng.next(3));
    f.host_port_first = static_cast<std::uint16_t>(1 + rng.next(ports));
    const std::uint32_t length = rng.next(8) == 0 ? rng.next(60) : rng.next(4);
    f.host_port_last = static_cast<std::uint16_t>(f.host_port_first + length);
    f.guest_port_first = 1000;
    const auto a = rng.next(4);
    if (ipv6_too && rng.next(4) == 0) {
        f.ipv6 = true;
        f.guest6 = *model::Ipv6::parse("fd00::10");
        if (a != 0) f.host_address6 = model::Ipv6::parse("2001:db8::" + std::to_string(a));
    } else {
        f.guest = *model::Ipv4::parse("192.168.122.10");
        if (a != 0) f.host_address = model::Ipv4{0xcb007100u + a};  // 203.0.113.1-3
    }
    return f;
}

}  // namespace kvmnet::testing
