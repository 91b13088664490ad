// Unit tests of plan/: the nftables ruleset (golden files compared with
// plan::render, structural properties, and a tiny first-match evaluator that
// checks what the forward and postrouting chains do to sample packets), bridge
// planning against observed links, and the generated dnsmasq files.
//
// Set KVMNET_UPDATE_GOLDEN=1 to (re)write tests/golden/*.nft instead of
// comparing; review the diff before keeping it.
#include "model/network.hpp"
#include "plan/planner.hpp"
#include "plan/ruleset.hpp"
#include "plan/ruleset_parts.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace unit_test_planner {

using kvmnet::ErrorKind;
using kvmnet::model::Network;
namespace plan = kvmnet::plan;

namespace {

Network network(const std::string& text)
{
    try {
        return kvmnet::model::parse_network(text);
    } catch (const kvmnet::Error& e) {
        FAIL("test network does not parse: " << e.what() << "\n" << text);
        throw;
    }
}

Network nat_default()
{
    return network(R"({"name": "default", "mode": "nat", "bridge": "kvmbr0",
                       "ipv4": {"address": "192.168.122.1/24",
                                "dhcp": {"ranges": ["192.168.122.100-192.168.122.254"]}}})");
}

Network nat_uplink()
{
    return network(R"({"name": "default", "mode": "nat", "bridge": "kvmbr0", "uplink": "eth0",
                       "ipv4": {"address": "192.168.122.1/24"}})");
}

Network isolated_lab()
{
    return network(R"({"name": "lab", "mode": "isolated", "bridge": "kvmbr1", "ipv4": {"address": "10.10.0.1/24"}})");
}

Network routed_dmz()
{
    return network(R"({"name": "dmz", "mode": "routed", "bridge": "kvmbr2", "ipv4": {"address": "10.20.0.1/24"}})");
}

// Network number i of the given mode: "<mode>NN" on kvmbr-<mode-initial>NN, 10.<base+i>.0.1/24.
Network numbered(const std::string& mode, int i)
{
    const int base = mode == "nat" ? 0 : mode == "routed" ? 80 : 160;
    char name[32];
    std::snprintf(name, sizeof name, "%s%02d", mode.c_str(), i);
    return network(std::string(R"({"name": ")") + name + R"(", "mode": ")" + mode + R"(", "bridge": "br-)" + name +
                   R"(", "ipv4": {"address": "10.)" + std::to_string(base + i) + R"(.0.1/24"}})");
}

const plan::Chain* find_chain(const plan::Table& table, const std::string& name)
{
    for (const auto& chain : table.chains)
        if (chain.name == name) return &chain;
    return nullptr;
}

std::size_t rule_count(const plan::Table& table, const std::string& chain)
{
    const plan::Chain* c = find_chain(table, chain);
    return c ? c->rules.size() : 0;
}

// Compares `text` with tests/golden/<name>, or rewrites the file when
// KVMNET_UPDATE_GOLDEN=1.
void check_golden(const std::string& name, const std::string& text)
{
    const std::string path = std::string(GOLDEN_DIR) + "/" + name;
    const char* update = std::getenv("KVMNET_UPDATE_GOLDEN");
    if (update && std::string(update) == "1") {
        std::ofstream out(path, std::ios::binary | std::ios::trunc);
        out << text;
        out.close();
        REQUIRE(out.good());
        WARN("rewrote golden file " << path);
        return;
    }
    std::ifstream in(path, std::ios::binary);
    INFO("golden file " << path << " (run with KVMNET_UPDATE_GOLDEN=1 to create it)");
    REQUIRE(in.good());
    std::ostringstream expected;
    expected << in.rdbuf();
    CHECK(text == expected.str());
}

// A first-match evaluator for the subset of nft the planner emits.
struct Packet {
    Packet(std::string in, std::string out, std::string source, std::string destination,
           std::uint32_t state = plan::ct::new_, std::uint8_t l4 = 6, std::uint16_t port = 80)
        : iif(std::move(in)), oif(std::move(out)), saddr(std::move(source)), daddr(std::move(destination)),
          ct_state(state), protocol(l4), dport(port)
    {
    }
    std::string iif;
    std::string oif;
    std::string saddr;
    std::string daddr;
    std::uint32_t ct_state;
    std::uint8_t protocol;
    std::uint16_t dport;
    std::uint32_t ct_status = 0;  // e.g. plan::ct_status::dnat for a forwarded connection
    bool ipv6() const { return saddr.find(':') != std::string::npos; }
};

// The table whose sets lookups see: the one flattened() was last given.
const plan::Table* looked_up = nullptr;

// One value of a set element against a packet field: an interface name
// exactly, an address exactly or (interval sets) within a prefix.
bool value_matches(plan::Field f, const std::string& value, const Packet& p)
{
    switch (f) {
    case plan::Field::iifname: return p.iif == value;
    case plan::Field::oifname: return p.oif == value;
    case plan::Field::ip_saddr:
    case plan::Field::ip_daddr:
    case plan::Field::ip6_saddr:
    case plan::Field::ip6_daddr: {
        const bool source = f == plan::Field::ip_saddr || f == plan::Field::ip6_saddr;
        const std::string& address = source ? p.saddr : p.daddr;
        const auto slash = value.find('/');
        if (slash == std::string::npos) return address == value;
        const auto prefix = static_cast<unsigned>(std::stoul(value.substr(slash + 1)));
        if (p.ipv6()) {
            const auto a = kvmnet::model::Ipv6::parse(address),
                       net = kvmnet::model::Ipv6::parse(value.substr(0, slash));
            REQUIRE(a);
            REQUIRE(net);
            return kvmnet::model::ipv6_masked(*a, prefix).bytes == net->bytes;
        }
        const auto a = kvmnet::model::Ipv4::parse(address), net = kvmnet::model::Ipv4::parse(value.substr(0, slash));
        REQUIRE(a);
        REQUIRE(net);
        const std::uint32_t mask = prefix == 0 ? 0 : ~std::uint32_t{0} << (32 - prefix);
        return (a->value & mask) == net->value;
    }
    default: FAIL("the evaluator does not model this lookup key"); return false;
    }
}

// "KEYS @set" / "KEYS != @set": an address key implies its family (as the
// adapter's meta nfproto), whatever the negation.
bool lookup_matches(const plan::MatchSetLookup& m, const Packet& p)
{
    REQUIRE(looked_up);
    for (plan::Field f : m.keys) {
        if ((f == plan::Field::ip_saddr || f == plan::Field::ip_daddr) && p.ipv6()) return false;
        if ((f == plan::Field::ip6_saddr || f == plan::Field::ip6_daddr) && !p.ipv6()) return false;
    }
    const auto set = std::find_if(looked_up->sets.begin(), looked_up->sets.end(),
                                  [&](const plan::Set& s) { return s.name == m.set; });
    REQUIRE(set != looked_up->sets.end());
    const bool found = std::any_of(set->elements.begin(), set->elements.end(), [&](const plan::SetElement& e) {
        REQUIRE(e.key.size() == m.keys.size());
        for (std::size_t i = 0; i < m.keys.size(); ++i)
            if (!value_matches(m.keys[i], e.key[i], p)) return false;
        return true;
    });
    return found != m.negate;
}

