// IPv6 planning: a network's IPv6 subnet in the data sets the fixed IPv6
// rules of build_ruleset look up (established traffic of guests, spoofed sources,
// routed accepts, port forwards, NAT66 masquerade); the bridge gets the
// gateway address with nodad; dnsmasq sends router advertisements and
// serves DHCPv6 ranges.
#include "plan/planner_ipv6.hpp"

#include "plan/planner.hpp"

#include <algorithm>

namespace kvmnet::plan {

void add_ipv6_elements(const model::Network& n,
                       const std::function<void(const char*, std::vector<std::string>, const std::string&)>& add)
{
    const bool forwards = n.mode == model::Mode::nat || n.mode == model::Mode::routed;
    // Isolated networks already drop everything from their bridge, whatever the protocol.
    if (!forwards || !n.ipv6) return;
    const model::Ipv6Interface& a = n.ipv6->address;
    add(net6_set, {n.bridge, a.network_str()}, n.name);
    add(net_prefix_set(true, a.prefix).c_str(), {n.bridge, a.network().str()}, n.name);
    // IPv6 port forwards live in the fwd6_* maps of build_ruleset; there is
    // no IPv6 counterpart of 127.0.0.1 forwarding: the kernel never routes
    // ::1 off the host.
    if (n.mode == model::Mode::nat && n.ipv6->nat66) add(nat66_bridges_set, {n.bridge}, n.name);
}

std::optional<AddAddress> plan_ipv6_address(const model::Network& n, const std::optional<LinkInfo>& observed,
                                            const std::vector<AddressInfo>& addresses)
{
    if (!n.ipv6) return std::nullopt;
    const auto& a = n.ipv6->address;
    const bool present = observed && std::any_of(addresses.begin(), addresses.end(), [&](const AddressInfo& x) {
                             return x.link_index == observed->index && x.address == model::IpAddress(a.address) &&
                                    x.prefix_length == a.prefix;
                         });
    if (present) return std::nullopt;
    // nodad: the gateway is ours by definition, and a tentative address
    // could not be bound by dnsmasq nor used as the source of its RAs' DNS.
    return AddAddress{n.bridge, a.address, a.prefix, 0x02 /* IFA_F_NODAD */};
}

void dnsmasq_ipv6_lines(const model::Network& n, std::ostream& c)
{
    if (!n.ipv6) return;
    const auto& v6 = *n.ipv6;
    const auto& a = v6.address;
    c << "listen-address=" << a.address.str() << "\n";
    if (v6.ra) {
        c << "enable-ra\n";
        // An isolated network advertises its prefix but no route through it
        // (router lifetime 0), as its IPv4 DHCP offers no router.
        if (n.mode == model::Mode::isolated) c << "ra-param=" << n.bridge << ",600,0\n";
    }
    if (v6.ranges.empty()) {
        if (v6.ra) c << "dhcp-range=" << a.network().str() << ",ra-only," << int(a.prefix) << "\n";
    } else {
        // Stateful DHCPv6; the RAs carry the "managed" flag.
        for (const auto& r : v6.ranges)
            c << "dhcp-range=" << r.first.str() << "," << r.last.str() << "," << int(a.prefix) << ","
              << dnsmasq_lease_time(v6.lease_time) << "\n";
    }
}

}  // namespace kvmnet::plan
