// Unit tests of the mirror copy (RUNTIME/.stored/NAME.json) under the
// store's writer thread: written there once the document is durable, not on
// the event loop when the document is saved (issue 12, item 4: the loop's
// cost per change), so it is never ahead of the document on disk, and a
// batch that fails leaves it as it was.
#include "model/error.hpp"
#include "model/network.hpp"
#include "store/durable.hpp"
#include "store/files.hpp"
#include "store/store.hpp"
#include "temp_dir.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <optional>
#include <poll.h>
#include <string>
#include <unistd.h>

namespace unit_test_durable_mirror {

using kvmnet::Error;
using kvmnet::ErrorKind;
using kvmnet::store::Layout;
using kvmnet::store::Store;
using kvmnet::testing::TempDir;

namespace {

// Looks at the mirror while the document is being synced; `fail` makes the
// sync fail as fsync(2) with EIO would.
class WatchingSyncer final : public kvmnet::store::Syncer {
public:
    std::string mirror;
    std::optional<std::string> seen;  // the mirror's contents during the last file sync
    std::atomic<bool> fail{false};

    void sync_file(int, const std::string& path) override
    {
        seen = kvmnet::store::read_file(mirror);
        if (fail) throw Error(ErrorKind::Kernel, "cannot sync " + path + ": Input/output error");
    }
    void sync_directory(const std::string&) override {}
};

kvmnet::model::Network web(int mtu)
{
    return kvmnet::model::parse_network(
        R"({"name": "web", "mode": "nat", "bridge": "kvmbr0", "ipv4": {"address": "192.168.122.1/24"}, "mtu": )" +
        std::to_string(mtu) + "}");
}

void wait_and_complete(kvmnet::store::DurableWriter& writer)
{
    pollfd p{writer.completion_fd(), POLLIN, 0};
    REQUIRE(::poll(&p, 1, 10000) == 1);
    writer.complete();
}

}  // namespace

TEST_CASE("The mirror copy is written once the document is durable, never ahead of it", "[durable]")
{
    TempDir state;
    TempDir runtime;
    WatchingSyncer syncer;
    Store store(Layout(state.path, runtime.path), &syncer);
    syncer.mirror = runtime.path + "/.stored/web.json";
    store.durable().start_thread();

    store.save(web(1400));
    CHECK_FALSE(kvmnet::store::read_file(syncer.mirror));  // nothing on the loop
    store.durable().submit();
    wait_and_complete(store.durable());
    CHECK_FALSE(syncer.seen);  // not while the document synced
    const auto first = kvmnet::store::read_file(store.path_of("web"));
    REQUIRE(first);
    CHECK(kvmnet::store::read_file(syncer.mirror) == first);

    // Saved twice in one batch: the mirror gets the last one.
    store.save(web(1401));
    store.save(web(1402));
    CHECK(kvmnet::store::read_file(syncer.mirror) == first);
    store.durable().submit();
    wait_and_complete(store.durable());
    CHECK(syncer.seen == first);
    const auto second = kvmnet::store::read_file(store.path_of("web"));
    CHECK(second != first);
    CHECK(kvmnet::store::read_file(syncer.mirror) == second);

    SECTION("a batch that fails leaves the mirror as it was")
    {
        syncer.fail = true;
        store.save(web(1403));
        bool failed = false;
        store.durable().when_durable([&](std::exception_ptr error) { failed = error != nullptr; });
        store.durable().submit();
        wait_and_complete(store.durable());
        CHECK(failed);
        CHECK(kvmnet::store::read_file(store.path_of("web")) == second);
        CHECK(kvmnet::store::read_file(syncer.mirror) == second);
    }
}

}  // namespace unit_test_durable_mirror