bool matches(const plan::Match& match, const Packet& p)
{
    struct Visitor {
        const Packet& p;
        bool operator()(const plan::MatchIfname& m) const
        {
            return ((m.input ? p.iif : p.oif) == m.name) == (m.op == plan::Cmp::eq);
        }
        bool operator()(const plan::MatchIpv4& m) const
        {
            if (p.ipv6()) return false;  // implies meta nfproto ipv4
            const auto address = kvmnet::model::Ipv4::parse(m.source ? p.saddr : p.daddr);
            REQUIRE(address);
            const std::uint32_t mask = m.prefix.length == 0 ? 0 : ~std::uint32_t{0} << (32 - m.prefix.length);
            return ((address->value & mask) == m.prefix.address) == (m.op == plan::Cmp::eq);
        }
        bool operator()(const plan::MatchIpv6& m) const
        {
            if (!p.ipv6()) return false;  // implies meta nfproto ipv6
            const auto address = kvmnet::model::Ipv6::parse(m.source ? p.saddr : p.daddr);
            REQUIRE(address);
            const bool in = kvmnet::model::ipv6_masked(*address, m.prefix.length).bytes == m.prefix.address;
            return in == (m.op == plan::Cmp::eq);
        }
        bool operator()(const plan::MatchL4Dport& m) const { return p.protocol == m.protocol && p.dport == m.port; }
        bool operator()(const plan::MatchCtState& m) const { return (p.ct_state & m.mask) != 0; }
        bool operator()(const plan::MatchCtStatus& m) const { return (p.ct_status & m.mask) != 0; }
        // Packets here come one at a time: never over a rate or a count.
        bool operator()(const plan::MatchLimit& m) const { return !m.over; }
        bool operator()(const plan::MatchConnLimit& m) const { return !m.over; }
        bool operator()(const plan::MatchSetLookup& m) const { return lookup_matches(m, p); }
    };
    return std::visit(
        [&](const auto& m) -> bool {
            if constexpr (std::is_invocable_r_v<bool, Visitor, decltype(m)>) {
                return Visitor{p}(m);
            } else {
                FAIL("the evaluator does not model this match kind");
                return false;
            }
        },
        match);
}

// The verdict of the first matching rule with a verdict, else the policy;
// "comment" of the deciding rule for diagnostics.
struct Outcome {
    plan::Verdict verdict;
    std::string comment;
};

Outcome evaluate(const plan::Chain& chain, const Packet& p)
{
    for (const plan::Rule& rule : chain.rules) {
        if (rule.verdict == plan::Verdict::none) continue;
        if (std::all_of(rule.matches.begin(), rule.matches.end(), [&](const auto& m) { return matches(m, p); }))
            return {rule.verdict, rule.comment};
    }
    return {chain.policy_accept ? plan::Verdict::accept : plan::Verdict::drop, "policy"};
}

std::string verdict_name(plan::Verdict v)
{
    switch (v) {
    case plan::Verdict::none: return "none";
    case plan::Verdict::accept: return "accept";
    case plan::Verdict::drop: return "drop";
    case plan::Verdict::return_: return "return";
    case plan::Verdict::masquerade: return "masquerade";
    }
    return "?";
}

// A hooked chain with its verdict maps expanded: each "iifname vmap @m"
// rule becomes, element by element, the rules of the chain the element
// jumps to, each with "iifname BRIDGE" in front. What the kernel runs
// through, as one first-match list (a "return" in a jumped chain would go
// back to the hooked chain; the planner's dispatching rules come last in
// theirs where a jumped chain returns, so it ends there too).
plan::Chain flattened(const plan::Table& table, const std::string& name)
{
    looked_up = &table;
    const plan::Chain* chain = find_chain(table, name);
    REQUIRE(chain);
    plan::Chain flat = *chain;
    flat.rules.clear();
    for (const plan::Rule& rule : chain->rules) {
        const plan::VerdictMap* vmap = nullptr;
        for (const plan::Match& m : rule.matches)
            if (const auto* v = std::get_if<plan::VerdictMap>(&m)) vmap = v;
        if (vmap == nullptr) {
            flat.rules.push_back(rule);
            continue;
        }
        REQUIRE(rule.matches.size() == 1);
        REQUIRE(vmap->keys.size() == 1);
        const auto map =
            std::find_if(table.sets.begin(), table.sets.end(), [&](const plan::Set& s) { return s.name == vmap->map; });
        REQUIRE(map != table.sets.end());
        for (const plan::SetElement& e : map->elements) {
            REQUIRE(e.data.size() == 1);
            REQUIRE(e.data[0].rfind("jump ", 0) == 0);
            const plan::Chain* target = find_chain(table, e.data[0].substr(5));
            REQUIRE(target);
            for (plan::Rule r : target->rules) {
                r.matches.insert(r.matches.begin(),
                                 plan::MatchIfname{vmap->keys[0] == plan::Field::iifname, plan::Cmp::eq, e.key[0]});
                flat.rules.push_back(std::move(r));
            }
        }
    }
    return flat;
}

// The verdict name for a packet through the forward / postrouting chain.
std::string forward(const plan::Table& table, const Packet& p)
{
    return verdict_name(evaluate(flattened(table, "guest_forward"), p).verdict);
}

std::string postrouting(const plan::Table& table, const Packet& p)
{
    return verdict_name(evaluate(flattened(table, "nat_postrouting"), p).verdict);
}

std::vector<std::string> lines(const std::string& text)
{
    std::vector<std::string> result;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);)
        result.push_back(line);
    return result;
}

bool has_line(const std::string& text, const std::string& line)
{
    const auto all = lines(text);
    return std::find(all.begin(), all.end(), line) != all.end();
}

bool has_line_starting(const std::string& text, const std::string& prefix)
{
    const auto all = lines(text);
    return std::any_of(all.begin(), all.end(), [&](const std::string& l) { return l.rfind(prefix, 0) == 0; });
}

}  // namespace

// ---------------------------------------------------------------- rulesets

TEST_CASE("The ruleset for one NAT network matches its golden file", "[planner][golden]")
{
    check_golden("nat_default.nft", plan::render(plan::build_ruleset({nat_default()})));
}

TEST_CASE("The ruleset for NAT with uplink, isolated and routed networks matches its golden file", "[planner][golden]")
{
    check_golden("nat_isolated_routed.nft",
                 plan::render(plan::build_ruleset({routed_dmz(), nat_uplink(), isolated_lab()})));
}

Network nat_forwards_limits()
{
    return network(R"({"name": "web", "mode": "nat", "bridge": "kvmbr5", "ipv6": {"address": "fd00:5::1/64"},
                       "ipv4": {"address": "10.5.0.1/24",
                                "dhcp": {"hosts": [{"mac": "52:54:00:00:05:0a", "ip": "10.5.0.10", "name": "www"}]}},
                       "forwards": [
                         {"proto": "tcp", "host_port": 8080, "guest": "www", "guest_port": 80},
                         {"proto": "both", "host_port": "5000-5001", "guest": "10.5.0.11", "guest_port": "6000-6001"},
                         {"proto": "udp", "host_port": 53, "host_address": "203.0.113.7", "guest": "10.5.0.12",
                          "guest_port": 5353},
                         {"proto": "tcp", "host_port": 2222, "guest": "10.5.0.13", "guest_port": 22, "rate": 5},
                         {"proto": "tcp", "host_port": 443, "host_address": "203.0.113.7", "guest": "www",
                          "guest_port": 443, "rate": 100},
                         {"proto": "tcp", "host_port": 8080, "guest": "fd00:5::10", "guest_port": 80},
                         {"proto": "udp", "host_port": 53, "host_address": "2001:db8::7", "guest": "fd00:5::12",
                          "guest_port": 5353, "rate": 20}],
                       "limits": {"new_connections_per_second": 200, "connections_per_source": 1024}})");
}

TEST_CASE("The ruleset for a NAT network with forwards and limits matches its golden file", "[planner][golden]")
{
    check_golden("nat_forwards_limits.nft", plan::render(plan::build_ruleset({nat_forwards_limits(), nat_uplink()})));
}

TEST_CASE("Forwards are map elements: the chains do not grow with them", "[planner][property]")
{
    Network n = nat_forwards_limits();
    const plan::Table few = plan::build_ruleset({n});
    n.forwards.clear();
    for (std::uint16_t i = 0; i < 1000; ++i) {
        kvmnet::model::PortForward f;
        f.proto = i % 3 == 0 ? kvmnet::model::Proto::both : kvmnet::model::Proto::tcp;
        f.host_port_first = f.host_port_last = static_cast<std::uint16_t>(10000 + i);
        f.guest = *kvmnet::model::Ipv4::parse("10.5.0.20");
        f.guest_port_first = 80;
        if (i % 7 == 0) f.rate = 10;
        n.forwards.push_back(f);
    }
    const plan::Table many = plan::build_ruleset({n});
    REQUIRE(few.chains.size() == many.chains.size());
    for (std::size_t c = 0; c < few.chains.size(); ++c)
        CHECK(few.chains[c].rules.size() == many.chains[c].rules.size());
    std::size_t elements = 0, over = 0;
    for (const plan::Set& set : many.sets) {
        if (plan::is_over_set(set.name))
            over += set.elements.size();
        else if (set.name.rfind("fwd4", 0) == 0)
            elements += set.elements.size();
    }
    // One element per protocol and port: 334 "both" forwards count twice.
    CHECK(elements == 1000 + 334);
    // Every rate-limited forward also has its drop-counting element.
    CHECK(over == 143 + 48);  // i % 7 == 0: 143 forwards, 48 of them "both"
}

