// Ruleset, bridge and dnsmasq planning for NAT, routed and isolated networks.
#include "plan/planner.hpp"

#include <algorithm>
#include <sstream>

namespace kvmnet::plan {
namespace {

MatchIfname iif(const std::string& name, Cmp op = Cmp::eq) { return {true, op, name}; }
MatchIfname oif(const std::string& name, Cmp op = Cmp::eq) { return {false, op, name}; }
MatchIpv4 saddr(const model::Ipv4Interface& a, Cmp op = Cmp::eq) { return {true, op, {a.network().value, a.prefix}}; }
MatchIpv4 daddr(const model::Ipv4Interface& a, Cmp op = Cmp::eq) { return {false, op, {a.network().value, a.prefix}}; }
MatchIpv4 daddr(std::uint32_t address, std::uint8_t length) { return {false, Cmp::eq, {address, length}}; }

Rule rule(std::vector<Match> matches, Verdict verdict, const std::string& comment, bool counter = false)
{
    return Rule{std::move(matches), counter, verdict, comment};
}

}  // namespace

std::string owner_alias(const std::string& network_name) { return alias_prefix + network_name; }

Table build_ruleset(std::vector<model::Network> active)
{
    std::sort(active.begin(), active.end(), [](const auto& a, const auto& b) { return a.name < b.name; });

    Chain forward{"guest_forward", "filter", "forward", 0, true, {}};
    Chain postrouting{"nat_postrouting", "nat", "postrouting", 100, true, {}};

    // Forward rules are grouped by purpose across all networks rather than
    // per network, so the verdict for traffic between two networks does not
    // depend on which network sorts first:
    //   1. replies to NAT guests, and traffic within one bridge: accept;
    //   2. what a bridge may not send at all: spoofed sources, anything from
    //      an isolated network, and (with an uplink) anything not towards it;
    //   3. new traffic towards a bridge: dropped, except routed subnets;
    //   4. guest-initiated traffic (its source was checked in 2): accept.
    // Every group holds a fixed number of rules per network.
    std::vector<Rule> replies, intra, barred, inbound, outbound;
    for (const model::Network& n : active) {
        const std::string& br = n.bridge;
        if (!n.ipv4) {
            // Bridge mode: with br_netfilter loaded, frames bridged between
            // the uplink and guests traverse this hook as bridge -> bridge.
            intra.push_back(rule({iif(br), oif(br)}, Verdict::accept, n.name + ": bridged LAN traffic"));
            continue;
        }
        const model::Ipv4Interface& a = n.ipv4->address;
        const std::string tag = n.name + ": ";
        const bool forwards = n.mode == model::Mode::nat || n.mode == model::Mode::routed;

        intra.push_back(rule({iif(br), oif(br)}, Verdict::accept, tag + "between guests"));
        if (n.mode == model::Mode::nat)
            replies.push_back(rule({oif(br), daddr(a), MatchCtState{ct::established | ct::related}}, Verdict::accept,
                                   tag + "replies to guests"));
        if (forwards) {
            barred.push_back(rule({iif(br), saddr(a, Cmp::neq)}, Verdict::drop, tag + "spoofed source", true));
            if (!n.uplink.empty())
                barred.push_back(
                    rule({iif(br), oif(n.uplink, Cmp::neq)}, Verdict::drop, tag + "only via uplink", true));
        } else {
            barred.push_back(rule({iif(br)}, Verdict::drop, tag + "isolated", true));
        }
        if (n.mode == model::Mode::routed)
            inbound.push_back(rule({oif(br), daddr(a)}, Verdict::accept, tag + "routed to guests"));
        inbound.push_back(rule({oif(br)}, Verdict::drop, tag + "no new connections to guests", true));
        if (forwards) outbound.push_back(rule({iif(br), saddr(a)}, Verdict::accept, tag + "from guests"));

        if (n.mode == model::Mode::nat) {
            // Multicast and broadcast must keep their source: libvirt learnt
            // this the hard way (DHCP and mDNS break when masqueraded).
            postrouting.rules.push_back(
                rule({saddr(a), daddr(0xe0000000u, 24)}, Verdict::return_, tag + "keep local multicast"));
            postrouting.rules.push_back(
                rule({saddr(a), daddr(0xffffffffu, 32)}, Verdict::return_, tag + "keep broadcast"));
            std::vector<Match> masq{saddr(a), daddr(a, Cmp::neq)};
            if (!n.uplink.empty()) masq.push_back(oif(n.uplink));
            postrouting.rules.push_back(rule(std::move(masq), Verdict::masquerade, tag + "masquerade"));
        }
    }
    for (auto* group : {&replies, &intra, &barred, &inbound, &outbound})
        forward.rules.insert(forward.rules.end(), group->begin(), group->end());

    // No input chain: an accept here could not override another table's drop,
    // and the host's own services are the host firewall's business.
    Table table{table_name, {std::move(forward)}};
    if (!postrouting.rules.empty()) table.chains.push_back(std::move(postrouting));
    return table;
}

std::string describe(const LinkOp& op)
{
    struct Visitor {
        std::string operator()(const CreateBridge& o) const { return "create bridge " + o.name; }
        std::string operator()(const SetAlias& o) const { return "mark " + o.name + " as " + o.alias; }
        std::string operator()(const SetMtu& o) const
        {
            return "set MTU of " + o.name + " to " + std::to_string(o.mtu);
        }
        std::string operator()(const AddAddress& o) const
        {
            return "add address " + o.address + "/" + std::to_string(o.prefix_length) + " to " + o.name;
        }
        std::string operator()(const SetUp& o) const { return "bring " + o.name + " up"; }
    };
    return std::visit(Visitor{}, op);
}

BridgeOptions bridge_options(const model::Network& n, const std::string& mac)
{
    BridgeOptions o;
    o.stp = n.stp;
    o.forward_delay_cs = n.forward_delay * 100;
    o.mtu = n.mtu;
    o.hello_time_cs = n.hello_time * 100;
    o.max_age_cs = n.max_age * 100;
    o.priority = n.priority;
    o.multicast_snooping = n.multicast_snooping;
    o.mac = mac;
    return o;
}

std::vector<LinkOp> plan_bridge(const model::Network& n, const std::optional<LinkInfo>& observed,
                                const std::vector<AddressInfo>& addresses, const std::string& mac)
{
    std::vector<LinkOp> ops;
    const std::string alias = owner_alias(n.name);
    if (!observed) {
        ops.push_back(CreateBridge{n.bridge, bridge_options(n, mac)});
        ops.push_back(SetAlias{n.bridge, alias});
    } else {
        if (observed->alias != alias)
            throw Error(ErrorKind::Conflict, "bridge: interface " + n.bridge +
                                                 " already exists and is not managed by kvmnet" +
                                                 (observed->alias.empty() ? "" : " (alias '" + observed->alias + "')") +
                                                 "; choose another bridge name");
        if (observed->kind != "bridge")
            throw Error(ErrorKind::Conflict, "bridge: interface " + n.bridge + " is a " +
                                                 (observed->kind.empty() ? "device" : observed->kind) +
                                                 ", not a bridge");
        if (n.mtu != 0 && observed->mtu != n.mtu) ops.push_back(SetMtu{n.bridge, n.mtu});
    }
    if (!n.ipv4) {
        if (!observed || !observed->up) ops.push_back(SetUp{n.bridge});
        return ops;
    }
    const auto& a = n.ipv4->address;
    const bool has_address = observed && std::any_of(addresses.begin(), addresses.end(), [&](const AddressInfo& x) {
                                 return x.link_index == observed->index && x.family == 2 /* AF_INET */ &&
                                        x.address == a.address.str() && x.prefix_length == a.prefix;
                             });
    if (!has_address) ops.push_back(AddAddress{n.bridge, a.address.str(), a.prefix});
    if (!observed || !observed->up) ops.push_back(SetUp{n.bridge});
    return ops;
}

std::vector<AddressInfo> takeover_addresses(const std::vector<AddressInfo>& all, int uplink_index)
{
    std::vector<AddressInfo> result;
    for (const AddressInfo& a : all) {
        if (a.link_index != uplink_index) continue;
        if (a.family == 10 /* AF_INET6 */ && a.address.rfind("fe80:", 0) == 0) continue;
        result.push_back(a);
    }
    return result;
}

std::vector<RouteInfo> takeover_routes(const std::vector<RouteInfo>& all, int uplink_index)
{
    constexpr std::uint8_t rtprot_kernel = 2;
    std::vector<RouteInfo> result;
    for (const RouteInfo& r : all) {
        if (r.link_index != uplink_index || r.protocol == rtprot_kernel) continue;
        if (r.family == 10 && r.destination.rfind("fe80:", 0) == 0) continue;
        result.push_back(r);
    }
    return result;
}

DnsmasqFiles plan_dnsmasq(const model::Network& n, const std::string& dir, const std::string& user)
{
    const auto& a = n.ipv4->address;
    std::ostringstream c;
    c << "# Generated by kvmnetd for network " << n.name << ". Changes are overwritten.\n"
      << "strict-order\n"
      // Guests only ever see what this network defines: no host resolv.conf,
      // no host /etc/hosts. Upstream forwarders are configured explicitly.
      << "no-resolv\n"
      << "no-hosts\n"
      << "no-poll\n"
      << "except-interface=lo\n"
      << "interface=" << n.bridge << "\n"
      << "bind-dynamic\n"
      << "listen-address=" << a.address.str() << "\n"
      << "pid-file=" << dir << "/dnsmasq.pid\n";
    if (!user.empty()) c << "user=" << user << "\n";
    if (n.ipv4->dhcp) {
        std::uint64_t size = 0;
        for (const auto& r : n.ipv4->ranges) {
            c << "dhcp-range=" << r.first.str() << "," << r.last.str() << "," << model::Ipv4{a.mask()}.str() << ",1h\n";
            size += r.last.value - r.first.value + 1;
        }
        // Room for every static host the document may hold, not just the
        // current ones: AddHost/RemoveHost then change only dnsmasq.hosts
        // (re-read on SIGHUP) and never this file, which needs a restart.
        size += model::max_dhcp_hosts;
        if (n.ipv4->ranges.empty())
            c << "dhcp-range=" << a.network().str() << ",static," << model::Ipv4{a.mask()}.str() << "\n";
        if (size > 0) c << "dhcp-lease-max=" << size << "\n";
        c << "dhcp-no-override\n"
          << "dhcp-authoritative\n"
          << "dhcp-leasefile=" << dir << "/dnsmasq.leases\n"
          << "dhcp-hostsfile=" << dir << "/dnsmasq.hosts\n";
        if (n.mode == model::Mode::isolated) c << "dhcp-option=option:router\n";
    }
    std::ostringstream h;
    if (n.ipv4->dhcp)
        for (const auto& host : n.ipv4->hosts)
            h << host.mac << "," << host.ip.str() << (host.name.empty() ? "" : "," + host.name) << "\n";
    return {c.str(), h.str()};
}

}  // namespace kvmnet::plan
