// Unit tests of core::Manager against fake kernel adapters (manager_harness.hpp):
// Update and UpdateIfRevision.
//
// Tests marked "Regression" document bugs found in the manager and fixed; each says what
// went wrong.
#include "manager_test_prelude.hpp"

namespace unit_test_manager_update {

TEST_CASE("UpdateIfRevision refuses a stale base and changes nothing", "[manager][revision]")
{
    Harness h;
    h.m().create(R"({"name": "rev", "mode": "nat", "bridge": "kvmbr6", "ipv4": {"address": "10.6.0.1/24",
        "dhcp": {"ranges": ["10.6.0.10-10.6.0.20"]}}})");
    const std::string base = h.m().revision("rev");
    nlohmann::json first = kvmnet::model::to_json(h.m().spec("rev"));
    first["stp"] = true;
    first["forward_delay"] = 15;
    nlohmann::json second = kvmnet::model::to_json(h.m().spec("rev"));
    second["mtu"] = 1400;
    h.m().update_at_revision("rev", first.dump(), base);
    const std::string after_first = h.m().revision("rev");
    CHECK(after_first != base);
    try {
        h.m().update_at_revision("rev", second.dump(), base);
        FAIL("a stale revision was accepted");
    } catch (const Error& e) {
        CHECK(e.kind() == kvmnet::ErrorKind::Conflict);
    }
    CHECK(h.m().spec("rev").stp);
    CHECK(h.m().spec("rev").mtu == 0);
    CHECK(h.m().revision("rev") == after_first);
    // Every change of the document is a new revision, not only Update's.
    h.m().add_host("rev", R"({"mac": "52:54:00:00:00:0b", "ip": "10.6.0.30"})");
    CHECK(h.m().revision("rev") != after_first);
    // and the revision survives a daemon restart (it is the document's).
    const std::string stored = h.m().revision("rev");
    h.restart_manager();
    h.m().load();
    CHECK(h.m().revision("rev") == stored);
    CHECK_THROWS_AS(h.m().update_at_revision("rev", first.dump(), ""), Error);
}

TEST_CASE("Regression: a live Update whose kernel step fails leaves document, memory and bridge as they were",
          "[manager]")
{
    Harness h;
    h.m().create(lan_document);
    h.m().start("lan");
    const std::string stored = *kvmnet::store::read_file(h.state_dir.path + "/networks/lan.json");
    const auto options_before = h.links.fake("lan0").bridge;
    const auto mtu_before = h.links.link("lan0").mtu;
    // The bridge options go first, then the MTU fails: before the fix the
    // options stayed changed.
    h.links.reset_calls();
    h.links.fail_on("set_mtu", 1);
    CHECK_THROWS_AS(h.m().update("lan", R"({"name": "lan", "mode": "bridge", "bridge": "lan0", "uplink": "eth0",
                                             "stp": true, "forward_delay": 2, "mtu": 1400})"),
                    Error);
    CHECK_FALSE(h.m().spec("lan").stp);
    CHECK(h.m().spec("lan").mtu == 0);
    CHECK(*kvmnet::store::read_file(h.state_dir.path + "/networks/lan.json") == stored);
    CHECK(h.links.fake("lan0").bridge.stp == options_before.stp);
    CHECK(h.links.fake("lan0").bridge.forward_delay_cs == options_before.forward_delay_cs);
    CHECK(h.links.link("lan0").mtu == mtu_before);
    CHECK(kvmnet::core::is_running(h.m().state("lan")));
}

}  // namespace unit_test_manager_update
