// Strict dotted-quad parsing: no octal, no shorthand, no leading zeros.
#include "model/ipv4.hpp"

#include <charconv>

namespace kvmnet::model {

std::string Ipv4::str() const
{
    return std::to_string(value >> 24) + '.' + std::to_string((value >> 16) & 0xff) + '.' +
           std::to_string((value >> 8) & 0xff) + '.' + std::to_string(value & 0xff);
}

std::optional<Ipv4> Ipv4::parse(const std::string& text)
{
    std::uint32_t result = 0;
    const char* p = text.data();
    const char* end = p + text.size();
    for (int octet = 0; octet < 4; ++octet) {
        if (octet > 0) {
            if (p == end || *p != '.') return std::nullopt;
            ++p;
        }
        if (p == end || *p < '0' || *p > '9') return std::nullopt;
        if (*p == '0' && p + 1 != end && p[1] >= '0' && p[1] <= '9') return std::nullopt;
        unsigned v = 0;
        auto [next, ec] = std::from_chars(p, end, v);
        if (ec != std::errc{} || v > 255 || next - p > 3) return std::nullopt;
        p = next;
        result = (result << 8) | v;
    }
    if (p != end) return std::nullopt;
    return Ipv4{result};
}

bool Ipv4Interface::overlaps(const Ipv4Interface& other) const
{
    const std::uint8_t shorter = prefix < other.prefix ? prefix : other.prefix;
    const std::uint32_t m = shorter == 0 ? 0 : ~std::uint32_t{0} << (32 - shorter);
    return (address.value & m) == (other.address.value & m);
}

std::string Ipv4Interface::str() const { return address.str() + '/' + std::to_string(prefix); }

std::string Ipv4Interface::network_str() const { return network().str() + '/' + std::to_string(prefix); }

std::optional<Ipv4Interface> Ipv4Interface::parse(const std::string& text)
{
    const auto slash = text.find('/');
    if (slash == std::string::npos) return std::nullopt;
    auto ip = Ipv4::parse(text.substr(0, slash));
    const std::string len = text.substr(slash + 1);
    if (!ip || len.empty() || len.size() > 2 || (len.size() == 2 && len[0] == '0')) return std::nullopt;
    unsigned prefix = 0;
    auto [next, ec] = std::from_chars(len.data(), len.data() + len.size(), prefix);
    if (ec != std::errc{} || next != len.data() + len.size() || prefix > 32) return std::nullopt;
    return Ipv4Interface{*ip, static_cast<std::uint8_t>(prefix)};
}

}  // namespace kvmnet::model