TEST_CASE("forward_elements: keys, data, rate and the sets they go to", "[planner]")
{
    const Network n = nat_forwards_limits();
    const auto www = plan::forward_elements(n.forwards[0], "web");
    REQUIRE(www.size() == 1);
    CHECK(www[0].set == "fwd4_any");
    REQUIRE(www[0].elements.size() == 1);
    CHECK(www[0].elements[0].key == std::vector<std::string>{"tcp", "8080"});
    CHECK(www[0].elements[0].data == std::vector<std::string>{"10.5.0.10", "80"});
    CHECK(www[0].elements[0].comment == "web");

    const auto range = plan::forward_elements(n.forwards[1], "web");
    REQUIRE(range.size() == 1);
    REQUIRE(range[0].elements.size() == 4);
    CHECK(range[0].elements[1].key == std::vector<std::string>{"tcp", "5001"});
    CHECK(range[0].elements[1].data == std::vector<std::string>{"10.5.0.11", "6001"});
    CHECK(range[0].elements[2].key == std::vector<std::string>{"udp", "5000"});

    const auto limited = plan::forward_elements(n.forwards[4], "web");
    REQUIRE(limited.size() == 2);
    CHECK(limited[0].set == "fwd4_rate");
    CHECK(limited[0].elements[0].key == std::vector<std::string>{"tcp", "203.0.113.7", "443"});
    CHECK(limited[0].elements[0].limit_per_second == 100);
    CHECK(limited[1].set == "fwd4_over");
    CHECK(limited[1].elements[0].key == limited[0].elements[0].key);
    CHECK(limited[1].elements[0].data.empty());
}

TEST_CASE("Forwarded connections reach guests; limits come before the accepts", "[planner]")
{
    const plan::Table t = plan::build_ruleset({nat_forwards_limits()});
    Packet forwarded{"eth0", "kvmbr5", "198.51.100.9", "10.5.0.10"};
    forwarded.ct_status = plan::ct_status::dnat;
    CHECK(forward(t, forwarded) == "accept");
    // Not forwarded: still no way in.
    CHECK(forward(t, {"eth0", "kvmbr5", "198.51.100.9", "10.5.0.10"}) == "drop");
    // A guest reaching another guest through a forward (hairpin) leaves
    // with the gateway's address, and so does the host's loopback.
    Packet hairpin{"kvmbr5", "kvmbr5", "10.5.0.11", "10.5.0.10"};
    hairpin.ct_status = plan::ct_status::dnat;
    CHECK(postrouting(t, hairpin) == "masquerade");
    Packet loopback{"lo", "kvmbr5", "127.0.0.1", "10.5.0.10"};
    loopback.ct_status = plan::ct_status::dnat;
    CHECK(postrouting(t, loopback) == "masquerade");
    // From outside: the guest sees the client's own address.
    CHECK(postrouting(t, forwarded) == "accept");

    const plan::Chain flat = flattened(t, "guest_forward");
    const plan::Chain* fwd = &flat;
    const auto position = [&](const std::string& comment) {
        for (std::size_t i = 0; i < fwd->rules.size(); ++i)
            if (fwd->rules[i].comment == comment) return static_cast<long>(i);
        FAIL("no rule " << comment);
        return -1L;
    };
    CHECK(position("web: new connections from guests over the rate limit") < position("from guests"));
    CHECK(position("web: new connections to forwards over the rate limit") < position("port forwards to guests"));
    CHECK(position("web: connections per guest address over the limit") < position("from guests"));
    CHECK(position("web: connections per source to forwards over the limit") < position("port forwards to guests"));
    // ... and after the spoof checks, so spoofed packets use up no one's rate.
    CHECK(position("spoofed source (@drops_spoofed)") <
          position("web: new connections from guests over the rate limit"));
}

TEST_CASE("The ruleset for no networks matches its golden file", "[planner][golden]")
{
    check_golden("empty.nft", plan::render(plan::build_ruleset({})));
}

TEST_CASE("The ruleset is one inet table named kvmnet with fixed chains", "[planner]")
{
    const plan::Table empty = plan::build_ruleset({});
    CHECK(empty.name == "kvmnet");
    REQUIRE(empty.chains.size() == 1);
    CHECK(empty.chains[0].name == "guest_forward");
    CHECK(empty.chains[0].hook == "forward");
    CHECK(empty.chains[0].rules.size() == 19);  // fixed: the networks are the sets' data
    CHECK(empty.chains[0].policy_accept);

    const plan::Table nat = plan::build_ruleset({nat_default()});
    // Five hooked chains, and no chain of the network's own (it has no limits).
    REQUIRE(nat.chains.size() == 5);
    CHECK(nat.chains[0].name == "nat_prerouting");
    CHECK(nat.chains[0].hook == "prerouting");
    CHECK(nat.chains[0].priority == -100);
    CHECK(nat.chains[1].name == "nat_output");
    CHECK(nat.chains[1].hook == "output");
    CHECK(nat.chains[2].name == "guest_prerouting");
    CHECK(nat.chains[2].priority == -300);
    const plan::Chain* post = find_chain(nat, "nat_postrouting");
    REQUIRE(post);
    CHECK(post->type == "nat");
    CHECK(post->hook == "postrouting");
    CHECK(post->priority == 100);
    CHECK(post->policy_accept);
    for (const plan::Chain& c : nat.chains)
        CHECK(c.base());
    // The forward sets, ten data sets, seven drop counters, two limits maps.
    CHECK(nat.sets.size() == plan::forward_sets().size() + 10 + 7 + 2);
    CHECK(empty.sets.size() == 10 + 7 + 2);

    // No masquerade chain without a NAT network, and never an input chain: an
    // accept there could not override another table's drop.
    const plan::Table others = plan::build_ruleset({isolated_lab(), routed_dmz()});
    CHECK(std::count_if(others.chains.begin(), others.chains.end(), [](const plan::Chain& c) { return c.base(); }) ==
          1);
    CHECK(find_chain(others, "nat_postrouting") == nullptr);
    CHECK(find_chain(nat, "guest_input") == nullptr);
}

TEST_CASE("Masquerade appears only for NAT networks", "[planner]")
{
    const plan::Table t = plan::build_ruleset({nat_uplink(), isolated_lab(), routed_dmz()});
    // The fixed rules masquerade what the NAT bridges' sets say: only kvmbr0 is there.
    const auto set =
        std::find_if(t.sets.begin(), t.sets.end(), [](const plan::Set& x) { return x.name == plan::nat_bridges_set; });
    REQUIRE(set != t.sets.end());
    REQUIRE(set->elements.size() == 1);
    CHECK(set->elements[0].key == std::vector<std::string>{"kvmbr0"});
    CHECK(postrouting(t, {"kvmbr0", "eth0", "192.168.122.50", "8.8.8.8"}) == "masquerade");
    CHECK(postrouting(t, {"kvmbr2", "eth0", "10.20.0.5", "8.8.8.8"}) == "accept");
    CHECK(postrouting(t, {"kvmbr1", "eth0", "10.10.0.5", "8.8.8.8"}) == "accept");
    CHECK(has_line(plan::render(t), "\t\tiifname @nat_bridges iifname . ip saddr @net4 iifname . ip daddr != @net4 "
                                    "masquerade comment \"masquerade\""));
}

