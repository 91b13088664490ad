// kvmnet's bridges in firewalld's zone (core/firewalld.hpp), over a fake
// firewalld that records the calls.
#include "core/firewalld.hpp"

#include <catch2/catch.hpp>

#include <map>
#include <stdexcept>

using namespace kvmnet;
using core::Firewalld;

namespace {
struct FakeFirewalld final : core::FirewalldBus {
    bool up = true;
    std::map<std::string, std::string> zone;  // interface -> zone
    std::vector<std::string> calls;
    std::set<std::string> failing;  // interfaces whose change fails
    std::vector<std::string> loaded = {"public", "trusted", "kvmnet"};

    bool running() override { return up; }
    std::vector<std::string> zones() override { return loaded; }
    std::vector<std::string> interfaces_of(const std::string& z) override
    {
        calls.push_back("list " + z);
        std::vector<std::string> out;
        for (const auto& [i, iz] : zone)
            if (iz == z) out.push_back(i);
        return out;
    }
    std::string zone_of(const std::string& i) override
    {
        const auto it = zone.find(i);
        return it == zone.end() ? "" : it->second;
    }
    void change_zone(const std::string& z, const std::string& i) override
    {
        calls.push_back("change " + z + " " + i);
        if (failing.count(i)) throw std::runtime_error("org.fedoraproject.FirewallD1.Exception: INVALID_ZONE");
        zone[i] = z;
    }
    void remove_interface(const std::string& z, const std::string& i) override
    {
        calls.push_back("remove " + z + " " + i);
        zone.erase(i);
    }
};

model::Network net(const std::string& name, const std::string& bridge, model::Mode mode = model::Mode::nat)
{
    model::Network n;
    n.name = name;
    n.bridge = bridge;
    n.mode = mode;
    return n;
}
}  // namespace

TEST_CASE(
    "firewalld: running NAT, routed and isolated bridges go into zone kvmnet; bridge mode and opted-out ones do not")
{
    FakeFirewalld fw;
    Firewalld f(fw);
    auto manual = net("manual", "kvbr4");
    manual.firewall_integration = false;
    const std::vector<model::Network> running = {net("nat", "kvbr1"), net("routed", "kvbr2", model::Mode::routed),
                                                 net("iso", "kvbr3", model::Mode::isolated),
                                                 net("lan", "br0", model::Mode::bridge), manual};
    f.sync(running, {"kvbr1", "kvbr2", "kvbr3", "kvbr4", "br0"}, false);
    CHECK(fw.zone == std::map<std::string, std::string>{{"kvbr1", "kvmnet"}, {"kvbr2", "kvmnet"}, {"kvbr3", "kvmnet"}});
    CHECK(f.zone_of_last_sync("kvbr1") == "kvmnet");
    CHECK(f.zone_of_last_sync("br0").empty());
}

TEST_CASE("firewalld: a stopped network's bridge leaves the zone; interfaces kvmnet does not know stay")
{
    FakeFirewalld fw;
    fw.zone = {{"kvbr1", "kvmnet"}, {"kvbr2", "kvmnet"}, {"eth7", "kvmnet"}, {"kvbr9", "public"}};
    Firewalld f(fw);
    f.sync({net("nat", "kvbr1")}, {"kvbr1", "kvbr2", "kvbr9"}, false);
    CHECK(fw.zone == std::map<std::string, std::string>{{"kvbr1", "kvmnet"}, {"eth7", "kvmnet"}, {"kvbr9", "public"}});
}

TEST_CASE("firewalld: a bridge renamed by an update leaves the zone although no network has it any more")
{
    FakeFirewalld fw;
    Firewalld f(fw);
    f.sync({net("nat", "kvbr1")}, {"kvbr1"}, false);
    f.sync({net("nat", "kvbr7")}, {"kvbr7"}, false);
    CHECK(fw.zone == std::map<std::string, std::string>{{"kvbr7", "kvmnet"}});
}

