// CommittedTable's record kept per part (issue 17 item 3): a commit of
// differences updates the record's sums by what it adds and removes, and
// the result is what a restarted daemon computes from the whole table, so
// that it still adopts the table without a write. And what one more
// network's start sends to the kernel does not grow with the networks.
#include "core/committed_table.hpp"
#include "fakes/committed_helpers.hpp"
#include "model/network.hpp"
#include "plan/planner.hpp"
#include "temp_dir.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace unit_test_committed_parts {

using namespace kvmnet;

namespace {

using kvmnet::testing::TempDir;

// Counts what each transaction carries, as the kernel adapter would send it.
class CountingFirewall : public kvmnet::testing::GenerationFirewall {
public:
    CountingFirewall() : GenerationFirewall(7) {}
    void replace_table(const plan::Table& t) override
    {
        ++replaced;
        sent_chains = t.chains.size();
        sent_elements = 0;
        for (const plan::Set& s : t.sets)
            sent_elements += s.elements.size();
        ++generation_;
    }
    void update_table(const plan::Table&, const plan::TableDiff& diff) override
    {
        ++updated;
        sent_chains = diff.added_chains.size() + diff.changed_chains.size() + diff.removed_chains.size();
        sent_elements = 0;
        for (const auto* list : {&diff.added_elements, &diff.removed_elements})
            for (const plan::ElementChange& c : *list)
                sent_elements += c.elements.size();
        for (const plan::Set* s : diff.added_sets)
            sent_elements += s->elements.size();
        ++generation_;
    }

    int replaced = 0, updated = 0;
    std::size_t sent_chains = 0, sent_elements = 0;
};

model::Network nat(int i, int forwards = 0, std::optional<int> rate = std::nullopt)
{
    const std::string subnet = "10." + std::to_string(100 + i / 250) + "." + std::to_string(i % 250) + ".";
    nlohmann::json f = nlohmann::json::array();
    for (int p = 0; p < forwards; ++p)
        f.push_back({{"proto", "tcp"}, {"host_port", 10000 + i * 10 + p}, {"guest", subnet + "5"}, {"guest_port", 22}});
    nlohmann::json doc{{"name", "n" + std::to_string(i)},
                       {"mode", "nat"},
                       {"bridge", "kvn" + std::to_string(i)},
                       {"ipv4", {{"address", subnet + "1/24"}}},
                       {"forwards", f}};
    if (rate) doc["limits"] = {{"new_connections_per_second", *rate}};
    return model::parse_network(doc.dump());
}

std::vector<model::Network> first(int n)
{
    std::vector<model::Network> v;
    for (int i = 1; i <= n; ++i)
        v.push_back(nat(i, i % 3));
    return v;
}

}  // namespace

TEST_CASE("CommittedTable: a record kept by differences is the whole table's", "[committed]")
{
    TempDir tmp;
    const std::string path = tmp.path + "/nftables.committed";
    CountingFirewall firewall;
    core::CommittedTable committed(firewall, path);
    std::vector<model::Network> running = first(5);
    CHECK(committed.apply(plan::build_ruleset(running)));
    CHECK(firewall.replaced == 1);

    SECTION("one more network, one fewer, a changed one, forwards of one")
    {
        running.push_back(nat(6, 2));
        CHECK(committed.apply(plan::build_ruleset(running)));
        running.erase(running.begin() + 1);
        CHECK(committed.apply(plan::build_ruleset(running)));
        running[0] = nat(1, 4, 100);
        CHECK(committed.apply(plan::build_ruleset(running)));
        CHECK(firewall.replaced == 1);
        CHECK(firewall.updated == 3);
        CHECK_FALSE(committed.apply(plan::build_ruleset(running)));
        // A restarted daemon computes the record from the whole table.
        core::CommittedTable restarted(firewall, path);
        CHECK_FALSE(restarted.apply(plan::build_ruleset(running)));
        CHECK(firewall.replaced == 1);
    }
    SECTION("down to the last NAT network and back (sets removed and added)")
    {
        CHECK(committed.apply(plan::build_ruleset({running[0]})));
        model::Network isolated = nat(50);
        isolated.mode = model::Mode::isolated;
        CHECK(committed.apply(plan::build_ruleset({isolated})));
        CHECK(committed.apply(plan::build_ruleset({isolated, running[2]})));
        core::CommittedTable restarted(firewall, path);
        CHECK_FALSE(restarted.apply(plan::build_ruleset({isolated, running[2]})));
    }
}

TEST_CASE("CommittedTable: one more network's commit does not grow with the networks", "[committed][scale]")
{
    const auto one_more = [](int networks) {
        TempDir tmp;
        CountingFirewall firewall;
        core::CommittedTable committed(firewall, tmp.path + "/nftables.committed");
        std::vector<model::Network> running = first(networks);
        committed.apply(plan::build_ruleset(running));
        running.push_back(nat(networks + 1, 2));
        CHECK(committed.apply(plan::build_ruleset(running)));
        CHECK(firewall.updated == 1);
        return std::make_pair(firewall.sent_chains, firewall.sent_elements);
    };
    const auto at_few = one_more(3);
    const auto at_many = one_more(300);
    CHECK(at_few.first == 0);  // no limits: its elements only
    CHECK(at_few.second > 0);
    CHECK(at_many == at_few);
}

}  // namespace unit_test_committed_parts
