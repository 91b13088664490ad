// IPv6 addresses and prefixes as values, parsed strictly from text and
// printed in the canonical form (RFC 5952, as inet_ntop prints it).
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <optional>
#include <string>

namespace kvmnet::model {

struct Ipv6 {
    std::array<std::uint8_t, 16> bytes{};  // network byte order
    auto operator<=>(const Ipv6&) const = default;
    std::string str() const;
    // Any form inet_pton accepts ("fd00::1", "::ffff:192.0.2.1"), no zone ("%eth0").
    static std::optional<Ipv6> parse(const std::string& text);

    bool is_unspecified() const;  // ::
    bool is_loopback() const;     // ::1
    bool is_multicast() const;    // ff00::/8
    bool is_link_local() const;   // fe80::/10
    bool is_v4_mapped() const;    // ::ffff:0:0/96
};

// An address with its prefix length, as on an interface: fd00:1:2:3::1/64.
struct Ipv6Interface {
    Ipv6 address;
    std::uint8_t prefix = 128;

    bool operator==(const Ipv6Interface&) const = default;
    Ipv6 network() const;  // the address with the host bits cleared
    bool contains(const Ipv6& ip) const;
    bool overlaps(const Ipv6Interface& other) const;
    std::string str() const;          // "fd00:1:2:3::1/64"
    std::string network_str() const;  // "fd00:1:2:3::/64"
    static std::optional<Ipv6Interface> parse(const std::string& text);
};

// `ip` with the bits below `prefix` cleared.
Ipv6 ipv6_masked(const Ipv6& ip, unsigned prefix);

}  // namespace kvmnet::model