TEST_CASE("firewalld: an unchanged set of bridges asks firewalld nothing until it reloads or restarts")
{
    FakeFirewalld fw;
    Firewalld f(fw);
    const std::vector<model::Network> running = {net("nat", "kvbr1")};
    f.sync(running, {"kvbr1"}, false);
    const auto after_first = fw.calls.size();
    f.sync(running, {"kvbr1"}, false);  // e.g. a port forward added
    CHECK(fw.calls.size() == after_first);
    fw.zone.clear();  // firewalld reloaded with FlushAllOnReload=yes
    f.sync(running, {"kvbr1"}, true);
    CHECK(fw.zone.at("kvbr1") == "kvmnet");
}

TEST_CASE("firewalld: not running, nothing is asked; once it appears (forced), the bridges go in")
{
    FakeFirewalld fw;
    fw.up = false;
    Firewalld f(fw);
    const std::vector<model::Network> running = {net("nat", "kvbr1")};
    f.sync(running, {"kvbr1"}, false);
    CHECK(fw.calls.empty());
    CHECK(f.zone_of_last_sync("kvbr1").empty());
    f.sync({net("nat", "kvbr1"), net("nat2", "kvbr2")}, {"kvbr1", "kvbr2"}, false);  // still absent
    CHECK(fw.calls.empty());
    fw.up = true;
    f.sync(running, {"kvbr1"}, true);
    CHECK(fw.zone.at("kvbr1") == "kvmnet");
    CHECK(f.zone_of_last_sync("kvbr1") == "kvmnet");
}

TEST_CASE("firewalld: a failed call is retried by the next sync, the others still happen")
{
    FakeFirewalld fw;
    fw.failing = {"kvbr1"};
    Firewalld f(fw);
    const std::vector<model::Network> running = {net("a", "kvbr1"), net("b", "kvbr2")};
    f.sync(running, {"kvbr1", "kvbr2"}, false);
    CHECK(fw.zone == std::map<std::string, std::string>{{"kvbr2", "kvmnet"}});
    CHECK(f.zone_of_last_sync("kvbr1").empty());
    fw.failing.clear();
    f.sync(running, {"kvbr1", "kvbr2"}, false);
    CHECK(fw.zone.at("kvbr1") == "kvmnet");
}

TEST_CASE("firewalld: diagnose says whether the bridge is in the zone and what to type when not")
{
    FakeFirewalld fw;
    Firewalld f(fw);
    auto n = net("nat", "kvbr1");
    fw.zone = {{"kvbr1", "kvmnet"}};
    auto check = f.check(n, true);
    REQUIRE(check);
    CHECK(check->ok);
    CHECK(check->detail == "firewalld runs; bridge kvbr1 is in its zone kvmnet");

    fw.zone.clear();
    n.firewall_integration = false;
    check = f.check(n, true);
    REQUIRE(check);
    CHECK_FALSE(check->ok);
    CHECK(check->detail == "firewalld runs and bridge kvbr1 is in no zone: firewalld's default zone applies, which "
                           "rejects guests' DHCP and DNS and does not forward their traffic (firewall integration "
                           "is off); let them through with: firewall-cmd --zone=kvmnet --change-interface=kvbr1");

    fw.zone = {{"kvbr1", "trusted"}};
    n.firewall_integration = true;
    check = f.check(n, true);
    REQUIRE(check);
    CHECK(check->detail == "firewalld runs and bridge kvbr1 is in zone trusted, not kvmnet: that zone decides what "
                           "guests may do; let them through with: firewall-cmd --zone=kvmnet --change-interface=kvbr1");

    fw.zone.clear();
    fw.loaded = {"public"};  // kvmnet's zone file not installed
    check = f.check(n, true);
    REQUIRE(check);
    CHECK(check->detail == "firewalld runs and bridge kvbr1 is in no zone: firewalld's default zone applies, which "
                           "rejects guests' DHCP and DNS and does not forward their traffic; firewalld has no zone "
                           "kvmnet: install kvmnet's zone and policies (firewalld/*.xml in the source; meson install "
                           "puts them under /usr/lib/firewalld) and run firewall-cmd --reload");

    CHECK_FALSE(f.check(n, false));                                      // stopped
    CHECK_FALSE(f.check(net("lan", "br0", model::Mode::bridge), true));  // firewalld's own zones
    fw.up = false;
    CHECK_FALSE(f.check(n, true));
}
