// model::IpAddress (an address of either family as one value) and the
// takeover record that stores observed addresses and routes as text.
#include "core/takeover_record.hpp"
#include "model/ip.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <string>

namespace unit_test_model_values {

using kvmnet::model::IpAddress;
using kvmnet::model::Ipv4;
using kvmnet::model::Ipv6;

TEST_CASE("IpAddress: either family round-trips through text", "[model]")
{
    for (const std::string text : {"0.0.0.0", "192.168.122.1", "255.255.255.255", "::", "fd00:1:2:3::1",
                                   "2001:db8::ff00:42:8329", "::ffff:192.0.2.1", "fe80::1"}) {
        const auto ip = IpAddress::parse(text);
        REQUIRE(ip);
        CHECK(ip->str() == text);
        CHECK(IpAddress::parse(ip->str()) == ip);
    }
    CHECK(IpAddress::parse("fd00:1:2:3:0:0:0:1")->str() == "fd00:1:2:3::1");  // canonical form
}

TEST_CASE("IpAddress: family and the value of each family", "[model]")
{
    const IpAddress v4 = *IpAddress::parse("10.0.0.1");
    CHECK(v4.is_v4());
    CHECK_FALSE(v4.is_v6());
    CHECK(v4.family() == 2);
    REQUIRE(v4.v4());
    CHECK(*v4.v4() == *Ipv4::parse("10.0.0.1"));
    CHECK(v4.v6() == nullptr);
    const IpAddress v6 = *IpAddress::parse("fd00::1");
    CHECK(v6.family() == 10);
    REQUIRE(v6.v6());
    CHECK(*v6.v6() == *Ipv6::parse("fd00::1"));
    CHECK(v6.v4() == nullptr);
    // Same bits, different families: never equal.
    CHECK(IpAddress(Ipv4{0}) != IpAddress(Ipv6{}));
    CHECK(IpAddress(*Ipv4::parse("10.0.0.1")) == v4);
    CHECK(*IpAddress::parse("10.0.0.1") < *IpAddress::parse("10.0.0.2"));
}

TEST_CASE("IpAddress: bad input is rejected", "[model]")
{
    for (const std::string bad :
         {"", "10.0.0", "10.0.0.256", "010.0.0.1", "10.0.0.1/24", " 10.0.0.1", "10.0.0.1 ", "fd00::1%eth0", "fd00:::1",
          "[fd00::1]", "fd00::1/64", "gateway", "multipath", "1.2.3.4.5", "::g"})
        CHECK_FALSE(IpAddress::parse(bad));
}

namespace {

const char* const old_record = R"({
  "uplink": "eth0", "bridge": "lan0",
  "addresses": [
    {"family": 2, "address": "192.0.2.10", "prefix_length": 24, "broadcast": "192.0.2.255", "label": "eth0",
     "scope": 0, "flags": 128, "valid_lifetime": 4294967295, "preferred_lifetime": 4294967295},
    {"family": 10, "address": "2001:db8:1::10", "prefix_length": 64, "broadcast": "", "label": "",
     "scope": 0, "flags": 2, "valid_lifetime": 4294967295, "preferred_lifetime": 4294967295}],
  "routes": [
    {"family": 2, "destination": "", "prefix_length": 0, "gateway": "192.0.2.1", "preferred_source": "",
     "table": 254, "metric": 100, "protocol": 4, "scope": 0, "type": 1, "flags": 0},
    {"family": 2, "destination": "10.88.0.0", "prefix_length": 16, "gateway": "2001:db8:1::1",
     "preferred_source": "192.0.2.10", "table": 254, "metric": 9, "protocol": 3, "scope": 0, "type": 1, "flags": 0}]
})";

}  // namespace

TEST_CASE("Takeover record: a record with textual addresses loads typed and is written the same", "[model][bridge]")
{
    const auto j = nlohmann::json::parse(old_record);
    const auto record = j.get<kvmnet::core::TakeoverRecord>();
    REQUIRE(record.addresses.size() == 2);
    CHECK(record.addresses[0].address == *IpAddress::parse("192.0.2.10"));
    CHECK(record.addresses[0].broadcast == Ipv4::parse("192.0.2.255"));
    CHECK(record.addresses[1].family() == 10);
    CHECK_FALSE(record.addresses[1].broadcast);
    REQUIRE(record.routes.size() == 2);
    CHECK_FALSE(record.routes[0].destination);
    CHECK(record.routes[0].gateway == IpAddress::parse("192.0.2.1"));
    CHECK_FALSE(record.routes[0].preferred_source);
    CHECK(record.routes[1].gateway == IpAddress::parse("2001:db8:1::1"));  // IPv4 route via an IPv6 next hop
    CHECK(record.routes[1].preferred_source == IpAddress::parse("192.0.2.10"));
    CHECK(nlohmann::json(record) == j);
}

TEST_CASE("Takeover record: an address that does not parse does not load", "[model][bridge]")
{
    auto j = nlohmann::json::parse(old_record);
    SECTION("address") { j["addresses"][0]["address"] = "192.0.2.300"; }
    SECTION("family") { j["addresses"][1]["family"] = 2; }
    SECTION("broadcast") { j["addresses"][0]["broadcast"] = "nope"; }
    SECTION("gateway") { j["routes"][0]["gateway"] = "gateway"; }
    CHECK_THROWS(j.get<kvmnet::core::TakeoverRecord>());
}

}  // namespace unit_test_model_values
