// Unit tests of store/durable.hpp through store::Store: documents saved in
// one loop turn are synced as one batch (each file and each directory once,
// counted by a fake Syncer), what is saved while a batch syncs goes into the
// next, a failed sync reaches the waiting caller and leaves the old document,
// and the forwards journal never loses a line to a save still syncing.
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

namespace unit_test_durable_writes {

namespace fs = std::filesystem;
using kvmnet::Error;
using kvmnet::ErrorKind;
using kvmnet::model::Network;
using kvmnet::store::DurableWriter;
using kvmnet::store::Layout;
using kvmnet::store::Store;
using kvmnet::testing::TempDir;

namespace {

// Counts the syncs; `fail` makes the next file sync fail as fsync(2) with
// EIO would; `gate` holds the thread in its next file sync until opened.
class CountingSyncer final : public kvmnet::store::Syncer {
public:
    std::atomic<int> files{0};
    std::atomic<int> directories{0};
    std::atomic<bool> fail{false};

    void sync_file(int fd, const std::string& path) override
    {
        {
            std::unique_lock lock(mutex_);
            held_ = closed_;
            changed_.notify_all();
            changed_.wait(lock, [&] { return !closed_; });
            held_ = false;
        }
        if (::fsync(fd) != 0) throw Error(ErrorKind::Kernel, "cannot sync " + path);
        if (fail) throw Error(ErrorKind::Kernel, "cannot sync " + path + ": Input/output error");
        ++files;
    }
    void sync_directory(const std::string&) override { ++directories; }

