// Ruleset, bridge and dnsmasq planning for NAT, routed and isolated networks.
#include "plan/planner.hpp"

#include "plan/planner_ipv6.hpp"
#include "plan/ruleset_parts.hpp"

#include <algorithm>
#include <array>
#include <sstream>
#include <stdexcept>
#include <string_view>

namespace kvmnet::plan {
namespace {

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

std::string limits_chain(const std::string& network, bool inbound)
{
    return "net_" + network + (inbound ? "_limits_in" : "_limits");
}

std::vector<std::string> limits_chains(const model::Network& n)
{
    // plan_network_part's conditions: an IPv4 network that forwards, with a
    // limit; the inbound chain for NAT (forwards) only.
    std::vector<std::string> chains;
    const bool nat = n.mode == model::Mode::nat;
    if (!n.ipv4 || (!nat && n.mode != model::Mode::routed)) return chains;
    if (!n.limits.new_connections_per_second && !n.limits.connections_per_source) return chains;
    chains.push_back(limits_chain(n.name, false));
    if (nat) chains.push_back(limits_chain(n.name, true));
    return chains;
}

std::string hook_chain_of(const std::string& chain)
{
    if (chain.rfind("net_", 0) != 0) return chain;
    return "guest_forward";  // the limits chains, reached from the forward hook
}

namespace {

// Every network with IPv4 (NAT, routed, isolated; not bridge mode), keyed by
// bridge: where guests' packets come from, for the established accept of
// traffic towards guests (planner.hpp lists the other data sets).
constexpr const char* guest_bridges_set = "guest_bridges";
constexpr const char* drops_loopback_dst = "drops_loopback_dst";
constexpr const char* drops_loopback_src = "drops_loopback_src";
constexpr const char* drops_spoofed6 = "drops_spoofed6";
constexpr const char* drops_spoofed = "drops_spoofed";
constexpr const char* drops_uplink = "drops_uplink";
constexpr const char* drops_isolated = "drops_isolated";
constexpr const char* drops_inbound = "drops_inbound";

MatchSetLookup in(std::vector<Field> keys, const char* set, bool negate = false)
{
    return MatchSetLookup{std::move(keys), set, negate};
}

const MatchIpv4 loopback_src{true, Cmp::eq, {0x7f000000u, 8}}, loopback_dst{false, Cmp::eq, {0x7f000000u, 8}};

// The hooked chains' rules. Established and related packets first, so that
// the bulk of forwarded traffic is accepted after a few hash lookups (of the
// input bridge, then of a bridge and a network address): each established
// accept is the positive form of a check the packet would otherwise meet
// further down, on the network's current data, so that an existing
// connection is judged by the sets as they are now (a network given
// another subnet, or an uplink elsewhere, cuts its connections too; README,
// "Open connections"):
//   1. established, to guests: not from a guest bridge (those are checked
//      by source below: a guest of one network must not inject into
//      another's connections by spoofing), to an address of the output
//      bridge's subnet (not an isolated bridge: it has no subnet here);
//   2. the uplink restriction: a network with an uplink sends only through
//      it (its connections too, when an uplink is set);
//   3. established, from guests: from the guest bridge's own subnet, which
//      is the spoof check (only NAT and routed networks have subnets here,
//      so nothing established leaves an isolated bridge), and either not
//      towards a guest bridge or to an address of the output bridge's
//      subnet, as the accepts for new connections below allow (never into
//      an isolated bridge, nor to another bridge outside its subnet);
// then what decides new connections (and everything else), grouped by
// purpose, so the verdict for traffic between two networks does not depend
// on which network sorts first:
//   4. traffic within one bridge: accept;
//   5. what a bridge may not send at all: spoofed sources and anything from
//      an isolated network (by input bridge), then its limits;
//   6. new traffic towards a bridge: its limits, then dropped, except routed
//      subnets and port forwards (by output bridge);
//   7. guest-initiated traffic (its source was checked in 5): accept.
// The established accepts check a subnet as a hash lookup of the bridge
// and the packet's address masked to the subnet's length
// (`iifname . ip saddr & 255.255.255.0 @net4_p24`), one rule per prefix
// length in use (between guests: per pair of lengths; past
// max_hashed_prefix_lengths lengths, the interval set), where one lookup of
// the interval set net4 (the kernel's pipapo set) would cover every length
// but costs more per packet (docs/performance.md, "Masquerade"); the rules
// below them, on new connections' first packets, keep net4 and net6 (the
// spoof drop needs "in none of the subnets", one lookup).
// Limits count new connections only (their rules match ct state new), so
// established packets never reach their verdict maps.
// Which networks a rule applies to is the data of the sets it looks up
// (planner.hpp), so the rules change only when a prefix length comes into
// use or goes out of it. An IPv6 rule looks its IPv6 key up first: its
// family check (meta nfproto) then ends it for IPv4 packets before any
// lookup. A drop rule's counting set comes last, so that its element counts
// only what the rule drops.
std::vector<Rule> forward_chain_rules(const Shape& shape)
{
    using F = Field;
    const MatchCtState established{ct::established | ct::related};
    const MatchCtStatus dnat{ct_status::dnat};
    const auto not_from_guests = in({F::iifname}, guest_bridges_set, true);
    const auto not_to_guests = in({F::oifname}, guest_bridges_set, true);
    std::vector<Rule> rules;
    // The established accepts of one family (its prefix lengths in use).
    // Past max_hashed_prefix_lengths lengths, the hash form would cost more
    // lookups than the one interval lookup it replaces (and "between
    // guests" grows with the square of the lengths): that family's accepts
    // look the subnet up in net4/net6 instead (length 0 below), one rule
    // each, as before the hash sets.
    const auto established_accepts = [&](bool v6, const std::vector<std::uint8_t>& in_use) {
        const F saddr = v6 ? F::ip6_saddr : F::ip_saddr, daddr = v6 ? F::ip6_daddr : F::ip_daddr;
        const std::vector<std::uint8_t> lengths =
            in_use.size() <= max_hashed_prefix_lengths ? in_use : std::vector<std::uint8_t>{0};
        const auto subnet = [&](F ifname, F address, std::uint8_t length) {
            if (length == 0) return in({ifname, address}, v6 ? net6_set : net4_set);
            // A whole address (IPv6 /128) needs no mask.
            const std::uint8_t mask = length < (v6 ? 128 : 32) ? length : 0;
            return MatchSetLookup{{ifname, address}, net_prefix_set(v6, length), false, mask};
        };
        // "established, to guests (/24)", "... (IPv6 /64)"; from the
        // interval set: "established, to guests", "... (IPv6)".
        const auto comment = [v6](const char* what, std::uint8_t length) {
            std::string text{what};
            if (length == 0) return v6 ? text + " (IPv6)" : text;
            text += v6 ? " (IPv6 /" : " (/";
            text += std::to_string(length);
            text += ')';
            return text;
        };
        for (std::uint8_t length : lengths) {
            // The IPv6 key first (its family check ends it for IPv4 packets).
            std::vector<Match> to_guests{established, not_from_guests, subnet(F::oifname, daddr, length)};
            if (v6) std::swap(to_guests[1], to_guests[2]);
            rules.push_back(rule(std::move(to_guests), Verdict::accept, comment("established, to guests", length)));
        }
        if (!v6)
            rules.push_back(
                rule({in({F::iifname}, uplinked_bridges_set), in({F::iifname, F::oifname}, uplinks_set, true),
                      in({F::iifname, F::oifname}, same_bridge_set, true), in({F::iifname}, drops_uplink)},
                     Verdict::drop, "only via uplink (@drops_uplink)", true));
        for (std::uint8_t length : lengths)
            rules.push_back(rule({established, subnet(F::iifname, saddr, length), not_to_guests}, Verdict::accept,
                                 comment("established, from guests", length)));
        for (std::uint8_t from : lengths) {
            for (std::uint8_t to : lengths) {
                std::string text = comment("established, between guests", from);
                if (to != from) text.insert(text.size() - 1, std::string{" to /"} + std::to_string(to));
                rules.push_back(rule({established, subnet(F::iifname, saddr, from), subnet(F::oifname, daddr, to)},
                                     Verdict::accept, text));
            }
        }
    };
    established_accepts(false, shape.prefixes4);
    established_accepts(true, shape.prefixes6);
    std::vector<Rule> decide{
        rule({in({F::iifname, F::oifname}, same_bridge_set)}, Verdict::accept, "within one network's bridge"),
        rule({in({F::iifname, F::ip6_saddr}, net6_set, true), in({F::iifname}, drops_spoofed6)}, Verdict::drop,
             "spoofed IPv6 source (@drops_spoofed6)", true),
        rule({in({F::iifname, F::ip_saddr}, net4_set, true), in({F::iifname}, drops_spoofed)}, Verdict::drop,
             "spoofed source (@drops_spoofed)", true),
        rule({VerdictMap{{F::iifname}, limits_by_iif_map}}, Verdict::none, ""),
        rule({in({F::iifname}, drops_isolated)}, Verdict::drop, "isolated (@drops_isolated)", true),
        rule({VerdictMap{{F::oifname}, limits_by_oif_map}}, Verdict::none, ""),
        rule({in({F::oifname, F::ip6_daddr}, net6_set), in({F::oifname}, routed_bridges_set)}, Verdict::accept,
             "routed to guests (IPv6)"),
        rule({dnat, in({F::oifname, F::ip6_daddr}, net6_set), in({F::oifname}, nat_bridges_set)}, Verdict::accept,
             "port forwards to guests (IPv6)"),
        rule({in({F::oifname}, routed_bridges_set), in({F::oifname, F::ip_daddr}, net4_set)}, Verdict::accept,
             "routed to guests"),
        rule({dnat, in({F::oifname}, nat_bridges_set), in({F::oifname, F::ip_daddr}, net4_set)}, Verdict::accept,
             "port forwards to guests"),
        rule({in({F::oifname}, drops_inbound)}, Verdict::drop, "no new connections to guests (@drops_inbound)", true),
        rule({in({F::iifname}, forwarding_bridges_set)}, Verdict::accept, "from guests"),
    };
    rules.insert(rules.end(), std::make_move_iterator(decide.begin()), std::make_move_iterator(decide.end()));
    return rules;
}

// Before conntrack (raw priority): NAT bridges accept 127.0.0.0/8 for
// forwards from the host's loopback (route_localnet), so guests must not be
// able to use those addresses themselves (CVE-2020-8558).
std::vector<Rule> guard_chain_rules()
{
    return {rule({loopback_dst, in({Field::iifname}, drops_loopback_dst)}, Verdict::drop,
                 "loopback destination from NAT guests (@drops_loopback_dst)", true),
            rule({loopback_src, in({Field::iifname}, drops_loopback_src)}, Verdict::drop,
                 "loopback source from NAT guests (@drops_loopback_src)", true)};
}

std::vector<Rule> postrouting_chain_rules()
{
    using F = Field;
    const MatchCtStatus dnat{ct_status::dnat};
    const MatchIpv6 multicast6{false, Cmp::eq, Ipv6Prefix{{0xff}, 8}};
    const auto nat = in({F::iifname}, nat_bridges_set);
    const auto nat66 = in({F::iifname}, nat66_bridges_set);
    const auto from_guest = in({F::iifname, F::ip_saddr}, net4_set);
    const auto from_guest6 = in({F::iifname, F::ip6_saddr}, net6_set);
    return {
        // A forwarded connection from a guest of the network (hairpin) or
        // from this host's loopback must come back through the host, so it
        // leaves with the gateway's address.
        rule({dnat, in({F::oifname}, nat_bridges_set), in({F::oifname, F::ip_saddr}, net4_set)}, Verdict::masquerade,
             "hairpin forwards"),
        rule({dnat, in({F::oifname}, nat_bridges_set), loopback_src}, Verdict::masquerade,
             "forwards from the host's loopback"),
        rule({dnat, in({F::oifname, F::ip6_saddr}, net6_set), in({F::oifname}, nat_bridges_set)}, Verdict::masquerade,
             "hairpin forwards (IPv6)"),
        // With an uplink, only what leaves through it is masqueraded.
        // These `return`s end the hooked chain itself (accept), not a
        // network's chain: every rule after them matches the guest's input
        // bridge; a rule added below that matches another packet (by output
        // interface, say) must come before them.
        rule({in({F::iifname}, uplinked_bridges_set), in({F::iifname, F::oifname}, uplinks_set, true)},
             Verdict::return_, "not towards the network's uplink"),
        // Multicast and broadcast must keep their source: libvirt learnt
        // this the hard way (DHCP and mDNS break when masqueraded).
        rule({nat, from_guest, daddr(0xe0000000u, 24)}, Verdict::return_, "keep local multicast"),
        rule({nat, from_guest, daddr(0xffffffffu, 32)}, Verdict::return_, "keep broadcast"),
        rule({nat, from_guest, in({F::iifname, F::ip_daddr}, net4_set, true)}, Verdict::masquerade, "masquerade"),
        rule({nat66, from_guest6, multicast6}, Verdict::return_, "keep multicast (IPv6)"),
        rule({nat66, from_guest6, in({F::iifname, F::ip6_daddr}, net6_set, true)}, Verdict::masquerade,
             "masquerade (IPv6)"),
    };
}

// The data sets' declarations (without elements), in the order the rules use them.
std::vector<Set> data_sets(const Shape& shape)
{
    const auto set = [](std::string name, std::vector<SetType> key, bool counter = false, bool interval = false) {
        Set s;
        s.name = std::move(name);
        s.key = std::move(key);
        s.counter = counter;
        s.interval = interval;
        return s;
    };
    const SetType ifname = SetType::ifname;
    std::vector<Set> sets{set(guest_bridges_set, {ifname}),
                          set(nat_bridges_set, {ifname}),
                          set(routed_bridges_set, {ifname}),
                          set(forwarding_bridges_set, {ifname}),
                          set(uplinked_bridges_set, {ifname}),
                          set(nat66_bridges_set, {ifname}),
                          set(uplinks_set, {ifname, ifname}),
                          set(same_bridge_set, {ifname, ifname}),
                          set(net4_set, {ifname, SetType::ipv4_addr}, false, true),
                          set(net6_set, {ifname, SetType::ipv6_addr}, false, true)};
    for (std::uint8_t length : shape.prefixes4)
        sets.push_back(set(net_prefix_set(false, length), {ifname, SetType::ipv4_addr}));
    for (std::uint8_t length : shape.prefixes6)
        sets.push_back(set(net_prefix_set(true, length), {ifname, SetType::ipv6_addr}));
    for (const DropCounterSet& d : drop_counter_sets())
        sets.push_back(set(d.set, {ifname}, true));
    for (const char* name : {limits_by_iif_map, limits_by_oif_map}) {
        sets.push_back(set(name, {ifname}));
        sets.back().data = {SetType::verdict};
    }
    return sets;
}

}  // namespace

const std::vector<DropCounterSet>& drop_counter_sets()
{
    static const std::vector<DropCounterSet> sets{
        {drops_loopback_dst, "guest_prerouting"}, {drops_loopback_src, "guest_prerouting"},
        {drops_spoofed6, "guest_forward"},        {drops_spoofed, "guest_forward"},
        {drops_uplink, "guest_forward"},          {drops_isolated, "guest_forward"},
        {drops_inbound, "guest_forward"}};
    return sets;
}

std::string net_prefix_set(bool ipv6, unsigned length)
{
    return std::string{ipv6 ? "net6_p" : "net4_p"} + std::to_string(length);
}

SubnetPrefixes subnet_prefixes(const model::Network& n)
{
    SubnetPrefixes p;
    if (!n.ipv4 || (n.mode != model::Mode::nat && n.mode != model::Mode::routed)) return p;
    p.ipv4 = n.ipv4->address.prefix;
    if (n.ipv6) p.ipv6 = n.ipv6->address.prefix;
    return p;
}

Shape table_shape(const std::vector<const model::Network*>& active)
{
    Shape shape;
    for (const model::Network* n : active) {
        shape.any_nat = shape.any_nat || (n->mode == model::Mode::nat && n->ipv4.has_value());
        shape.add(subnet_prefixes(*n));
    }
    return shape;
}

void Shape::add(const SubnetPrefixes& p)
{
    const auto insert = [](std::vector<std::uint8_t>& lengths, std::uint8_t length) {
        if (length == 0) return;
        const auto at = std::lower_bound(lengths.begin(), lengths.end(), length);
        if (at == lengths.end() || *at != length) lengths.insert(at, length);
    };
    insert(prefixes4, p.ipv4);
    insert(prefixes6, p.ipv6);
}

NetworkPart plan_network_part(const model::Network& n)
{
    NetworkPart part;
    part.nat = n.mode == model::Mode::nat && n.ipv4.has_value();
    part.prefixes = subnet_prefixes(n);
    const std::string& br = n.bridge;
    const auto add = [&](const char* set, std::vector<std::string> key, std::string comment) {
        part.elements.emplace_back(set, SetElement{std::move(key), {}, std::move(comment), 0, 5});
    };
    // A counted drop: the comment is what Statistics reports for the network.
    const auto drop = [&](const char* set, const std::string& what) { add(set, {br}, n.name + ": " + what); };
    if (!n.ipv4) {
        // Bridge mode: with br_netfilter loaded, frames bridged between
        // the uplink and guests traverse the forward hook as bridge -> bridge.
        add(same_bridge_set, {br, br}, n.name);
        return part;
    }
    const bool nat = n.mode == model::Mode::nat;
    const bool forwards = nat || n.mode == model::Mode::routed;
    add(same_bridge_set, {br, br}, n.name);
    add(guest_bridges_set, {br}, n.name);
    if (nat) add(nat_bridges_set, {br}, n.name);
    if (n.mode == model::Mode::routed) add(routed_bridges_set, {br}, n.name);
    if (forwards) {
        const model::Ipv4Interface& a = n.ipv4->address;
        add(forwarding_bridges_set, {br}, n.name);
        add(net4_set, {br, a.network_str()}, n.name);
        add(net_prefix_set(false, a.prefix).c_str(), {br, a.network().str()}, n.name);
        add_ipv6_elements(n, [&](const char* set, std::vector<std::string> key, const std::string& comment) {
            add(set, std::move(key), comment);
        });  // planner_ipv6.cpp
        drop(drops_spoofed6, n.ipv6 ? "spoofed IPv6 source" : "no IPv6 subnet");
        drop(drops_spoofed, "spoofed source");
        if (!n.uplink.empty()) {
            add(uplinked_bridges_set, {br}, n.name);
            add(uplinks_set, {br, n.uplink}, n.name);
            drop(drops_uplink, "only via uplink");
        }
    } else {
        drop(drops_isolated, "isolated");
    }
    if (nat) {
        drop(drops_loopback_dst, "loopback destination from guests");
        drop(drops_loopback_src, "loopback source from guests");
    }
    drop(drops_inbound, "no new connections to guests");
    if (nat)
        for (const model::PortForward& f : n.forwards)
            for (SetElements& elements : forward_elements(f, n.name))
                part.forwards.push_back(std::move(elements));

    // limits: new connections are counted where they enter the forward
    // path, from the guests and (NAT) through forwards, in chains of the
    // network's own (a connection count is a constant of its rule).
    if (!forwards) return part;
    const std::string tag = n.name + ": ";
    const MatchCtState fresh{ct::new_};
    const MatchCtStatus dnat{ct_status::dnat};
    std::vector<Rule> out, in_;
    if (const auto rate = n.limits.new_connections_per_second) {
        const MatchLimit over{*rate, *rate, true};
        out.push_back(
            rule({fresh, over}, Verdict::drop, tag + "new connections from guests over the rate limit", true));
        if (nat)
            in_.push_back(rule({dnat, fresh, over}, Verdict::drop,
                               tag + "new connections to forwards over the rate limit", true));
    }
    if (const auto count = n.limits.connections_per_source) {
        Set meter{per_source_set(n.name), {SetType::ipv4_addr}, {}, 65535, true, false, {}};
        const MatchConnLimit too_many{{Field::ip_saddr}, meter.name, *count, true};
        part.meter = std::move(meter);
        out.push_back(
            rule({fresh, too_many}, Verdict::drop, tag + "connections per guest address over the limit", true));
        if (nat)
            in_.push_back(rule({dnat, fresh, too_many}, Verdict::drop,
                               tag + "connections per source to forwards over the limit", true));
    }
    for (bool inbound : {false, true}) {
        std::vector<Rule>& rules = inbound ? in_ : out;
        if (rules.empty()) continue;
        const std::string chain = limits_chain(n.name, inbound);
        part.chains.push_back(Chain{chain, "", "", 0, true, std::move(rules)});
        part.elements.emplace_back(inbound ? limits_by_oif_map : limits_by_iif_map,
                                   SetElement{{br}, {"jump " + chain}, n.name, 0, 5});
    }
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
    // kube-proxy's shape: the hooked chains hold a fixed set of rules whose
    // lookups in named sets say which networks they apply to, so the rules
    // a packet runs through and a network's start (its elements, an
    // incremental commit with no jump for the kernel to validate) do not
    // grow with the number of networks. Only limits add chains of their own.
    std::vector<Chain> own;  // the networks' limits chains
    Shape shape;
    for (const NetworkPart* part : parts) {
        // Only NAT networks have rules in guest_prerouting and nat_postrouting.
        shape.any_nat = shape.any_nat || part->nat;
        shape.add(part->prefixes);
    }
    return assemble_ruleset(std::move(parts), shape);
}

Table assemble_ruleset(std::vector<NetworkPart*> parts, const Shape& shape)
{
    std::vector<Chain> own;  // the networks' limits chains
    std::vector<Set> sets = data_sets(shape);
    std::vector<Set> meters;
    const bool any_nat = shape.any_nat;
    for (NetworkPart* part : parts) {
        for (Chain& chain : part->chains)
            own.push_back(std::move(chain));
        for (auto& entry : part->elements) {
            const std::string& name = entry.first;
            auto it = std::find_if(sets.begin(), sets.end(), [&](const Set& x) { return x.name == name; });
            if (it == sets.end()) throw std::logic_error("planner: element for unknown set " + name);
            it->elements.push_back(std::move(entry.second));
        }
        if (part->meter) meters.push_back(std::move(*part->meter));
    }

    // No input chain: an accept here could not override another table's drop,
    // and the host's own services are the host firewall's business.
    Table table{table_name, {Chain{"guest_forward", "filter", "forward", 0, true, forward_chain_rules(shape)}}};
    if (any_nat) {
        table.chains.insert(table.chains.begin(),
                            Chain{"guest_prerouting", "filter", "prerouting", -300, true, guard_chain_rules()});
        table.chains.push_back(Chain{"nat_postrouting", "nat", "postrouting", 100, true, postrouting_chain_rules()});
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

Table fixed_ruleset(const Shape& shape) { return assemble_ruleset({}, shape); }

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
