// Unit tests of IPv6: the address and prefix values (model/ipv6), the
// network document's "ipv6" object (parsing, validation, round trip,
// overlaps across networks), the ip6 match's nft text, the bridge's gateway
// address op and the dnsmasq lines (router advertisements, SLAAC, DHCPv6).
// The dual-stack ruleset (golden file and packet semantics) is tested in
// test_planner.cpp with the other rulesets.
#include "model/network.hpp"
#include "plan/planner.hpp"
#include "plan/ruleset.hpp"

#include "document_util.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace unit_test_ipv6 {

using kvmnet::ErrorKind;
using kvmnet::model::Ipv6;
using kvmnet::model::Ipv6Interface;
using kvmnet::model::Network;
using json = nlohmann::json;
namespace plan = kvmnet::plan;

namespace {

const char* const dual_stack = R"({"name": "default", "mode": "nat", "bridge": "kvmbr0",
    "ipv4": {"address": "192.168.122.1/24", "dhcp": {"ranges": ["192.168.122.100-192.168.122.254"]}},
    "ipv6": {"address": "fd00:1:2:3::1/64"}})";

std::string with(const char* patch, const char* base = dual_stack) { return kvmnet::test::merged(base, patch); }

using kvmnet::test::failure_of;

using kvmnet::test::lines_starting;

Ipv6Interface prefix(const char* text)
{
    auto p = Ipv6Interface::parse(text);
    REQUIRE(p);
    return *p;
}

}  // namespace

// ---------------------------------------------------------------- values

TEST_CASE("IPv6 addresses parse strictly and print canonically", "[ipv6]")
{
    CHECK(Ipv6::parse("fd00:1:2:3::1")->str() == "fd00:1:2:3::1");
    CHECK(Ipv6::parse("FD00:0001:0002:0003:0000:0000:0000:0001")->str() == "fd00:1:2:3::1");
    CHECK(Ipv6::parse("::")->str() == "::");
    CHECK(Ipv6::parse("::ffff:192.0.2.1")->is_v4_mapped());
    for (const char* bad : {"", "fd00::1/64", "fd00::1%eth0", " fd00::1", "fd00::1 ", "fd00:::1", "1:2:3:4:5:6:7:8:9",
                            "192.0.2.1", "[fd00::1]", "g::1"}) {
        CAPTURE(bad);
        CHECK_FALSE(Ipv6::parse(bad));
    }
    CHECK(Ipv6::parse("fe80::1")->is_link_local());
    CHECK(Ipv6::parse("febf::1")->is_link_local());
    CHECK_FALSE(Ipv6::parse("fec0::1")->is_link_local());
    CHECK(Ipv6::parse("ff02::1")->is_multicast());
    CHECK(Ipv6::parse("::1")->is_loopback());
    CHECK(Ipv6::parse("::")->is_unspecified());
}

TEST_CASE("IPv6 prefixes mask, contain and overlap", "[ipv6]")
{
    CHECK(prefix("fd00:1:2:3::1/64").network_str() == "fd00:1:2:3::/64");
    CHECK(prefix("fd00:1:2:3:ffff::1/57").network_str() == "fd00:1:2::/57");
    CHECK(prefix("fd00::1/128").network_str() == "fd00::1/128");
    CHECK(prefix("fd00::1/0").network_str() == "::/0");
    CHECK(prefix("fd00:1:2:3::1/64").contains(*Ipv6::parse("fd00:1:2:3:ffff:ffff:ffff:ffff")));
    CHECK_FALSE(prefix("fd00:1:2:3::1/64").contains(*Ipv6::parse("fd00:1:2:4::")));
    CHECK(prefix("fd00:1::1/32").overlaps(prefix("fd00:1:2:3::1/64")));
    CHECK(prefix("fd00:1:2:3::1/64").overlaps(prefix("fd00:1::1/32")));
    CHECK_FALSE(prefix("fd00:1:2:3::1/64").overlaps(prefix("fd00:1:2:4::1/64")));
    CHECK(prefix("fd00:1:2:3::1/63").overlaps(prefix("fd00:1:2:2::1/64")));
    for (const char* bad : {"fd00::1", "fd00::1/129", "fd00::1/064", "fd00::1/", "fd00::1/-1", "fd00::1/1x"}) {
        CAPTURE(bad);
        CHECK_FALSE(Ipv6Interface::parse(bad));
    }
}

