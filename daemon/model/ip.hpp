// An address of either family as one value, for what the kernel reports
// without saying the family up front (a route's gateway, which may be IPv6
// on an IPv4 route) and for what holds both families in one field.
#pragma once

#include "model/ipv4.hpp"
#include "model/ipv6.hpp"

#include <compare>
#include <optional>
#include <string>
#include <variant>

namespace kvmnet::model {

class IpAddress {
public:
    IpAddress() = default;  // 0.0.0.0
    IpAddress(Ipv4 ip) : value_(ip) {}
    IpAddress(const Ipv6& ip) : value_(ip) {}

    bool is_v4() const { return std::holds_alternative<Ipv4>(value_); }
    bool is_v6() const { return std::holds_alternative<Ipv6>(value_); }
    // nullptr when the address is of the other family.
    const Ipv4* v4() const { return std::get_if<Ipv4>(&value_); }
    const Ipv6* v6() const { return std::get_if<Ipv6>(&value_); }
    // AF_INET or AF_INET6 (spelt out: the model includes no socket headers).
    int family() const { return is_v4() ? 2 : 10; }

    std::string str() const;
    // A dotted quad (Ipv4::parse) or an IPv6 address (Ipv6::parse).
    static std::optional<IpAddress> parse(const std::string& text);

    auto operator<=>(const IpAddress&) const = default;

private:
    std::variant<Ipv4, Ipv6> value_;
};

}  // namespace kvmnet::model
