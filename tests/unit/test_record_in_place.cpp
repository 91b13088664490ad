// The committed-table record is rewritten in place at each element batch
// (store::overwrite): no temporary file and no new inode per forward change,
// and a record torn by a crash reads as no record at all.
#include "core/committed_table.hpp"
#include "fakes/committed_helpers.hpp"
#include "plan/planner.hpp"
#include "store/files.hpp"
#include "temp_dir.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <sys/stat.h>

namespace unit_test_record_in_place {

using namespace kvmnet;
using kvmnet::testing::TempDir;

namespace {

ino_t inode_of(const std::string& path)
{
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    return st.st_ino;
}

std::size_t entries_in(const std::string& dir)
{
    std::size_t n = 0;
    for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator(dir))
        ++n;
    return n;
}

}  // namespace

TEST_CASE("store::overwrite rewrites a file in place, longer or shorter", "[files]")
{
    TempDir tmp;
    const std::string path = tmp.path + "/record";
    store::overwrite(path, "first contents\n");
    const ino_t inode = inode_of(path);
    store::overwrite(path, "a longer second contents\n");
    CHECK(store::read_file(path) == "a longer second contents\n");
    store::overwrite(path, "short\n");
    CHECK(store::read_file(path) == "short\n");
    CHECK(inode_of(path) == inode);
    CHECK(entries_in(tmp.path) == 1);  // no temporary left beside it
}

TEST_CASE("an element batch rewrites the committed record in place", "[committed]")
{
    TempDir tmp;
    kvmnet::testing::GenerationFirewall firewall(7);
    const std::string path = tmp.path + "/nftables.committed";
    core::CommittedTable committed(firewall, path);
    REQUIRE(committed.apply(plan::build_ruleset({kvmnet::testing::web_forwarding({80})})));
    const ino_t inode = inode_of(path);
    const auto before = core::parse_committed_record(*store::read_file(path));
    REQUIRE(before);

    const auto sets = plan::forward_sets();
    const model::Network more = kvmnet::testing::web_forwarding({80, 81, 82});
    committed.change_elements(kvmnet::testing::forward_changes(sets, more, 1, true));
    const auto after = core::parse_committed_record(*store::read_file(path));
    REQUIRE(after);
    CHECK(after->generation == before->generation + 1);
    CHECK(after->elements != before->elements);
    CHECK(inode_of(path) == inode);
    CHECK(entries_in(tmp.path) == 1);
    // What the record says is what a restarted daemon adopts.
    CHECK_FALSE(core::CommittedTable(firewall, path).apply(plan::build_ruleset({more})));
}

TEST_CASE("a committed record torn between its write and its cut is no record", "[committed]")
{
    // overwrite() of a shorter record, cut short by a crash before the
    // truncation: the new record followed by the old one's tail.
    core::CommittedRecord longer{"64769:4026531840", 123456, true, 0xffffffffffffffffull, 0xffffffffffffffffull};
    core::CommittedRecord shorter{"64769:4026531840", 123457, true, 1, 2};
    const std::string old_text = nlohmann::json(longer).dump() + "\n";
    const std::string new_text = nlohmann::json(shorter).dump() + "\n";
    REQUIRE(new_text.size() < old_text.size());
    CHECK(core::parse_committed_record(new_text) == shorter);
    CHECK_FALSE(core::parse_committed_record(new_text + old_text.substr(new_text.size())));
}

}  // namespace unit_test_record_in_place
