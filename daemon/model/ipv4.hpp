// IPv4 addresses and prefixes as values, parsed strictly from text.
#pragma once

#include <compare>
#include <cstdint>
#include <optional>
#include <string>

namespace kvmnet::model {

struct Ipv4 {
    std::uint32_t value = 0;  // host byte order
    auto operator<=>(const Ipv4&) const = default;
    std::string str() const;
    static std::optional<Ipv4> parse(const std::string& text);
};

// An address with its prefix length, as on an interface: 192.168.122.1/24.
struct Ipv4Interface {
    Ipv4 address;
    std::uint8_t prefix = 32;

    bool operator==(const Ipv4Interface&) const = default;
    std::uint32_t mask() const { return prefix == 0 ? 0 : ~std::uint32_t{0} << (32 - prefix); }
    Ipv4 network() const { return Ipv4{address.value & mask()}; }
    Ipv4 broadcast() const { return Ipv4{network().value | ~mask()}; }
    bool contains(Ipv4 ip) const { return (ip.value & mask()) == network().value; }
    bool overlaps(const Ipv4Interface& other) const;
    std::string str() const;          // "192.168.122.1/24"
    std::string network_str() const;  // "192.168.122.0/24"
    static std::optional<Ipv4Interface> parse(const std::string& text);
};

}  // namespace kvmnet::model
