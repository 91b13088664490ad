// Unit tests of model/overlay: the "overlay" section's parsing and
// validation (typed errors naming the field), its JSON round trip, and the
// values every host must derive alike: the gateway MAC, the DHCP slice and
// the MTU.
#include "model/network.hpp"
#include "model/overlay.hpp"

#include "document_util.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <set>
#include <string>
#include <vector>

namespace unit_test_overlay {

using kvmnet::ErrorKind;
using kvmnet::model::DhcpRange;
using kvmnet::model::DhcpSlice;
using kvmnet::model::Ipv4;
using kvmnet::model::Network;
using kvmnet::model::parse_network;
using kvmnet::test::InvalidDocument;
using json = nlohmann::json;

namespace {

const char* const base_document = R"({
    "name": "span",
    "mode": "nat",
    "bridge": "kvmbr7",
    "ipv4": { "address": "10.77.0.1/24", "dhcp": { "ranges": ["10.77.0.10-10.77.0.39"] } },
    "overlay": { "vni": 100, "local": "10.99.0.1", "peers": ["10.99.0.3", "10.99.0.2"] }
})";

std::string patched(const char* patch) { return kvmnet::test::merged(base_document, patch); }

Ipv4 ip(const char* text) { return *Ipv4::parse(text); }

}  // namespace

TEST_CASE("overlay: a static-peer document parses and round-trips", "[overlay]")
{
    const Network n = kvmnet::test::parse_ok(base_document);
    REQUIRE(n.overlay);
    CHECK(n.overlay->vni == 100);
    CHECK(n.overlay->port == 4789);
    CHECK(n.overlay->local == ip("10.99.0.1"));
    CHECK(n.overlay->peers == std::vector<Ipv4>{ip("10.99.0.3"), ip("10.99.0.2")});
    CHECK_FALSE(n.overlay->evpn);
    CHECK(parse_network(to_json(n)) == n);
    CHECK(to_json(n)["overlay"] ==
          json::parse(R"({"vni": 100, "port": 4789, "local": "10.99.0.1", "peers": ["10.99.0.3", "10.99.0.2"]})"));
}

TEST_CASE("overlay: an EVPN document parses and round-trips", "[overlay]")
{
    const Network n = kvmnet::test::parse_ok(patched(R"({"overlay": {"peers": null, "local": null,
        "local_interface": "eth0", "port": 4790, "dhcp_slice": {"index": 1, "count": 3},
        "gateway_mac": "02:AA:00:00:00:01",
        "evpn": {"asn": 65000, "neighbors": ["10.99.0.2"], "route_reflector": "10.99.0.9"}}})"));
    REQUIRE(n.overlay);
    REQUIRE(n.overlay->evpn);
    CHECK(n.overlay->evpn->asn == 65000);
    CHECK(n.overlay->evpn->neighbors == std::vector<Ipv4>{ip("10.99.0.2")});
    CHECK(n.overlay->evpn->route_reflector == ip("10.99.0.9"));
    CHECK(n.overlay->local_interface == "eth0");
    CHECK(n.overlay->port == 4790);
    CHECK(n.overlay->gateway_mac == "02:aa:00:00:00:01");
    CHECK(n.overlay->dhcp_slice == DhcpSlice{1, 3});
    CHECK(parse_network(to_json(n)) == n);
}

