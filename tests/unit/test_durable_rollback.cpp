// A document save that fails on the store's writer thread after its call
// returned (fsync EIO) rolls the change back: memory and kernel go back to
// the document the disk still holds, and the caller waiting for durability
// gets a typed error naming the file and the errno (core/manager_durable.cpp,
// store/durable.hpp). Before, the call got the error but memory (Describe,
// properties) and the kernel kept the change until the next restart.
#include "manager_test_prelude.hpp"

#include "store/durable.hpp"

#include <atomic>
#include <cerrno>
#include <cstring>
#include <poll.h>
#include <unistd.h>

namespace unit_test_durable_rollback {

namespace {

// fsync(2), or EIO while `fail` is set, as a failing disk answers.
class FailingSyncer final : public kvmnet::store::Syncer {
public:
    std::atomic<bool> fail{false};
    void sync_file(int fd, const std::string& path) override
    {
        if (fail) throw Error(kvmnet::ErrorKind::Kernel, "cannot sync " + path + ": " + std::strerror(EIO));
        ::fsync(fd);
    }
    void sync_directory(const std::string&) override {}
};

// The outcome a changing call's reply would carry (api/service.cpp
// reply_when_durable), once the store's writer finished.
std::exception_ptr durable_outcome(Harness& h)
{
    std::exception_ptr outcome;
    bool called = false;
    h.m().when_durable([&](std::exception_ptr error) {
        outcome = error;
        called = true;
    });
    // kvmnetd's loop hands a batch to the writer after a turn that
    // dispatched something (a bus call); here a timer is that something.
    const auto turn = h.loop.add_timer(0, [] {});
    h.run_loop(10'000'000, [&] { return called; });
    REQUIRE(called);
    return outcome;
}

void check_typed_error(std::exception_ptr outcome, const std::string& file)
{
    REQUIRE(outcome);
    try {
        std::rethrow_exception(outcome);
    } catch (const Error& e) {
        CHECK(e.kind() == kvmnet::ErrorKind::Kernel);
        CHECK_THAT(e.what(), Catch::Contains(file) && Catch::Contains("Input/output error"));
    }
}

nlohmann::json stored_json_at(const std::string& state_dir, const std::string& name)
{
    return nlohmann::json::parse(*kvmnet::store::read_file(state_dir + "/networks/" + name + ".json"));
}

nlohmann::json stored_json(const Harness& h, const std::string& name) { return stored_json_at(h.state_dir.path, name); }

bool temporaries_left(const Harness& h)
{
    for (const auto& entry : fs::directory_iterator(h.state_dir.path + "/networks"))
        if (entry.path().filename().string().find(".tmp") != std::string::npos) return true;
    return false;
}

// A store whose writer thread syncs with a FailingSyncer, and the bridge-mode
// network "lan" to save in it.
struct WriterRig {
    FailingSyncer syncer;
    TempDir tmp;
    kvmnet::store::Store store{kvmnet::store::Layout(tmp.path, ""), &syncer};
    kvmnet::store::DurableWriter& writer = store.durable();
    WriterRig() { writer.start_thread(); }
    static kvmnet::model::Network network(bool autostart, int mtu)
    {
        return kvmnet::model::parse_network(nlohmann::json{
            {"name", "lan"},
            {"mode", "bridge"},
            {"bridge", "lan0"},
            {"uplink", "eth0"},
            {"autostart", autostart},
            {"mtu", mtu}}.dump());
    }
    void wait_for_batch()
    {
        pollfd p{writer.completion_fd(), POLLIN, 0};
        REQUIRE(::poll(&p, 1, 10000) == 1);
    }
};

}  // namespace

TEST_CASE("A failed sync rolls SetAutostart back in memory and keeps the old document", "[manager][durable]")
{
    FailingSyncer syncer;
    Harness h;
    h.syncer = &syncer;
    h.durable_in_background = true;
    h.restart_manager();
    h.m().create(lan_document);
    REQUIRE_FALSE(durable_outcome(h));

    syncer.fail = true;
    h.listener.changed.clear();
    h.m().set_autostart("lan", true);
    CHECK(h.m().spec("lan").autostart);  // reads answer from memory meanwhile
    check_typed_error(durable_outcome(h), h.state_dir.path + "/networks/lan.json");
    CHECK_FALSE(h.m().spec("lan").autostart);
    CHECK(stored_json(h, "lan")["autostart"] == false);
    // Announced twice: the change, then its undoing (PropertiesChanged).
    CHECK(h.listener.changed == std::vector<std::string>{"lan", "lan"});
    CHECK_FALSE(temporaries_left(h));

    syncer.fail = false;
    h.m().set_autostart("lan", true);
    CHECK_FALSE(durable_outcome(h));
    CHECK(stored_json(h, "lan")["autostart"] == true);
}

TEST_CASE("A failed sync of a new network's document undoes its creation", "[manager][durable]")
{
    FailingSyncer syncer;
    Harness h;
    h.syncer = &syncer;
    h.durable_in_background = true;
    h.restart_manager();
    syncer.fail = true;
    h.m().create(lan_document);
    check_typed_error(durable_outcome(h), "lan.json");
    CHECK(h.m().names().empty());
    CHECK(h.listener.removed == std::vector<std::string>{"lan"});
    CHECK_FALSE(fs::exists(h.state_dir.path + "/networks/lan.json"));
    CHECK_FALSE(temporaries_left(h));
}

TEST_CASE("A failed sync of a live Update brings memory and the running bridge back to the stored document",
          "[manager][durable]")
{
    FailingSyncer syncer;
    Harness h;
    h.syncer = &syncer;
    h.durable_in_background = true;
    h.restart_manager();
    h.m().create(lan_document);
    h.m().start("lan");
    REQUIRE_FALSE(durable_outcome(h));
    const auto options_before = h.links.fake("lan0").bridge;

    syncer.fail = true;
    h.m().update("lan", R"({"name": "lan", "mode": "bridge", "bridge": "lan0", "uplink": "eth0",
                            "stp": true, "forward_delay": 2})");
    CHECK(h.m().spec("lan").stp);
    CHECK(h.links.fake("lan0").bridge.stp);
    check_typed_error(durable_outcome(h), "lan.json");
    CHECK_FALSE(h.m().spec("lan").stp);
    CHECK(stored_json(h, "lan")["stp"] == false);
    h.run_loop(2'000'000, [&] { return h.m().state("lan") == State::active; });
    CHECK(h.m().state("lan") == State::active);
    CHECK(h.links.fake("lan0").bridge.stp == options_before.stp);
    CHECK(h.links.fake("lan0").bridge.forward_delay_cs == options_before.forward_delay_cs);
}