// ---------------------------------------------------------------- document

TEST_CASE("An ipv6 object parses with SLAAC, router advertisements on and no NAT66 by default", "[network][ipv6]")
{
    const Network n = kvmnet::model::parse_network(dual_stack);
    REQUIRE(n.ipv6);
    CHECK(n.ipv6->address.str() == "fd00:1:2:3::1/64");
    CHECK(n.ipv6->ranges.empty());
    CHECK(n.ipv6->ra);
    CHECK_FALSE(n.ipv6->nat66);
    CHECK(kvmnet::model::to_json(n)["ipv6"] ==
          json::parse(R"({"address": "fd00:1:2:3::1/64", "ra": true, "nat66": false})"));
}

TEST_CASE("ipv6 round-trips through to_json", "[network][ipv6][json]")
{
    const std::string text = GENERATE(
        as<std::string>{}, std::string(dual_stack),
        with(R"({"ipv6": {"address": "FD00:1:2:3:0::1/64", "nat66": true}})"),
        with(R"({"ipv6": {"address": "fd00:1:2:3::1/112", "dhcp": {"ranges": ["fd00:1:2:3::100-fd00:1:2:3::1ff",
             "fd00:1:2:3::200-fd00:1:2:3::2ff"]}}})"),
        with(R"({"ipv6": {"address": "2001:db8::1/48", "ra": false}})"),
        with(R"({"mode": "routed", "ipv6": {"address": "2001:db8:5::1/64"}})"),
        with(
            R"({"mode": "isolated", "ipv6": {"address": "fd00:9::1/64", "dhcp": {"ranges": ["fd00:9::10-fd00:9::20"]}}})"));
    const Network original = kvmnet::model::parse_network(text);
    const json serialised = kvmnet::model::to_json(original);
    CAPTURE(serialised.dump());
    const Network again = kvmnet::model::parse_network(serialised.dump());
    CHECK(again == original);
    CHECK(kvmnet::model::to_json(again) == serialised);
}

