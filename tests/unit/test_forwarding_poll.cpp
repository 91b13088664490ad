// Issue 17 item 3: the 2 s poll of the held sysctls reads only what sends
// no notification (route_localnet, NAT bridges), and a bounded number of
// bridges per turn of the loop, so that neither a turn nor a start waiting
// behind it grows with the networks running. Forwarding (ip_forward, IPv6,
// a bridge's) is heard as RTM_NEWNETCONF (Manager::sysctl_changed).
#include "manager_harness.hpp"

namespace unit_test_forwarding_poll {

using namespace kvmnet;
using namespace kvmnet::test;

namespace {

std::string network(int i, const char* mode)
{
    return R"({"name": "p)" + std::to_string(i) + R"(", "mode": ")" + mode + R"(", "bridge": "kvp)" +
           std::to_string(i) + R"(", "ipv4": {"address": "10.)" + std::to_string(100 + i / 250) + "." +
           std::to_string(i % 250) + R"(.1/24"}})";
}

int reads_ending(const FakeLinks& links, const std::string& suffix)
{
    int n = 0;
    for (const auto& [key, count] : links.sysctl_reads)
        if (key.size() >= suffix.size() && key.compare(key.size() - suffix.size(), suffix.size(), suffix) == 0)
            n += count;
    return n;
}

}  // namespace

TEST_CASE("Forwarding poll: route_localnet of NAT bridges only, at most 64 per turn", "[manager][scale]")
{
    HealingHarness h;  // "iso": NAT on kvmbr9
    constexpr int nat = 100;
    for (int i = 1; i <= nat + 3; ++i) {
        h.m().create(network(i, i <= nat ? "nat" : "routed"));
        h.m().start("p" + std::to_string(i));
        REQUIRE(h.m().state("p" + std::to_string(i)) == State::active);
    }
    h.let_repairs_run();
    h.links.sysctl_reads.clear();
    // Two full passes, in steps shorter than the gap between two turns.
    int most = 0;
    for (int step = 0; step < 2 * 2'000 + 200; ++step) {
        const int before = reads_ending(h.links, "/route_localnet");
        h.clock.advance(1'000);
        most = std::max(most, reads_ending(h.links, "/route_localnet") - before);
    }
    CHECK(most > 0);
    CHECK(most <= 64);
    // Every NAT bridge twice (the routed ones hold no route_localnet).
    CHECK(reads_ending(h.links, "/route_localnet") == 2 * (nat + 1));
    for (int i = nat + 1; i <= nat + 3; ++i)
        CHECK(h.links.sysctl_reads.count("net/ipv4/conf/kvp" + std::to_string(i) + "/route_localnet") == 0);
    // Forwarding is heard, not polled.
    CHECK(reads_ending(h.links, "/forwarding") == 0);
    CHECK(h.links.sysctl_reads.count("net/ipv4/ip_forward") == 0);
    // route_localnet turned off is still found and repaired within a pass.
    h.links.sysctls["net/ipv4/conf/kvp77/route_localnet"] = "0";
    h.clock.advance(2'500'000);
    CHECK(h.links.sysctls["net/ipv4/conf/kvp77/route_localnet"] == "1");
    CHECK(h.m().state("p77") == State::active);
    CHECK_THAT(h.listener.repairs.back(), Catch::Matchers::Contains("route_localnet on again"));
}

}  // namespace unit_test_forwarding_poll