TEST_CASE("overlay: bad sections are refused naming the field", "[overlay]")
{
    kvmnet::test::check_all_invalid({
        {"no vni", patched(R"({"overlay": {"vni": null}})"), "overlay.vni"},
        {"vni 0", patched(R"({"overlay": {"vni": 0}})"), "overlay.vni"},
        {"vni too big", patched(R"({"overlay": {"vni": 16777216}})"), "overlay.vni"},
        {"vni a string", patched(R"({"overlay": {"vni": "100"}})"), "overlay.vni"},
        {"no local", patched(R"({"overlay": {"local": null}})"), "overlay.local"},
        {"local and local_interface", patched(R"({"overlay": {"local_interface": "eth0"}})"),
         "overlay.local_interface"},
        {"bad local_interface", patched(R"({"overlay": {"local": null, "local_interface": "a/b"}})"),
         "overlay.local_interface"},
        {"local not an address", patched(R"({"overlay": {"local": "host1"}})"), "overlay.local"},
        {"local multicast", patched(R"({"overlay": {"local": "239.1.1.1"}})"), "overlay.local"},
        {"port 0", patched(R"({"overlay": {"port": 0}})"), "overlay.port"},
        {"peer twice", patched(R"({"overlay": {"peers": ["10.99.0.2", "10.99.0.2"]}})"), "overlay.peers[1]"},
        {"peer is local", patched(R"({"overlay": {"peers": ["10.99.0.1"]}})"), "overlay.peers"},
        {"peer loopback", patched(R"({"overlay": {"peers": ["127.0.0.1"]}})"), "overlay.peers[0]"},
        {"peers not an array", patched(R"({"overlay": {"peers": "10.99.0.2"}})"), "overlay.peers"},
        {"unknown field", patched(R"({"overlay": {"vnid": 3}})"), "overlay.vnid"},
        {"evpn and peers", patched(R"({"overlay": {"evpn": {"asn": 65000, "neighbors": ["10.99.0.2"]}}})"),
         "overlay.evpn"},
        {"evpn without asn", patched(R"({"overlay": {"peers": null, "evpn": {"neighbors": ["10.99.0.2"]}}})"),
         "overlay.evpn.asn"},
        {"evpn without neighbours",
         patched(R"({"overlay": {"peers": null, "dhcp_slice": {"index": 0, "count": 2}, "evpn": {"asn": 1}}})"),
         "overlay.evpn.neighbors"},
        {"evpn unknown field",
         patched(R"({"overlay": {"peers": null, "evpn": {"asn": 1, "neighbors": ["10.99.0.2"], "x": 1}}})"),
         "overlay.evpn.x"},
        {"evpn with ranges and no slice",
         patched(R"({"overlay": {"peers": null, "evpn": {"asn": 1, "neighbors": ["10.99.0.2"]}}})"),
         "overlay.dhcp_slice"},
        {"slice index >= count", patched(R"({"overlay": {"dhcp_slice": {"index": 3, "count": 3}}})"),
         "overlay.dhcp_slice.index"},
        {"slice without index", patched(R"({"overlay": {"dhcp_slice": {"count": 3}}})"), "overlay.dhcp_slice.index"},
        {"fewer slices than hosts", patched(R"({"overlay": {"dhcp_slice": {"index": 0, "count": 2}}})"),
         "overlay.dhcp_slice.count"},
        {"gateway_mac multicast", patched(R"({"overlay": {"gateway_mac": "01:00:5e:00:00:01"}})"),
         "overlay.gateway_mac"},
        {"fewer addresses than hosts", patched(R"({"ipv4": {"dhcp": {"ranges": ["10.77.0.10-10.77.0.11"]}}})"),
         "ipv4.dhcp.ranges"},
        {"bridge mode", patched(R"({"mode": "bridge", "uplink": "eth0", "ipv4": null})"), "overlay"},
        {"DHCPv6 ranges",
         patched(R"({"ipv6": {"address": "fd00:77::1/64", "dhcp": {"ranges": ["fd00:77::100-fd00:77::1ff"]}}})"),
         "ipv6.dhcp.ranges"},
    });
}

