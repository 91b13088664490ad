// Unit tests of how a network's dnsmasq binds its sockets: once
// (bind-interfaces) for IPv4-only networks, so that no address added anywhere
// on the host wakes it; following address changes (bind-dynamic) where IPv6
// needs it.
#include "model/network.hpp"
#include "plan/planner.hpp"

#include "document_util.hpp"

#include <catch2/catch.hpp>

#include <string>

namespace unit_test_dnsmasq_bind {

using kvmnet::test::has_line;
using kvmnet::test::merged;
using kvmnet::test::parse_ok;

namespace {

const char* const v4_document = R"({"name": "default", "mode": "nat", "bridge": "kvmbr0",
    "ipv4": {"address": "192.168.122.1/24", "dhcp": {"ranges": ["192.168.122.100-192.168.122.254"]}}})";

}  // namespace

TEST_CASE("An IPv4-only network's dnsmasq binds once to its bridge", "[planner][dnsmasq]")
{
    for (const char* patch : {"{}", R"({"ipv4": {"dhcp": null}})", R"({"mode": "isolated"})"}) {
        const std::string c = kvmnet::plan::plan_dnsmasq(parse_ok(merged(v4_document, patch)), "/r", "").config;
        CAPTURE(patch, c);
        CHECK(has_line(c, "bind-interfaces"));
        CHECK_FALSE(has_line(c, "bind-dynamic"));
        CHECK(has_line(c, "interface=kvmbr0"));
        CHECK(has_line(c, "listen-address=192.168.122.1"));
    }
}

TEST_CASE("A network with IPv6 keeps dnsmasq following address changes", "[planner][dnsmasq]")
{
    const std::string c = kvmnet::plan::plan_dnsmasq(
                              parse_ok(merged(v4_document, R"({"ipv6": {"address": "fd00:1:2:3::1/64"}})")), "/r", "")
                              .config;
    CAPTURE(c);
    CHECK(has_line(c, "bind-dynamic"));
    CHECK_FALSE(has_line(c, "bind-interfaces"));
}

}  // namespace unit_test_dnsmasq_bind
