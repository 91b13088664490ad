// Store::saving (issue 12): while a save's fsync is still running on the
// writer's thread, saving() says so, and a second save of the same document
// returns at once (it only queues) - what Manager's forward changes rely on
// to never make the event loop wait for an fsync.
#include "model/network.hpp"
#include "store/store.hpp"
#include "temp_dir.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <condition_variable>
#include <mutex>
#include <unistd.h>

using kvmnet::model::Network;
using kvmnet::store::Layout;
using kvmnet::store::Store;

namespace {

// Holds the writer's thread in its first file sync until released.
class GateSyncer final : public kvmnet::store::Syncer {
public:
    void sync_file(int fd, const std::string&) override
    {
        std::unique_lock lock(mutex_);
        held_ = true;
        changed_.notify_all();
        changed_.wait(lock, [&] { return open_; });
        ::fsync(fd);
    }
    void sync_directory(const std::string&) override {}
    void wait_held()
    {
        std::unique_lock lock(mutex_);
        changed_.wait(lock, [&] { return held_; });
    }
    void open()
    {
        std::lock_guard lock(mutex_);
        open_ = true;
        changed_.notify_all();
    }

private:
    std::mutex mutex_;
    std::condition_variable changed_;
    bool held_ = false;
    bool open_ = false;
};

Network network(int mtu)
{
    return kvmnet::model::parse_network(nlohmann::json{
        {"name", "default"},
        {"mode", "nat"},
        {"bridge", "kvmbr0"},
        {"mtu", mtu},
        {"ipv4",
         {{"address", "192.168.122.1/24"}}}}.dump());
}

}  // namespace

TEST_CASE("saving() holds while a save syncs, and another save meanwhile only queues", "[durable]")
{
    kvmnet::testing::TempDir tmp;
    GateSyncer syncer;
    Store store(Layout(tmp.path, ""), &syncer);
    store.durable().start_thread();
    CHECK_FALSE(store.saving("default"));

    store.save(network(1400));
    store.durable().submit();
    syncer.wait_held();
    CHECK(store.saving("default"));
    store.save(network(1300));  // returns although the first sync is held
    CHECK(store.saving("default"));
    CHECK_FALSE(store.saving("other"));

    syncer.open();
    store.durable().flush();
    store.durable().complete();
    CHECK_FALSE(store.saving("default"));
    std::vector<std::string> problems;
    const auto loaded = store.load_all(problems);
    REQUIRE(loaded.size() == 1);
    CHECK(loaded[0].mtu == 1300);
}
