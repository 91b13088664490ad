// Unit tests of the overlay's per-host address (model/overlay): the explicit
// overlay.host_address and its typed validation, and the address every host
// derives from the same document without talking to the others (different
// on each host, never the gateway, a DHCP range or a static host), with the
// MAC its frames carry over the overlay.
#include "model/network.hpp"
#include "model/overlay.hpp"

#include "document_util.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <optional>
#include <set>
#include <string>

namespace unit_test_overlay_host {

using kvmnet::model::DhcpSlice;
using kvmnet::model::Ipv4;
using kvmnet::model::Network;
using kvmnet::model::overlay_gateway_mac;
using kvmnet::model::overlay_host_address;
using kvmnet::model::overlay_host_mac;
using kvmnet::test::InvalidDocument;

namespace {

const char* const base_document = R"({
    "name": "span",
    "mode": "nat",
    "bridge": "kvmbr7",
    "ipv4": { "address": "10.77.0.1/24", "dhcp": { "ranges": ["10.77.0.10-10.77.0.99"] } },
    "overlay": { "vni": 100, "local": "10.99.0.1", "peers": ["10.99.0.3", "10.99.0.2"] }
})";

std::string patched(const char* patch) { return kvmnet::test::merged(base_document, patch); }

Ipv4 ip(const char* text) { return *Ipv4::parse(text); }

}  // namespace

TEST_CASE("overlay host address: derived from the top of the subnet by the host's slice", "[overlay]")
{
    const Network n = kvmnet::test::parse_ok(base_document);
    CHECK_FALSE(n.overlay->host_address);
    CHECK(overlay_host_address(n, DhcpSlice{0, 3}) == ip("10.77.0.254"));
    CHECK(overlay_host_address(n, DhcpSlice{1, 3}) == ip("10.77.0.253"));
    CHECK(overlay_host_address(n, DhcpSlice{2, 3}) == ip("10.77.0.252"));
    CHECK_FALSE(overlay_host_address(n, std::nullopt));
}

TEST_CASE("overlay host address: derived ones skip the gateway, ranges and static hosts", "[overlay]")
{
    // .200-.254 handed out by DHCP, .199 a static host, .198 the gateway.
    const Network n = kvmnet::test::parse_ok(patched(R"({"ipv4": {"address": "10.77.0.198/24",
        "dhcp": {"ranges": ["10.77.0.200-10.77.0.254"],
                 "hosts": [{"mac": "52:54:00:00:00:01", "ip": "10.77.0.199"}]}}})"));
    CHECK(overlay_host_address(n, DhcpSlice{0, 3}) == ip("10.77.0.197"));
    CHECK(overlay_host_address(n, DhcpSlice{1, 3}) == ip("10.77.0.196"));
    // A subnet with nothing free: none (the start refuses it).
    const Network full = kvmnet::test::parse_ok(
        patched(R"({"ipv4": {"address": "10.77.0.1/29", "dhcp": {"ranges": ["10.77.0.2-10.77.0.6"]}}})"));
    CHECK_FALSE(overlay_host_address(full, DhcpSlice{0, 3}));
}

TEST_CASE("overlay host address: an explicit one is used and round-trips", "[overlay]")
{
    const Network n = kvmnet::test::parse_ok(patched(R"({"overlay": {"host_address": "10.77.0.5"}})"));
    CHECK(n.overlay->host_address == ip("10.77.0.5"));
    CHECK(overlay_host_address(n, DhcpSlice{2, 3}) == ip("10.77.0.5"));
    CHECK(to_json(n)["overlay"]["host_address"] == "10.77.0.5");
    CHECK(kvmnet::model::parse_network(to_json(n)) == n);
}

TEST_CASE("overlay host address: bad ones are refused naming the field", "[overlay]")
{
    kvmnet::test::check_all_invalid({
        {"not an address", patched(R"({"overlay": {"host_address": "10.77.0"}})"), "overlay.host_address"},
        {"not a string", patched(R"({"overlay": {"host_address": 5}})"), "overlay.host_address"},
        {"outside the subnet", patched(R"({"overlay": {"host_address": "10.78.0.5"}})"), "overlay.host_address"},
        {"the gateway", patched(R"({"overlay": {"host_address": "10.77.0.1"}})"), "overlay.host_address"},
        {"the broadcast", patched(R"({"overlay": {"host_address": "10.77.0.255"}})"), "overlay.host_address"},
        {"in a DHCP range", patched(R"({"overlay": {"host_address": "10.77.0.50"}})"), "overlay.host_address"},
        {"a static host", patched(R"({"ipv4": {"dhcp": {"hosts": [{"mac": "52:54:00:00:00:01", "ip": "10.77.0.5"}]}},
                     "overlay": {"host_address": "10.77.0.5"}})"),
         "overlay.host_address"},
    });
}

TEST_CASE("overlay host address: its MAC differs per host and from the gateway's", "[overlay]")
{
    const Network n = kvmnet::test::parse_ok(base_document);
    std::set<std::string> macs{overlay_gateway_mac(n).str()};
    for (const char* host : {"10.77.0.254", "10.77.0.253", "10.77.0.252"}) {
        const auto mac = overlay_host_mac(n, ip(host));
        CHECK(mac.unicast());
        CHECK((mac.bytes[0] & 0x02) == 0x02);  // locally administered
        CHECK(macs.insert(mac.str()).second);
    }
    // The same on every host (a host computes it for itself, others learn it).
    CHECK(overlay_host_mac(n, ip("10.77.0.254")) == overlay_host_mac(n, ip("10.77.0.254")));
}

}  // namespace unit_test_overlay_host
