// CommittedTable: an apply that finds the kernel exactly as planned writes
// nothing; anything else (a foreign commit, a change of plan) writes.
#include "core/committed_table.hpp"
#include "fakes/committed_helpers.hpp"
#include "model/forward.hpp"
#include "model/network.hpp"
#include "plan/planner.hpp"
#include "store/files.hpp"
#include "temp_dir.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <map>
#include <stdlib.h>

namespace unit_test_committed_table {

namespace fs = std::filesystem;
using namespace kvmnet;

namespace {

using kvmnet::testing::TempDir;

// Counts our writes; `racing_commits` of another process land during the
// next one; `known` false: the kernel reports no generation.
class WriteCountingFirewall : public kvmnet::testing::GenerationFirewall {
public:
    WriteCountingFirewall() : GenerationFirewall(41) {}
    void replace_table(const plan::Table&) override { commit(); }
    void delete_table(const std::string&) override { commit(); }
    std::optional<std::uint32_t> generation() override
    {
        if (!known) return std::nullopt;
        return generation_;
    }

    int writes = 0;
    bool known = true;
    int racing_commits = 0;

private:
    void commit()
    {
        ++writes;
        generation_ += 1 + racing_commits;
        racing_commits = 0;
    }
};

model::Network network_with(const std::vector<int>& ports) { return kvmnet::testing::web_forwarding(ports); }

std::vector<plan::ElementChange> changes_for(const std::vector<plan::Set>& sets, const model::Network& n,
                                             std::size_t from, bool add)
{
    return kvmnet::testing::forward_changes(sets, n, from, add);
}

}  // namespace

TEST_CASE("CommittedTable writes only what the kernel does not have already", "[committed]")
{
    TempDir tmp;
    WriteCountingFirewall firewall;
    core::CommittedTable committed(firewall, tmp.path + "/nftables.committed");
    const plan::Table table = plan::build_ruleset({network_with({80})});

    CHECK(committed.apply(table));
    CHECK(firewall.writes == 1);

    SECTION("the same table again (a restarted daemon adopting) is not written")
    {
        core::CommittedTable restarted(firewall, tmp.path + "/nftables.committed");
        CHECK_FALSE(restarted.apply(table));
        CHECK(firewall.writes == 1);
    }
    SECTION("a different table is written")
    {
        CHECK(committed.apply(plan::build_ruleset({network_with({80, 81})})));
        CHECK(committed.apply(std::nullopt));
        CHECK_FALSE(committed.apply(std::nullopt));
        CHECK(firewall.writes == 3);
    }
    SECTION("any foreign commit since ours makes the next apply write")
    {
        firewall.foreign_commit();
        CHECK(committed.apply(table));
        CHECK_FALSE(committed.apply(table));
    }
    SECTION("a commit that another one raced is not recorded")
    {
        firewall.racing_commits = 1;
        CHECK(committed.apply(plan::build_ruleset({network_with({80, 81})})));
        CHECK(committed.apply(plan::build_ruleset({network_with({80, 81})})));
        CHECK_FALSE(committed.apply(plan::build_ruleset({network_with({80, 81})})));
    }
    SECTION("unchanged since our commit until anyone else commits (lost notifications are checked so)")
    {
        CHECK(committed.unchanged_since_commit());
        const auto sets = plan::forward_sets();
        committed.change_elements(changes_for(sets, network_with({80, 81, 82}), 1, true));
        CHECK(committed.unchanged_since_commit());
        firewall.foreign_commit();
        CHECK_FALSE(committed.unchanged_since_commit());
    }
    SECTION("without a generation every apply writes")
    {
        firewall.known = false;
        CHECK(committed.apply(table));
        CHECK(committed.apply(table));
    }
    SECTION("element batches keep the record: the full plan after them is not written")
    {
        const auto sets = plan::forward_sets();
        const model::Network more = network_with({80, 81, 82});
        committed.change_elements(changes_for(sets, more, 1, true));
        CHECK_FALSE(committed.apply(plan::build_ruleset({more})));
        // The record on disk, not only the kept state: a restarted daemon adopts.
        CHECK_FALSE(
            core::CommittedTable(firewall, tmp.path + "/nftables.committed").apply(plan::build_ruleset({more})));
        // Removing one: the plan without it matches; the plan with it does not.
        const model::Network fewer = network_with({80, 81});
        committed.change_elements(changes_for(sets, more, 2, false));
        CHECK_FALSE(committed.apply(plan::build_ruleset({fewer})));
        CHECK_FALSE(
            core::CommittedTable(firewall, tmp.path + "/nftables.committed").apply(plan::build_ruleset({fewer})));
        CHECK(committed.apply(plan::build_ruleset({more})));
    }
    SECTION("an element batch after a foreign commit drops the record")
    {
        firewall.foreign_commit();
        const model::Network more = network_with({80, 81});
        committed.change_elements(changes_for(plan::forward_sets(), more, 1, true));
        CHECK(committed.apply(plan::build_ruleset({more})));
    }
}

TEST_CASE("CommittedTable reads the record an older daemon wrote as a line of fields", "[committed]")
{
    // A daemon upgrade restarts over running networks: a record it cannot
    // read would rewrite the table (counters and meters lost).
    TempDir tmp;
    WriteCountingFirewall firewall;
    const std::string path = tmp.path + "/nftables.committed";
    const plan::Table table = plan::build_ruleset({network_with({80})});
    core::CommittedTable(firewall, path).apply(table);
    REQUIRE(firewall.writes == 1);
    const auto record = nlohmann::json::parse(*store::read_file(path)).get<core::CommittedRecord>();
    char hex[64];
    std::snprintf(hex, sizeof hex, "%016llx %016llx", static_cast<unsigned long long>(record.rules),
                  static_cast<unsigned long long>(record.elements));
    const std::string old = record.netns + " " + std::to_string(record.generation) + " " + hex + "\n";
    CHECK(core::parse_committed_record(old) == record);

    store::write_replace(path, old, 0644);
    core::CommittedTable upgraded(firewall, path);
    CHECK(upgraded.unchanged_since_commit());
    CHECK_FALSE(upgraded.apply(table));
    CHECK(firewall.writes == 1);

    SECTION("no table")
    {
        core::CommittedRecord none{record.netns, record.generation};
        CHECK(core::parse_committed_record(record.netns + " " + std::to_string(record.generation) + " absent\n") ==
              none);
    }
    SECTION("anything else is no record")
    {
        CHECK_FALSE(core::parse_committed_record(""));
        CHECK_FALSE(core::parse_committed_record(record.netns + " 12x 00 00"));
        CHECK_FALSE(core::parse_committed_record(record.netns + " 12 zz 00"));
        CHECK_FALSE(core::parse_committed_record(record.netns + " 12 00"));
        CHECK_FALSE(core::parse_committed_record(record.netns + " 12 00 00 00"));
    }
}

}  // namespace unit_test_committed_table