TEST_CASE("overlay: the slices of the hosts are disjoint and cover the ranges", "[overlay]")
{
    const std::vector<DhcpRange> ranges = {{ip("10.0.0.10"), ip("10.0.0.19")}, {ip("10.0.0.100"), ip("10.0.0.104")}};
    // 15 addresses, 3 hosts: 5 each, the first range cut in two.
    CHECK(slice_ranges(ranges, {0, 3}) == std::vector<DhcpRange>{{ip("10.0.0.10"), ip("10.0.0.14")}});
    CHECK(slice_ranges(ranges, {1, 3}) == std::vector<DhcpRange>{{ip("10.0.0.15"), ip("10.0.0.19")}});
    CHECK(slice_ranges(ranges, {2, 3}) == std::vector<DhcpRange>{{ip("10.0.0.100"), ip("10.0.0.104")}});
    // 2 hosts: the middle slice spans both ranges.
    CHECK(slice_ranges(ranges, {1, 2}) ==
          std::vector<DhcpRange>{{ip("10.0.0.17"), ip("10.0.0.19")}, {ip("10.0.0.100"), ip("10.0.0.104")}});
    for (std::uint32_t count = 1; count <= 15; ++count) {
        std::set<std::uint32_t> seen;
        std::size_t total = 0;
        for (std::uint32_t i = 0; i < count; ++i)
            for (const DhcpRange& r : slice_ranges(ranges, {i, count}))
                for (std::uint32_t a = r.first.value; a <= r.last.value; ++a, ++total)
                    seen.insert(a);
        CAPTURE(count);
        CHECK(total == 15);
        CHECK(seen.size() == 15);
    }
    CHECK(slice_ranges(ranges, {0, 16}).empty());
}

TEST_CASE("overlay: the default slice is this host's place among the sorted underlay addresses", "[overlay]")
{
    const Network n = kvmnet::test::parse_ok(base_document);
    CHECK(overlay_slice(*n.overlay, std::nullopt) == DhcpSlice{0, 3});
    // Peers listed in any order: every host sorts the same three addresses.
    const Network third =
        kvmnet::test::parse_ok(patched(R"({"overlay": {"local": "10.99.0.3", "peers": ["10.99.0.2", "10.99.0.1"]}})"));
    CHECK(overlay_slice(*third.overlay, std::nullopt) == DhcpSlice{2, 3});
    const Network other =
        kvmnet::test::parse_ok(patched(R"({"overlay": {"local": "10.99.0.2", "peers": ["10.99.0.1", "10.99.0.3"]}})"));
    CHECK(overlay_slice(*other.overlay, std::nullopt) == DhcpSlice{1, 3});
    const Network by_interface =
        kvmnet::test::parse_ok(patched(R"({"overlay": {"local": null, "local_interface": "eth1"}})"));
    CHECK_FALSE(overlay_slice(*by_interface.overlay, std::nullopt));
    CHECK(overlay_slice(*by_interface.overlay, ip("10.99.0.9")) == DhcpSlice{2, 3});
    const Network given = kvmnet::test::parse_ok(patched(R"({"overlay": {"dhcp_slice": {"index": 4, "count": 5}}})"));
    CHECK(overlay_slice(*given.overlay, ip("10.99.0.9")) == DhcpSlice{4, 5});
}

TEST_CASE("overlay: the gateway MAC is the same on every host and unicast", "[overlay]")
{
    const Network a = kvmnet::test::parse_ok(base_document);
    const Network b = kvmnet::test::parse_ok(
        patched(R"({"bridge": "other0", "overlay": {"local": "10.99.0.2", "peers": ["10.99.0.1"]}})"));
    CHECK(overlay_gateway_mac(a) == overlay_gateway_mac(b));
    CHECK(overlay_gateway_mac(a).unicast());
    CHECK((overlay_gateway_mac(a).bytes[0] & 0x02) == 0x02);  // locally administered
    // Pinned: a change would give the hosts of a mixed-version segment different gateways.
    CHECK(overlay_gateway_mac(a).str() == "56:c7:1c:be:c2:68");
    const Network vni = kvmnet::test::parse_ok(patched(R"({"overlay": {"vni": 101}})"));
    CHECK(overlay_gateway_mac(vni) != overlay_gateway_mac(a));
    const Network given = kvmnet::test::parse_ok(patched(R"({"overlay": {"gateway_mac": "02:00:00:00:77:01"}})"));
    CHECK(overlay_gateway_mac(given).str() == "02:00:00:00:77:01");
}

