// Ruleset, bridge and dnsmasq planning for NAT, routed and isolated networks.
#include "plan/planner.hpp"

#include "plan/planner_ipv6.hpp"
#include "plan/ruleset_parts.hpp"

#include <algorithm>
#include <array>
#include <sstream>
#include <string_view>

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

// The name of one of the forward sets: fwd4 / fwd6, _any, _rate or _over.
std::string forward_set_name(bool v6, bool any, bool map, bool rate)
{
    std::string name = v6 ? "fwd6" : "fwd4";
    if (any) name += "_any";
    if (!map) return name + "_over";
    return rate ? name + "_rate" : name;
}

Set forward_set(bool v6, bool any, bool map, bool rate)
{
    const SetType address = v6 ? SetType::ipv6_addr : SetType::ipv4_addr;
    Set set;
    set.name = forward_set_name(v6, any, map, rate);
    set.key = any ? std::vector<SetType>{SetType::inet_proto, SetType::inet_service}
                  : std::vector<SetType>{SetType::inet_proto, address, SetType::inet_service};
    if (map) set.data = {address, SetType::inet_service};
    set.counter = true;
    set.limit = map && rate;
    return set;
}

std::vector<Field> forward_keys(bool v6, bool any)
{
    if (any) return {Field::meta_l4proto, Field::th_dport};
    return {Field::meta_l4proto, v6 ? Field::ip6_daddr : Field::ip_daddr, Field::th_dport};
}

// The DNAT rules (prerouting and output alike) and the drops of forwards
// over their rate. Forwards on every address apply only to this host's own
// addresses (127.0.0.1 included).
std::vector<Rule> forward_rules()
{
    std::vector<Rule> rules, drops;
    for (bool v6 : {false, true}) {
        for (bool any : {false, true}) {
            for (bool rate : {false, true}) {
                const std::string map = forward_set_name(v6, any, true, rate);
                // Keyed by port only, the every-address maps need the family
                // spelt out (else IPv6 packets would look up IPv4 forwards).
                std::vector<Match> m;
                if (any) m.push_back(MatchNfproto{v6});
                if (any) m.push_back(MatchFibDaddrLocal{});
                m.push_back(DnatMap{v6, forward_keys(v6, any), map});
                rules.push_back(rule(std::move(m), Verdict::none, "port forwards (@" + map + ")"));
            }
            std::vector<Match> m;
            if (any) m.push_back(MatchNfproto{v6});
            if (any) m.push_back(MatchFibDaddrLocal{});
            const std::string set = forward_set_name(v6, any, false, false);
            m.push_back(MatchSetLookup{forward_keys(v6, any), set, false});
            drops.push_back(rule(std::move(m), Verdict::drop, "port forwards over their rate (@" + set + ")", true));
        }
    }
    rules.insert(rules.end(), drops.begin(), drops.end());
    return rules;
}

}  // namespace

std::vector<Set> forward_sets()
{
    std::vector<Set> sets;
    for (bool v6 : {false, true})
        for (bool any : {false, true})
            for (bool rate : {false, true})
                sets.push_back(forward_set(v6, any, true, rate));
    for (bool v6 : {false, true})
        for (bool any : {false, true})
            sets.push_back(forward_set(v6, any, false, false));
    return sets;
}

std::vector<SetElements> forward_elements(const model::PortForward& f, const std::string& network)
{
    const bool v6 = f.ipv6;
    const bool any = v6 ? !f.host_address6 : !f.host_address;
    const bool rate = f.rate.has_value();
    SetElements map{forward_set_name(v6, any, true, rate), {}};
    SetElements over{forward_set_name(v6, any, false, false), {}};
    std::vector<const char*> protos;
    if (f.proto != model::Proto::udp) protos.push_back("tcp");
    if (f.proto != model::Proto::tcp) protos.push_back("udp");
    const std::string guest = v6 ? f.guest6.str() : f.guest.str();
    const std::string host = any ? std::string() : v6 ? f.host_address6->str() : f.host_address->str();
    for (const char* proto : protos) {
        for (std::uint32_t i = 0; i < f.port_count(); ++i) {
            SetElement e;
            e.key.push_back(proto);
            if (!any) e.key.push_back(host);
            e.key.push_back(std::to_string(f.host_port_first + i));
            e.comment = network;
            if (rate) {
                over.elements.push_back(e);
                e.limit_per_second = *f.rate;
                e.limit_burst = *f.rate;  // one second's worth at once
            }
            e.data = {guest, std::to_string(f.guest_port_first + i)};
            map.elements.push_back(std::move(e));
        }
    }
    std::vector<SetElements> result{std::move(map)};
    if (rate) result.push_back(std::move(over));
    return result;
}