    void close_gate()
    {
        std::lock_guard lock(mutex_);
        closed_ = true;
    }
    // Waits until the thread is held at the gate.
    void wait_held()
    {
        std::unique_lock lock(mutex_);
        changed_.wait(lock, [&] { return held_; });
    }
    void open_gate()
    {
        std::lock_guard lock(mutex_);
        closed_ = false;
        changed_.notify_all();
    }

private:
    std::mutex mutex_;
    std::condition_variable changed_;
    bool closed_ = false;
    bool held_ = false;
};

Network network(bool autostart, int mtu = 1500)
{
    return kvmnet::model::parse_network(nlohmann::json{
        {"name", "default"},
        {"mode", "nat"},
        {"bridge", "kvmbr0"},
        {"autostart", autostart},
        {"mtu", mtu},
        {"ipv4",
         {{"address", "192.168.122.1/24"}}}}.dump());
}

Network other()
{
    return kvmnet::model::parse_network(
        R"({"name": "lab", "mode": "isolated", "bridge": "kvmbr1", "ipv4": {"address": "10.10.0.1/24"}})");
}

// What the event loop does when completion_fd() is readable.
void wait_and_complete(DurableWriter& writer)
{
    pollfd p{writer.completion_fd(), POLLIN, 0};
    REQUIRE(::poll(&p, 1, 10000) == 1);
    writer.complete();
}

std::vector<std::string> temporaries(const std::string& state)
{
    std::vector<std::string> found;
    for (const auto& entry : fs::directory_iterator(state + "/networks"))
        if (entry.path().filename().string().find(".tmp") != std::string::npos)
            found.push_back(entry.path().filename().string());
    return found;
}

Network stored(const Store& store, const std::string& name)
{
    std::vector<std::string> problems;
    for (Network& n : kvmnet::test::load_all(store, problems))
        if (n.name == name) return n;
    FAIL("network " << name << " not stored");
    return {};
}

}  // namespace

TEST_CASE("Saves of one loop turn are synced as one batch: each document once, the directory once", "[durable]")
{
    TempDir tmp;
    CountingSyncer syncer;
    Store store(Layout(tmp.path, ""), &syncer);
    store.durable().start_thread();

    for (int mtu = 1400; mtu < 1405; ++mtu)
        store.save(network(true, mtu));
    store.save(other());
    bool durable = false;
    store.durable().when_durable([&](std::exception_ptr error) {
        CHECK_FALSE(error);
        durable = true;
    });
    CHECK(store.durable().pending(store.path_of("default")));
    CHECK_FALSE(durable);
    CHECK(syncer.files == 0);  // nothing synced before the turn ends

    store.durable().submit();  // the end of the loop turn
    wait_and_complete(store.durable());
    CHECK(durable);
    CHECK(syncer.files == 2);  // six saves, two documents
    CHECK(syncer.directories == 1);
    CHECK_FALSE(store.durable().pending(store.path_of("default")));
    CHECK(temporaries(tmp.path).empty());
    CHECK(stored(store, "default").mtu == 1404);
    CHECK(stored(store, "lab") == other());
}

TEST_CASE("What is saved while a batch syncs goes into the next batch, together", "[durable]")
{
    TempDir tmp;
    CountingSyncer syncer;
    Store store(Layout(tmp.path, ""), &syncer);
    store.durable().start_thread();

    syncer.close_gate();
    store.save(network(false));
    std::vector<int> order;
    store.durable().when_durable([&](std::exception_ptr) { order.push_back(1); });
    store.durable().submit();
    syncer.wait_held();  // the first batch is syncing

    store.save(network(true, 1400));
    store.durable().submit();  // busy: it waits
    store.save(other());
    store.durable().submit();
    store.durable().when_durable([&](std::exception_ptr) { order.push_back(2); });
    store.save(network(true, 1401));
    store.durable().submit();
    CHECK(syncer.files == 0);

    syncer.open_gate();
    wait_and_complete(store.durable());  // the first batch; hands over the second
    CHECK(order == std::vector<int>{1});
    CHECK(syncer.files == 1);
    wait_and_complete(store.durable());
    CHECK(order == std::vector<int>{1, 2});
    CHECK(syncer.files == 3);        // the first, then default and lab once each
    CHECK(syncer.directories == 2);  // one per batch
    CHECK(stored(store, "default").mtu == 1401);
    CHECK(temporaries(tmp.path).empty());
}

TEST_CASE("A failed sync reaches the waiting caller and leaves the old document in place", "[durable]")
{
    TempDir tmp;
    CountingSyncer syncer;
    Store store(Layout(tmp.path, ""), &syncer);
    store.durable().start_thread();
    store.save(network(false));
    store.durable().flush();

    syncer.fail = true;
    store.save(network(true));
    std::exception_ptr outcome;
    bool called = false;
    store.durable().when_durable([&](std::exception_ptr error) {
        outcome = error;
        called = true;
    });
    store.durable().flush();
    CHECK_FALSE(called);  // Done calls run on the loop, at complete()
    store.durable().complete();
    REQUIRE(called);
    REQUIRE(outcome);
    try {
        std::rethrow_exception(outcome);
    } catch (const Error& e) {
        CHECK(e.kind() == ErrorKind::Kernel);
        CHECK_THAT(e.what(), Catch::Contains("Input/output error"));
    }
    CHECK_FALSE(store.durable().pending(store.path_of("default")));
    CHECK(temporaries(tmp.path).empty());
    syncer.fail = false;
    CHECK_FALSE(stored(store, "default").autostart);
}

TEST_CASE("Without a thread a save syncs before it returns, and a failed sync throws", "[durable]")
{
    TempDir tmp;
    CountingSyncer syncer;
    Store store(Layout(tmp.path, ""), &syncer);
    store.save(network(false));
    CHECK(syncer.files == 1);
    CHECK(syncer.directories == 1);
    bool called = false;
    store.durable().when_durable([&](std::exception_ptr error) {
        CHECK_FALSE(error);
        called = true;
    });
    CHECK(called);

    syncer.fail = true;
    CHECK_THROWS_AS(store.save(network(true)), Error);
    syncer.fail = false;
    CHECK_FALSE(stored(store, "default").autostart);
    CHECK(temporaries(tmp.path).empty());
}

TEST_CASE("A journal line after a save still syncing is not dropped with the old journal", "[durable]")
{
    // The batch of a save removes the journal its document now holds; an
    // append made before that batch ran would go with it, were it not
    // rotated (tests/unit/test_journal_rotation.cpp).
    TempDir tmp;
    CountingSyncer syncer;
    Store store(Layout(tmp.path, ""), &syncer);
    store.durable().start_thread();
    const auto forward = [](int port) {
        return kvmnet::model::parse_forward(
            nlohmann::json{{"proto", "tcp"}, {"host_port", port}, {"guest", "192.168.122.10"}, {"guest_port", 80}});
    };
    store.save(network(false));
    store.durable().flush();
    store.journal_add("default", {forward(8001)});

    Network next = network(true);
    next.forwards.push_back(forward(8001));
    store.save(next);                               // folds the journal in: its batch removes it
    store.journal_add("default", {forward(8002)});  // to the journal of the new document, at once
    CHECK(store.durable().pending(store.path_of("default")));
    store.durable().flush();
    store.durable().complete();

    const Network loaded = stored(store, "default");
    CHECK(loaded.autostart);
    REQUIRE(loaded.forwards.size() == 2);
    CHECK(loaded.forwards[0].host_port_first == 8001);
    CHECK(loaded.forwards[1].host_port_first == 8002);
}

TEST_CASE("Leftovers of saves a crash interrupted are removed when the store opens", "[durable]")
{
    TempDir tmp;
    {
        Store store(Layout(tmp.path, ""));
        store.save(network(false));
    }
    kvmnet::store::write_replace(tmp.path + "/networks/default.json.tmp.7", "{\"half\": ");
    Store store(Layout(tmp.path, ""));
    CHECK(temporaries(tmp.path).empty());
    CHECK_FALSE(stored(store, "default").autostart);
}

}  // namespace unit_test_durable_writes
