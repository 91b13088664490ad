// Unit tests of a document save made off the event loop (issue 12, the D-Bus
// load): store::DurableWriter::replace_made makes the new contents and
// writes the temporary on its own thread, a write failing there (a full
// disk) fails the batch and reports the file lost with its old contents in
// place, and the journal begun by such a save names the document by its
// revision, which a daemon starting after a crash recognises.
#include "model/error.hpp"
#include "model/network.hpp"
#include "store/durable.hpp"
#include "store/files.hpp"
#include "store/store.hpp"
#include "store_util.hpp"
#include "temp_dir.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <poll.h>
#include <string>
#include <thread>
#include <vector>

namespace unit_test_save_off_loop {

using kvmnet::Error;
using kvmnet::ErrorKind;
using kvmnet::store::DurableWriter;
using kvmnet::store::Layout;
using kvmnet::store::Store;
using kvmnet::testing::TempDir;

namespace {

// Runs what the writer finished, as the event loop does when its fd is readable.
void complete_when_done(DurableWriter& writer)
{
    pollfd p{writer.completion_fd(), POLLIN, 0};
    REQUIRE(::poll(&p, 1, 10000) == 1);
    writer.complete();
}

}  // namespace

TEST_CASE("replace_made makes the contents on the writer's thread", "[durable]")
{
    TempDir dir;
    const std::string path = dir.path + "/doc.json";
    DurableWriter writer;
    writer.start_thread();
    std::thread::id made_on;
    writer.replace_made(
        [&made_on] {
            made_on = std::this_thread::get_id();
            return std::string("new\n");
        },
        path + ".tmp.1", path);
    bool done = false;
    writer.when_durable([&done](std::exception_ptr error) { done = !error; });
    writer.submit();
    complete_when_done(writer);
    CHECK(done);
    CHECK(made_on != std::thread::id{});
    CHECK(made_on != std::this_thread::get_id());
    CHECK(kvmnet::store::read_file(path) == "new\n");
}

TEST_CASE("A write failing on the writer's thread fails the batch and leaves the old contents", "[durable]")
{
    TempDir dir;
    const std::string path = dir.path + "/doc.json";
    kvmnet::store::write_atomic(path, "old\n");
    DurableWriter writer;
    writer.start_thread();
    std::vector<std::string> lost;
    writer.on_lost([&lost](const std::string& p, std::exception_ptr) { lost.push_back(p); });
    writer.replace_made(
        []() -> std::string { throw Error(ErrorKind::Kernel, "cannot write: No space left on device"); },
        path + ".tmp.1", path);
    std::string heard;
    writer.when_durable([&heard](std::exception_ptr error) {
        try {
            if (error) std::rethrow_exception(error);
        } catch (const Error& e) {
            heard = e.what();
        }
    });
    writer.submit();
    complete_when_done(writer);
    CHECK(heard == "cannot write: No space left on device");
    CHECK(lost == std::vector<std::string>{path});
    CHECK(kvmnet::store::read_file(path) == "old\n");
    CHECK_FALSE(std::filesystem::exists(path + ".tmp.1"));
}

TEST_CASE("Without a thread replace_made writes at once and throws what the write throws", "[durable]")
{
    TempDir dir;
    const std::string path = dir.path + "/doc.json";
    DurableWriter writer;
    writer.replace_made([] { return std::string("now\n"); }, path + ".tmp.1", path);
    CHECK(kvmnet::store::read_file(path) == "now\n");
    CHECK_THROWS_AS(
        writer.replace_made([]() -> std::string { throw Error(ErrorKind::Kernel, "full"); }, path + ".tmp.2", path),
        Error);
    CHECK(kvmnet::store::read_file(path) == "now\n");
}

TEST_CASE("A journal begun while a save is pending names the document by its revision, and a crash keeps its lines",
          "[journal]")
{
    TempDir state;
    Store store(Layout(state.path, ""));
    store.durable().start_thread();
    auto n = kvmnet::model::parse_network(nlohmann::json{
        {"name", "default"}, {"mode", "nat"}, {"bridge", "kvmbr0"}, {"ipv4", {{"address", "192.168.122.1/24"}}}}
                                              .dump());
    store.save(n);
    store.durable().flush();
    store.durable().complete();
    n.autostart = true;
    // Its text made on the writer's thread (as SetAutostart's): not handed
    // to the writer yet, pending.
    store.save(n, "", Store::Text::on_writer);
    const auto forward = kvmnet::model::parse_forward(
        nlohmann::json{{"proto", "tcp"}, {"host_port", 8080}, {"guest", "192.168.122.10"}, {"guest_port", 80}});
    store.journal_add("default", {forward});
    // The line went to the rotated journal, headed by the new document's revision.
    std::string header;
    for (const auto& entry : std::filesystem::directory_iterator(state.path + "/networks")) {
        const std::string file = entry.path().filename().string();
        if (file.rfind("default.forwards.", 0) == 0) {
            const auto text = kvmnet::store::read_file(entry.path().string());
            REQUIRE(text);
            header = text->substr(0, text->find('\n'));
        }
    }
    CHECK(header == nlohmann::json{{"revision", kvmnet::store::revision_of(n)}}.dump());
    store.durable().flush();  // the document reaches the disk; the loop never renamed the journal: a crash now
    std::vector<std::string> problems;
    Store after(Layout(state.path, ""));
    const auto loaded = kvmnet::test::load_all(after, problems);
    CHECK(problems.empty());
    REQUIRE(loaded.size() == 1);
    CHECK(loaded[0].autostart);
    REQUIRE(loaded[0].forwards.size() == 1);
    CHECK(loaded[0].forwards[0].host_port_first == 8080);
}

}  // namespace unit_test_save_off_loop
