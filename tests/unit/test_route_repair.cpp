// Repairs on the one converge path (core/manager_repair.cpp): route drift
// of NAT and routed networks (a deleted prefix route of a gateway address
// comes back at the route notification; the budget: test_route_drift.cpp),
// and the repair's failure mode (a step that fails does not stop the others).
#include "manager_test_prelude.hpp"

namespace unit_test_route_repair {

TEST_CASE("Self-healing: a deleted subnet route of a NAT network comes back, once", "[manager][repair]")
{
    HealingHarness h;
    const int index = h.links.link("kvmbr9").index;
    const auto v4 = h.subnet_route(AF_INET);
    REQUIRE(v4);
    h.links.delete_route(*v4);
    h.links.reset_calls();
    h.m().route_changed(index);
    h.let_repairs_run();
    const auto back = h.subnet_route(AF_INET);
    REQUIRE(back);
    CHECK(back->destination.value().str() == "10.70.0.0");
    CHECK(back->prefix_length == 24);
    CHECK(back->preferred_source.value().str() == "10.70.0.1");
    CHECK(back->scope == v4->scope);
    CHECK(back->protocol == v4->protocol);
    CHECK(h.links.mutations() == std::vector<std::string>{"add_route kvmbr9 10.70.0.0/24 metric 0 table 254"});
    REQUIRE(h.listener.repairs.size() == 1);
    CHECK(h.listener.repairs[0] == "iso route: re-added route 10.70.0.0/24 through kvmbr9");
    CHECK(h.m().state("iso") == State::active);

    // Its own notification, and one of another link, change nothing more.
    h.links.reset_calls();
    h.m().route_changed(index);
    h.m().route_changed(index + 100);
    h.let_repairs_run();
    CHECK(h.links.mutations().empty());
    CHECK(h.listener.repairs.size() == 1);
    h.m().stop("iso");
}

TEST_CASE("Self-healing: both prefix routes deleted are one repair; a stopped network's are left", "[manager][repair]")
{
    HealingHarness h;
    const int index = h.links.link("kvmbr9").index;
    h.links.delete_route(*h.subnet_route(AF_INET));
    h.links.delete_route(*h.subnet_route(AF_INET6));
    h.m().route_changed(index);
    h.m().route_changed(index);
    h.let_repairs_run();
    CHECK(h.subnet_route(AF_INET));
    const auto v6 = h.subnet_route(AF_INET6);
    REQUIRE(v6);
    CHECK(v6->destination.value().str() == "fd00:70::");
    CHECK(v6->metric == 256);
    REQUIRE(h.listener.repairs.size() == 1);
    CHECK(h.listener.repairs[0] ==
          "iso route: re-added route 10.70.0.0/24 through kvmbr9; re-added route fd00:70::/64 through kvmbr9");

    h.m().stop("iso");
    h.links.reset_calls();
    h.m().route_changed(index);
    h.let_repairs_run();
    CHECK(h.links.mutations().empty());
}

TEST_CASE("Self-healing: a route deleted with the bridge's link repair waits for the links, then is there",
          "[manager][repair]")
{
    HealingHarness h;
    // Someone downs the bridge (the kernel drops its IPv4 routes) and
    // deletes the IPv6 one: setting it up brings back the kernel's own.
    const int index = h.links.link("kvmbr9").index;
    h.links.delete_route(*h.subnet_route(AF_INET6));
    h.links.set_up("kvmbr9", false);
    h.m().link_changed("kvmbr9");
    h.m().route_changed(index);
    h.let_repairs_run();
    CHECK(h.links.link("kvmbr9").up);
    CHECK(h.subnet_route(AF_INET));
    CHECK(h.subnet_route(AF_INET6));
    REQUIRE(h.listener.repairs.size() == 1);
    CHECK_THAT(h.listener.repairs[0], StartsWith("iso link: set bridge kvmbr9 up again"));
    h.m().stop("iso");
}

TEST_CASE("Self-healing: a links repair that fails does not stop the sysctl repair; the state says why",
          "[manager][repair]")
{
    HealingHarness h;
    const std::string localnet = "net/ipv4/conf/kvmbr9/route_localnet";
    h.links.delete_address("kvmbr9", model::IpAddress::parse("10.70.0.1").value(), 24);
    h.links.sysctls[localnet] = "0";
    h.links.reset_calls();
    h.links.fail_on("add_address", 1);
    h.m().address_changed(h.links.link("kvmbr9").index);
    h.m().sysctl_changed();
    h.let_repairs_run();
    CHECK(h.links.sysctls[localnet] == "1");
    CHECK(h.m().state("iso") == State::degraded);
    CHECK(h.m().state_reason_code("iso") == "repair-failed");
    CHECK_THAT(h.m().state_reason("iso"), Contains("repairing bridge kvmbr9 failed: "));
    // The next notification repairs it.
    h.m().address_changed(h.links.link("kvmbr9").index);
    h.let_repairs_run();
    CHECK(h.bridge_addresses() == healthy_addresses);
    CHECK(h.m().state("iso") == State::active);
    h.m().stop("iso");
}

}  // namespace unit_test_route_repair