std::string per_source_set(const std::string& network) { return "conns_" + network; }

std::string owner_alias(const std::string& network_name) { return alias_prefix + network_name; }

std::string network_chain(const std::string& network, NetworkChain which)
{
    static const char* const suffix[] = {"guard", "first", "barred", "inbound", "outbound", "hairpin", "masquerade"};
    return "net_" + network + "_" + suffix[static_cast<int>(which)];
}

std::string dispatch_map(NetworkChain which)
{
    static const char* const names[] = {"guard_by_iif",    "first_by_oif",   "barred_by_iif",    "inbound_by_oif",
                                        "outbound_by_iif", "hairpin_by_oif", "masquerade_by_iif"};
    return names[static_cast<int>(which)];
}

std::string hook_chain_of(const std::string& chain)
{
    static const std::pair<const char*, const char*> hooks[] = {
        {"_guard", "guest_prerouting"},    {"_first", "guest_forward"},    {"_barred", "guest_forward"},
        {"_inbound", "guest_forward"},     {"_outbound", "guest_forward"}, {"_hairpin", "nat_postrouting"},
        {"_masquerade", "nat_postrouting"}};
    if (chain.rfind("net_", 0) != 0) return chain;
    for (const auto& [suffix, hook] : hooks) {
        const std::string_view s(suffix);
        if (chain.size() > s.size() && chain.compare(chain.size() - s.size(), s.size(), s) == 0) return hook;
    }
    return chain;
}

