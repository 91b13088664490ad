// Issue 17 item 3: what one more network costs the daemon must not grow
// with the networks already running. Counted on the fakes, not timed.
#include "manager_harness.hpp"

namespace unit_test_scale_flat {

using namespace kvmnet;
using namespace kvmnet::test;

namespace {

std::string nat_network(int i)
{
    return R"({"name": "n)" + std::to_string(i) + R"(", "mode": "nat", "bridge": "kvn)" + std::to_string(i) +
           R"(", "ipv4": {"address": "10.)" + std::to_string(100 + i / 250) + "." + std::to_string(i % 250) +
           R"(.1/24"}})";
}

}  // namespace

TEST_CASE("Scale: the forwarding poll of healthy networks looks up no link", "[manager][scale]")
{
    HealingHarness h;
    for (int i = 1; i <= 20; ++i) {
        h.m().create(nat_network(i));
        h.m().start("n" + std::to_string(i));
        REQUIRE(h.m().state("n" + std::to_string(i)) == State::active);
    }
    // As the kernel has them: a bridge's forwarding follows ip_forward.
    h.links.sysctls["net/ipv4/conf/kvmbr9/forwarding"] = "1";
    for (int i = 1; i <= 20; ++i)
        h.links.sysctls["net/ipv4/conf/kvn" + std::to_string(i) + "/forwarding"] = "1";
    h.links.reset_calls();
    // Several polls (every 2 s): each reads the held sysctls, all on.
    h.clock.advance(10'000'000);
    std::map<std::string, int> looked_up;
    for (const auto& c : h.links.calls())
        if (c.verb == "find_link") ++looked_up[c.link];
    for (const auto& [link, n] : looked_up)
        UNSCOPED_INFO(link << ": " << n);
    CHECK(h.links.count("find_link") == 0);
    CHECK(h.m().state("n20") == State::active);
    // A sysctl turned off is still found, repaired and the network judged again.
    h.links.sysctls["net/ipv4/conf/kvn7/route_localnet"] = "0";
    h.clock.advance(2'100'000);
    CHECK(h.links.sysctls["net/ipv4/conf/kvn7/route_localnet"] == "1");
    CHECK(h.m().state("n7") == State::active);
}

TEST_CASE("Scale: a start lists no chains while no other table changed", "[manager][scale]")
{
    HealingHarness h;              // a stand-in dnsmasq for the NAT networks
    h.m().watch_foreign_tables();  // as kvmnetd does with its nftables monitor
    for (int i = 1; i <= 5; ++i) {
        h.m().create(nat_network(i));
        h.m().start("n" + std::to_string(i));
    }
    for (int i = 6; i <= 8; ++i)
        h.m().create(nat_network(i));
    h.firewall.chain_listings = 0;
    h.m().start("n6");
    CHECK(h.m().state("n6") == State::active);
    CHECK(h.firewall.chain_listings == 0);
    // Another program changed one of its tables: listed again, once.
    h.m().foreign_firewall_changed();
    h.m().start("n7");
    CHECK(h.firewall.chain_listings == 1);
    h.m().start("n8");
    CHECK(h.firewall.chain_listings == 1);
}

}  // namespace unit_test_scale_flat
