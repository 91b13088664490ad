// Unit tests of the DHCP server of an overlay network (issue 15): dnsmasq
// does not ping an address before offering it (the ping makes it deaf to
// DHCP for up to 3 s per new address, and on an overlay it cannot see the
// other hosts' guests anyway); networks without an overlay keep the check.
#include "model/network.hpp"
#include "plan/planner.hpp"

#include "document_util.hpp"

#include <catch2/catch.hpp>

#include <string>

namespace unit_test_overlay_dhcp {

using kvmnet::test::has_line;
using kvmnet::test::merged;
using kvmnet::test::parse_ok;

namespace {

const char* const plain = R"({"name": "span", "mode": "nat", "bridge": "kvmbr7",
    "ipv4": {"address": "10.77.0.1/24", "dhcp": {"ranges": ["10.77.0.10-10.77.0.99"]}}})";

}  // namespace

TEST_CASE("An overlay network's dnsmasq offers without an ICMP check", "[planner][dnsmasq][overlay]")
{
    for (const char* overlay :
         {R"({"overlay": {"vni": 100, "local": "10.99.0.1", "peers": ["10.99.0.2", "10.99.0.3"]}})",
          R"({"overlay": {"vni": 100, "local": "10.99.0.1", "dhcp_slice": {"index": 0, "count": 3},
                          "evpn": {"asn": 65000, "neighbors": ["10.99.0.2"]}}})"}) {
        const std::string c = kvmnet::plan::plan_dnsmasq(parse_ok(merged(plain, overlay)), "/r", "").config;
        CAPTURE(overlay, c);
        CHECK(has_line(c, "no-ping"));
    }
}

TEST_CASE("A network on one host keeps dnsmasq's ICMP check", "[planner][dnsmasq][overlay]")
{
    const std::string c = kvmnet::plan::plan_dnsmasq(parse_ok(plain), "/r", "").config;
    CAPTURE(c);
    CHECK_FALSE(has_line(c, "no-ping"));
}

}  // namespace unit_test_overlay_dhcp