// Rules in the networks' own chains (net_*: limits only).
std::size_t own_rules(const plan::Table& table)
{
    std::size_t n = 0;
    for (const plan::Chain& c : table.chains)
        if (!c.base()) n += c.rules.size();
    return n;
}

// Elements in the data sets (not the forward sets).
std::size_t data_elements(const plan::Table& table)
{
    const std::vector<plan::Set> fwd = plan::forward_sets();
    std::size_t n = 0;
    for (const plan::Set& s : table.sets)
        if (std::none_of(fwd.begin(), fwd.end(), [&](const plan::Set& f) { return f.name == s.name; }))
            n += s.elements.size();
    return n;
}

TEST_CASE("The hooked chains stay fixed and each network adds a fixed number of elements", "[planner][property]")
{
    // Per network, without limits: for nat same_bridge, guest_bridges,
    // nat_bridges, forwarding_bridges, net4 and five drop counters (no IPv6
    // subnet, spoofed, two loopback guards, no new connections); for routed
    // the same without the loopback guards, with routed_bridges; for
    // isolated same_bridge, guest_bridges and two drop counters (isolated,
    // no new connections).
    struct PerNetwork {
        const char* mode;
        std::size_t elements;
    };
    const auto per = GENERATE(values<PerNetwork>({{"nat", 10}, {"routed", 8}, {"isolated", 4}}));
    CAPTURE(per.mode);
    std::vector<Network> nets;
    for (int n = 0; n <= 12; ++n) {
        CAPTURE(n);
        const plan::Table table = plan::build_ruleset(nets);
        const auto count = static_cast<std::size_t>(n);
        CHECK(rule_count(table, "guest_forward") == 19);
        CHECK(rule_count(table, "nat_postrouting") == (std::string(per.mode) == "nat" && n > 0 ? 9 : 0));
        CHECK(own_rules(table) == 0);
        CHECK(std::count_if(table.chains.begin(), table.chains.end(), [](const plan::Chain& c) { return !c.base(); }) ==
              0);
        CHECK(data_elements(table) == per.elements * count);
        nets.push_back(numbered(per.mode, n));
    }

    SECTION("and mixed sets add up mode by mode")
    {
        std::vector<Network> mixed;
        for (int i = 0; i < 4; ++i) {
            mixed.push_back(numbered("nat", i));
            mixed.push_back(numbered("routed", i));
            mixed.push_back(numbered("isolated", i));
        }
        const plan::Table table = plan::build_ruleset(mixed);
        CHECK(rule_count(table, "guest_forward") == 19);
        CHECK(rule_count(table, "nat_postrouting") == 9);
        CHECK(own_rules(table) == 0);
        CHECK(data_elements(table) == 4 * (10 + 8 + 4));
    }
}

TEST_CASE("Networks are sorted by name whatever the input order", "[planner][property]")
{
    std::vector<Network> nets{numbered("nat", 3), numbered("routed", 1), numbered("isolated", 2),
                              nat_default(),      routed_dmz(),          isolated_lab()};
    std::vector<Network> sorted = nets;
    std::sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
    const std::string reference = plan::render(plan::build_ruleset(sorted));

    // Within a set (here: traffic within one bridge) networks come in name order.
    const plan::Table table = plan::build_ruleset(nets);
    const auto same = std::find_if(table.sets.begin(), table.sets.end(),
                                   [](const plan::Set& x) { return x.name == plan::same_bridge_set; });
    REQUIRE(same != table.sets.end());
    std::vector<std::string> intra;
    for (const auto& e : same->elements)
        intra.push_back(e.comment);
    REQUIRE(intra.size() == sorted.size());
    for (std::size_t i = 0; i < sorted.size(); ++i)
        CHECK(intra[i] == sorted[i].name);

    std::mt19937 random(12345);
    for (int round = 0; round < 50; ++round) {
        std::shuffle(nets.begin(), nets.end(), random);
        CAPTURE(round);
        CHECK(plan::render(plan::build_ruleset(nets)) == reference);
    }
}

TEST_CASE("build_ruleset is deterministic", "[planner][property]")
{
    const std::vector<Network> nets{nat_uplink(), isolated_lab(), routed_dmz()};
    const std::string first = plan::render(plan::build_ruleset(nets));
    for (int i = 0; i < 5; ++i)
        CHECK(plan::render(plan::build_ruleset(nets)) == first);
}

TEST_CASE("Forward groups are ordered established, intra-bridge, barred, inbound, outbound", "[planner]")
{
    const plan::Table table = plan::build_ruleset({nat_uplink(), isolated_lab(), routed_dmz()});
    const plan::Chain* fwd = find_chain(table, "guest_forward");
    REQUIRE(fwd);
    std::vector<std::string> comments;
    for (const auto& r : fwd->rules)
        comments.push_back(r.comment);
    const std::vector<std::string> expected{
        "established, to guests",
        "only via uplink (@drops_uplink)",
        "established, from guests",
        "established, between guests",
        "established, to guests (IPv6)",
        "established, from guests (IPv6)",
        "established, between guests (IPv6)",
        "within one network's bridge",
        "spoofed IPv6 source (@drops_spoofed6)",
        "spoofed source (@drops_spoofed)",
        "",  // limits_by_iif
        "isolated (@drops_isolated)",
        "",  // limits_by_oif
        "routed to guests (IPv6)",
        "port forwards to guests (IPv6)",
        "routed to guests",
        "port forwards to guests",
        "no new connections to guests (@drops_inbound)",
        "from guests",
    };
    CHECK(comments == expected);
}

TEST_CASE("The forward chain lets through exactly the intended traffic", "[planner][semantics]")
{
    const plan::Table t = plan::build_ruleset({nat_default(), isolated_lab(), routed_dmz(), numbered("nat", 7)});
    // default: kvmbr0 192.168.122.0/24 (no uplink); lab: kvmbr1 10.10.0.0/24;
    // dmz: kvmbr2 10.20.0.0/24; nat07: br-nat07 10.7.0.0/24.
    using plan::ct::established;
    SECTION("NAT guests reach the outside and get replies, but nobody connects in")
    {
        CHECK(forward(t, {"kvmbr0", "eth0", "192.168.122.50", "8.8.8.8"}) == "accept");
        CHECK(forward(t, {"eth0", "kvmbr0", "8.8.8.8", "192.168.122.50", established}) == "accept");
        CHECK(forward(t, {"eth0", "kvmbr0", "8.8.8.8", "192.168.122.50"}) == "drop");
    }
    SECTION("guests on one bridge talk to each other")
    {
        CHECK(forward(t, {"kvmbr0", "kvmbr0", "192.168.122.50", "192.168.122.51"}) == "accept");
        CHECK(forward(t, {"kvmbr1", "kvmbr1", "10.10.0.5", "10.10.0.6"}) == "accept");
    }
    SECTION("spoofed sources from a NAT bridge are dropped")
    {
        CHECK(forward(t, {"kvmbr0", "eth0", "10.99.0.5", "8.8.8.8"}) == "drop");
    }
    SECTION("NAT networks do not reach each other")
    {
        CHECK(forward(t, {"kvmbr0", "br-nat07", "192.168.122.50", "10.7.0.5"}) == "drop");
        CHECK(forward(t, {"br-nat07", "kvmbr0", "10.7.0.5", "192.168.122.50"}) == "drop");
    }
    SECTION("isolated guests neither leave nor are reached")
    {
        CHECK(forward(t, {"kvmbr1", "eth0", "10.10.0.5", "8.8.8.8"}) == "drop");
        CHECK(forward(t, {"eth0", "kvmbr1", "8.8.8.8", "10.10.0.5"}) == "drop");
        CHECK(forward(t, {"eth0", "kvmbr1", "8.8.8.8", "10.10.0.5", established}) == "drop");
        CHECK(forward(t, {"kvmbr0", "kvmbr1", "192.168.122.50", "10.10.0.5"}) == "drop");
    }
    SECTION("routed guests are reachable and reach out, without NAT")
    {
        CHECK(forward(t, {"eth0", "kvmbr2", "8.8.8.8", "10.20.0.5"}) == "accept");
        CHECK(forward(t, {"kvmbr2", "eth0", "10.20.0.5", "8.8.8.8"}) == "accept");
        CHECK(forward(t, {"eth0", "kvmbr2", "8.8.8.8", "10.99.0.5"}) == "drop");
        CHECK(forward(t, {"kvmbr2", "eth0", "10.99.0.5", "8.8.8.8"}) == "drop");
    }
    SECTION("traffic that touches no kvmnet bridge is left alone")
    {
        CHECK(forward(t, {"eth0", "eth1", "8.8.8.8", "192.168.1.5"}) == "accept");
    }
    SECTION("established packets are accepted only from a guest's own source or from outside the guest bridges")
    {
        CHECK(forward(t, {"kvmbr0", "eth0", "192.168.122.50", "8.8.8.8", established}) == "accept");
        CHECK(forward(t, {"kvmbr2", "eth0", "10.20.0.5", "8.8.8.8", established}) == "accept");
        CHECK(forward(t, {"kvmbr0", "eth0", "10.99.0.5", "8.8.8.8", established}) == "drop");
        // A guest of one network spoofing the peer of another's connection
        // (a reply to it) is not a reply: dropped, from a NAT or an isolated bridge.
        CHECK(forward(t, {"br-nat07", "kvmbr0", "8.8.8.8", "192.168.122.50", established}) == "drop");
        CHECK(forward(t, {"kvmbr1", "kvmbr0", "8.8.8.8", "192.168.122.50", established}) == "drop");
        CHECK(forward(t, {"kvmbr1", "eth0", "10.10.0.5", "8.8.8.8", established}) == "drop");
    }
    SECTION("a network with an uplink sends only through it, established connections too")
    {
        const plan::Table u = plan::build_ruleset({nat_uplink()});
        CHECK(forward(u, {"kvmbr0", "eth0", "192.168.122.50", "8.8.8.8", established}) == "accept");
        CHECK(forward(u, {"kvmbr0", "eth1", "192.168.122.50", "8.8.8.8", established}) == "drop");
        CHECK(forward(u, {"kvmbr0", "eth1", "192.168.122.50", "8.8.8.8"}) == "drop");
        CHECK(forward(u, {"kvmbr0", "kvmbr0", "192.168.122.50", "192.168.122.51", established}) == "accept");
        CHECK(forward(u, {"kvmbr0", "kvmbr0", "192.168.122.50", "192.168.122.51"}) == "accept");
    }
}