NetworkPart plan_network_part(const model::Network& n)
{
    constexpr int groups = static_cast<int>(NetworkChain::count);
    // Forward rules are grouped by purpose across all networks rather than
    // per network, so the verdict for traffic between two networks does not
    // depend on which network sorts first; one map per group:
    //   1. replies to NAT guests, and traffic within one bridge: accept
    //      (by output bridge);
    //   2. what a bridge may not send at all: spoofed sources, anything from
    //      an isolated network, and (with an uplink) anything not towards it
    //      (by input bridge);
    //   3. new traffic towards a bridge: dropped, except routed subnets (by
    //      output bridge);
    //   4. guest-initiated traffic (its source was checked in 2): accept
    //      (by input bridge).
    NetworkPart part;
    part.nat = n.mode == model::Mode::nat && n.ipv4.has_value();
    const std::string& br = n.bridge;
    std::array<std::vector<Rule>, groups> r;
    auto& [guard, replies, barred, inbound, outbound, hairpin, postrouting] = r;
    if (!n.ipv4) {
        // Bridge mode: with br_netfilter loaded, frames bridged between
        // the uplink and guests traverse this hook as bridge -> bridge.
        replies.push_back(rule({iif(br)}, Verdict::accept, n.name + ": bridged LAN traffic"));
    } else {
        std::vector<Rule> intra;
        add_ipv6_rules(n, {replies, barred, inbound, outbound, hairpin, postrouting});  // planner_ipv6.cpp
        const model::Ipv4Interface& a = n.ipv4->address;
        const std::string tag = n.name + ": ";
        const bool forwards = n.mode == model::Mode::nat || n.mode == model::Mode::routed;
        const bool nat = n.mode == model::Mode::nat;

        // The first group is reached by output bridge: "between guests"
        // is the input bridge being the same.
        intra.push_back(rule({iif(br)}, Verdict::accept, tag + "between guests"));
        if (n.mode == model::Mode::nat)
            replies.push_back(rule({daddr(a), MatchCtState{ct::established | ct::related}}, Verdict::accept,
                                   tag + "replies to guests"));
        replies.insert(replies.end(), intra.begin(), intra.end());
        if (forwards) {
            barred.push_back(rule({saddr(a, Cmp::neq)}, Verdict::drop, tag + "spoofed source", true));
            if (!n.uplink.empty())
                barred.push_back(rule({oif(n.uplink, Cmp::neq)}, Verdict::drop, tag + "only via uplink", true));
            // limits: new connections are counted where they enter the
            // forward path, from the guests and (NAT) through forwards.
            // Each group's chain is reached by the bridge the rule
            // matched on before, so the ones on the way in to guests
            // go to the inbound chain, ahead of its accepts.
            const MatchCtState fresh{ct::new_};
            const MatchCtStatus dnat{ct_status::dnat};
            std::vector<Rule> inbound_limits;
            if (const auto rate = n.limits.new_connections_per_second) {
                const MatchLimit over{*rate, *rate, true};
                barred.push_back(
                    rule({fresh, over}, Verdict::drop, tag + "new connections from guests over the rate limit", true));
                if (nat)
                    inbound_limits.push_back(rule({dnat, fresh, over}, Verdict::drop,
                                                  tag + "new connections to forwards over the rate limit", true));
            }
            if (const auto count = n.limits.connections_per_source) {
                Set meter{per_source_set(n.name), {SetType::ipv4_addr}, {}, 65535, true, false, {}};
                const MatchConnLimit too_many{{Field::ip_saddr}, meter.name, *count, true};
                part.meter = std::move(meter);
                barred.push_back(
                    rule({fresh, too_many}, Verdict::drop, tag + "connections per guest address over the limit", true));
                if (nat)
                    inbound_limits.push_back(rule({dnat, fresh, too_many}, Verdict::drop,
                                                  tag + "connections per source to forwards over the limit", true));
            }
            inbound.insert(inbound.begin(), inbound_limits.begin(), inbound_limits.end());
        } else {
            barred.push_back(rule({}, Verdict::drop, tag + "isolated", true));
        }
        if (n.mode == model::Mode::routed)
            inbound.push_back(rule({daddr(a)}, Verdict::accept, tag + "routed to guests"));
        if (nat)
            inbound.push_back(
                rule({daddr(a), MatchCtStatus{ct_status::dnat}}, Verdict::accept, tag + "port forwards to guests"));
        inbound.push_back(rule({}, Verdict::drop, tag + "no new connections to guests", true));
        if (forwards) outbound.push_back(rule({saddr(a)}, Verdict::accept, tag + "from guests"));

        if (nat) {
            const MatchIpv4 loopback_src{true, Cmp::eq, {0x7f000000u, 8}},
                loopback_dst{false, Cmp::eq, {0x7f000000u, 8}};
            // Before conntrack (raw priority): NAT bridges accept
            // 127.0.0.0/8 for forwards from the host's loopback
            // (route_localnet), so guests must not be able to use those
            // addresses themselves (CVE-2020-8558).
            guard.push_back(rule({loopback_dst}, Verdict::drop, tag + "loopback destination from guests", true));
            guard.push_back(rule({loopback_src}, Verdict::drop, tag + "loopback source from guests", true));
            // A forwarded connection from a guest of this network (hairpin)
            // or from this host's loopback must come back through the host,
            // so it leaves with the gateway's address.
            hairpin.insert(hairpin.begin(), {rule({MatchCtStatus{ct_status::dnat}, saddr(a)}, Verdict::masquerade,
                                                  tag + "hairpin forwards"),
                                             rule({MatchCtStatus{ct_status::dnat}, loopback_src}, Verdict::masquerade,
                                                  tag + "forwards from the host's loopback")});
            // Multicast and broadcast must keep their source: libvirt learnt
            // this the hard way (DHCP and mDNS break when masqueraded).
            postrouting.push_back(
                rule({saddr(a), daddr(0xe0000000u, 24)}, Verdict::return_, tag + "keep local multicast"));
            postrouting.push_back(rule({saddr(a), daddr(0xffffffffu, 32)}, Verdict::return_, tag + "keep broadcast"));
            std::vector<Match> masq{saddr(a), daddr(a, Cmp::neq)};
            if (!n.uplink.empty()) masq.push_back(oif(n.uplink));
            postrouting.push_back(rule(std::move(masq), Verdict::masquerade, tag + "masquerade"));
        }
    }
    for (int g = 0; g < groups; ++g) {
        if (r[g].empty()) continue;
        const std::string chain = network_chain(n.name, static_cast<NetworkChain>(g));
        part.chains.push_back(Chain{chain, "", "", 0, true, std::move(r[g])});
        part.dispatch.emplace_back(static_cast<NetworkChain>(g), SetElement{{br}, {"jump " + chain}, n.name, 0, 5});
    }
    if (n.mode == model::Mode::nat)
        for (const model::PortForward& f : n.forwards)
            for (SetElements& elements : forward_elements(f, n.name))
                part.forwards.push_back(std::move(elements));
    return part;
}