TEST_CASE("overlay: MTU is the underlay's less 50 unless the document sets one", "[overlay]")
{
    Network n = kvmnet::test::parse_ok(base_document);
    CHECK(overlay_mtu(n, 1500) == 1450);
    CHECK(overlay_mtu(n, 9000) == 8950);
    n.mtu = 1400;
    CHECK(overlay_mtu(n, 1500) == 1400);
    CHECK(kvmnet::model::overlay_device_name(16777215) == "kvx-16777215");
}

TEST_CASE("overlay: forwards only to guests this host addresses", "[overlay]")
{
    // Host 10.99.0.1 is slice 0 of 3: 10.77.0.10-10.77.0.19.
    const auto forward = [](const char* guest) {
        return patched((std::string(R"({"forwards": [{"proto": "tcp", "host_port": 8080, "guest": ")") + guest +
                        R"(", "guest_port": 80}]})")
                           .c_str());
    };
    kvmnet::test::parse_ok(forward("10.77.0.12"));
    const auto failure = kvmnet::test::failure_of(forward("10.77.0.25"));
    REQUIRE(failure);
    CHECK(kvmnet::test::kind_name(failure->kind) == "InvalidArgument");
    CHECK_THAT(failure->message, Catch::Matchers::StartsWith("forwards[0]: 10.77.0.25 is not in this host's DHCP "
                                                             "slice (10.77.0.10-10.77.0.19)"));
    const auto unknown = kvmnet::test::failure_of(
        patched(R"({"overlay": {"local": null, "local_interface": "eth1"}, "forwards": [{"proto": "tcp",
            "host_port": 8080, "guest": "10.77.0.12", "guest_port": 80}]})"));
    REQUIRE(unknown);
    CHECK_THAT(unknown->message, Catch::Matchers::Contains("needs this host's DHCP slice"));
}

TEST_CASE("overlay: two networks of one host cannot share a VNI", "[overlay]")
{
    const Network a = kvmnet::test::parse_ok(base_document);
    const Network b = kvmnet::test::parse_ok(
        patched(R"({"name": "span2", "bridge": "kvmbr8", "ipv4": {"address": "10.78.0.1/24", "dhcp": null}})"));
    const auto failure = kvmnet::test::failure_of([&] { validate_against(b, {a}); });
    REQUIRE(failure);
    CHECK(kvmnet::test::kind_name(failure->kind) == "Conflict");
    CHECK_THAT(failure->message, Catch::Matchers::StartsWith("overlay.vni: "));
}

TEST_CASE("overlay: AddForwards applies the slice rule too", "[overlay]")
{
    const Network n = kvmnet::test::parse_ok(base_document);
    kvmnet::model::PortForward f;
    f.host_port_first = f.host_port_last = 8080;
    f.guest_port_first = 80;
    f.guest = ip("10.77.0.12");
    std::vector<kvmnet::model::PortForward> mine = {f};
    CHECK_FALSE(kvmnet::test::failure_of([&] {
        validate_added_forwards(n, mine, [](std::size_t i) { return "forwards[" + std::to_string(i) + "]"; }, {});
    }));
    f.guest = ip("10.77.0.30");
    std::vector<kvmnet::model::PortForward> theirs = {f};
    const auto failure = kvmnet::test::failure_of([&] {
        validate_added_forwards(n, theirs, [](std::size_t i) { return "forwards[" + std::to_string(i) + "]"; }, {});
    });
    REQUIRE(failure);
    CHECK(kvmnet::test::kind_name(failure->kind) == "InvalidArgument");
    CHECK_THAT(failure->message,
               Catch::Matchers::StartsWith("forwards[0]: 10.77.0.30 is not in this host's DHCP slice"));
}

}  // namespace unit_test_overlay