TEST_CASE("With an uplink, NAT guests leave only through it", "[planner][semantics]")
{
    const plan::Table t = plan::build_ruleset({nat_uplink()});
    CHECK(forward(t, {"kvmbr0", "eth0", "192.168.122.50", "8.8.8.8"}) == "accept");
    CHECK(forward(t, {"kvmbr0", "wlan0", "192.168.122.50", "8.8.8.8"}) == "drop");
    CHECK(postrouting(t, {"kvmbr0", "eth0", "192.168.122.50", "8.8.8.8"}) == "masquerade");
    // Not masqueraded: "not towards the network's uplink" returns.
    CHECK(postrouting(t, {"kvmbr0", "wlan0", "192.168.122.50", "8.8.8.8"}) == "return");
}

TEST_CASE("Masquerade skips local multicast, broadcast and the guest subnet itself", "[planner][semantics]")
{
    const plan::Table t = plan::build_ruleset({nat_default()});
    CHECK(postrouting(t, {"kvmbr0", "eth0", "192.168.122.50", "8.8.8.8"}) == "masquerade");
    CHECK(postrouting(t, {"kvmbr0", "eth0", "192.168.122.50", "224.0.0.251"}) == "return");
    CHECK(postrouting(t, {"kvmbr0", "eth0", "192.168.122.50", "255.255.255.255"}) == "return");
    CHECK(postrouting(t, {"kvmbr0", "kvmbr0", "192.168.122.50", "192.168.122.51"}) == "accept");
    CHECK(postrouting(t, {"eth1", "eth0", "172.16.0.9", "8.8.8.8"}) == "accept");
}

TEST_CASE("Guests on an isolated network cannot reach routed guests", "[planner][semantics]")
{
    // Regression: the routed accept once came before the isolated network's
    // drop, so isolated guests were forwarded into routed networks.
    const plan::Table t = plan::build_ruleset({isolated_lab(), routed_dmz()});
    CHECK(forward(t, {"kvmbr1", "kvmbr2", "10.10.0.5", "10.20.0.5"}) == "drop");
}

TEST_CASE("Spoofed sources from a guest bridge cannot reach routed guests", "[planner][semantics]")
{
    // Regression: spoofed sources once reached routed subnets because the
    // routed accept came before the anti-spoofing drop.
    const plan::Table t = plan::build_ruleset({nat_default(), routed_dmz()});
    CHECK(forward(t, {"kvmbr0", "kvmbr2", "203.0.113.7", "10.20.0.5"}) == "drop");
}

// ---------------------------------------------------------------- IPv6 (rules from plan/planner_ipv6.cpp)

namespace {

// default: NAT with NAT66 (kvmbr0, fd00:1:2:3::/64); dmz: routed (kvmbr2,
// 2001:db8:20::/64); lab: isolated (kvmbr1, fd00:30::/64, DHCPv6); v4only: NAT
// without ipv6 (br-v4only).
std::vector<Network> dual_stack_networks()
{
    return {network(R"({"name": "default", "mode": "nat", "bridge": "kvmbr0",
                        "ipv4": {"address": "192.168.122.1/24"},
                        "ipv6": {"address": "fd00:1:2:3::1/64", "nat66": true}})"),
            network(R"({"name": "dmz", "mode": "routed", "bridge": "kvmbr2", "ipv4": {"address": "10.20.0.1/24"},
                        "ipv6": {"address": "2001:db8:20::1/64"}})"),
            network(R"({"name": "lab", "mode": "isolated", "bridge": "kvmbr1", "ipv4": {"address": "10.10.0.1/24"},
                        "ipv6": {"address": "fd00:30::1/64", "dhcp": {"ranges": ["fd00:30::100-fd00:30::1ff"]}}})"),
            network(R"({"name": "v4only", "mode": "nat", "bridge": "br-v4only", "ipv4": {"address": "10.4.0.1/24"}})")};
}

}  // namespace

TEST_CASE("The ruleset for dual-stack networks matches its golden file", "[planner][golden][ipv6]")
{
    check_golden("dual_stack.nft", plan::render(plan::build_ruleset(dual_stack_networks())));
}