Table build_ruleset(std::vector<model::Network> active)
{
    std::sort(active.begin(), active.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
    std::vector<NetworkPart> parts;
    parts.reserve(active.size());
    for (const model::Network& n : active)
        parts.push_back(plan_network_part(n));
    std::vector<NetworkPart*> pointers;
    for (NetworkPart& part : parts)
        pointers.push_back(&part);
    return assemble_ruleset(std::move(pointers));
}

Table assemble_ruleset(std::vector<NetworkPart*> parts)
{
    // kube-proxy's shape: the hooked chains hold a fixed number of rules, each
    // a verdict map from a bridge name to that network's own chain, so the
    // rules a packet runs through and a network's start (its chains and map
    // elements, an incremental commit) do not grow with the number of
    // networks (plan_network_part has the groups).
    constexpr int groups = static_cast<int>(NetworkChain::count);
    std::vector<Chain> own;  // the networks' chains
    std::vector<Set> sets;
    std::array<Set, groups> maps;
    for (int g = 0; g < groups; ++g) {
        maps[g].name = dispatch_map(static_cast<NetworkChain>(g));
        maps[g].key = {SetType::ifname};
        maps[g].data = {SetType::verdict};
    }
    std::vector<Set> meters;
    // Only NAT networks have rules in guest_prerouting and nat_postrouting.
    const bool any_nat = std::any_of(parts.begin(), parts.end(), [](const NetworkPart* p) { return p->nat; });
    for (NetworkPart* part : parts) {
        for (Chain& chain : part->chains)
            own.push_back(std::move(chain));
        for (auto& [g, element] : part->dispatch)
            maps[static_cast<int>(g)].elements.push_back(std::move(element));
        if (part->meter) meters.push_back(std::move(*part->meter));
    }

    auto dispatch = [&](NetworkChain g, bool input) {
        const Field key = input ? Field::iifname : Field::oifname;
        return rule({VerdictMap{{key}, dispatch_map(g)}}, Verdict::none, "");
    };
    Chain forward{"guest_forward",
                  "filter",
                  "forward",
                  0,
                  true,
                  {dispatch(NetworkChain::first, false), dispatch(NetworkChain::barred, true),
                   dispatch(NetworkChain::inbound, false), dispatch(NetworkChain::outbound, true)}};
    // No input chain: an accept here could not override another table's drop,
    // and the host's own services are the host firewall's business.
    Table table{table_name, {std::move(forward)}};
    const int forward_groups[] = {1, 2, 3, 4};
    for (int g : forward_groups)
        sets.push_back(std::move(maps[g]));
    if (any_nat) {
        table.chains.insert(
            table.chains.begin(),
            Chain{"guest_prerouting", "filter", "prerouting", -300, true, {dispatch(NetworkChain::guard, true)}});
        table.chains.push_back(
            Chain{"nat_postrouting",
                  "nat",
                  "postrouting",
                  100,
                  true,
                  {dispatch(NetworkChain::hairpin, false), dispatch(NetworkChain::masquerade, true)}});
        sets.insert(sets.begin(), std::move(maps[0]));
        sets.push_back(std::move(maps[5]));
        sets.push_back(std::move(maps[6]));
    }

    // Port forwards: declared whenever a NAT network runs, so adding the first
    // forward is an element change like any other.
    if (any_nat) {
        std::vector<Set> fwd = forward_sets();
        for (NetworkPart* part : parts) {
            for (SetElements& elements : part->forwards) {
                auto it = std::find_if(fwd.begin(), fwd.end(), [&](const Set& x) { return x.name == elements.set; });
                it->elements.insert(it->elements.end(), std::make_move_iterator(elements.elements.begin()),
                                    std::make_move_iterator(elements.elements.end()));
            }
        }
        sets.insert(sets.begin(), std::make_move_iterator(fwd.begin()), std::make_move_iterator(fwd.end()));
        // Before the host's own DNAT/NAT (dstnat) and after raw/conntrack.
        table.chains.insert(table.chains.begin(), Chain{"nat_output", "nat", "output", -100, true, forward_rules()});
        table.chains.insert(table.chains.begin(),
                            Chain{"nat_prerouting", "nat", "prerouting", -100, true, forward_rules()});
    }
    sets.insert(sets.end(), std::make_move_iterator(meters.begin()), std::make_move_iterator(meters.end()));
    table.sets = std::move(sets);
    table.chains.insert(table.chains.end(), std::make_move_iterator(own.begin()), std::make_move_iterator(own.end()));
    return table;
}

Table fixed_ruleset(bool any_nat)
{
    NetworkPart nat;
    nat.nat = true;
    return assemble_ruleset(any_nat ? std::vector<NetworkPart*>{&nat} : std::vector<NetworkPart*>{});
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
            return "add address " + o.address.str() + "/" + std::to_string(o.prefix_length) + " to " + o.name;
        }
        std::string operator()(const SetUp& o) const { return "bring " + o.name + " up"; }
    };
    return std::visit(Visitor{}, op);
}

