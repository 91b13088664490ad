// The order of guest_forward (issue 17: masquerade throughput): an
// established packet of a guest's connection is accepted after the few
// lookups that check where it comes from (the input bridge, then its
// source in the bridge's subnet, and the uplink restriction) and where it
// goes (a guest bridge only to its subnet, never an isolated one), before the
// lookups that decide new connections (limits, isolation, port forwards,
// inbound drops). Counted here rule by rule as the kernel runs them: a
// rule stops at its first condition that fails, and an address key of the
// other family fails at its family check (meta nfproto), before its lookup.
#include "model/network.hpp"
#include "plan/planner.hpp"
#include "plan/ruleset.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <string>
#include <vector>

namespace unit_test_forward_order {

namespace plan = kvmnet::plan;

namespace {

kvmnet::model::Network network(const std::string& text) { return kvmnet::model::parse_network(text); }

// An established packet of a well-behaved connection: its addresses are
// in the subnets of the bridges it comes from or goes to, if they have one.
struct Established {
    std::string iif, oif;
    bool ipv6 = false;
};

const plan::Set& set_of(const plan::Table& table, const std::string& name)
{
    const auto it =
        std::find_if(table.sets.begin(), table.sets.end(), [&](const plan::Set& s) { return s.name == name; });
    REQUIRE(it != table.sets.end());
    return *it;
}

bool is_address(plan::Field f)
{
    return f == plan::Field::ip_saddr || f == plan::Field::ip_daddr || f == plan::Field::ip6_saddr ||
           f == plan::Field::ip6_daddr;
}

bool is_ipv6(plan::Field f) { return f == plan::Field::ip6_saddr || f == plan::Field::ip6_daddr; }

// Whether the packet's key is in the set: interface names exactly; an
// address key is in when the set has an element for the key's interface
// (the packet's address being in that subnet).
bool found(const plan::Table& table, const std::vector<plan::Field>& keys, const std::string& set, const Established& p)
{
    for (const plan::SetElement& e : set_of(table, set).elements) {
        bool all = true;
        for (std::size_t i = 0; i < keys.size() && all; ++i) {
            if (is_address(keys[i])) continue;
            REQUIRE((keys[i] == plan::Field::iifname || keys[i] == plan::Field::oifname));
            all = e.key[i] == (keys[i] == plan::Field::iifname ? p.iif : p.oif);
        }
        if (all) return true;
    }
    return false;
}

struct Walk {
    int lookups = 0;
    std::string decided_by;  // the comment of the rule that accepted or dropped it
    plan::Verdict verdict = plan::Verdict::accept;
};

Walk walk(const plan::Table& table, const Established& p)
{
    const auto chain = std::find_if(table.chains.begin(), table.chains.end(),
                                    [](const plan::Chain& c) { return c.name == "guest_forward"; });
    REQUIRE(chain != table.chains.end());
    Walk w;
    for (const plan::Rule& rule : chain->rules) {
        bool matched = true;
        for (const plan::Match& m : rule.matches) {
            if (const auto* state = std::get_if<plan::MatchCtState>(&m)) {
                matched = (state->mask & plan::ct::established) != 0;
            } else if (std::holds_alternative<plan::MatchCtStatus>(m)) {
                matched = false;  // no DNAT, no SNAT seen here
            } else if (const auto* lookup = std::get_if<plan::MatchSetLookup>(&m)) {
                const bool family = std::none_of(lookup->keys.begin(), lookup->keys.end(),
                                                 [&](plan::Field f) { return is_address(f) && is_ipv6(f) != p.ipv6; });
                if (!family) {
                    matched = false;
                } else {
                    ++w.lookups;
                    matched = found(table, lookup->keys, lookup->set, p) != lookup->negate;
                }
            } else if (const auto* vmap = std::get_if<plan::VerdictMap>(&m)) {
                ++w.lookups;
                REQUIRE(!found(table, vmap->keys, vmap->map, p));  // networks without limits here
                matched = false;
            } else {
                FAIL("the walk does not model this match kind");
            }
            if (!matched) break;
        }
        if (matched && rule.verdict != plan::Verdict::none) {
            w.decided_by = rule.comment;
            w.verdict = rule.verdict;
            return w;
        }
    }
    w.decided_by = "policy";
    return w;
}

}  // namespace

TEST_CASE("guest_forward accepts established packets after the source checks only", "[planner][forward-order]")
{
    // A NAT network without an uplink (libvirt's default), one with an
    // uplink and IPv6, a routed and an isolated one, all running at once.
    const plan::Table t = plan::build_ruleset({
        network(R"({"name": "default", "mode": "nat", "bridge": "kvmbr0",
                    "ipv4": {"address": "192.168.122.1/24"}})"),
        network(R"({"name": "up", "mode": "nat", "bridge": "kvmbr1", "uplink": "eth0",
                    "ipv4": {"address": "10.1.0.1/24"}, "ipv6": {"address": "fd00:1::1/64"}})"),
        network(R"({"name": "dmz", "mode": "routed", "bridge": "kvmbr2", "ipv4": {"address": "10.2.0.1/24"}})"),
        network(R"({"name": "lab", "mode": "isolated", "bridge": "kvmbr3", "ipv4": {"address": "10.3.0.1/24"}})"),
        network(R"({"name": "six", "mode": "nat", "bridge": "kvmbr4",
                    "ipv4": {"address": "10.4.0.1/24"}, "ipv6": {"address": "fd00:4::1/64"}})"),
    });
    // Before: 11 lookups for a NAT guest's upload (every rule of the chain
    // had its go), 2 for its download. Lookups -1: dropped, not counted.
    struct Case {
        const char* what;
        Established packet;
        const char* decided_by;
        int lookups;
    };
    const Case cases[] = {
        {"a NAT guest's upload: its bridge is a guest's, no uplink, its source in its subnet",
         {"kvmbr0", "eth0"},
         "established, from guests",
         4},
        {"a NAT guest's download: not from a guest bridge, to its subnet",
         {"eth0", "kvmbr0"},
         "established, to guests",
         2},
        {"a guest of a network with an uplink, through it: one more lookup (the uplink pair)",
         {"kvmbr1", "eth0"},
         "established, from guests",
         5},
        {"... and not through it: dropped, established or not",
         {"kvmbr1", "eth1"},
         "only via uplink (@drops_uplink)",
         -1},
        // The IPv4 rules' lookups of the bridge come first.
        {"IPv6 upload", {"kvmbr1", "eth0", true}, "established, from guests (IPv6)", 6},
        {"IPv6 download", {"eth0", "kvmbr1", true}, "established, to guests (IPv6)", 4},
        {"a routed guest's upload", {"kvmbr2", "eth0"}, "established, from guests", 4},
        {"a routed guest's download", {"eth0", "kvmbr2"}, "established, to guests", 2},
        {"nothing established leaves an isolated bridge", {"kvmbr3", "eth0"}, "isolated (@drops_isolated)", -1},
        {"... nor reaches it", {"eth0", "kvmbr3"}, "no new connections to guests (@drops_inbound)", -1},
        // Between guests of two networks: only where a new connection may
        // go (a routed or NAT subnet), never into an isolated bridge, nor
        // over IPv6 to a network without an IPv6 subnet.
        {"a NAT guest to a routed guest", {"kvmbr0", "kvmbr2"}, "established, between guests", 6},
        {"a NAT guest into an isolated bridge",
         {"kvmbr0", "kvmbr3"},
         "no new connections to guests (@drops_inbound)",
         -1},
        {"IPv6 between guests with IPv6 subnets", {"kvmbr4", "kvmbr1", true}, "established, between guests (IPv6)", 8},
        {"IPv6 to a bridge without an IPv6 subnet",
         {"kvmbr4", "kvmbr0", true},
         "no new connections to guests (@drops_inbound)",
         -1},
    };
    for (const Case& c : cases) {
        CAPTURE(c.what);
        const Walk w = walk(t, c.packet);
        CHECK(w.decided_by == c.decided_by);
        if (c.lookups >= 0) {
            CHECK(w.verdict == plan::Verdict::accept);
            CHECK(w.lookups == c.lookups);
        } else {
            CHECK(w.verdict == plan::Verdict::drop);
        }
    }
}

