// IPv6 parsing through inet_pton (libc, no kernel), with the zone and
// embedded-whitespace forms it would not see refused up front.
#include "model/ipv6.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>

namespace kvmnet::model {

std::string Ipv6::str() const
{
    char buffer[INET6_ADDRSTRLEN] = {};
    ::inet_ntop(AF_INET6, bytes.data(), buffer, sizeof buffer);
    return buffer;
}

std::optional<Ipv6> Ipv6::parse(const std::string& text)
{
    // inet_pton is strict already (no zone, no brackets, no prefix); only the
    // length is bounded here so a huge string is not copied around.
    if (text.empty() || text.size() >= INET6_ADDRSTRLEN) return std::nullopt;
    Ipv6 ip;
    if (::inet_pton(AF_INET6, text.c_str(), ip.bytes.data()) != 1) return std::nullopt;
    return ip;
}

bool Ipv6::is_unspecified() const
{
    return std::all_of(bytes.begin(), bytes.end(), [](std::uint8_t b) { return b == 0; });
}

bool Ipv6::is_loopback() const
{
    return std::all_of(bytes.begin(), bytes.end() - 1, [](std::uint8_t b) { return b == 0; }) && bytes[15] == 1;
}

bool Ipv6::is_multicast() const { return bytes[0] == 0xff; }

bool Ipv6::is_link_local() const { return bytes[0] == 0xfe && (bytes[1] & 0xc0) == 0x80; }

bool Ipv6::is_v4_mapped() const
{
    return std::all_of(bytes.begin(), bytes.begin() + 10, [](std::uint8_t b) { return b == 0; }) && bytes[10] == 0xff &&
           bytes[11] == 0xff;
}

Ipv6 ipv6_masked(const Ipv6& ip, unsigned prefix)
{
    Ipv6 result = ip;
    for (unsigned i = 0; i < 16; ++i) {
        const unsigned bit = i * 8;
        if (bit >= prefix)
            result.bytes[i] = 0;
        else if (prefix - bit < 8)
            result.bytes[i] &= static_cast<std::uint8_t>(0xff << (8 - (prefix - bit)));
    }
    return result;
}

Ipv6 Ipv6Interface::network() const { return ipv6_masked(address, prefix); }

bool Ipv6Interface::contains(const Ipv6& ip) const { return ipv6_masked(ip, prefix) == network(); }

bool Ipv6Interface::overlaps(const Ipv6Interface& other) const
{
    const unsigned shorter = std::min(prefix, other.prefix);
    return ipv6_masked(address, shorter) == ipv6_masked(other.address, shorter);
}

std::string Ipv6Interface::str() const { return address.str() + '/' + std::to_string(prefix); }

std::string Ipv6Interface::network_str() const { return network().str() + '/' + std::to_string(prefix); }

std::optional<Ipv6Interface> Ipv6Interface::parse(const std::string& text)
{
    const auto slash = text.find('/');
    if (slash == std::string::npos) return std::nullopt;
    auto ip = Ipv6::parse(text.substr(0, slash));
    const std::string len = text.substr(slash + 1);
    if (!ip || len.empty() || len.size() > 3 || (len.size() > 1 && len[0] == '0')) return std::nullopt;
    unsigned prefix = 0;
    auto [next, ec] = std::from_chars(len.data(), len.data() + len.size(), prefix);
    if (ec != std::errc{} || next != len.data() + len.size() || prefix > 128) return std::nullopt;
    return Ipv6Interface{*ip, static_cast<std::uint8_t>(prefix)};
}

}  // namespace kvmnet::model
