// IPv6 planning: the forward rules mirror the IPv4 ones of build_ruleset
// (in the network's own chains, which its bridge's name leads to)
// (replies to NAT guests, spoofed sources, routed accepts, guest-initiated
// traffic), plus NAT66 masquerade; the bridge gets the gateway address with
// nodad; dnsmasq sends router advertisements and serves DHCPv6 ranges.
//
// IPv6 port forwards live in the fwd6_* maps of build_ruleset; here are
// their forward accepts and hairpin masquerade.
#include "plan/planner_ipv6.hpp"

#include "plan/planner.hpp"

#include <algorithm>

namespace kvmnet::plan {
namespace {

Ipv6Prefix prefix(const model::Ipv6Interface& a) { return {a.network().bytes, a.prefix}; }

MatchIfname oif(const std::string& name, Cmp op = Cmp::eq) { return {false, op, name}; }
MatchIpv6 saddr6(const model::Ipv6Interface& a, Cmp op = Cmp::eq) { return {true, op, prefix(a)}; }
MatchIpv6 daddr6(const model::Ipv6Interface& a, Cmp op = Cmp::eq) { return {false, op, prefix(a)}; }

Rule rule(std::vector<Match> matches, Verdict verdict, const std::string& comment, bool counter = false)
{
    return Rule{std::move(matches), counter, verdict, comment};
}

}  // namespace

void add_ipv6_rules(const model::Network& n, ForwardGroups groups)
{
    if (n.mode == model::Mode::bridge) return;
    const std::string tag = n.name + ": ";
    const bool forwards = n.mode == model::Mode::nat || n.mode == model::Mode::routed;
    // Isolated networks already drop everything from their bridge, whatever the protocol.
    if (!forwards) return;
    if (!n.ipv6) {
        groups.barred.push_back(
            rule({MatchIpv6{true, Cmp::eq, Ipv6Prefix{{}, 0}}}, Verdict::drop, tag + "no IPv6 subnet", true));
        return;
    }
    const model::Ipv6Interface& a = n.ipv6->address;
    if (n.mode == model::Mode::nat)
        groups.replies.push_back(rule({daddr6(a), MatchCtState{ct::established | ct::related}}, Verdict::accept,
                                      tag + "replies to guests (IPv6)"));
    groups.barred.push_back(rule({saddr6(a, Cmp::neq)}, Verdict::drop, tag + "spoofed IPv6 source", true));
    if (n.mode == model::Mode::routed)
        groups.inbound.push_back(rule({daddr6(a)}, Verdict::accept, tag + "routed to guests (IPv6)"));
    if (n.mode == model::Mode::nat) {
        // IPv6 port forwards (the fwd6_* maps of build_ruleset): forwarded
        // connections may reach the guests, and hairpin ones come back
        // through the host. There is no IPv6 counterpart of 127.0.0.1
        // forwarding: the kernel never routes ::1 off the host.
        groups.inbound.push_back(
            rule({daddr6(a), MatchCtStatus{ct_status::dnat}}, Verdict::accept, tag + "port forwards to guests (IPv6)"));
        groups.hairpin.push_back(
            rule({MatchCtStatus{ct_status::dnat}, saddr6(a)}, Verdict::masquerade, tag + "hairpin forwards (IPv6)"));
    }
    groups.outbound.push_back(rule({saddr6(a)}, Verdict::accept, tag + "from guests (IPv6)"));

    if (n.mode == model::Mode::nat && n.ipv6->nat66) {
        // As for IPv4: multicast keeps its source.
        model::Ipv6Interface multicast;
        multicast.address.bytes[0] = 0xff;
        multicast.prefix = 8;
        groups.postrouting.push_back(
            rule({saddr6(a), daddr6(multicast)}, Verdict::return_, tag + "keep multicast (IPv6)"));
        std::vector<Match> masq{saddr6(a), daddr6(a, Cmp::neq)};
        if (!n.uplink.empty()) masq.push_back(oif(n.uplink));
        groups.postrouting.push_back(rule(std::move(masq), Verdict::masquerade, tag + "masquerade (IPv6)"));
    }
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
