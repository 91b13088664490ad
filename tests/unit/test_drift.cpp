// plan::drift: one judgement of desired against observed, seen as the
// network's state (the most urgent reason with a code) and as Diagnose's
// checks. Pure: observations are written out here.
#include "model/network.hpp"
#include "plan/drift.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <sys/socket.h>

namespace unit_test_drift {

using namespace kvmnet;
using plan::Status;

namespace {

model::Network nat()
{
    return model::parse_network(
        R"({"name": "web", "mode": "nat", "bridge": "kvmbr5", "ipv4": {"address": "10.5.0.1/24"}})");
}

model::Network bridged()
{
    return model::parse_network(R"({"name": "lan", "mode": "bridge", "bridge": "lan0", "uplink": "eth0"})");
}

plan::LinkInfo link(int index, const std::string& name, const std::string& alias = {}, bool up = true)
{
    plan::LinkInfo l;
    l.index = index;
    l.name = name;
    l.alias = alias;
    l.up = up;
    l.carrier = up;
    l.kind = "bridge";
    return l;
}

// A running NAT network exactly as planned, observed in full.
plan::Observed healthy_nat()
{
    plan::Observed o;
    o.running = true;
    o.bridge = link(5, "kvmbr5", "kvmnet:web");
    plan::AddressInfo a;
    a.link_index = 5;
    a.address = *kvmnet::model::IpAddress::parse("10.5.0.1");
    a.prefix_length = 24;
    o.addresses = std::vector<plan::AddressInfo>{a};
    o.ports.emplace();
    o.ip_forward = "1\n";
    o.dnsmasq_state = "running";
    o.dnsmasq_pid = 42;
    o.listeners = std::vector<plan::Listener>{{false, *model::IpAddress::parse("10.5.0.1"), 53},
                                              {false, *model::IpAddress::parse("0.0.0.0"), 67}};
    o.firewall = plan::FirewallView{"kvmnet", {"forward", "postrouting"}, {}, {}};
    for (const char* chain : {"forward", "postrouting"})
        o.firewall->chains.push_back({"inet", "kvmnet", chain, false, {}, 0, {}});
    return o;
}

const plan::Finding* check(const plan::Drift& d, const std::string& name)
{
    const auto it =
        std::find_if(d.findings.begin(), d.findings.end(), [&](const plan::Finding& f) { return f.check == name; });
    return it == d.findings.end() ? nullptr : &*it;
}

}  // namespace

TEST_CASE("A network as planned: every check passes and the state has no reason", "[drift]")
{
    const auto d = plan::drift(nat(), healthy_nat());
    CHECK(d.verdict() == Status::pass);
    CHECK(d.state().code.empty());
    CHECK(d.state().reason.empty());
    for (const char* name : {"bridge", "ipv4-address", "ip-forward", "dnsmasq", "firewall"}) {
        INFO(name);
        REQUIRE(check(d, name));
        CHECK(check(d, name)->status == Status::pass);
    }
    CHECK(check(d, "dnsmasq")->detail == "dnsmasq is running (pid 42) and serving DNS");
}

TEST_CASE("One finding, two views: a deleted bridge is a failed check and the state's reason", "[drift]")
{
    auto o = healthy_nat();
    o.bridge.reset();
    o.firewall_problem = "nftables table inet kvmnet was changed outside kvmnet (nft); repairing";
    o.firewall_problem_code = "firewall-changed";
    const auto d = plan::drift(nat(), o);
    REQUIRE(check(d, "bridge"));
    CHECK(check(d, "bridge")->status == Status::fail);
    CHECK(check(d, "bridge")->detail == "kvmbr5 does not exist");
    // The bridge outranks the firewall.
    CHECK(d.state().code == "bridge-deleted");
    CHECK(d.state().reason == "bridge kvmbr5 was deleted outside kvmnet");
    CHECK(d.verdict() == Status::fail);
    // The daemon's own knowledge (a pending firewall repair) is no check of Diagnose.
    CHECK(std::count_if(d.findings.begin(), d.findings.end(),
                        [](const plan::Finding& f) { return f.code == "firewall-changed" && f.check.empty(); }) == 1);
}

TEST_CASE("Bridge mode: a missing uplink outranks a bridge that is down", "[drift]")
{
    plan::Observed o;
    o.running = true;
    o.bridge = link(7, "lan0", "kvmnet:lan", false);
    auto d = plan::drift(bridged(), o);
    CHECK(d.state().code == "uplink-missing");
    CHECK(d.state().reason == "uplink eth0 has disappeared");

    auto uplink = link(3, "eth0");
    uplink.kind = "";
    o.uplink = uplink;  // not enslaved
    o.bridge->up = true;
    d = plan::drift(bridged(), o);
    CHECK(d.state().code == "uplink-released");
    CHECK(check(d, "uplink")->detail == "uplink eth0 is not a port of lan0");

    o.uplink->master_index = 7;
    d = plan::drift(bridged(), o);
    CHECK(d.state().code.empty());
    CHECK(check(d, "uplink")->status == Status::pass);
    // No gateway or dnsmasq checks in bridge mode, and no owner warning.
    CHECK_FALSE(check(d, "ipv4-address"));
    CHECK_FALSE(check(d, "bridge-owner"));
}

TEST_CASE("A repair deferred by the budget is added to the reason, whatever the cause", "[drift]")
{
    auto o = healthy_nat();
    o.repair_wait = "repair of sysctls over the repair budget of 20 repairs per minute; retrying in 4 s";
    SECTION("alone")
    {
        const auto d = plan::drift(nat(), o);
        CHECK(d.state().code == "repair-budget");
        CHECK(d.state().reason == o.repair_wait);
        CHECK(d.verdict() == Status::pass);
    }
    SECTION("after the cause")
    {
        o.bridge->up = false;
        const auto d = plan::drift(nat(), o);
        CHECK(d.state().code == "repair-budget");
        CHECK(d.state().reason == "bridge kvmbr5 was set down outside kvmnet; " + o.repair_wait);
    }
    SECTION("a firewall repair deferred by its budget is a cause, not a link repair waiting")
    {
        o.repair_wait.clear();
        o.firewall_problem = "nftables table inet kvmnet keeps being changed outside kvmnet (nft); retrying in 1 s";
        o.firewall_problem_code = "repair-budget";
        const auto d = plan::drift(nat(), o);
        CHECK(d.state().code == "repair-budget");
        CHECK(d.state().reason == o.firewall_problem);
    }
}

TEST_CASE("What was not observed is not judged: the state's observation reads links only", "[drift]")
{
    plan::Observed o;
    o.running = true;
    o.bridge = link(5, "kvmbr5", "kvmnet:web");
    const auto d = plan::drift(nat(), o);
    CHECK(d.state().code.empty());
    for (const char* name : {"ipv4-address", "ip-forward", "dnsmasq", "firewall"})
        CHECK_FALSE(check(d, name));
}

TEST_CASE("Forwarding off: Diagnose fails the check, the state names the daemon's finding", "[drift]")
{
    auto o = healthy_nat();
    o.ip_forward = "0\n";
    auto d = plan::drift(nat(), o);
    CHECK(check(d, "ip-forward")->detail == "net.ipv4.ip_forward is 0: guests cannot reach other networks");
    CHECK(d.state().code.empty());  // the poll (Manager::check_forwarding) decides

    o.forwarding_problem = "net.ipv4.ip_forward was turned off outside kvmnet";
    d = plan::drift(nat(), o);
    CHECK(d.state().code == "ip-forward-off");

    // Isolated networks route nothing.
    auto isolated = nat();
    isolated.mode = model::Mode::isolated;
    d = plan::drift(isolated, o);
    CHECK_FALSE(check(d, "ip-forward"));
    CHECK(d.state().code.empty());
}

TEST_CASE("A stopped network: only its bridge name is checked", "[drift]")
{
    plan::Observed o;
    CHECK(plan::drift(nat(), o).findings.size() == 1);
    CHECK(plan::drift(nat(), o).verdict() == Status::pass);
    o.bridge = link(5, "kvmbr5", "kvmnet:web");
    CHECK(plan::drift(nat(), o).verdict() == Status::warn);
    o.bridge->alias = "";
    CHECK(plan::drift(nat(), o).verdict() == Status::fail);
}

}  // namespace unit_test_drift