TEST_CASE("guest_forward: only source checks and the uplink pair come before the established accepts",
          "[planner][forward-order]")
{
    const plan::Table t = plan::build_ruleset({network(R"({"name": "default", "mode": "nat", "bridge": "kvmbr0",
                                                            "ipv4": {"address": "192.168.122.1/24"}})")});
    const auto it =
        std::find_if(t.chains.begin(), t.chains.end(), [](const plan::Chain& c) { return c.name == "guest_forward"; });
    REQUIRE(it != t.chains.end());
    const plan::Chain& chain = *it;
    // Up to the last established accept, the sets looked up are these:
    // which bridge the packet comes from (a guest's or not), the bridge and
    // address pairs of the subnets (the spoof check in its positive form),
    // and the uplink restriction, whose first lookup ends it for networks
    // without an uplink.
    const std::vector<std::string> allowed{
        "guest_bridges",   plan::net4_set,        plan::net6_set, plan::uplinked_bridges_set,
        plan::uplinks_set, plan::same_bridge_set, "drops_uplink"};
    std::size_t last = 0;
    for (std::size_t i = 0; i < chain.rules.size(); ++i) {
        const auto& m = chain.rules[i].matches;
        if (chain.rules[i].verdict == plan::Verdict::accept && !m.empty() &&
            std::holds_alternative<plan::MatchCtState>(m.front()))
            last = i;
    }
    REQUIRE(last >= 3);
    for (std::size_t i = 0; i <= last; ++i) {
        const plan::Rule& rule = chain.rules[i];
        CAPTURE(i, rule.comment);
        for (const plan::Match& m : rule.matches) {
            CHECK_FALSE(std::holds_alternative<plan::VerdictMap>(m));
            if (const auto* lookup = std::get_if<plan::MatchSetLookup>(&m))
                CHECK(std::find(allowed.begin(), allowed.end(), lookup->set) != allowed.end());
        }
        // Every rule there either accepts established packets only, or is
        // the uplink drop, which starts with the hash lookup of the bridge.
        const bool established = std::holds_alternative<plan::MatchCtState>(rule.matches.front());
        const auto* first = std::get_if<plan::MatchSetLookup>(&rule.matches.front());
        CHECK((established || (first != nullptr && first->set == plan::uplinked_bridges_set && !first->negate)));
    }
}

}  // namespace unit_test_forward_order
