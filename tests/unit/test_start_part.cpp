// Issue 17 item 3: one more network's start plans and commits its own part
// of the ruleset (its chains, dispatch elements, meter, forwards), not a
// table that grows with the networks already running. Counted on the fake
// nftables (with generations, as the kernel has them), not timed.
#include "manager_harness.hpp"
#include "plan/planner.hpp"
#include "plan/ruleset_parts.hpp"

#include <algorithm>
#include <set>

namespace unit_test_start_part {

using namespace kvmnet;
using namespace kvmnet::test;

namespace {

std::string nat_network(int i, const std::string& extra = "")
{
    return R"({"name": "n)" + std::to_string(i) + R"(", "mode": "nat", "bridge": "kvn)" + std::to_string(i) +
           R"(", "ipv4": {"address": "10.)" + std::to_string(100 + i / 250) + "." + std::to_string(i % 250) +
           R"(.1/24"})" + extra + "}";
}

// The table as text that does not depend on the order of chains, sets or
// elements (an incremental commit appends where a planned table sorts).
std::multiset<std::string> contents(const plan::Table& t)
{
    std::multiset<std::string> out;
    for (const plan::Chain& c : t.chains)
        out.insert(plan::render_chain(c));
    for (const plan::Set& s : t.sets) {
        out.insert(plan::render_declaration(s));
        for (const plan::SetElement& e : s.elements)
            out.insert(s.name + " " + plan::element_key(e) + " " + std::to_string(plan::element_hash(s.name, e)));
    }
    return out;
}

// What one more start hands the adapter with `running` NAT networks up.
FakeFirewall::Update start_one_more(int running)
{
    HealingHarness h;  // "iso" runs
    h.firewall.generations = true;
    for (int i = 1; i <= running; ++i) {
        h.m().create(nat_network(i));
        h.m().start("n" + std::to_string(i));
        REQUIRE(h.m().state("n" + std::to_string(i)) == core::State::active);
    }
    h.m().create(nat_network(running + 1, R"(, "limits": {"connections_per_source": 64})"));
    h.firewall.updates.clear();
    const int replaced = h.firewall.replaced;
    h.m().start("n" + std::to_string(running + 1));
    REQUIRE(h.m().state("n" + std::to_string(running + 1)) == core::State::active);
    CHECK(h.firewall.replaced == replaced);
    REQUIRE(h.firewall.updates.size() == 1);
    return h.firewall.updates.front();
}

}  // namespace

TEST_CASE("One more start hands the adapter its own part whatever runs", "[manager][scale]")
{
    const FakeFirewall::Update few = start_one_more(3);
    const FakeFirewall::Update many = start_one_more(40);
    // Its limits chains, its elements and its meter; nothing of the others.
    const plan::NetworkPart own =
        plan::plan_network_part(model::parse_network(nat_network(9, R"(, "limits": {"connections_per_source": 64})")));
    CHECK(many.added_chains == own.chains.size());
    CHECK(many.added_elements == own.elements.size());
    CHECK(many.added_sets == 1);
    CHECK(many.changed_chains == 0);
    CHECK(many.removed_chains + many.removed_elements + many.removed_sets == 0);
    // The table handed over holds the fixed declarations and its meter, not
    // every network's chains: the same with 3 or 40 networks running.
    CHECK(many.table_chains == few.table_chains);
    CHECK(many.table_sets == few.table_sets);
    CHECK(many.table_chains < own.chains.size());
}

TEST_CASE("Starts and stops by part leave the table as planned whole", "[manager][scale]")
{
    HealingHarness h;
    h.firewall.generations = true;
    for (int i = 1; i <= 6; ++i)
        h.m().create(nat_network(i, i % 2 ? R"(, "limits": {"connections_per_source": 64})" : ""));
    const auto planned = [&] {
        std::vector<model::Network> active;
        for (const std::string& name : h.m().names())
            if (h.m().state(name) == core::State::active) active.push_back(h.m().spec(name));
        return contents(plan::build_ruleset(active));
    };
    for (int i = 1; i <= 6; ++i) {
        h.m().start("n" + std::to_string(i));
        REQUIRE(h.firewall.table);
        CHECK(contents(*h.firewall.table) == planned());
    }
    h.firewall.updates.clear();
    h.m().stop("n3");
    h.m().stop("n4");
    REQUIRE(h.firewall.updates.size() == 2);
    CHECK(h.firewall.updates[0].removed_chains > 0);
    CHECK(h.firewall.updates[0].removed_sets == 1);  // n3's meter
    CHECK(contents(*h.firewall.table) == planned());
    // A forward batch since: the next start plans every network once, and
    // the table is still exactly the planned one, forwards included.
    h.m().add_forwards("n2", R"({"proto": "tcp", "host_port": 18080, "guest": "10.100.2.10", "guest_port": 80})");
    h.m().start("n3");
    CHECK(contents(*h.firewall.table) == planned());
    h.m().stop("n2");
    CHECK(contents(*h.firewall.table) == planned());
    h.m().start("n2");
    CHECK(contents(*h.firewall.table) == planned());
    CHECK(h.firewall.elements(plan::fwd4_any_set).size() == 2);  // iso's and n2's
}

TEST_CASE("A bridge name is picked by lookups and no dump of every link", "[manager][scale]")
{
    Harness h;
    plan::LinkInfo foreign;
    foreign.name = "kvmbr0";  // another program's link of that name
    foreign.kind = "bridge";
    h.links.add_link(foreign);
    h.m().create(R"({"name": "a", "mode": "isolated", "ipv4": {"address": "10.60.1.1/24"}})");
    h.links.reset_calls();
    h.m().create(R"({"name": "b", "mode": "isolated", "ipv4": {"address": "10.60.2.1/24"}})");
    CHECK(h.links.count("list_links") == 0);
    CHECK(h.m().spec("a").bridge == "kvmbr1");
    CHECK(h.m().spec("b").bridge == "kvmbr2");
}

}  // namespace unit_test_start_part