TEST_CASE("Bad ipv6 objects are refused naming the field", "[network][ipv6][validation]")
{
    const std::vector<kvmnet::test::InvalidDocument> cases = {
        {"not an object", with(R"({"ipv6": "fd00::1/64"})"), "ipv6"},
        {"unknown field", with(R"({"ipv6": {"prefix": 64}})"), "ipv6.prefix"},
        {"no address", with(R"({"ipv6": {"address": null}})"), "ipv6.address"},
        {"address without prefix", with(R"({"ipv6": {"address": "fd00:1:2:3::1"}})"), "ipv6.address"},
        {"address of IPv4", with(R"({"ipv6": {"address": "10.0.0.1/24"}})"), "ipv6.address"},
        {"prefix 129", with(R"({"ipv6": {"address": "fd00::1/129"}})"), "ipv6.address"},
        {"prefix 0", with(R"({"ipv6": {"address": "fd00::1/0", "ra": false}})"), "ipv6.address"},
        {"address with a zone", with(R"({"ipv6": {"address": "fd00::1%br0/64"}})"), "ipv6.address"},
        {"link-local gateway", with(R"({"ipv6": {"address": "fe80::1/64"}})"), "ipv6.address"},
        {"multicast gateway", with(R"({"ipv6": {"address": "ff05::1/64"}})"), "ipv6.address"},
        {"v4-mapped gateway", with(R"({"ipv6": {"address": "::ffff:10.0.0.1/120", "ra": false}})"), "ipv6.address"},
        {"loopback gateway", with(R"({"ipv6": {"address": "::1/64"}})"), "ipv6.address"},
        {"unspecified gateway", with(R"({"ipv6": {"address": "::/64"}})"), "ipv6.address"},
        {"subnet-router anycast gateway", with(R"({"ipv6": {"address": "fd00:1:2:3::/64"}})"), "ipv6.address"},
        {"/128 gateway", with(R"({"ipv6": {"address": "fd00::1/128", "ra": false}})"), "ipv6.address"},
        {"SLAAC on a /80", with(R"({"ipv6": {"address": "fd00::1/80"}})"), "ipv6.address"},
        {"ra not a boolean", with(R"({"ipv6": {"ra": "yes"}})"), "ipv6.ra"},
        {"nat66 not a boolean", with(R"({"ipv6": {"nat66": 1}})"), "ipv6.nat66"},
        {"nat66 on a routed network", with(R"({"mode": "routed", "ipv6": {"nat66": true}})"), "ipv6.nat66"},
        {"nat66 on an isolated network", with(R"({"mode": "isolated", "ipv6": {"nat66": true}})"), "ipv6.nat66"},
        {"dhcp without ranges", with(R"({"ipv6": {"dhcp": {}}})"), "ipv6.dhcp.ranges"},
        {"dhcp with empty ranges", with(R"({"ipv6": {"dhcp": {"ranges": []}}})"), "ipv6.dhcp.ranges"},
        {"dhcp unknown field",
         with(R"({"ipv6": {"dhcp": {"ranges": ["fd00:1:2:3::10-fd00:1:2:3::20"], "bootp": {}}}})"), "ipv6.dhcp.bootp"},
        {"range not a string", with(R"({"ipv6": {"dhcp": {"ranges": [1]}}})"), "ipv6.dhcp.ranges[0]"},
        {"range without a dash", with(R"({"ipv6": {"dhcp": {"ranges": ["fd00:1:2:3::10"]}}})"), "ipv6.dhcp.ranges[0]"},
        {"range end not an address", with(R"({"ipv6": {"dhcp": {"ranges": ["fd00:1:2:3::10-x"]}}})"),
         "ipv6.dhcp.ranges[0]"},
        {"range outside the prefix",
         with(R"({"ipv6": {"dhcp": {"ranges": ["fd00:1:2:3::10-fd00:1:2:3::20", "fd00:1:2:4::10-fd00:1:2:4::20"]}}})"),
         "ipv6.dhcp.ranges[1]"},
        {"range reversed", with(R"({"ipv6": {"dhcp": {"ranges": ["fd00:1:2:3::20-fd00:1:2:3::10"]}}})"),
         "ipv6.dhcp.ranges[0]"},
        {"range from the subnet-router anycast address",
         with(R"({"ipv6": {"dhcp": {"ranges": ["fd00:1:2:3::-fd00:1:2:3::10"]}}})"), "ipv6.dhcp.ranges[0]"},
        {"range with the gateway", with(R"({"ipv6": {"dhcp": {"ranges": ["fd00:1:2:3::1-fd00:1:2:3::10"]}}})"),
         "ipv6.dhcp.ranges[0]"},
        {"overlapping ranges",
         with(R"({"ipv6": {"dhcp": {"ranges": ["fd00:1:2:3::10-fd00:1:2:3::20", "fd00:1:2:3::20-fd00:1:2:3::30"]}}})"),
         "ipv6.dhcp.ranges[1]"},
        {"ipv6 in bridge mode",
         R"({"name": "lan", "mode": "bridge", "uplink": "eth0", "ipv6": {"address": "fd00::1/64"}})", "ipv6"},
        {"ipv6 without ipv4", with(R"({"ipv4": null})"), "ipv4"},
        {"forwarder is the IPv6 gateway", with(R"({"dns": {"forwarders": ["fd00:1:2:3::1"]}})"), "dns.forwarders[0]"},
    };
    kvmnet::test::check_all_invalid(cases);
}

TEST_CASE("Accepted ipv6 prefixes: /64 for SLAAC, any length with DHCPv6 ranges or without RA", "[network][ipv6]")
{
    CHECK_FALSE(failure_of(with(R"({"ipv6": {"address": "2001:db8:1:2::1/64"}})")));
    CHECK_FALSE(failure_of(with(R"({"ipv6": {"address": "fd00::1/120", "dhcp": {"ranges": ["fd00::10-fd00::ff"]}}})")));
    CHECK_FALSE(failure_of(with(R"({"ipv6": {"address": "fd00::1/127", "ra": false}})")));
    CHECK_FALSE(failure_of(with(R"({"ipv6": {"address": "fd00::1/1", "ra": false}})")));
}

