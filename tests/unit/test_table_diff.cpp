// plan::diff_tables and the data-set ruleset: a network's start or stop is
// its own elements (and limits chains), whatever the number of networks already
// running; applying the diff to the old table gives exactly the new one; and
// CommittedTable sends diffs only while the kernel has what it committed.
#include "core/committed_table.hpp"
#include "fakes/committed_helpers.hpp"
#include "model/network.hpp"
#include "plan/planner.hpp"
#include "plan/ruleset.hpp"
#include "plan/ruleset_parts.hpp"
#include "plan/table_diff.hpp"
#include "temp_dir.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

namespace unit_test_table_diff {

using namespace kvmnet;

namespace {

model::Network numbered(const std::string& mode, int i, bool limits = false)
{
    nlohmann::json doc{
        {"name", mode + std::to_string(i)},
        {"mode", mode},
        {"bridge", "br-" + mode.substr(0, 3) + std::to_string(i)},
        {"ipv4", {{"address", "10." + std::to_string(i / 200) + "." + std::to_string(i % 200) + ".1/24"}}}};
    if (limits) doc["limits"] = {{"new_connections_per_second", 100}, {"connections_per_source", 50}};
    if (mode == "nat")
        doc["forwards"] =
            nlohmann::json::array({{{"proto", "tcp"},
                                    {"host_port", 10000 + i},
                                    {"guest", "10." + std::to_string(i / 200) + "." + std::to_string(i % 200) + ".10"},
                                    {"guest_port", 22}}});
    return model::parse_network(doc.dump());
}

std::vector<model::Network> nats(int count, int from = 0)
{
    std::vector<model::Network> out;
    for (int i = from; i < from + count; ++i)
        out.push_back(numbered("nat", i, i % 3 == 0));
    return out;
}

std::size_t elements(const std::vector<plan::ElementChange>& changes)
{
    std::size_t n = 0;
    for (const auto& c : changes)
        n += c.elements.size();
    return n;
}

// What the kernel does with a diff, on plain data.
plan::Table apply(plan::Table table, const plan::TableDiff& diff)
{
    REQUIRE_FALSE(diff.replace);
    auto find_set = [&](const std::string& name) {
        auto it =
            std::find_if(table.sets.begin(), table.sets.end(), [&](const plan::Set& s) { return s.name == name; });
        REQUIRE(it != table.sets.end());
        return it;
    };
    for (const plan::ElementChange& c : diff.removed_elements) {
        auto set = find_set(c.set->name);
        for (const plan::SetElement& e : c.elements) {
            auto at = std::find_if(set->elements.begin(), set->elements.end(),
                                   [&](const plan::SetElement& x) { return x.key == e.key; });
            REQUIRE(at != set->elements.end());
            set->elements.erase(at);
        }
    }
    for (const std::string& name : diff.removed_chains)
        std::erase_if(table.chains, [&](const plan::Chain& c) { return c.name == name; });
    for (const std::string& name : diff.removed_sets)
        std::erase_if(table.sets, [&](const plan::Set& s) { return s.name == name; });
    for (const plan::Set* s : diff.added_sets)
        table.sets.push_back(*s);
    for (const plan::Chain* c : diff.added_chains)
        table.chains.push_back(*c);
    for (const plan::Chain* c : diff.changed_chains)
        for (plan::Chain& old : table.chains)
            if (old.name == c->name) old.rules = c->rules;
    for (const plan::ElementChange& c : diff.added_elements) {
        auto set = find_set(c.set->name);
        for (const plan::SetElement& e : c.elements) {
            REQUIRE(std::none_of(set->elements.begin(), set->elements.end(),
                                 [&](const plan::SetElement& x) { return x.key == e.key; }));
            set->elements.push_back(e);
        }
    }
    return table;
}

// Order-independent text of a table: sets, chains and elements sorted.
std::string canonical(plan::Table t)
{
    std::sort(t.sets.begin(), t.sets.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
    for (plan::Set& s : t.sets)
        std::sort(s.elements.begin(), s.elements.end(), [](const auto& a, const auto& b) { return a.key < b.key; });
    std::sort(t.chains.begin(), t.chains.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
    return plan::render(t);
}

}  // namespace

TEST_CASE("The hooked chains' rule count does not grow with the number of networks", "[table_diff]")
{
    for (int n : {1, 10, 100}) {
        CAPTURE(n);
        const plan::Table t = plan::build_ruleset(nats(n));
        std::size_t hooked = 0;
        for (const plan::Chain& c : t.chains)
            if (c.base()) hooked += c.rules.size();
        // forwards (prerouting, output), guard, forward, postrouting
        CHECK(hooked == 12 + 12 + 2 + 19 + 9);
        // Every network's subnet is one element of net4; only the networks
        // with limits (every third) jump to chains of their own.
        const auto set = [&](const std::string& name) {
            const auto it =
                std::find_if(t.sets.begin(), t.sets.end(), [&](const plan::Set& s) { return s.name == name; });
            REQUIRE(it != t.sets.end());
            return *it;
        };
        CHECK(set(plan::net4_set).elements.size() == static_cast<std::size_t>(n));
        const plan::Set limits = set(plan::limits_by_iif_map);
        CHECK(limits.elements.size() == static_cast<std::size_t>((n + 2) / 3));
        CHECK(limits.data == std::vector<plan::SetType>{plan::SetType::verdict});
        std::size_t own_chains = 0;
        for (const plan::Chain& c : t.chains)
            own_chains += c.base() ? 0 : 1;
        CHECK(own_chains == 2 * limits.elements.size());
    }
}

TEST_CASE("Starting one more network is the same diff at 1 and at 200 running", "[table_diff]")
{
    std::vector<std::size_t> sizes;
    for (int running : {1, 200}) {
        CAPTURE(running);
        std::vector<model::Network> before = nats(running);
        std::vector<model::Network> after = before;
        after.push_back(numbered("nat", 999, true));
        const plan::Table from = plan::build_ruleset(before), to = plan::build_ruleset(after);
        const plan::TableDiff d = plan::diff_tables(from, to);
        REQUIRE_FALSE(d.replace);
        CHECK(d.changed_chains.empty());
        CHECK(d.removed_chains.empty());
        CHECK(d.removed_elements.empty());
        // With limits: its two limits chains (from guests, to forwards).
        CHECK(d.added_chains.size() == 2);
        for (const plan::Chain* c : d.added_chains)
            CHECK(c->name.rfind("net_nat999_", 0) == 0);
        REQUIRE(d.added_sets.size() == 1);  // its connection meter
        CHECK(d.added_sets[0]->name == plan::per_source_set("nat999"));
        // Its elements in the data sets, and its forward.
        const std::size_t own = plan::plan_network_part(numbered("nat", 999, true)).elements.size();
        CHECK(own == 12);
        CHECK(elements(d.added_elements) == own + 1);
        CHECK(canonical(apply(from, d)) == canonical(to));
        sizes.push_back(d.added_chains.size() + elements(d.added_elements));

        // Stopping it again is the mirror image.
        const plan::TableDiff back = plan::diff_tables(to, from);
        REQUIRE_FALSE(back.replace);
        CHECK(back.removed_chains.size() == 2);
        CHECK(back.removed_sets.size() == 1);
        CHECK(elements(back.removed_elements) == own + 1);
        CHECK(back.added_chains.empty());
        CHECK(back.added_elements.empty());
        CHECK(canonical(apply(to, back)) == canonical(from));
    }
    CHECK(sizes[0] == sizes[1]);
}

TEST_CASE("A diff between any two sets of networks turns one table into the other", "[table_diff][property]")
{
    std::vector<model::Network> all = nats(12);
    for (int i = 0; i < 6; ++i) {
        all.push_back(numbered("routed", 20 + i));
        all.push_back(numbered("isolated", 40 + i));
    }
    std::mt19937 random(20261205);
    for (int round = 0; round < 40; ++round) {
        CAPTURE(round);
        std::vector<model::Network> a, b;
        for (const model::Network& n : all) {
            if (random() % 2) a.push_back(n);
            if (random() % 2) b.push_back(n);
        }
        if (a.empty() || b.empty()) continue;
        const plan::Table from = plan::build_ruleset(a), to = plan::build_ruleset(b);
        const plan::TableDiff d = plan::diff_tables(from, to);
        if (d.replace) continue;  // e.g. the first NAT network: its hooked chains appear
        CHECK(canonical(apply(from, d)) == canonical(to));
        CHECK(plan::diff_tables(to, to).empty());
    }
}

TEST_CASE("Changed elements are removed and added again; changed declarations replace", "[table_diff]")
{
    plan::Table from("kvmnet", {plan::Chain{"c", "filter", "forward", 0, true, {}}},
                     {plan::Set{"m", {plan::SetType::ifname}, {plan::SetType::verdict}, 0, false, false, {}, false}});
    from.sets[0].elements = {{{"br0"}, {"jump a"}, "x", 0, 5}, {{"br1"}, {"jump b"}, "y", 0, 5}};
    plan::Table to = from;
    to.sets[0].elements[1].data = {"jump c"};
    const plan::TableDiff d = plan::diff_tables(from, to);
    REQUIRE(d.removed_elements.size() == 1);
    REQUIRE(d.added_elements.size() == 1);
    CHECK(d.removed_elements[0].elements[0].key == std::vector<std::string>{"br1"});
    CHECK(d.added_elements[0].elements[0].data == std::vector<std::string>{"jump c"});

    plan::Table resized = from;
    resized.sets[0].size = 10;
    CHECK(plan::diff_tables(from, resized).replace);
    plan::Table rehooked = from;
    rehooked.chains[0].priority = 10;
    CHECK(plan::diff_tables(from, rehooked).replace);
    plan::Table rules = from;
    rules.chains[0].rules.push_back(plan::Rule{{}, true, plan::Verdict::accept, "x"});
    const plan::TableDiff r = plan::diff_tables(from, rules);
    REQUIRE(r.changed_chains.size() == 1);
    CHECK(r.summary() == "1 chain(s) changed");
}

TEST_CASE("Element state follows element batches, so the next diff starts from them", "[table_diff]")
{
    const std::vector<model::Network> nets = nats(3);
    const plan::Table from = plan::build_ruleset(nets);
    plan::ElementState state = plan::element_state(from);
    // A forward added by AddForwards (an element batch, not a table commit).
    std::vector<model::Network> more = nets;
    model::PortForward extra = more[1].forwards[0];
    extra.host_port_first = extra.host_port_last = 20000;
    more[1].forwards.push_back(extra);
    const std::vector<plan::Set> sets = plan::forward_sets();
    std::vector<plan::ElementChange> changes;
    for (plan::SetElements& part : plan::forward_elements(extra, more[1].name)) {
        const auto set = std::find_if(sets.begin(), sets.end(), [&](const plan::Set& s) { return s.name == part.set; });
        changes.push_back({&*set, part.elements, true});
    }
    plan::apply_element_changes(state, changes);
    CHECK(plan::diff_tables(from, state, plan::build_ruleset(more)).empty());
    // Without it, the plan of `more` would add it again.
    CHECK(elements(plan::diff_tables(from, plan::build_ruleset(more)).added_elements) == 1);
}

namespace {

// Counts replaces and updates; each raises the generation as the kernel does.
class CountingFirewall : public kvmnet::testing::GenerationFirewall {
public:
    CountingFirewall() : GenerationFirewall(7) {}
    void replace_table(const plan::Table&) override { ++replaces, ++generation_; }
    void update_table(const plan::Table&, const plan::TableDiff& diff) override
    {
        ++updates, ++generation_;
        last_chains = diff.added_chains.size();
    }
    int replaces = 0, updates = 0;
    std::size_t last_chains = 0;
};

}  // namespace

TEST_CASE("CommittedTable sends diffs while the kernel has its table, and replaces after anyone else", "[table_diff]")
{
    kvmnet::testing::TempDir tmp;
    CountingFirewall firewall;
    core::CommittedTable committed(firewall, tmp.path + "/nftables.committed");
    std::vector<model::Network> nets = nats(2);
    CHECK(committed.apply(plan::build_ruleset(nets)));
    CHECK(firewall.replaces == 1);
    nets.push_back(numbered("nat", 50));
    CHECK(committed.apply(plan::build_ruleset(nets)));
    CHECK(firewall.updates == 1);
    CHECK(firewall.replaces == 1);
    CHECK(firewall.last_chains == 0);  // numbered("nat", 50) has no limits: elements only

    // `nft flush ruleset`, or anyone's commit: the whole table again (self-healing).
    firewall.foreign_commit();
    nets.pop_back();
    CHECK(committed.apply(plan::build_ruleset(nets)));
    CHECK(firewall.replaces == 2);
    CHECK(firewall.updates == 1);

    // A restarted daemon has no table in memory to diff against: it replaces.
    core::CommittedTable restarted(firewall, tmp.path + "/nftables.committed");
    nets.push_back(numbered("nat", 51));
    CHECK(restarted.apply(plan::build_ruleset(nets)));
    CHECK(firewall.replaces == 3);
    nets.push_back(numbered("nat", 52));
    CHECK(restarted.apply(plan::build_ruleset(nets)));
    CHECK(firewall.updates == 2);
}

}  // namespace unit_test_table_diff