TEST_CASE("IPv6 forwarding mirrors IPv4: out and replies for NAT, both ways for routed, nothing for isolated",
          "[planner][semantics][ipv6]")
{
    const plan::Table t = plan::build_ruleset(dual_stack_networks());
    using plan::ct::established;
    SECTION("NAT guests reach out and get replies, nobody connects in")
    {
        CHECK(forward(t, {"kvmbr0", "eth0", "fd00:1:2:3::50", "2001:db8:ff::2"}) == "accept");
        CHECK(forward(t, {"eth0", "kvmbr0", "2001:db8:ff::2", "fd00:1:2:3::50", established}) == "accept");
        CHECK(forward(t, {"eth0", "kvmbr0", "2001:db8:ff::2", "fd00:1:2:3::50"}) == "drop");
    }
    SECTION("spoofed IPv6 sources are dropped")
    {
        CHECK(forward(t, {"kvmbr0", "eth0", "fd00:1:2:4::50", "2001:db8:ff::2"}) == "drop");
        CHECK(forward(t, {"kvmbr0", "kvmbr2", "2001:db8:20::99", "2001:db8:20::5"}) == "drop");
        CHECK(forward(t, {"kvmbr2", "eth0", "fd00:1:2:3::50", "2001:db8:ff::2"}) == "drop");
    }
    SECTION("routed guests are reachable over IPv6 and reach out")
    {
        CHECK(forward(t, {"eth0", "kvmbr2", "2001:db8:ff::2", "2001:db8:20::5"}) == "accept");
        CHECK(forward(t, {"kvmbr2", "eth0", "2001:db8:20::5", "2001:db8:ff::2"}) == "accept");
        CHECK(forward(t, {"eth0", "kvmbr2", "2001:db8:ff::2", "2001:db8:21::5"}) == "drop");
    }
    SECTION("networks do not reach each other's guests unasked")
    {
        CHECK(forward(t, {"kvmbr2", "kvmbr0", "2001:db8:20::5", "fd00:1:2:3::50"}) == "drop");
        CHECK(forward(t, {"kvmbr1", "kvmbr0", "fd00:30::105", "fd00:1:2:3::50"}) == "drop");
        CHECK(forward(t, {"kvmbr0", "kvmbr1", "fd00:1:2:3::50", "fd00:30::105"}) == "drop");
    }
    SECTION("isolated guests neither leave nor are reached over IPv6")
    {
        CHECK(forward(t, {"kvmbr1", "eth0", "fd00:30::105", "2001:db8:ff::2"}) == "drop");
        CHECK(forward(t, {"eth0", "kvmbr1", "2001:db8:ff::2", "fd00:30::105", established}) == "drop");
    }
    SECTION("a network without ipv6 forwards no IPv6 from its guests, whatever the source")
    {
        CHECK(forward(t, {"br-v4only", "eth0", "fd00:1:2:3::50", "2001:db8:ff::2"}) == "drop");
        CHECK(forward(t, {"br-v4only", "eth0", "2001:db8:20::5", "2001:db8:ff::2"}) == "drop");
        CHECK(forward(t, {"br-v4only", "eth0", "10.4.0.5", "8.8.8.8"}) == "accept");
    }
    SECTION("the IPv4 verdicts are unchanged by the IPv6 rules")
    {
        CHECK(forward(t, {"kvmbr0", "eth0", "192.168.122.50", "8.8.8.8"}) == "accept");
        CHECK(forward(t, {"eth0", "kvmbr0", "8.8.8.8", "192.168.122.50"}) == "drop");
        CHECK(forward(t, {"eth0", "kvmbr2", "8.8.8.8", "10.20.0.5"}) == "accept");
    }
}

TEST_CASE("NAT66 masquerades only the NAT66 network's subnet, not multicast", "[planner][semantics][ipv6]")
{
    const plan::Table t = plan::build_ruleset(dual_stack_networks());
    CHECK(postrouting(t, {"kvmbr0", "eth0", "fd00:1:2:3::50", "2001:db8:ff::2"}) == "masquerade");
    CHECK(postrouting(t, {"kvmbr0", "eth0", "fd00:1:2:3::50", "ff05::2"}) == "return");
    CHECK(postrouting(t, {"kvmbr0", "kvmbr0", "fd00:1:2:3::50", "fd00:1:2:3::51"}) == "accept");
    CHECK(postrouting(t, {"kvmbr2", "eth0", "2001:db8:20::5", "2001:db8:ff::2"}) == "accept");
    CHECK(postrouting(t, {"kvmbr0", "eth0", "192.168.122.50", "8.8.8.8"}) == "masquerade");
    SECTION("without nat66 a NAT network's IPv6 keeps its source")
    {
        Network plain = dual_stack_networks()[0];
        plain.ipv6->nat66 = false;
        const plan::Table u = plan::build_ruleset({plain});
        CHECK(postrouting(u, {"kvmbr0", "eth0", "fd00:1:2:3::50", "2001:db8:ff::2"}) == "accept");
        CHECK(forward(u, {"kvmbr0", "eth0", "fd00:1:2:3::50", "2001:db8:ff::2"}) == "accept");
    }
    SECTION("with an uplink, only out of it")
    {
        Network up = dual_stack_networks()[0];
        up.uplink = "eth0";
        const plan::Table u = plan::build_ruleset({up});
        CHECK(postrouting(u, {"kvmbr0", "eth0", "fd00:1:2:3::50", "2001:db8:ff::2"}) == "masquerade");
        CHECK(postrouting(u, {"kvmbr0", "wlan0", "fd00:1:2:3::50", "2001:db8:ff::2"}) == "return");
        CHECK(forward(u, {"kvmbr0", "wlan0", "fd00:1:2:3::50", "2001:db8:ff::2"}) == "drop");
    }
}

TEST_CASE("render quotes names and comments and prints policies", "[planner][render]")
{
    plan::Table t{"t", {plan::Chain{"c", "filter", "forward", -5, false, {}}}};
    t.chains[0].rules.push_back(plan::Rule{
        {plan::MatchIfname{true, plan::Cmp::neq, "a\"b\\c"}, plan::MatchIpv4{false, plan::Cmp::eq, {0x0a000005u, 32}},
         plan::MatchCtState{plan::ct::new_ | plan::ct::invalid | plan::ct::untracked}},
        true,
        plan::Verdict::drop,
        "x \"y\""});
    t.chains[0].rules.push_back(plan::Rule{{plan::MatchL4Dport{6, 443}}, false, plan::Verdict::none, ""});
    CHECK(plan::render(t) ==
          "table inet t {\n"
          "\tchain c {\n"
          "\t\ttype filter hook forward priority -5; policy drop;\n"
          "\t\tiifname != \"a\\\"b\\\\c\" ip daddr 10.0.0.5 ct state invalid,new,untracked counter drop "
          "comment \"x \\\"y\\\"\"\n"
          "\t\ttcp dport 443\n"
          "\t}\n"
          "}\n");
}

// ---------------------------------------------------------------- bridges

namespace {

plan::LinkInfo link(const std::string& name, const std::string& kind, const std::string& alias, bool up,
                    std::uint32_t mtu = 1500, int index = 7)
{
    plan::LinkInfo l;
    l.index = index;
    l.name = name;
    l.kind = kind;
    l.alias = alias;
    l.mtu = mtu;
    l.up = up;
    return l;
}

plan::AddressInfo address(int index, const std::string& text, std::uint8_t prefix)
{
    plan::AddressInfo a;
    a.link_index = index;
    a.address = kvmnet::model::IpAddress::parse(text).value();
    a.prefix_length = prefix;
    return a;
}

std::vector<std::string> described(const std::vector<plan::LinkOp>& ops)
{
    std::vector<std::string> result;
    for (const auto& op : ops)
        result.push_back(plan::describe(op));
    return result;
}

std::optional<kvmnet::Error> conflict(const Network& n, const std::optional<plan::LinkInfo>& observed)
{
    try {
        plan::plan_bridge(n, observed, {});
    } catch (const kvmnet::Error& e) {
        return e;
    }
    return std::nullopt;
}

}  // namespace

TEST_CASE("owner_alias marks links as kvmnet's", "[planner][bridge]")
{
    CHECK(plan::owner_alias("default") == "kvmnet:default");
    CHECK(plan::owner_alias("lab.2") == "kvmnet:lab.2");
}

TEST_CASE("An absent bridge is created, marked, addressed and brought up in that order", "[planner][bridge]")
{
    const Network n = network(R"({"name": "default", "mode": "nat", "bridge": "kvmbr0", "stp": true,
                                  "forward_delay": 4, "mtu": 9000, "ipv4": {"address": "192.168.122.1/24"}})");
    const auto ops = plan::plan_bridge(n, std::nullopt, {});
    REQUIRE(ops.size() == 4);
    const auto* create = std::get_if<plan::CreateBridge>(&ops[0]);
    REQUIRE(create);
    CHECK(create->name == "kvmbr0");
    CHECK(create->options.stp);
    CHECK(create->options.forward_delay_cs == 400);
    CHECK(create->options.mtu == 9000);
    const auto* alias = std::get_if<plan::SetAlias>(&ops[1]);
    REQUIRE(alias);
    CHECK(alias->name == "kvmbr0");
    CHECK(alias->alias == "kvmnet:default");
    const auto* add = std::get_if<plan::AddAddress>(&ops[2]);
    REQUIRE(add);
    CHECK(add->name == "kvmbr0");
    CHECK(add->address.str() == "192.168.122.1");
    CHECK(add->prefix_length == 24);
    const auto* up = std::get_if<plan::SetUp>(&ops[3]);
    REQUIRE(up);
    CHECK(up->name == "kvmbr0");

    CHECK(described(ops) == std::vector<std::string>{"create bridge kvmbr0", "mark kvmbr0 as kvmnet:default",
                                                     "add address 192.168.122.1/24 to kvmbr0", "bring kvmbr0 up"});
}