TEST_CASE("IPv6 subnets must not overlap another network's", "[network][ipv6]")
{
    const Network a = kvmnet::model::parse_network(dual_stack);
    const Network b = kvmnet::model::parse_network(
        R"({"name": "b", "mode": "routed", "bridge": "kvmbr1", "ipv4": {"address": "10.1.0.1/24"},
            "ipv6": {"address": "fd00:1::1/32", "ra": false}})");
    try {
        kvmnet::model::validate_against(b, {a});
        FAIL("overlap not refused");
    } catch (const kvmnet::Error& e) {
        CHECK(e.kind() == ErrorKind::Conflict);
        CHECK_THAT(std::string(e.what()), Catch::Matchers::StartsWith("ipv6.address: fd00:1::/32 overlaps "
                                                                      "fd00:1:2:3::/64 of network 'default'"));
    }
    const Network c = kvmnet::model::parse_network(
        R"({"name": "c", "mode": "routed", "bridge": "kvmbr1", "ipv4": {"address": "10.1.0.1/24"},
            "ipv6": {"address": "fd00:1:2:4::1/64"}})");
    CHECK_NOTHROW(kvmnet::model::validate_against(c, {a}));
}

// ---------------------------------------------------------------- rendering and planning

TEST_CASE("ip6 matches render as nft lists them", "[ruleset][ipv6]")
{
    auto text = [](const plan::MatchIpv6& m) {
        plan::Table t{
            "t", {plan::Chain{"c", "filter", "forward", 0, true, {plan::Rule{{m}, false, plan::Verdict::accept, ""}}}}};
        const std::string all = plan::render(t);
        const auto start = all.find("policy accept;\n\t\t") + 17;
        return all.substr(start, all.find('\n', start) - start);
    };
    const auto p64 = prefix("fd00:1:2:3::/64");
    CHECK(text({true, plan::Cmp::eq, {p64.network().bytes, 64}}) == "ip6 saddr fd00:1:2:3::/64 accept");
    CHECK(text({false, plan::Cmp::neq, {p64.network().bytes, 64}}) == "ip6 daddr != fd00:1:2:3::/64 accept");
    CHECK(text({true, plan::Cmp::eq, {Ipv6::parse("2001:db8::1")->bytes, 128}}) == "ip6 saddr 2001:db8::1 accept");
    CHECK(text({true, plan::Cmp::eq, {{}, 0}}) == "ip6 saddr ::/0 accept");
}

TEST_CASE("The bridge gets the IPv6 gateway with nodad, once", "[planner][bridge][ipv6]")
{
    const Network n = kvmnet::model::parse_network(dual_stack);
    const auto ops = plan::plan_bridge(n, std::nullopt, {});
    std::vector<std::string> described;
    for (const auto& op : ops)
        described.push_back(plan::describe(op));
    CHECK(described == std::vector<std::string>{"create bridge kvmbr0", "mark kvmbr0 as kvmnet:default",
                                                "add address 192.168.122.1/24 to kvmbr0",
                                                "add address fd00:1:2:3::1/64 to kvmbr0", "bring kvmbr0 up"});
    const auto* v6 = std::get_if<plan::AddAddress>(&ops[3]);
    REQUIRE(v6);
    CHECK(v6->address.family() == 10);
    CHECK(v6->flags == 0x02);  // IFA_F_NODAD
    const auto* v4 = std::get_if<plan::AddAddress>(&ops[2]);
    REQUIRE(v4);
    CHECK(v4->address.family() == 2);

    SECTION("an adopted bridge that has both addresses needs nothing")
    {
        plan::LinkInfo bridge;
        bridge.index = 7;
        bridge.name = "kvmbr0";
        bridge.kind = "bridge";
        bridge.alias = "kvmnet:default";
        bridge.up = true;
        std::vector<plan::AddressInfo> addresses(2);
        addresses[0].link_index = 7;
        addresses[0].address = *kvmnet::model::IpAddress::parse("192.168.122.1");
        addresses[0].prefix_length = 24;
        addresses[1].link_index = 7;
        addresses[1].address = *kvmnet::model::IpAddress::parse("fd00:1:2:3:0:0:0:1");  // any spelling
        addresses[1].prefix_length = 64;
        CHECK(plan::plan_bridge(n, bridge, addresses).empty());
        addresses[1].prefix_length = 80;
        REQUIRE(plan::plan_bridge(n, bridge, addresses).size() == 1);
        CHECK(plan::describe(plan::plan_bridge(n, bridge, addresses)[0]) == "add address fd00:1:2:3::1/64 to kvmbr0");
    }
}