BridgeOptions bridge_options(const model::Network& n, const std::optional<model::Mac>& mac)
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
                                const std::vector<AddressInfo>& addresses, const std::optional<model::Mac>& mac)
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
                                 return x.link_index == observed->index && x.address == model::IpAddress(a.address) &&
                                        x.prefix_length == a.prefix;
                             });
    if (!has_address) ops.push_back(AddAddress{n.bridge, a.address, a.prefix});
    if (auto v6 = plan_ipv6_address(n, observed, addresses)) ops.push_back(*v6);
    if (!observed || !observed->up) ops.push_back(SetUp{n.bridge});
    return ops;
}

std::vector<AddressInfo> takeover_addresses(const std::vector<AddressInfo>& all, int uplink_index)
{
    std::vector<AddressInfo> result;
    for (const AddressInfo& a : all) {
        if (a.link_index != uplink_index) continue;
        if (a.address.v6() && a.address.v6()->is_link_local()) continue;
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
        if (r.destination && r.destination->v6() && r.destination->v6()->is_link_local()) continue;
        result.push_back(r);
    }
    return result;
}

std::string dnsmasq_lease_time(std::uint32_t seconds)
{
    if (seconds == model::default_lease_time) return "1h";
    if (seconds == model::infinite_lease_time) return "infinite";
    return std::to_string(seconds);
}

DnsmasqPaths dnsmasq_paths(const std::string& dir)
{
    return {dir + "/dnsmasq.conf", dir + "/dnsmasq.hosts", dir + "/dnsmasq.names",
            dir + "/dnsmasq.pid",  dir + "/dnsmasq.log",   dir + "/dnsmasq.leases"};
}

