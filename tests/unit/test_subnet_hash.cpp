// The established accepts of guest_forward check a bridge's subnet as a hash
// lookup of the bridge and the packet's address masked to the subnet's
// length (`iifname . ip saddr & 255.255.255.0 @net4_p24`), one set and a
// few rules per prefix length in use (issue 17, masquerade throughput):
// how it renders, which sets and rules a table has for the lengths in use,
// and that a start adds elements only unless its length is new.
#include "fakes/committed_helpers.hpp"
#include "manager_harness.hpp"
#include "model/network.hpp"
#include "plan/planner.hpp"
#include "plan/ruleset.hpp"
#include "plan/ruleset_parts.hpp"
#include "plan/table_diff.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstddef>
#include <set>
#include <string>
#include <vector>

namespace unit_test_subnet_hash {

using namespace kvmnet;
using namespace kvmnet::test;
using plan::Field;

namespace {

std::string lookup_text(const plan::MatchSetLookup& m)
{
    return plan::render_chain(plan::Chain{"c", "", "", 0, true, {plan::Rule{{m}, false, plan::Verdict::accept, ""}}});
}

std::string network_text(const std::string& name, const std::string& mode, const std::string& ipv4,
                         const std::string& more = "")
{
    return R"({"name": ")" + name + R"(", "mode": ")" + mode + R"(", "bridge": "kv)" + name +
           R"(", "ipv4": {"address": ")" + ipv4 + "\"}" + more + "}";
}

model::Network network(const std::string& name, const std::string& mode, const std::string& ipv4,
                       const std::string& more = "")
{
    return model::parse_network(network_text(name, mode, ipv4, more));
}

const plan::Set* find_set(const plan::Table& t, const std::string& name)
{
    const auto it = std::find_if(t.sets.begin(), t.sets.end(), [&](const plan::Set& s) { return s.name == name; });
    return it == t.sets.end() ? nullptr : &*it;
}

std::vector<std::string> forward_comments(const plan::Table& t)
{
    std::vector<std::string> out;
    for (const plan::Chain& c : t.chains)
        if (c.name == "guest_forward")
            for (const plan::Rule& r : c.rules)
                if (r.comment.rfind("established", 0) == 0) out.push_back(r.comment);
    return out;
}

std::multiset<std::string> contents(const plan::Table& t) { return kvmnet::testing::table_contents(t); }

// Calls `check(rule, lookup)` for each lookup of a subnet set (net4, net6,
// net4_p<len>, net6_p<len>) in the table's rules.
template <typename Check>
void for_each_subnet_lookup(const plan::Table& t, Check check)
{
    for (const plan::Chain& c : t.chains)
        for (const plan::Rule& r : c.rules)
            for (const plan::Match& m : r.matches)
                if (const auto* l = std::get_if<plan::MatchSetLookup>(&m); l && l->set.rfind("net", 0) == 0)
                    check(r, *l);
}

}  // namespace

TEST_CASE("A masked lookup renders the mask after each address key", "[ruleset][subnet-hash]")
{
    CHECK(lookup_text({{Field::iifname, Field::ip_saddr}, "net4_p24", false, 24})
              .find("iifname . ip saddr & 255.255.255.0 @net4_p24 accept") != std::string::npos);
    CHECK(lookup_text({{Field::oifname, Field::ip_daddr}, "net4_p12", true, 12})
              .find("oifname . ip daddr & 255.240.0.0 != @net4_p12") != std::string::npos);
    CHECK(lookup_text({{Field::iifname, Field::ip6_saddr}, "net6_p64", false, 64})
              .find("iifname . ip6 saddr & ffff:ffff:ffff:ffff:: @net6_p64") != std::string::npos);
    CHECK(lookup_text({{Field::oifname, Field::ip6_daddr}, "net6_p60", false, 60})
              .find("oifname . ip6 daddr & ffff:ffff:ffff:fff0:: @net6_p60") != std::string::npos);
    // Without a prefix, as before.
    CHECK(lookup_text({{Field::iifname, Field::ip_saddr}, "net4", false}).find("iifname . ip saddr @net4 accept") !=
          std::string::npos);
    CHECK(plan::ipv4_mask(0) == 0);
    CHECK(plan::ipv4_mask(24) == 0xffffff00u);
    CHECK(plan::ipv4_mask(32) == 0xffffffffu);
    CHECK(plan::ipv6_mask(1)[0] == 0x80);
    CHECK(plan::ipv6_mask(128)[15] == 0xff);
}

TEST_CASE("One hash set and established accepts per prefix length in use", "[planner][subnet-hash]")
{
    const plan::Table t = plan::build_ruleset({
        network("a", "nat", "10.1.0.1/24"),
        network("b", "routed", "10.2.0.1/24", R"(, "ipv6": {"address": "fd00:2::1/64"})"),
        network("c", "nat", "172.16.0.1/16", R"(, "ipv6": {"address": "fd00:3::1/56", "ra": false})"),
        network("d", "isolated", "10.4.0.1/28"),  // isolated: no subnet in the sets, no /28
    });
    const plan::Set* p24 = find_set(t, "net4_p24");
    const plan::Set* p16 = find_set(t, "net4_p16");
    REQUIRE(p24);
    REQUIRE(p16);
    CHECK(find_set(t, "net4_p28") == nullptr);
    CHECK_FALSE(p24->interval);
    CHECK(p24->key == std::vector<plan::SetType>{plan::SetType::ifname, plan::SetType::ipv4_addr});
    REQUIRE(p24->elements.size() == 2);
    CHECK(p24->elements[0].key == std::vector<std::string>{"kva", "10.1.0.0"});
    CHECK(p24->elements[1].key == std::vector<std::string>{"kvb", "10.2.0.0"});
    REQUIRE(p16->elements.size() == 1);
    CHECK(p16->elements[0].key == std::vector<std::string>{"kvc", "172.16.0.0"});
    const plan::Set* p64 = find_set(t, "net6_p64");
    const plan::Set* p56 = find_set(t, "net6_p56");
    REQUIRE(p64);
    REQUIRE(p56);
    CHECK(p64->elements.at(0).key == std::vector<std::string>{"kvb", "fd00:2::"});
    CHECK(p56->elements.at(0).key == std::vector<std::string>{"kvc", "fd00:3::"});
    // The interval sets keep every subnet for the rules of new connections.
    CHECK(find_set(t, plan::net4_set)->elements.size() == 3);

    // Per length, in ascending order; between guests per pair of lengths.
    const std::vector<std::string> expected{
        "established, to guests (/16)",
        "established, to guests (/24)",
        "established, from guests (/16)",
        "established, from guests (/24)",
        "established, between guests (/16)",
        "established, between guests (/16 to /24)",
        "established, between guests (/24 to /16)",
        "established, between guests (/24)",
        "established, to guests (IPv6 /56)",
        "established, to guests (IPv6 /64)",
        "established, from guests (IPv6 /56)",
        "established, from guests (IPv6 /64)",
        "established, between guests (IPv6 /56)",
        "established, between guests (IPv6 /56 to /64)",
        "established, between guests (IPv6 /64 to /56)",
        "established, between guests (IPv6 /64)",
    };
    CHECK(forward_comments(t) == expected);
    // Each lookup of such a rule is masked to its set's length.
    for_each_subnet_lookup(t, [](const plan::Rule& r, const plan::MatchSetLookup& l) {
        CAPTURE(r.comment, l.set);
        if (l.set == plan::net4_set || l.set == plan::net6_set)
            CHECK(l.prefix == 0);
        else
            CHECK(l.set.substr(6) == std::to_string(l.prefix));
    });

    // No network with a subnet: no established accepts at all.
    CHECK(forward_comments(plan::build_ruleset({network("d", "isolated", "10.4.0.1/28")})).empty());
}

TEST_CASE("Past max_hashed_prefix_lengths lengths a family's established accepts use the interval set",
          "[planner][subnet-hash]")
{
    // Up to the limit: the hash form, "between guests" per pair of lengths.
    std::vector<model::Network> nets;
    const std::vector<std::string> v4{"10.1.0.1/24", "10.2.0.1/16", "10.3.0.1/20", "10.4.0.1/22", "10.5.0.1/26"};
    for (std::size_t i = 0; i < plan::max_hashed_prefix_lengths; ++i)
        nets.push_back(network("n" + std::to_string(i), "nat", v4[i]));
    const std::size_t k = plan::max_hashed_prefix_lengths;
    CHECK(forward_comments(plan::build_ruleset(nets)).size() == k + k + k * k);

    // One length more: one accept each, from net4, as before the hash sets;
    // the hash sets keep their elements (a network's part does not depend on
    // the shape), and the IPv6 family, within the limit, keeps its hash form.
    nets.push_back(network("n4", "nat", v4[4], R"(, "ipv6": {"address": "fd00:5::1/64"})"));
    const plan::Table t = plan::build_ruleset(nets);
    const std::vector<std::string> expected{
        "established, to guests",
        "established, from guests",
        "established, between guests",
        "established, to guests (IPv6 /64)",
        "established, from guests (IPv6 /64)",
        "established, between guests (IPv6 /64)",
    };
    CHECK(forward_comments(t) == expected);
    for_each_subnet_lookup(t, [](const plan::Rule& r, const plan::MatchSetLookup& l) {
        if (r.comment.rfind("established", 0) != 0 || r.comment.find("IPv6") != std::string::npos) return;
        CAPTURE(r.comment);
        CHECK(l.set == plan::net4_set);
        CHECK(l.prefix == 0);
    });
    REQUIRE(find_set(t, "net4_p26"));
    CHECK(find_set(t, "net4_p26")->elements.size() == 1);
}

TEST_CASE("A start of a new prefix length changes guest_forward; of one in use, elements only",
          "[planner][subnet-hash][table_diff]")
{
    const std::vector<model::Network> running{network("a", "nat", "10.1.0.1/24"), network("b", "nat", "10.2.0.1/24")};
    const plan::Table from = plan::build_ruleset(running);

    std::vector<model::Network> same = running;
    same.push_back(network("c", "routed", "10.3.0.1/24"));
    const plan::TableDiff d = plan::diff_tables(from, plan::build_ruleset(same));
    REQUIRE_FALSE(d.replace);
    CHECK(d.changed_chains.empty());
    CHECK(d.added_sets.empty());
    CHECK_FALSE(d.added_elements.empty());

    std::vector<model::Network> wider = running;
    wider.push_back(network("w", "nat", "10.64.0.1/16"));
    const plan::Table to = plan::build_ruleset(wider);
    const plan::TableDiff n = plan::diff_tables(from, to);
    REQUIRE_FALSE(n.replace);
    REQUIRE(n.added_sets.size() == 1);
    CHECK(n.added_sets[0]->name == "net4_p16");
    CHECK(n.added_sets[0]->elements.size() == 1);
    REQUIRE(n.changed_chains.size() == 1);
    CHECK(n.changed_chains[0]->name == "guest_forward");
    CHECK(n.added_chains.empty());
    // ... and its stop takes them away again.
    const plan::TableDiff back = plan::diff_tables(to, from);
    REQUIRE_FALSE(back.replace);
    CHECK(back.removed_sets == std::vector<std::string>{"net4_p16"});
    REQUIRE(back.changed_chains.size() == 1);
    CHECK(back.changed_chains[0]->name == "guest_forward");
}

TEST_CASE("Starts and stops across prefix lengths leave the table as planned whole", "[manager][subnet-hash]")
{
    HealingHarness h;  // "iso" runs (NAT, 10.70.0.1/24)
    h.firewall.generations = true;
    h.m().create(network_text("n1", "nat", "10.101.0.1/24"));
    h.m().create(network_text("n2", "nat", "10.102.0.1/24"));
    h.m().create(network_text("w", "routed", "10.200.0.1/16"));
    const auto planned = [&] {
        std::vector<model::Network> active;
        for (const std::string& name : h.m().names())
            if (h.m().state(name) == core::State::active) active.push_back(h.m().spec(name));
        return contents(plan::build_ruleset(active));
    };
    // `act`, then one update of the table that changes `chains` chains,
    // adds and removes those sets, and the table is the planned one.
    const auto step = [&](auto act, std::size_t chains, std::size_t added_sets, std::size_t removed_sets) {
        h.firewall.updates.clear();
        act();
        REQUIRE(h.firewall.updates.size() == 1);
        CHECK(h.firewall.updates[0].changed_chains == chains);
        CHECK(h.firewall.updates[0].added_sets == added_sets);
        CHECK(h.firewall.updates[0].removed_sets == removed_sets);
        REQUIRE(h.firewall.table);
        CHECK(contents(*h.firewall.table) == planned());
    };
    h.m().start("n1");  // the first commit since the harness's: the table whole
    REQUIRE(h.firewall.table);
    CHECK(contents(*h.firewall.table) == planned());
    // A length in use (iso's, n1's): the start's own elements, no rule.
    step([&] { h.m().start("n2"); }, 0, 0, 0);
    // A new length: its set, and guest_forward's rules again.
    step([&] { h.m().start("w"); }, 1, 1, 0);
    CHECK(h.m().state("w") == core::State::active);
    CHECK(find_set(*h.firewall.table, "net4_p16") != nullptr);
    // Its stop: the set and its rules go.
    step([&] { h.m().stop("w"); }, 1, 0, 1);
    CHECK(find_set(*h.firewall.table, "net4_p16") == nullptr);
    // A /24 going while others (iso, n2) keep that length: elements only.
    step([&] { h.m().stop("n1"); }, 0, 0, 0);
    CHECK(find_set(*h.firewall.table, "net4_p24") != nullptr);
}

}  // namespace unit_test_subnet_hash