TEST_CASE("dnsmasq sends router advertisements for SLAAC and listens on the IPv6 gateway", "[planner][dnsmasq][ipv6]")
{
    const auto c = plan::plan_dnsmasq(kvmnet::model::parse_network(dual_stack), "/r", "").config;
    CAPTURE(c);
    CHECK(lines_starting(c, "listen-address=") ==
          std::vector<std::string>{"listen-address=192.168.122.1", "listen-address=fd00:1:2:3::1"});
    CHECK(lines_starting(c, "enable-ra") == std::vector<std::string>{"enable-ra"});
    CHECK(lines_starting(c, "ra-param=").empty());
    CHECK(lines_starting(c, "dhcp-range=fd00") == std::vector<std::string>{"dhcp-range=fd00:1:2:3::,ra-only,64"});
    // The IPv4 DHCP is unchanged.
    CHECK(lines_starting(c, "dhcp-range=192") ==
          std::vector<std::string>{"dhcp-range=192.168.122.100,192.168.122.254,255.255.255.0,1h"});
    CHECK(lines_starting(c, "server=").empty());
}

TEST_CASE("DHCPv6 ranges make dnsmasq hand out addresses statefully", "[planner][dnsmasq][ipv6]")
{
    const auto n = kvmnet::model::parse_network(
        with(R"({"ipv6": {"address": "fd00:1:2:3::1/64", "dhcp": {"ranges": ["fd00:1:2:3::100-fd00:1:2:3::1ff"]}}})"));
    const auto c = plan::plan_dnsmasq(n, "/r", "").config;
    CAPTURE(c);
    CHECK(lines_starting(c, "dhcp-range=fd00") ==
          std::vector<std::string>{"dhcp-range=fd00:1:2:3::100,fd00:1:2:3::1ff,64,1h"});
    CHECK(lines_starting(c, "enable-ra") == std::vector<std::string>{"enable-ra"});
}

TEST_CASE("An isolated network advertises its prefix but no route; ra false sends no RA", "[planner][dnsmasq][ipv6]")
{
    const auto iso = kvmnet::model::parse_network(with(R"({"mode": "isolated"})"));
    const auto c = plan::plan_dnsmasq(iso, "/r", "").config;
    CHECK(lines_starting(c, "ra-param=") == std::vector<std::string>{"ra-param=kvmbr0,600,0"});

    const auto quiet = kvmnet::model::parse_network(with(R"({"ipv6": {"ra": false}})"));
    const auto q = plan::plan_dnsmasq(quiet, "/r", "").config;
    CAPTURE(q);
    CHECK(lines_starting(q, "enable-ra").empty());
    CHECK(lines_starting(q, "dhcp-range=fd00").empty());
    CHECK(lines_starting(q, "listen-address=fd00:1:2:3::1").size() == 1);
}

TEST_CASE("Without ipv6 the dnsmasq config has no IPv6 lines", "[planner][dnsmasq][ipv6]")
{
    const auto c = plan::plan_dnsmasq(kvmnet::model::parse_network(with(R"({"ipv6": null})")), "/r", "").config;
    CHECK(lines_starting(c, "enable-ra").empty());
    CHECK(lines_starting(c, "listen-address=") == std::vector<std::string>{"listen-address=192.168.122.1"});
}

}  // namespace unit_test_ipv6
