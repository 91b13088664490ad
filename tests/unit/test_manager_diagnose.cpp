// Unit tests of core::Manager against fake kernel adapters (manager_harness.hpp):
// Diagnose.
#include "manager_test_prelude.hpp"

namespace unit_test_manager_diagnose {

TEST_CASE("Diagnose names what is wrong with a running network and only reads", "[manager][diagnose]")
{
    Harness h;
    h.dnsmasq = write_fake_dnsmasq(h.state_dir.path);
    h.restart_manager();
    h.m().create(R"({"name": "web", "mode": "nat", "bridge": "kvmbr5", "ipv4": {"address": "10.5.0.1/24",
        "dhcp": {"ranges": ["10.5.0.100-10.5.0.200"]}}})");
    const auto status_of = [](const nlohmann::json& report, const std::string& check) {
        for (const auto& c : report["checks"])
            if (c["check"] == check) return c["status"].get<std::string>() + ": " + c["detail"].get<std::string>();
        return std::string("(no check " + check + ")");
    };

    SECTION("stopped: nothing left behind")
    {
        const auto report = h.m().diagnose("web");
        CHECK(report["verdict"] == "pass");
        CHECK(report["state"] == "inactive");
    }
    h.m().start("web");
    REQUIRE(h.m().state("web") == State::active);
    // The fake dnsmasq binds nothing: the namespace's sockets are the fake's list.
    h.links.listeners = {{false, ip("10.5.0.1"), 53}, {false, ip("0.0.0.0"), 67}};
    const int commits = h.firewall.commits;

    SECTION("healthy")
    {
        const auto report = h.m().diagnose("web");
        INFO(report.dump(2));
        CHECK(report["verdict"] == "pass");
        CHECK_THAT(status_of(report, "firewall"), StartsWith("pass"));
        CHECK_THAT(status_of(report, "dnsmasq"), StartsWith("pass"));
        CHECK_THAT(status_of(report, "ip-forward"), StartsWith("pass"));
    }
    SECTION("each problem is named")
    {
        h.links.sysctls["net/ipv4/ip_forward"] = "0";
        h.links.listeners = {{false, ip("10.5.0.1"), 53}};
        h.links.delete_address("kvmbr5", ip("10.5.0.1"), 24);
        h.firewall.foreign_chains.push_back({"ip", "filter", "FORWARD", true, "forward", 0, "drop"});
        const auto changes = h.links.calls().size();
        const auto report = h.m().diagnose("web");
        INFO(report.dump(2));
        CHECK(report["verdict"] == "fail");
        CHECK_THAT(status_of(report, "ip-forward"), StartsWith("fail: net.ipv4.ip_forward is 0"));
        CHECK_THAT(status_of(report, "ipv4-address"), StartsWith("fail: 10.5.0.1/24 is missing from kvmbr5"));
        CHECK_THAT(status_of(report, "dnsmasq"), Contains("DHCP (udp 67)"));
        CHECK_THAT(status_of(report, "foreign-firewall"), StartsWith("warn: chain ip filter FORWARD"));
        // It only read.
        CHECK(std::none_of(h.links.calls().begin() + static_cast<long>(changes), h.links.calls().end(),
                           [](const Call& c) { return c.mutating; }));
    }
    SECTION("a deleted table and a downed bridge")
    {
        h.firewall.table.reset();
        h.links.set_up("kvmbr5", false);
        const auto report = h.m().diagnose("web");
        INFO(report.dump(2));
        CHECK(report["verdict"] == "fail");
        CHECK_THAT(status_of(report, "firewall"), StartsWith("fail: table inet kvmnet is missing"));
        CHECK_THAT(status_of(report, "bridge"), StartsWith("fail: kvmbr5 is down"));
    }
    CHECK(h.firewall.commits == commits);
}

}  // namespace unit_test_manager_diagnose
