// Ethernet MAC addresses as values: six bytes, parsed strictly from the
// "52:54:00:12:34:56" spelling (either case) and always written lower case,
// as ip(8), nft(8), dnsmasq and the network document spell them.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace kvmnet::model {

struct Mac {
    std::array<std::uint8_t, 6> bytes{};

    auto operator<=>(const Mac&) const = default;

    // Six two-digit hex bytes separated by colons, nothing else.
    static std::optional<Mac> parse(std::string_view text);
    // The six bytes at `data` (a netlink attribute's payload, a set element).
    static Mac from_bytes(const void* data);
    std::string str() const;

    bool zero() const { return *this == Mac{}; }
    bool multicast() const { return (bytes[0] & 1) != 0; }
    // What may be a port's or host's address: neither multicast nor all zero.
    bool unicast() const { return !multicast() && !zero(); }
};

}  // namespace kvmnet::model