TEST_CASE_METHOD(WriterRig, "A lost save is reported once no later save of the document is pending: that one decides",
                 "[durable]")
{
    std::vector<std::string> lost;
    store.on_lost([&](const std::string& name, std::exception_ptr) { lost.push_back(name); });
    store.save(network(false, 1500));
    writer.submit();
    wait_for_batch();
    writer.complete();

    // The first batch fails; before its outcome reaches the loop a second
    // save of the same document is queued, and it succeeds: the disk holds
    // both changes, so nothing is to be undone.
    syncer.fail = true;
    store.save(network(true, 1500));
    writer.submit();
    wait_for_batch();
    syncer.fail = false;
    store.save(network(true, 1400));
    writer.complete();  // the failed batch's outcome; hands over the second
    CHECK(lost.empty());
    wait_for_batch();
    writer.complete();
    CHECK(lost.empty());
    CHECK(stored_json_at(tmp.path, "lan")["mtu"] == 1400);

    // Both fail: reported once, after the last.
    syncer.fail = true;
    store.save(network(false, 1400));
    writer.submit();
    wait_for_batch();
    store.save(network(false, 1300));
    writer.complete();
    CHECK(lost.empty());
    wait_for_batch();
    writer.complete();
    CHECK(lost == std::vector<std::string>{"lan"});
    CHECK(stored_json_at(tmp.path, "lan")["mtu"] == 1400);
    CHECK(stored_json_at(tmp.path, "lan")["autostart"] == true);
}

TEST_CASE_METHOD(WriterRig, "A caller of a failed save whose document a later save writes hears how that save ends",
                 "[durable]")
{
    store.on_lost([](const std::string&, std::exception_ptr) {});
    const auto lan = [](int mtu) { return network(false, mtu); };
    struct Outcome {
        bool called = false;
        std::exception_ptr error;
    };
    const auto waiter = [](Outcome& o) {
        return [&o](std::exception_ptr e) {
            CHECK_FALSE(o.called);  // answered once
            o.called = true;
            o.error = e;
        };
    };
    store.save(lan(1500));
    writer.submit();
    wait_for_batch();
    writer.complete();

    // The first save fails; the second, queued before the loop hears of
    // that, holds both changes and succeeds: both callers hear success.
    Outcome first, second;
    syncer.fail = true;
    store.save(lan(1400));
    writer.when_durable(waiter(first));
    writer.submit();
    wait_for_batch();
    syncer.fail = false;
    store.save(lan(1300));
    writer.when_durable(waiter(second));
    writer.complete();
    CHECK_FALSE(first.called);  // its answer waits for the save that carries it
    wait_for_batch();
    writer.complete();
    REQUIRE(first.called);
    REQUIRE(second.called);
    CHECK_FALSE(first.error);
    CHECK_FALSE(second.error);
    CHECK(stored_json_at(tmp.path, "lan")["mtu"] == 1300);

    // Both fail: both callers hear the error.
    Outcome third, fourth;
    syncer.fail = true;
    store.save(lan(1200));
    writer.when_durable(waiter(third));
    writer.submit();
    wait_for_batch();
    store.save(lan(1100));
    writer.when_durable(waiter(fourth));
    writer.complete();
    CHECK_FALSE(third.called);
    wait_for_batch();
    writer.complete();
    REQUIRE(third.called);
    REQUIRE(fourth.called);
    check_typed_error(third.error, "lan.json");
    check_typed_error(fourth.error, "lan.json");
    CHECK(stored_json_at(tmp.path, "lan")["mtu"] == 1300);
}

}  // namespace unit_test_durable_rollback
