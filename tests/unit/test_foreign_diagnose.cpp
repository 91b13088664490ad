// Diagnose of other programs' drop chains (core/manager_diagnose.cpp,
// docs/firewalls.md): each warning names the chain and prints the commands
// of the tool that owns it.
#include "core/manager.hpp"
#include "manager_harness.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace unit_test_foreign_diagnose {

using Catch::Matchers::Contains;
using kvmnet::core::State;
using namespace kvmnet::test;

namespace {
std::vector<std::string> foreign(const nlohmann::json& report)
{
    std::vector<std::string> out;
    for (const auto& c : report["checks"])
        if (c["check"] == "foreign-firewall")
            out.push_back(c["status"].get<std::string>() + ": " + c["detail"].get<std::string>());
    return out;
}
}  // namespace

TEST_CASE("Diagnose prints the owning tool's commands for a foreign drop chain", "[manager][diagnose]")
{
    Harness h;
    h.dnsmasq = write_fake_dnsmasq(h.state_dir.path);
    h.restart_manager();
    h.m().create(R"({"name": "web", "mode": "nat", "bridge": "kvmbr5", "ipv4": {"address": "10.5.0.1/24",
        "dhcp": {"ranges": ["10.5.0.100-10.5.0.200"]}}})");
    h.m().start("web");
    REQUIRE(h.m().state("web") == State::active);

    SECTION("an nft table")
    {
        h.firewall.foreign_chains.push_back({"inet", "mine", "fwd", true, "forward", 0, "drop"});
        const auto f = foreign(h.m().diagnose("web"));
        REQUIRE(f.size() == 1);
        CHECK_THAT(f[0], Contains("nft insert rule inet mine fwd iifname kvmbr5 accept; nft insert rule inet "
                                  "mine fwd oifname kvmbr5 accept"));
    }
    SECTION("ufw's input chain")
    {
        h.firewall.foreign_chains.push_back({"ip", "filter", "INPUT", true, "input", 0, "drop"});
        h.firewall.foreign_chains.push_back({"ip", "filter", "ufw-before-forward", false, "", 0, ""});
        const auto f = foreign(h.m().diagnose("web"));
        REQUIRE(f.size() == 1);
        CHECK_THAT(f[0], Contains("is ufw's and drops guests' DHCP and DNS; let them through with: ufw allow in on "
                                  "kvmbr5 to any port 67 proto udp; ufw allow in on kvmbr5 to any port 53"));
    }
    SECTION("iptables' own FORWARD without Docker")
    {
        h.firewall.foreign_chains.push_back({"ip", "filter", "FORWARD", true, "forward", 0, "drop"});
        const auto f = foreign(h.m().diagnose("web"));
        REQUIRE(f.size() == 1);
        CHECK_THAT(f[0], Contains("iptables -I FORWARD -i kvmbr5 -j ACCEPT; iptables -I FORWARD -o kvmbr5 -j ACCEPT"));
    }
    SECTION("a stopped network: nothing to report")
    {
        h.firewall.foreign_chains.push_back({"inet", "mine", "fwd", true, "forward", 0, "drop"});
        h.m().stop("web");
        CHECK(foreign(h.m().diagnose("web")).empty());
    }
}

}  // namespace unit_test_foreign_diagnose