TEST_CASE("Bridge defaults are STP off, no forward delay and the kernel's MTU", "[planner][bridge]")
{
    const auto ops = plan::plan_bridge(nat_default(), std::nullopt, {});
    REQUIRE_FALSE(ops.empty());
    const auto* create = std::get_if<plan::CreateBridge>(&ops[0]);
    REQUIRE(create);
    CHECK_FALSE(create->options.stp);
    CHECK(create->options.forward_delay_cs == 0);
    CHECK(create->options.mtu == 0);
}

TEST_CASE("An existing owned bridge is adopted with only the missing steps", "[planner][bridge]")
{
    Network n = nat_default();
    const auto owned = [](bool up, std::uint32_t mtu = 1500) {
        return link("kvmbr0", "bridge", "kvmnet:default", up, mtu);
    };
    const std::vector<plan::AddressInfo> has{address(3, "10.0.0.1", 8), address(7, "192.168.122.1", 24)};

    SECTION("up with its address: nothing to do") { CHECK(plan::plan_bridge(n, owned(true), has).empty()); }
    SECTION("down with its address: only bring it up")
    {
        CHECK(described(plan::plan_bridge(n, owned(false), has)) == std::vector<std::string>{"bring kvmbr0 up"});
    }
    SECTION("up without the address: only add it")
    {
        CHECK(described(plan::plan_bridge(n, owned(true), {address(3, "192.168.122.1", 24)})) ==
              std::vector<std::string>{"add address 192.168.122.1/24 to kvmbr0"});
    }
    SECTION("the same address with another prefix length does not count")
    {
        CHECK(described(plan::plan_bridge(n, owned(true), {address(7, "192.168.122.1", 16)})) ==
              std::vector<std::string>{"add address 192.168.122.1/24 to kvmbr0"});
    }
    SECTION("down and without the address: add it, then bring it up")
    {
        CHECK(described(plan::plan_bridge(n, owned(false), {})) ==
              std::vector<std::string>{"add address 192.168.122.1/24 to kvmbr0", "bring kvmbr0 up"});
    }
    SECTION("a different MTU is corrected first")
    {
        n.mtu = 9000;
        const auto ops = plan::plan_bridge(n, owned(true, 1500), has);
        REQUIRE(ops.size() == 1);
        const auto* mtu = std::get_if<plan::SetMtu>(&ops[0]);
        REQUIRE(mtu);
        CHECK(mtu->name == "kvmbr0");
        CHECK(mtu->mtu == 9000);
        CHECK(described(plan::plan_bridge(n, owned(false, 1500), {})) ==
              std::vector<std::string>{"set MTU of kvmbr0 to 9000", "add address 192.168.122.1/24 to kvmbr0",
                                       "bring kvmbr0 up"});
    }
    SECTION("the same MTU, or none requested, is left alone")
    {
        n.mtu = 1500;
        CHECK(plan::plan_bridge(n, owned(true, 1500), has).empty());
        n.mtu = 0;
        CHECK(plan::plan_bridge(n, owned(true, 9000), has).empty());
    }
}

TEST_CASE("A link kvmnet does not own is a Conflict naming the bridge", "[planner][bridge]")
{
    const Network n = nat_default();
    SECTION("a link without alias")
    {
        const auto e = conflict(n, link("kvmbr0", "bridge", "", true));
        REQUIRE(e);
        CHECK(e->kind() == ErrorKind::Conflict);
        CHECK_THAT(std::string(e->what()),
                   Catch::Matchers::StartsWith("bridge: ") && Catch::Matchers::Contains("kvmbr0"));
    }
    SECTION("a link with someone else's alias")
    {
        const auto e = conflict(n, link("kvmbr0", "bridge", "libvirt:default", true));
        REQUIRE(e);
        CHECK(e->kind() == ErrorKind::Conflict);
        CHECK_THAT(std::string(e->what()),
                   Catch::Matchers::Contains("kvmbr0") && Catch::Matchers::Contains("libvirt:default"));
    }
    SECTION("a link owned by another kvmnet network")
    {
        const auto e = conflict(n, link("kvmbr0", "bridge", "kvmnet:other", true));
        REQUIRE(e);
        CHECK(e->kind() == ErrorKind::Conflict);
        CHECK_THAT(std::string(e->what()), Catch::Matchers::Contains("kvmbr0"));
    }
    SECTION("our alias on a veth")
    {
        const auto e = conflict(n, link("kvmbr0", "veth", "kvmnet:default", true));
        REQUIRE(e);
        CHECK(e->kind() == ErrorKind::Conflict);
        CHECK_THAT(std::string(e->what()), Catch::Matchers::Contains("kvmbr0") && Catch::Matchers::Contains("veth"));
    }
    SECTION("our alias on a physical device")
    {
        const auto e = conflict(n, link("kvmbr0", "", "kvmnet:default", true));
        REQUIRE(e);
        CHECK(e->kind() == ErrorKind::Conflict);
        CHECK_THAT(std::string(e->what()), Catch::Matchers::Contains("not a bridge"));
    }
}

// ---------------------------------------------------------------- dnsmasq

TEST_CASE("The dnsmasq config serves only the bridge and has no upstream servers", "[planner][dnsmasq]")
{
    const Network n = network(R"({"name": "default", "mode": "nat", "bridge": "kvmbr0",
        "ipv4": {"address": "192.168.122.1/24",
                 "dhcp": {"ranges": ["192.168.122.100-192.168.122.199", "192.168.122.210-192.168.122.219"],
                          "hosts": [{"mac": "52:54:00:12:34:56", "ip": "192.168.122.10", "name": "web"},
                                    {"mac": "52:54:00:AB:CD:EF", "ip": "192.168.122.11"}]}}})");
    const auto files = plan::plan_dnsmasq(n, "/run/kvmnet/default", "nobody");
    const std::string& c = files.config;
    CAPTURE(c);
    CHECK(has_line(c, "interface=kvmbr0"));
    CHECK(has_line(c, "bind-interfaces"));
    CHECK(has_line(c, "no-resolv"));
    CHECK(has_line(c, "no-hosts"));
    CHECK(has_line(c, "except-interface=lo"));
    CHECK(has_line(c, "listen-address=192.168.122.1"));
    CHECK(has_line(c, "user=nobody"));
    CHECK(has_line(c, "pid-file=/run/kvmnet/default/dnsmasq.pid"));
    CHECK(has_line(c, "dhcp-range=192.168.122.100,192.168.122.199,255.255.255.0,1h"));
    CHECK(has_line(c, "dhcp-range=192.168.122.210,192.168.122.219,255.255.255.0,1h"));
    CHECK(has_line(c, "dhcp-leasefile=/run/kvmnet/default/dnsmasq.leases"));
    CHECK(has_line(c, "dhcp-hostsfile=/run/kvmnet/default/dnsmasq.hosts"));
    CHECK(has_line(c, "dhcp-lease-max=4206"));  // 100 + 10 + room for 4096 static hosts
    CHECK_FALSE(has_line_starting(c, "server="));
    CHECK_FALSE(has_line_starting(c, "resolv-file="));
    CHECK_FALSE(has_line_starting(c, "dhcp-option=option:router"));
    CHECK_FALSE(has_line_starting(c, "interface=lo"));

    CHECK(files.hosts == "52:54:00:12:34:56,192.168.122.10,web\n"
                         "52:54:00:ab:cd:ef,192.168.122.11\n");
}

