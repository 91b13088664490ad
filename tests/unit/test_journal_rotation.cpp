// Unit tests of the forwards journal's rotation at each save (store/store.hpp):
// a line appended while a save waits for its fsync neither waits for it nor
// is lost with the old journal, and a crash at each step of the save - before
// the document's rename, between the rename and the new journal's first
// line, before the old journal is removed - loads exactly the document that
// survived with the lines written against it. A crash is a copy of the state
// directory taken while the writer's thread is held at that step.
#include "model/error.hpp"
#include "model/network.hpp"
#include "store/durable.hpp"
#include "store/files.hpp"
#include "store/store.hpp"
#include "store_util.hpp"
#include "temp_dir.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <poll.h>
#include <string>
#include <unistd.h>
#include <vector>

namespace unit_test_journal_rotation {

namespace fs = std::filesystem;
using kvmnet::Error;
using kvmnet::ErrorKind;
using kvmnet::model::Network;
using kvmnet::store::DurableWriter;
using kvmnet::store::Layout;
using kvmnet::store::Store;
using kvmnet::testing::TempDir;

namespace {

// Holds the writer's thread at a step of a batch until released: before the
// rename (in the file sync) or after it (in the directory sync, before the
// old journals are removed). `fail` fails the next file sync.
class HoldingSyncer final : public kvmnet::store::Syncer {
public:
    enum class Step { none, before_rename, after_rename };
    std::atomic<bool> fail{false};

    void sync_file(int, const std::string& path) override
    {
        wait_at(Step::before_rename);
        if (fail) throw Error(ErrorKind::Kernel, "cannot sync " + path + ": Input/output error");
    }
    void sync_directory(const std::string&) override { wait_at(Step::after_rename); }

    void hold(Step step)
    {
        std::lock_guard lock(mutex_);
        hold_ = step;
    }
    void wait_held()
    {
        std::unique_lock lock(mutex_);
        changed_.wait(lock, [&] { return held_; });
    }
    void release()
    {
        std::lock_guard lock(mutex_);
        hold_ = Step::none;
        changed_.notify_all();
    }

private:
    void wait_at(Step step)
    {
        std::unique_lock lock(mutex_);
        if (hold_ != step) return;
        held_ = true;
        changed_.notify_all();
        changed_.wait(lock, [&] { return hold_ != step; });
        held_ = false;
    }

    std::mutex mutex_;
    std::condition_variable changed_;
    Step hold_ = Step::none;
    bool held_ = false;
};

Network network(bool autostart)
{
    return kvmnet::model::parse_network(nlohmann::json{
        {"name", "default"},
        {"mode", "nat"},
        {"bridge", "kvmbr0"},
        {"autostart", autostart},
        {"ipv4",
         {{"address", "192.168.122.1/24"}}}}.dump());
}

kvmnet::model::PortForward forward(int port)
{
    return kvmnet::model::parse_forward(
        nlohmann::json{{"proto", "tcp"}, {"host_port", port}, {"guest", "192.168.122.10"}, {"guest_port", 80}});
}

void wait_and_complete(DurableWriter& writer)
{
    pollfd p{writer.completion_fd(), POLLIN, 0};
    REQUIRE(::poll(&p, 1, 10000) == 1);
    writer.complete();
}

// Saves `n` and waits, as the event loop would, until it is durable.
void save_durably(Store& store, const Network& n)
{
    store.save(n);
    store.durable().submit();
    wait_and_complete(store.durable());
}

struct Loaded {
    bool autostart = false;
    std::vector<int> ports;
    std::vector<std::string> problems;
};

// What a daemon starting on `state` loads (a store of its own, no thread).
Loaded load(const std::string& state)
{
    Store store(Layout(state, ""));
    Loaded out;
    const auto networks = kvmnet::test::load_all(store, out.problems);
    REQUIRE(networks.size() == 1);
    out.autostart = networks[0].autostart;
    for (const auto& f : networks[0].forwards)
        out.ports.push_back(f.host_port_first);
    return out;
}

// The state directory as a crash now would leave it.
std::string crash_copy(const std::string& state, const TempDir& into)
{
    fs::copy(state, into.path + "/state", fs::copy_options::recursive);
    return into.path + "/state";
}

std::vector<std::string> journals(const std::string& state)
{
    std::vector<std::string> found;
    for (const auto& entry : fs::directory_iterator(state + "/networks"))
        if (entry.path().filename().string().find(".forwards") != std::string::npos)
            found.push_back(entry.path().filename().string());
    std::sort(found.begin(), found.end());
    return found;
}

// A store syncing on its thread, its document durable (autostart off, no
// forwards), and forward 8001 in its journal.
struct DurableWithLine {
    TempDir tmp;
    HoldingSyncer syncer;
    Store store{Layout(tmp.path, ""), &syncer};

