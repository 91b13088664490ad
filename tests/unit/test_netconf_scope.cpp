// Unit tests of which networks a sysctl notification (rtnetlink
// RTM_NEWNETCONF) has checked: every new link sends one, so a link's own
// notification concerns only the network whose bridge it is, or a start
// would re-read the sysctls of every running network (issue 17).
#include "core/manager.hpp"
#include "document_util.hpp"
#include "manager_harness.hpp"

#include <catch2/catch.hpp>

#include <string>

namespace unit_test_netconf_scope {

using Catch::Matchers::Contains;
using kvmnet::core::State;
using namespace kvmnet::test;

namespace {

constexpr const char* second_document =
    R"({"name": "two", "mode": "nat", "bridge": "kvmbr8", "ipv4": {"address": "10.71.0.1/24"}})";

std::string repairs_of(const Harness& h)
{
    std::string all;
    for (const auto& r : h.listener.repairs)
        all += r + "\n";
    return all;
}

}  // namespace

TEST_CASE("A link's sysctl notification checks only the network on that bridge", "[manager][repair]")
{
    HealingHarness h;  // "iso" on kvmbr9
    h.m().create(second_document);
    h.m().start("two");
    REQUIRE(h.m().state("two") == State::active);
    h.listener.repairs.clear();
    const std::string iso = "net/ipv4/conf/kvmbr9/route_localnet";
    const std::string two = "net/ipv4/conf/kvmbr8/route_localnet";
    h.links.sysctls[iso] = "0";
    h.links.sysctls[two] = "0";

    h.m().sysctl_changed(h.links.link("kvmbr8").index);
    h.let_repairs_run();
    CHECK(h.links.sysctls[two] == "1");
    CHECK(h.links.sysctls[iso] == "0");  // kvmbr9's notification has not come
    CHECK_THAT(repairs_of(h), Contains("two sysctl: turned net.ipv4.conf.kvmbr8.route_localnet on again"));

    // Another link's (a guest's tap, a new bridge): nobody's.
    h.listener.repairs.clear();
    h.m().sysctl_changed(h.links.link("kvmbr8").index + 1000);
    h.run_loop(50'000);
    CHECK(h.listener.repairs.empty());
    CHECK(h.links.sysctls[iso] == "0");

    // "all" (or a message without an index): every network.
    h.m().sysctl_changed(-1);
    h.let_repairs_run();
    CHECK(h.links.sysctls[iso] == "1");
    CHECK_THAT(repairs_of(h), Contains("iso sysctl: turned net.ipv4.conf.kvmbr9.route_localnet on again"));
    h.m().stop("two");
    h.m().stop("iso");
}

}  // namespace unit_test_netconf_scope
