// Unit tests of core::Manager against fake kernel adapters (manager_harness.hpp):
// the self-healing gaps closed by issue 12 (a deleted bridge-mode bridge, the
// held sysctls, foreign ports across a restart). The same on the real kernel:
// tests/e2e/test_heal_bridge_mode.sh, test_heal_ip_forward.sh,
// test_heal_foreign_ports.sh.
#include "core/manager.hpp"
#include "document_util.hpp"
#include "manager_harness.hpp"
#include "plan/planner.hpp"

#include <catch2/catch.hpp>

#include <sys/socket.h>

#include <string>
#include <vector>

namespace unit_test_manager_heal {

using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;
using kvmnet::core::State;
using kvmnet::plan::LinkInfo;
namespace plan = kvmnet::plan;
using namespace kvmnet::test;

TEST_CASE("Self-healing: a deleted bridge-mode bridge is recreated on the uplink with the static configuration",
          "[manager][repair]")
{
    Harness h;
    h.m().create(lan_document);
    h.m().start("lan");
    REQUIRE(h.m().state("lan") == State::active);
    LinkInfo tap = physical("vnet0", "52:54:00:aa:bb:09", 1500);
    tap.master_index = h.links.link("lan0").index;
    h.links.add_link(tap);
    h.m().link_changed("vnet0");

    h.links.delete_link("lan0");
    h.m().link_changed("eth0");  // released by the deletion
    h.m().link_changed("lan0");
    CHECK(h.m().state("lan") == State::degraded);
    h.let_repairs_run();
    REQUIRE(h.links.has("lan0"));
    const LinkInfo bridge = h.links.link("lan0");
    CHECK(bridge.alias == plan::owner_alias("lan"));
    CHECK(bridge.mac == kvmnet::model::Mac::parse(eth0_mac));
    CHECK(bridge.up);
    CHECK(h.links.link("eth0").master_index == bridge.index);
    CHECK(h.links.link("vnet0").master_index == bridge.index);
    bool secondary = false;
    for (const auto& a : h.links.addresses_on("lan0"))
        secondary = secondary || a.address == ip("192.168.1.11");
    CHECK(secondary);  // the static one; the DHCP lease is its client's to renew
    bool route = false;
    for (const auto& r : h.links.routes_on("lan0"))
        route = route || r.destination == ip("10.20.0.0");
    CHECK(route);
    REQUIRE(h.listener.repairs.size() == 1);
    CHECK_THAT(h.listener.repairs[0], StartsWith("lan bridge: recreated bridge lan0 on uplink eth0"));
    CHECK_THAT(h.listener.repairs[0], Contains("re-added address 192.168.1.11/24"));
    CHECK_THAT(h.listener.repairs[0], Contains("re-attached vnet0 (enslaved outside kvmnet)"));
    CHECK(h.m().state("lan") == State::active);
    h.m().stop("lan");
    CHECK(h.links.link("eth0").master_index == 0);
}

TEST_CASE("Self-healing: a deleted bridge-mode bridge waits for a free uplink", "[manager][repair]")
{
    Harness h;
    h.m().create(lan_document);
    h.m().start("lan");
    REQUIRE(h.m().state("lan") == State::active);
    h.links.delete_link("lan0");
    h.links.delete_link("eth0");
    h.links.reset_calls();
    h.m().link_changed("lan0");
    h.let_repairs_run();
    CHECK(h.links.mutations().empty());
    CHECK(h.m().state("lan") == State::degraded);
    CHECK(h.listener.repairs.empty());

    h.links.add_link(physical("eth0", eth0_mac, 1500));
    h.m().link_changed("eth0");
    h.let_repairs_run();
    CHECK(h.links.has("lan0"));
    CHECK(h.links.link("eth0").master_index == h.links.link("lan0").index);
    CHECK(h.m().state("lan") == State::active);
    h.m().stop("lan");
}

TEST_CASE("Self-healing: the sysctls a NAT network holds on are turned on again at a notification", "[manager][repair]")
{
    HealingHarness h;  // NAT with IPv6: ip_forward, IPv6 forwarding, route_localnet
    const std::string localnet = "net/ipv4/conf/kvmbr9/route_localnet";
    REQUIRE(h.links.sysctls["net/ipv4/ip_forward"] == "1");
    REQUIRE(h.links.sysctls["net/ipv6/conf/all/forwarding"] == "1");
    REQUIRE(h.links.sysctls[localnet] == "1");
    h.links.sysctls["net/ipv4/ip_forward"] = "0";
    h.links.sysctls["net/ipv6/conf/all/forwarding"] = "0";
    h.links.sysctls[localnet] = "0";
    h.links.sysctls["net/ipv4/conf/kvmbr9/forwarding"] = "0";
    h.m().sysctl_changed();
    h.let_repairs_run();
    CHECK(h.links.sysctls["net/ipv4/ip_forward"] == "1");
    CHECK(h.links.sysctls["net/ipv6/conf/all/forwarding"] == "1");
    CHECK(h.links.sysctls[localnet] == "1");
    CHECK(h.links.sysctls["net/ipv4/conf/kvmbr9/forwarding"] == "1");
    std::string all;
    for (const auto& r : h.listener.repairs)
        all += r + "\n";
    CHECK_THAT(all, Contains("iso sysctl: turned net.ipv4.ip_forward on again"));
    CHECK_THAT(all, Contains("iso sysctl: turned net.ipv6.conf.all.forwarding on again"));
    CHECK_THAT(all, Contains("iso sysctl: turned net.ipv4.conf.kvmbr9.route_localnet on again"));
    CHECK_THAT(all, Contains("iso sysctl: turned net.ipv4.conf.kvmbr9.forwarding on again"));
    CHECK(h.m().state("iso") == State::active);

    // Nothing off: a notification (our own write's) repairs nothing.
    h.listener.repairs.clear();
    h.m().sysctl_changed();
    h.run_loop(50'000);
    CHECK(h.listener.repairs.empty());
    h.m().stop("iso");
}

TEST_CASE("An Update that restarts a network puts the interfaces enslaved outside kvmnet onto the new bridge",
          "[manager][update]")
{
    HealingHarness h;
    LinkInfo tap = physical("vnet0", "52:54:00:aa:bb:01", 1500);
    tap.kind = "tun";
    tap.master_index = h.links.link("kvmbr9").index;
    h.links.add_link(tap);
    h.m().link_changed("vnet0");
    h.m().update("iso", merged(healing_document, R"({"ipv4": {"address": "10.70.0.1/23"}})"));
    REQUIRE(h.m().state("iso") == State::active);
    CHECK(h.links.link("vnet0").master_index == h.links.link("kvmbr9").index);
    h.m().stop("iso");
}

}  // namespace unit_test_manager_heal
