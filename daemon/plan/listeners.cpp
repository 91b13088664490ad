#include "plan/listeners.hpp"

namespace kvmnet::plan {
namespace {

bool wildcard(const model::IpAddress& a) { return a.v4() ? a.v4()->value == 0 : a.v6()->is_unspecified(); }

// The IPv4 address a socket bound to `a` receives on: `a` itself, or the one
// an IPv4-mapped IPv6 address (::ffff:192.0.2.1) carries.
std::optional<model::Ipv4> ipv4_of(const model::IpAddress& a)
{
    if (const model::Ipv4* v4 = a.v4()) return *v4;
    const model::Ipv6& v6 = *a.v6();
    if (!v6.is_v4_mapped()) return std::nullopt;
    model::Ipv4 ip;
    for (std::size_t i = 12; i < 16; ++i)
        ip.value = (ip.value << 8) | v6.bytes[i];
    return ip;
}

}  // namespace

std::vector<Listener> shadowed_listeners(const model::PortForward& f, const std::vector<Listener>& listeners)
{
    std::vector<Listener> result;
    for (const Listener& l : listeners) {
        const bool proto = f.proto == model::Proto::both || (f.proto == model::Proto::tcp) == l.tcp;
        if (!proto || l.port < f.host_port_first || l.port > f.host_port_last) continue;
        if (f.host_address && !wildcard(l.address) && ipv4_of(l.address) != f.host_address) continue;
        result.push_back(l);
    }
    return result;
}

}  // namespace kvmnet::plan