    DurableWithLine()
    {
        store.durable().start_thread();
        save_durably(store, network(false));
        store.journal_add("default", {forward(8001)});
    }
};

// A document with forward 8001 stored and durable, 8002 in its journal; the
// save of `next` (autostart on, holding both, minus 8001 when `drop_8001`)
// is under way, the writer held at `step`, and 8003 was added meanwhile.
struct SaveUnderWay {
    TempDir tmp;
    HoldingSyncer syncer;
    Store store{Layout(tmp.path, ""), &syncer};

    explicit SaveUnderWay(HoldingSyncer::Step step, bool drop_8001 = false)
    {
        store.durable().start_thread();
        Network first = network(false);
        first.forwards.push_back(forward(8001));
        save_durably(store, first);
        store.journal_add("default", {forward(8002)});

        Network next = network(true);
        if (!drop_8001) next.forwards.push_back(forward(8001));
        next.forwards.push_back(forward(8002));
        syncer.hold(step);
        store.save(next);
        store.durable().submit();
        syncer.wait_held();
        store.journal_add("default", {forward(8003)});  // held writer: returns all the same
    }
    ~SaveUnderWay()
    {
        syncer.release();
        store.durable().flush();
    }
};

}  // namespace

TEST_CASE("A forward line during a save waits for nothing and is kept once the save is durable", "[journal]")
{
    SaveUnderWay s(HoldingSyncer::Step::before_rename);
    CHECK(s.store.durable().pending(s.store.path_of("default")));
    s.syncer.release();
    wait_and_complete(s.store.durable());
    // Back to one journal under its steady name, continuing the new document.
    CHECK(journals(s.tmp.path) == std::vector<std::string>{"default.forwards"});
    s.store.journal_add("default", {forward(8004)});
    const Loaded loaded = load(s.tmp.path);
    CHECK(loaded.autostart);
    CHECK(loaded.ports == std::vector<int>{8001, 8002, 8003, 8004});
    CHECK(loaded.problems.empty());
}

TEST_CASE("A crash before the document's rename loads the old document and its journal", "[journal]")
{
    SaveUnderWay s(HoldingSyncer::Step::before_rename, true);
    TempDir crash;
    const Loaded loaded = load(crash_copy(s.tmp.path, crash));
    // 8003 was added against the document that never became durable (its
    // reply waited for that save): lost with it, as the save is.
    CHECK_FALSE(loaded.autostart);
    CHECK(loaded.ports == std::vector<int>{8001, 8002});
    CHECK(loaded.problems.empty());
}

TEST_CASE("A crash after the rename, before the old journal is removed, does not replay it", "[journal]")
{
    // The new document dropped 8001; the old journal may not bring it back
    // nor lose the line that continues the new document.
    SaveUnderWay s(HoldingSyncer::Step::after_rename, true);
    TempDir crash;
    const std::string state = crash_copy(s.tmp.path, crash);
    CHECK(journals(state).size() == 2);  // both still there
    const Loaded loaded = load(state);
    CHECK(loaded.autostart);
    CHECK(loaded.ports == std::vector<int>{8002, 8003});
    CHECK(loaded.problems.empty());
}

TEST_CASE("A crash between the rename and the new journal's first line loads the new document", "[journal]")
{
    DurableWithLine s;
    auto& [tmp, syncer, store] = s;
    Network next = network(true);  // drops 8001
    syncer.hold(HoldingSyncer::Step::after_rename);
    store.save(next);
    store.durable().submit();
    syncer.wait_held();
    {
        TempDir crash;
        const Loaded loaded = load(crash_copy(tmp.path, crash));
        CHECK(loaded.autostart);
        CHECK(loaded.ports.empty());
    }
    syncer.release();
    wait_and_complete(store.durable());
    {
        // Durable, the old journal removed, no line yet: the same.
        TempDir crash;
        const std::string state = crash_copy(tmp.path, crash);
        CHECK(journals(state).empty());
        const Loaded loaded = load(state);
        CHECK(loaded.autostart);
        CHECK(loaded.ports.empty());
    }
    // The first line after it names the new document.
    store.journal_add("default", {forward(8002)});
    const Loaded loaded = load(tmp.path);
    CHECK(loaded.ports == std::vector<int>{8002});
}

TEST_CASE("Lines after a failed save continue the document still on disk", "[journal]")
{
    DurableWithLine s;
    auto& [tmp, syncer, store] = s;
    syncer.fail = true;
    Network next = network(true);
    next.forwards.push_back(forward(8001));
    save_durably(store, next);
    syncer.fail = false;
    store.journal_add("default", {forward(8002)});
    const Loaded loaded = load(tmp.path);
    CHECK_FALSE(loaded.autostart);
    CHECK(loaded.ports == std::vector<int>{8001, 8002});
    CHECK(loaded.problems.empty());
    // And the next save that succeeds folds both journals and removes them.
    Network last = network(true);
    last.forwards = {forward(8001), forward(8002)};
    save_durably(store, last);
    CHECK(journals(tmp.path).empty());
    CHECK(load(tmp.path).ports == std::vector<int>{8001, 8002});
}

TEST_CASE("A line written while a save was pending outlives that save's failure", "[journal]")
{
    // 8003's call was answered (a reply waits for the batches before it,
    // not for their success): when the save it continued fails, the line
    // follows the document still on disk, once, and the old journal's
    // 8002 is not replayed twice.
    SaveUnderWay s(HoldingSyncer::Step::before_rename);
    s.syncer.fail = true;
    s.syncer.release();
    wait_and_complete(s.store.durable());
    s.syncer.fail = false;
    Loaded loaded = load(s.tmp.path);
    CHECK_FALSE(loaded.autostart);
    CHECK(loaded.ports == std::vector<int>{8001, 8002, 8003});
    CHECK(loaded.problems.empty());
    // Lines after it go on from there.
    s.store.journal_add("default", {forward(8004)});
    loaded = load(s.tmp.path);
    CHECK(loaded.ports == std::vector<int>{8001, 8002, 8003, 8004});
}

TEST_CASE("A save of a text equal to a pending journal's document waits for the saves before it", "[journal]")
{
    // Journals naming A, then B, then A again, with a crash leaving the
    // first A: which A-journal continues it could not be told. The store
    // lets the earlier saves finish first, which removes the first journal.
    DurableWithLine s;  // default.forwards names A, the document
    auto& [tmp, syncer, store] = s;
    Network b = network(true);
    b.forwards.push_back(forward(8001));
    store.save(b);
    store.journal_remove("default", kvmnet::model::make_forward_key("tcp", "", 8001));
    store.save(network(false));  // A's text again
    CHECK_FALSE(fs::exists(tmp.path + "/networks/default.forwards"));
    store.durable().flush();
    store.durable().complete();
    const Loaded loaded = load(tmp.path);
    CHECK_FALSE(loaded.autostart);
    CHECK(loaded.ports.empty());
}

TEST_CASE("Journals of one document replay in order: the steady one, then by generation", "[journal]")
{
    TempDir tmp;
    {
        Store store(Layout(tmp.path, ""));
        store.save(network(false));
        store.journal_add("default", {forward(8001)});
    }
    const std::string steady = tmp.path + "/networks/default.forwards";
    const std::string header =
        kvmnet::store::read_file(steady)->substr(0, kvmnet::store::read_file(steady)->find('\n') + 1);
    kvmnet::store::write_replace(
        tmp.path + "/networks/default.forwards.3",
        header + R"({"remove":{"host_address":"","host_port":8001,"proto":"tcp"}})" + "\n" +
            R"({"add":[{"guest":"192.168.122.10","guest_port":80,"host_port":8009,"proto":"tcp"}]})" + "\n");
    CHECK(load(tmp.path).ports == std::vector<int>{8009});
    // A store opened there goes on from generation 3 and appends to the last one.
    Store store(Layout(tmp.path, ""));
    std::vector<std::string> problems;
    store.load(problems);
    store.journal_add("default", {forward(8010)});
    CHECK(kvmnet::store::read_file(tmp.path + "/networks/default.forwards.3")->find("8010") != std::string::npos);
    CHECK(load(tmp.path).ports == std::vector<int>{8009, 8010});
}

}  // namespace unit_test_journal_rotation