TEST_CASE("An isolated network's DHCP offers no router", "[planner][dnsmasq]")
{
    const Network n = network(R"({"name": "lab", "mode": "isolated", "bridge": "kvmbr1",
        "ipv4": {"address": "10.10.0.1/24", "dhcp": {"ranges": ["10.10.0.100-10.10.0.200"]}}})");
    const auto files = plan::plan_dnsmasq(n, "/tmp/rt", "");
    CHECK(has_line(files.config, "dhcp-option=option:router"));
    CHECK(has_line(files.config, "interface=kvmbr1"));
    CHECK(has_line(files.config, "dhcp-range=10.10.0.100,10.10.0.200,255.255.255.0,1h"));
    CHECK_FALSE(has_line_starting(files.config, "user="));
    CHECK(files.hosts.empty());
}

TEST_CASE("A network without a dhcp object gets DNS only", "[planner][dnsmasq]")
{
    const Network n = network(R"({"name": "dmz", "mode": "routed", "bridge": "kvmbr2",
                                  "ipv4": {"address": "10.20.0.1/16"}})");
    const auto files = plan::plan_dnsmasq(n, "/run/kvmnet/dmz", "dnsmasq");
    CHECK(has_line(files.config, "interface=kvmbr2"));
    CHECK(has_line(files.config, "user=dnsmasq"));
    CHECK_FALSE(has_line_starting(files.config, "dhcp-"));
    CHECK_FALSE(has_line_starting(files.config, "server="));
    CHECK(files.hosts.empty());
}

TEST_CASE("DHCP with static hosts only uses a static range over the subnet", "[planner][dnsmasq]")
{
    const Network n = network(R"({"name": "s", "mode": "nat", "bridge": "kvmbr3",
        "ipv4": {"address": "172.16.0.1/12", "dhcp": {"hosts": [{"mac": "52:54:00:00:00:01", "ip": "172.16.0.2"}]}}})");
    const auto files = plan::plan_dnsmasq(n, "/r", "");
    CHECK(has_line(files.config, "dhcp-range=172.16.0.0,static,255.240.0.0"));
    CHECK(has_line(files.config, "dhcp-lease-max=4096"));
    CHECK(files.hosts == "52:54:00:00:00:01,172.16.0.2\n");
}

TEST_CASE("The DHCP lease time goes into every dhcp-range, IPv4 and IPv6", "[planner][dnsmasq]")
{
    const auto config = [](const char* document) { return plan::plan_dnsmasq(network(document), "/r", "").config; };
    const std::string day = config(R"({"name": "d", "mode": "nat", "bridge": "kvmbr3",
        "ipv4": {"address": "10.3.0.1/24", "dhcp": {"ranges": ["10.3.0.10-10.3.0.20", "10.3.0.30-10.3.0.40"],
                                                    "lease_time": 86400}},
        "ipv6": {"address": "fd00:3::1/64", "dhcp": {"ranges": ["fd00:3::100-fd00:3::1ff"], "lease_time": 600}}})");
    CAPTURE(day);
    CHECK(has_line(day, "dhcp-range=10.3.0.10,10.3.0.20,255.255.255.0,86400"));
    CHECK(has_line(day, "dhcp-range=10.3.0.30,10.3.0.40,255.255.255.0,86400"));
    CHECK(has_line(day, "dhcp-range=fd00:3::100,fd00:3::1ff,64,600"));
    const std::string forever = config(R"({"name": "f", "mode": "nat", "bridge": "kvmbr3",
        "ipv4": {"address": "10.3.0.1/24", "dhcp": {"ranges": ["10.3.0.10-10.3.0.20"], "lease_time": "infinite"}}})");
    CHECK(has_line(forever, "dhcp-range=10.3.0.10,10.3.0.20,255.255.255.0,infinite"));
    // Static hosts only: the static range carries it too.
    const std::string statics = config(R"({"name": "s", "mode": "nat", "bridge": "kvmbr3",
        "ipv4": {"address": "10.3.0.1/24", "dhcp": {"lease_time": 7200,
                 "hosts": [{"mac": "52:54:00:00:00:01", "ip": "10.3.0.2"}]}}})");
    CHECK(has_line(statics, "dhcp-range=10.3.0.0,static,255.255.255.0,7200"));
    // The default keeps the text earlier versions wrote, so an upgraded
    // daemon still adopts the dnsmasq it finds running.
    CHECK(plan::dnsmasq_lease_time(3600) == "1h");
}

TEST_CASE("Bridge-mode networks only get an accept for bridged traffic", "[planner]")
{
    const Network lan =
        kvmnet::model::parse_network(R"({"name": "lan", "mode": "bridge", "bridge": "br0", "uplink": "eth0"})");
    const plan::Table t = plan::build_ruleset({lan, nat_default()});
    // Its one element: traffic within its bridge.
    const plan::NetworkPart part = plan::plan_network_part(lan);
    REQUIRE(part.elements.size() == 1);
    CHECK(part.elements[0].first == plan::same_bridge_set);
    CHECK(part.chains.empty());
    CHECK(forward(t, {"br0", "br0", "192.0.2.50", "192.0.2.1"}) == "accept");
    CHECK(plan::build_ruleset({lan}).chains.size() == 1);  // guest_forward: no NAT chain
}

TEST_CASE("plan_bridge for bridge mode creates the bridge with the uplink's MAC and adds no address", "[planner]")
{
    const Network lan = kvmnet::model::parse_network(
        R"({"name": "lan", "mode": "bridge", "bridge": "br0", "uplink": "eth0", "stp": true, "forward_delay": 15,
            "hello_time": 2, "max_age": 20, "priority": 4096, "multicast_snooping": false})");
    const auto ops = plan::plan_bridge(lan, std::nullopt, {}, kvmnet::model::Mac::parse("52:54:00:00:00:99"));
    REQUIRE(ops.size() == 3);
    const auto* create = std::get_if<plan::CreateBridge>(&ops[0]);
    REQUIRE(create);
    CHECK(create->options.mac == kvmnet::model::Mac::parse("52:54:00:00:00:99"));
    CHECK(create->options.stp);
    CHECK(create->options.forward_delay_cs == 1500);
    CHECK(create->options.hello_time_cs == 200);
    CHECK(create->options.max_age_cs == 2000);
    REQUIRE(create->options.priority);
    CHECK(*create->options.priority == 4096);
    REQUIRE(create->options.multicast_snooping);
    CHECK_FALSE(*create->options.multicast_snooping);
    CHECK(std::holds_alternative<plan::SetAlias>(ops[1]));
    CHECK(std::holds_alternative<plan::SetUp>(ops[2]));
}

TEST_CASE("A takeover moves the uplink's own addresses and routes, not what the kernel makes", "[planner]")
{
    using plan::AddressInfo;
    using plan::RouteInfo;
    const std::vector<AddressInfo> addresses{address(3, "192.0.2.10", 24), address(3, "2001:db8::10", 64),
                                             address(3, "fe80::1", 64), address(4, "10.0.0.1", 8)};
    const auto moved = plan::takeover_addresses(addresses, 3);
    REQUIRE(moved.size() == 2);
    CHECK(moved[0].address.str() == "192.0.2.10");
    CHECK(moved[1].address.str() == "2001:db8::10");

    RouteInfo connected;  // made by the kernel with the address
    connected.family = 2;
    connected.destination = kvmnet::model::IpAddress::parse("192.0.2.0");
    connected.prefix_length = 24;
    connected.link_index = 3;
    connected.protocol = 2;
    RouteInfo default_route;
    default_route.family = 2;
    default_route.gateway = kvmnet::model::IpAddress::parse("192.0.2.1");
    default_route.link_index = 3;
    default_route.metric = 100;
    default_route.protocol = 4;
    RouteInfo elsewhere = default_route;
    elsewhere.link_index = 4;
    RouteInfo link_local;
    link_local.family = 10;
    link_local.destination = kvmnet::model::IpAddress::parse("fe80::");
    link_local.prefix_length = 64;
    link_local.link_index = 3;
    link_local.protocol = 3;
    const auto routes = plan::takeover_routes({connected, default_route, elsewhere, link_local}, 3);
    REQUIRE(routes.size() == 1);
    CHECK(routes[0].gateway == kvmnet::model::IpAddress::parse("192.0.2.1"));
    CHECK(routes[0].metric == 100);
}

}  // namespace unit_test_planner