DnsmasqFiles plan_dnsmasq(const model::Network& n, const std::string& dir, const std::string& user)
{
    const DnsmasqPaths paths = dnsmasq_paths(dir);
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
      << "interface=" << n.bridge
      << "\n"
      // bind-dynamic makes every dnsmasq re-read all of the host's addresses
      // (a netlink dump and an ioctl per address) on every address added
      // anywhere: with N networks, each start costs N² across the machine.
      // bind-interfaces binds once (DNS to the gateway address, DHCP by
      // the bridge's name, both still serving a repaired bridge or
      // address: test_heal_dnsmasq_bind) and hears of no address change.
      // IPv6 keeps bind-dynamic: the bridge's address may still be
      // tentative (DAD) when dnsmasq starts, and for RA and DHCPv6 dnsmasq
      // follows every IPv6 address change whichever way it binds.
      << (n.ipv6 ? "bind-dynamic\n" : "bind-interfaces\n") << "listen-address=" << a.address.str() << "\n"
      << "pid-file=" << paths.pid << "\n";
    if (!user.empty()) c << "user=" << user << "\n";
    if (!n.dns.domain.empty()) {
        // DHCP clients get the domain; their names and the static hosts'
        // resolve as NAME and NAME.domain; the domain never goes upstream, and
        // neither do plain names nobody here knows.
        c << "domain=" << n.dns.domain << "\n"
          << "local=/" << n.dns.domain << "/\n"
          << "expand-hosts\n"
          << "domain-needed\n";
    }
    for (const auto& server : n.dns.forwarders)
        c << "server=" << server << "\n";
    dnsmasq_ipv6_lines(n, c);
    if (n.ipv4->dhcp) {
        std::uint64_t size = 0;
        // An overlay host serves only its own slice of the ranges (the
        // manager resolves the slice: ModeDriver::effective).
        const auto slice = n.overlay ? model::overlay_slice(*n.overlay, std::nullopt) : std::nullopt;
        const auto ranges = slice ? model::slice_ranges(n.ipv4->ranges, *slice) : n.ipv4->ranges;
        for (const auto& r : ranges) {
            c << "dhcp-range=" << r.first.str() << "," << r.last.str() << "," << model::Ipv4{a.mask()}.str() << ","
              << dnsmasq_lease_time(n.ipv4->lease_time) << "\n";
            size += r.last.value - r.first.value + 1;
        }
        // Room for every static host the document may hold, not just the
        // current ones: AddHost/RemoveHost then change only dnsmasq.hosts
        // (re-read on SIGHUP) and never this file, which needs a restart.
        size += model::max_dhcp_hosts;
        if (n.ipv4->ranges.empty())
            c << "dhcp-range=" << a.network().str() << ",static," << model::Ipv4{a.mask()}.str()
              << (n.ipv4->lease_time == model::default_lease_time ? "" : "," + dnsmasq_lease_time(n.ipv4->lease_time))
              << "\n";
        if (size > 0) c << "dhcp-lease-max=" << size << "\n";
        c << "dhcp-no-override\n"
          << "dhcp-authoritative\n"
          << "dhcp-leasefile=" << paths.leases << "\n"
          << "dhcp-hostsfile=" << paths.hosts
          << "\n"
          // dnsmasq puts a dhcp-host's name in DNS only once it is leased;
          // this file makes static hosts resolvable from the start.
          << "addn-hosts=" << paths.names << "\n";
        if (n.mode == model::Mode::isolated) c << "dhcp-option=option:router\n";
        // The overlay's MTU (underlay − 50): guests sending full 1500-byte
        // frames would have them dropped at the VXLAN device.
        if (n.overlay && n.mtu != 0) c << "dhcp-option=option:mtu," << n.mtu << "\n";
        // Before offering an address dnsmasq pings it and, for up to 3 s
        // while no answer comes, reads no DHCP packet at all (dnsmasq's
        // icmp_ping: "deaf to further DHCP packets"): a burst of new guests
        // (a host's guests starting at once, test_overlay_many) queues
        // behind up to six such waits and the first clients' REQUESTs go
        // unanswered until they give up. On an overlay the ping cannot
        // see what it is for: a guest on another host answers to its own
        // host's anycast gateway, never here, and the slices already keep
        // the hosts' addresses apart.
        if (n.overlay) c << "no-ping\n";
    } else if (n.ipv6 && !n.ipv6->ranges.empty()) {
        // DHCPv6 only: its leases in the network's own file too (dnsmasq's
        // default is a file shared by every instance), and its static hosts
        // (ipv6.dhcp.hosts) in dnsmasq.hosts and dnsmasq.names as above,
        // whether there are any yet or not.
        c << "dhcp-leasefile=" << paths.leases << "\n"
          << "dhcp-hostsfile=" << paths.hosts << "\n"
          << "addn-hosts=" << paths.names << "\n";
    }
    // dns.hosts share dnsmasq.names with the static hosts' names: re-read on
    // SIGHUP, so they change on a running network without a restart.
    const bool dhcp6 = n.ipv6 && !n.ipv6->ranges.empty();
    if (!n.ipv4->dhcp && !dhcp6 && !n.dns.hosts.empty()) c << "addn-hosts=" << paths.names << "\n";
    // SRV and TXT records exist only as configuration lines: a change restarts dnsmasq.
    for (const auto& r : n.dns.srv)
        c << "srv-host=_" << r.service << "._" << r.proto << (r.domain.empty() ? "" : "." + r.domain) << "," << r.target
          << "," << r.port << "," << r.priority << "," << r.weight << "\n";
    for (const auto& t : n.dns.txt)
        c << "txt-record=" << t.name << ",\"" << t.value << "\"\n";
    std::ostringstream h, names;
    if (n.ipv4->dhcp)
        for (const auto& host : n.ipv4->hosts) {
            h << host.mac << "," << host.ip.str() << (host.name.empty() ? "" : "," + host.name) << "\n";
            if (!host.name.empty()) names << host.ip.str() << " " << host.name << "\n";
        }
    // dnsmasq matches "id:" against a DHCPv6 client's DUID, and a bare MAC
    // against the MAC it learns from the DUID or the neighbour table.
    if (dhcp6)
        for (const auto& host : n.ipv6->hosts) {
            h << (host.duid.empty() ? host.mac : "id:" + host.duid) << ",[" << host.ip.str() << "]"
              << (host.name.empty() ? "" : "," + host.name) << "\n";
            if (!host.name.empty()) names << host.ip.str() << " " << host.name << "\n";
        }
    for (const auto& host : n.dns.hosts) {
        names << host.ip;
        for (const auto& name : host.names)
            names << " " << name;
        names << "\n";
    }
    // bind-interfaces: dnsmasq acts on no route or IPv6 address notification
    // of an IPv4-only network (a new link route only re-sends a query for
    // dial-on-demand links), yet each wakes every dnsmasq of the host.
    return {c.str(), h.str(), names.str(), !n.ipv6};
}

}  // namespace kvmnet::plan
