// Unit tests of overlay.host_address given as an IPv6 address (issue 15):
// the per-host address is IPv4 only, so an IPv6 one is refused as
// Unsupported naming the field (not InvalidArgument: the address is well
// formed), while a malformed one stays InvalidArgument.
#include "document_util.hpp"

#include <catch2/catch.hpp>

#include <string>

namespace unit_test_overlay_host6 {

using kvmnet::ErrorKind;
using kvmnet::test::check_refused;
using kvmnet::test::failure_of;

namespace {

const char* const base_document = R"({
    "name": "span", "mode": "nat", "bridge": "kvmbr7",
    "ipv4": { "address": "10.77.0.1/24", "dhcp": { "ranges": ["10.77.0.10-10.77.0.99"] } },
    "ipv6": { "address": "fd00:77::1/64" },
    "overlay": { "vni": 100, "local": "10.99.0.1", "peers": ["10.99.0.3", "10.99.0.2"] }
})";

std::string with_host_address(const std::string& address)
{
    return kvmnet::test::merged(base_document, R"({"overlay": {"host_address": ")" + address + R"("}})");
}

}  // namespace

TEST_CASE("overlay.host_address: an IPv6 address is Unsupported, naming the field", "[overlay]")
{
    check_refused(with_host_address("fd00:77::fe"), ErrorKind::Unsupported, "overlay.host_address");
    const auto failure = failure_of(with_host_address("fd00:77::fe"));
    REQUIRE(failure);
    CHECK_THAT(failure->message, Catch::Matchers::Contains("IPv4 only"));
}

TEST_CASE("overlay.host_address: neither IPv4 nor IPv6 is InvalidArgument", "[overlay]")
{
    check_refused(with_host_address("fd00:77::fe::1"), ErrorKind::InvalidArgument, "overlay.host_address");
    check_refused(with_host_address("10.77.0"), ErrorKind::InvalidArgument, "overlay.host_address");
}

}  // namespace unit_test_overlay_host6
