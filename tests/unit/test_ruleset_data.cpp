// Issue 17 item 3: the hooked chains are fixed and a network is data. A
// start of a network without limits adds only set elements, none of them a
// jump (which would make the kernel validate every chain at the commit);
// the hooked chains are the same whatever runs; Statistics reads each
// network's drops from its elements in the counting sets.
#include "manager_harness.hpp"
#include "plan/planner.hpp"
#include "plan/ruleset_parts.hpp"
#include "plan/table_diff.hpp"

#include <algorithm>
#include <string>
#include <vector>

namespace unit_test_ruleset_data {

using namespace kvmnet;
using namespace kvmnet::test;

namespace {

model::Network parsed(const std::string& text) { return model::parse_network(text); }

std::vector<model::Network> every_mode()
{
    return {parsed(R"({"name": "nat", "mode": "nat", "bridge": "br-nat", "uplink": "eth0",
                       "ipv4": {"address": "10.1.0.1/24"}, "ipv6": {"address": "fd00:1::1/64", "nat66": true}})"),
            parsed(R"({"name": "routed", "mode": "routed", "bridge": "br-routed",
                       "ipv4": {"address": "10.2.0.1/24"}, "ipv6": {"address": "2001:db8:2::1/64"}})"),
            parsed(R"({"name": "iso", "mode": "isolated", "bridge": "br-iso", "ipv4": {"address": "10.3.0.1/24"}})"),
            parsed(R"({"name": "lan", "mode": "bridge", "bridge": "br-lan", "uplink": "eth1"})")};
}

model::Network nat(int i)
{
    return parsed(R"({"name": "n)" + std::to_string(i) + R"(", "mode": "nat", "bridge": "br)" + std::to_string(i) +
                  R"(", "ipv4": {"address": "10.)" + std::to_string(100 + i / 250) + "." + std::to_string(i % 250) +
                  R"(.1/24"}})");
}

std::vector<std::string> hooked_chains(const plan::Table& t)
{
    std::vector<std::string> out;
    for (const plan::Chain& c : t.chains)
        if (c.base()) out.push_back(plan::render_chain(c));
    return out;
}

}  // namespace

TEST_CASE("A network without limits is elements only, none of them a jump", "[planner][scale]")
{
    for (const model::Network& n : every_mode()) {
        CAPTURE(n.name);
        const plan::NetworkPart part = plan::plan_network_part(n);
        CHECK(part.chains.empty());
        CHECK_FALSE(part.meter);
        CHECK_FALSE(part.elements.empty());
        for (const auto& [set, element] : part.elements) {
            CAPTURE(set);
            CHECK(element.data.empty());  // set elements: no verdict, no chain
            CHECK(element.key[0] == n.bridge);
        }
    }
    // With limits, and only then, chains of its own and the jumps to them.
    model::Network limited = every_mode()[0];
    limited.limits.new_connections_per_second = 10;
    const plan::NetworkPart part = plan::plan_network_part(limited);
    CHECK(part.chains.size() == 2);
    std::size_t jumps = 0;
    for (const auto& [set, element] : part.elements)
        jumps += element.data.empty() ? 0 : 1;
    CHECK(jumps == 2);
}

TEST_CASE("One more start at 1 or at 300 running is the same elements and no rule", "[planner][scale]")
{
    for (int running : {1, 300}) {
        CAPTURE(running);
        std::vector<model::Network> before;
        for (int i = 0; i < running; ++i)
            before.push_back(nat(i));
        std::vector<model::Network> after = before;
        after.push_back(nat(999));
        const plan::Table from = plan::build_ruleset(before), to = plan::build_ruleset(after);
        CHECK(hooked_chains(from) == hooked_chains(to));
        const plan::TableDiff d = plan::diff_tables(from, to);
        REQUIRE_FALSE(d.replace);
        CHECK(d.added_chains.empty());
        CHECK(d.changed_chains.empty());
        CHECK(d.added_sets.empty());
        CHECK(d.removed_elements.empty());
        std::size_t added = 0;
        for (const plan::ElementChange& c : d.added_elements) {
            CHECK(c.set->data.empty());  // no verdict map among them
            added += c.elements.size();
        }
        CHECK(added == 10);
        const plan::TableDiff back = plan::diff_tables(to, from);
        CHECK(back.removed_chains.empty());
        CHECK(back.changed_chains.empty());
    }
}

TEST_CASE("A prefix in an interval set's element is what the set declares", "[planner]")
{
    const plan::Table t = plan::build_ruleset(every_mode());
    for (const char* name : {plan::net4_set, plan::net6_set}) {
        const auto set = std::find_if(t.sets.begin(), t.sets.end(), [&](const plan::Set& s) { return s.name == name; });
        REQUIRE(set != t.sets.end());
        CHECK(set->interval);
        REQUIRE(set->elements.size() == 2);  // the NAT and the routed network
        for (const plan::SetElement& e : set->elements)
            CHECK(e.key[1].find('/') != std::string::npos);
    }
}

TEST_CASE("Statistics reads a network's drops from its counting elements", "[manager][statistics]")
{
    HealingHarness h;
    h.firewall.generations = true;
    h.m().create(R"({"name": "web", "mode": "nat", "bridge": "kvweb", "ipv4": {"address": "10.9.0.1/24"},
                     "limits": {"new_connections_per_second": 50}})");
    h.m().start("web");
    REQUIRE(h.m().state("web") == core::State::active);
    const nlohmann::json stats = h.m().statistics("web");
    std::vector<std::string> rules, chains;
    for (const auto& d : stats["drops"]) {
        rules.push_back(d["rule"]);
        chains.push_back(d["chain"]);
    }
    // The fixed rules' elements first, then the limits chains' rules.
    const std::vector<std::string> expected{"loopback destination from guests",
                                            "loopback source from guests",
                                            "no IPv6 subnet",
                                            "spoofed source",
                                            "no new connections to guests",
                                            "new connections from guests over the rate limit",
                                            "new connections to forwards over the rate limit"};
    CHECK(rules == expected);
    CHECK(chains.front() == "guest_prerouting");
    CHECK(chains.back() == "guest_forward");
    // The other network running ("iso") is not reported.
    CHECK(std::none_of(rules.begin(), rules.end(), [](const std::string& r) { return r == "isolated"; }));
}

}  // namespace unit_test_ruleset_data
