// Unit tests of core::Manager against fake kernel adapters (manager_harness.hpp):
// structured log records.
#include "manager_test_prelude.hpp"

namespace unit_test_manager_log {

// ---- structured logging ------------------------------------------------------

namespace {

// Takes the manager's log records (at every level) for as long as it lives;
// made after the Harness, whose constructor sets the level.
struct RecordedLog {
    std::vector<core::LogRecord> records;
    RecordedLog()
    {
        core::set_log_level(core::LogLevel::debug);
        core::set_log_sink([this](const core::LogRecord& r) { records.push_back(r); });
    }
    ~RecordedLog()
    {
        core::set_log_sink({});
        core::set_log_level(core::LogLevel::error);
    }
    RecordedLog(const RecordedLog&) = delete;
    RecordedLog& operator=(const RecordedLog&) = delete;

    // The records that carry a message id, as "NETWORK ID-NAME", in order.
    std::vector<std::string> events() const
    {
        static const std::map<core::MessageId, std::string> names = {
            {core::MessageId::network_created, "created"},
            {core::MessageId::network_deleted, "deleted"},
            {core::MessageId::network_active, "active"},
            {core::MessageId::network_inactive, "inactive"},
            {core::MessageId::network_degraded, "degraded"},
            {core::MessageId::network_failed, "failed"},
            {core::MessageId::repaired, "repaired"},
            {core::MessageId::lease_changed, "lease_changed"},
            {core::MessageId::uplink_taken_over, "uplink_taken_over"},
            {core::MessageId::uplink_restored, "uplink_restored"},
            {core::MessageId::start_confirmed, "start_confirmed"},
            {core::MessageId::start_rolled_back, "start_rolled_back"},
        };
        std::vector<std::string> result;
        for (const auto& r : records)
            if (r.id != core::MessageId::none) result.push_back(r.network + " " + names.at(r.id));
        return result;
    }
    // Every line worded as being about a network names it in the record.
    void check_networks_named() const
    {
        for (const auto& r : records) {
            if (r.message.rfind("network ", 0) != 0) continue;
            INFO(r.message);
            CHECK_FALSE(r.network.empty());
            CHECK(r.message.rfind("network " + r.network + ": ", 0) == 0);
        }
    }
};

}  // namespace

TEST_CASE("Log records of a bridge network's life name it and carry message ids", "[manager][log]")
{
    Harness h;
    RecordedLog log;
    h.m().create(lan_document);
    SECTION("start, stop, delete")
    {
        h.m().start("lan");
        h.m().stop("lan");
        h.m().remove("lan");
        CHECK(log.events() == std::vector<std::string>{"lan created", "lan uplink_taken_over", "lan active",
                                                       "lan uplink_restored", "lan inactive", "lan deleted"});
    }
    SECTION("a start not confirmed in time is rolled back")
    {
        h.m().start("lan", 1);
        h.run_loop(3'000'000, [&] { return h.m().state("lan") != State::active; });
        CHECK(log.events() == std::vector<std::string>{"lan created", "lan uplink_taken_over", "lan active",
                                                       "lan start_rolled_back", "lan uplink_restored", "lan inactive",
                                                       "lan failed"});
    }
    SECTION("a confirmed start")
    {
        h.m().start("lan", 1);
        h.m().confirm("lan");
        CHECK(log.events().back() == "lan start_confirmed");
    }
    log.check_networks_named();
}

TEST_CASE("Log records of a repair name the network and carry message ids", "[manager][log]")
{
    HealingHarness h;
    RecordedLog log;
    h.links.delete_link("kvmbr9");
    h.m().link_changed("kvmbr9");
    h.let_repairs_run();
    REQUIRE(h.m().state("iso") == State::active);
    CHECK(log.events() == std::vector<std::string>{"iso degraded", "iso repaired", "iso active"});
    log.check_networks_named();
}

TEST_CASE("Log records of lease changes name the network and carry a message id", "[manager][log]")
{
    Harness h;
    h.dnsmasq = write_fake_dnsmasq(h.state_dir.path);
    h.restart_manager();
    h.m().create(R"({"name": "iso", "mode": "isolated", "bridge": "kvmbr9", "ipv4": {"address": "10.70.0.1/24",
        "dhcp": {"ranges": ["10.70.0.100-10.70.0.200"]}}})");
    h.m().start("iso");
    RecordedLog log;
    const std::string run = h.runtime_dir.path + "/iso";
    kvmnet::store::write_atomic(run + "/dnsmasq.leases", "4000000000 52:54:00:00:00:09 10.70.0.120 vm9 *\n");
    h.run_loop(2'000'000, [&] { return !h.listener.lease_events.empty(); });
    CHECK(log.events() == std::vector<std::string>{"iso lease_changed"});
    const auto lease = std::find_if(log.records.begin(), log.records.end(),
                                    [](const core::LogRecord& r) { return r.id == core::MessageId::lease_changed; });
    REQUIRE(lease != log.records.end());
    CHECK(lease->message == "network iso: lease added: 52:54:00:00:00:09 10.70.0.120 vm9");
    log.check_networks_named();
}

}  // namespace unit_test_manager_log
