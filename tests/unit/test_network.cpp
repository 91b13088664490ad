// Unit tests of model/network: the strict JSON parser and validator of the
// network document (a table of bad documents, each asserting the error kind
// and the field path it names), good documents, JSON round trips, the stable
// shape of to_json, and validate_against (name, bridge and subnet clashes).
#include "model/network.hpp"

#include "document_util.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <vector>

namespace unit_test_network {

using kvmnet::ErrorKind;
using kvmnet::model::Mode;
using kvmnet::model::Network;
using kvmnet::model::parse_network;
using json = nlohmann::json;

namespace {

// A complete, valid document: the design.md example without forwards/limits.
const char* const base_document = R"({
    "name": "default",
    "mode": "nat",
    "bridge": "kvmbr0",
    "autostart": true,
    "ipv4": { "address": "192.168.122.1/24",
              "dhcp": { "ranges": ["192.168.122.100-192.168.122.254"],
                        "hosts": [{ "mac": "52:54:00:12:34:56", "ip": "192.168.122.10", "name": "web" }] } },
    "stp": false, "forward_delay": 0, "mtu": 1500
})";

std::string patched(const char* patch) { return kvmnet::test::merged(base_document, patch); }

using kvmnet::test::BadDocument;
using kvmnet::test::failure_of;
using kvmnet::test::kind_name;
using kvmnet::test::parse_ok;

std::vector<BadDocument> bad_documents()
{
    const ErrorKind invalid = ErrorKind::InvalidArgument;
    return {
        // Names.
        {"name with a slash", patched(R"({"name": "my/net"})"), invalid, "name"},
        {"name with unicode", patched(R"({"name": "caf\u00e9"})"), invalid, "name"},
        {"name with a space", patched(R"({"name": "my net"})"), invalid, "name"},
        {"name with a colon", patched(R"({"name": "a:b"})"), invalid, "name"},
        {"empty name", patched(R"({"name": ""})"), invalid, "name"},
        {"name of 33 characters", patched(R"({"name": "abcdefghijklmnopqrstuvwxyz0123456"})"), invalid, "name"},
        {"name of 65 characters",
         patched(R"({"name": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"})"), invalid, "name"},
        {"name starting with '-'", patched(R"({"name": "-net"})"), invalid, "name"},
        {"name starting with '.'", patched(R"({"name": ".."})"), invalid, "name"},
        {"missing name", patched(R"({"name": null})"), invalid, "name"},
        // Mode.
        {"missing mode", patched(R"({"mode": null})"), invalid, "mode"},
        {"unknown mode", patched(R"({"mode": "bridged"})"), invalid, "mode"},
        {"mode in upper case", patched(R"({"mode": "NAT"})"), invalid, "mode"},
        {"bridge mode without uplink", patched(R"({"mode": "bridge", "ipv4": null})"), invalid, "uplink"},
        {"bridge mode with ipv4", patched(R"({"mode": "bridge", "uplink": "eth0"})"), invalid, "ipv4"},
        {"bridge mode uplink = bridge", patched(R"({"mode": "bridge", "ipv4": null, "uplink": "kvmbr0"})"), invalid,
         "uplink"},
        // Bridge settings.
        {"hello_time 0", patched(R"({"hello_time": 0})"), invalid, "hello_time"},
        {"hello_time 11", patched(R"({"hello_time": 11})"), invalid, "hello_time"},
        {"max_age 5", patched(R"({"max_age": 5})"), invalid, "max_age"},
        {"max_age 41", patched(R"({"max_age": 41})"), invalid, "max_age"},
        {"priority 65536", patched(R"({"priority": 65536})"), invalid, "priority"},
        {"multicast_snooping a string", patched(R"({"multicast_snooping": "on"})"), invalid, "multicast_snooping"},
        {"stp on with forward_delay 1", patched(R"({"stp": true, "forward_delay": 1})"), invalid, "forward_delay"},
        // Ports.
        {"ports not an array", patched(R"({"ports": {}})"), invalid, "ports"},
        {"port without name", patched(R"({"ports": [{"tap": true}]})"), invalid, "ports[0].name"},
        {"port name too long", patched(R"({"ports": [{"name": "abcdefghijklmnop"}]})"), invalid, "ports[0].name"},
        {"port unknown field", patched(R"({"ports": [{"name": "t0", "speed": 1}]})"), invalid, "ports[0].speed"},
        {"port multicast MAC", patched(R"({"ports": [{"name": "t0", "mac": "01:00:5e:00:00:01"}]})"), invalid,
         "ports[0].mac"},
        {"port zero MAC", patched(R"({"ports": [{"name": "t0", "mac": "00:00:00:00:00:00"}]})"), invalid,
         "ports[0].mac"},
        {"port owner without tap", patched(R"({"ports": [{"name": "t0", "owner": 1000}]})"), invalid, "ports[0].owner"},
        {"port vlan 4095", patched(R"({"ports": [{"name": "t0", "vlan": {"pvid": 4095}}]})"), invalid,
         "ports[0].vlan.pvid"},
        {"port vlan empty", patched(R"({"ports": [{"name": "t0", "vlan": {}}]})"), invalid, "ports[0].vlan"},
        {"port vlan tagged twice", patched(R"({"ports": [{"name": "t0", "vlan": {"tagged": [5, 5]}}]})"), invalid,
         "ports[0].vlan.tagged"},
        {"port vlan pvid also tagged", patched(R"({"ports": [{"name": "t0", "vlan": {"pvid": 5, "tagged": [5]}}]})"),
         invalid, "ports[0].vlan.tagged"},
        {"port bandwidth without average",
         patched(R"({"ports": [{"name": "t0", "bandwidth": {"inbound": {"peak": 5}}}]})"), invalid,
         "ports[0].bandwidth.inbound.average"},
        {"port bandwidth peak below average",
         patched(R"({"ports": [{"name": "t0", "bandwidth": {"outbound": {"average": 10, "peak": 5}}}]})"), invalid,
         "ports[0].bandwidth.outbound.peak"},
        {"port listed twice", patched(R"({"ports": [{"name": "t0"}, {"name": "t0"}]})"), invalid, "ports[1].name"},
        {"two ports with one MAC",
         patched(
             R"({"ports": [{"name": "t0", "mac": "52:54:00:00:00:01"}, {"name": "t1", "mac": "52:54:00:00:00:01"}]})"),
         ErrorKind::Conflict, "ports[1].mac"},
        {"port named like the bridge", patched(R"({"ports": [{"name": "kvmbr0"}]})"), invalid, "ports[0].name"},
        // Unknown fields at every level.
        {"unknown top-level field", patched(R"({"colour": "blue"})"), invalid, "colour"},
        {"unknown ipv4 field", patched(R"({"ipv4": {"x": 1}})"), invalid, "ipv4.x"},
        {"unknown ipv4.dhcp field", patched(R"({"ipv4": {"dhcp": {"x": 1}}})"), invalid, "ipv4.dhcp.x"},
        {"unknown host field",
         patched(R"({"ipv4": {"dhcp": {"hosts": [{"mac": "52:54:00:00:00:01", "ip": "192.168.122.10", "x": 1}]}}})"),
         invalid, "ipv4.dhcp.hosts[0].x"},
        // Wrong types.
        {"name is a number", patched(R"({"name": 42})"), invalid, "name"},
        {"mode is a boolean", patched(R"({"mode": true})"), invalid, "mode"},
        {"bridge is a number", patched(R"({"bridge": 5})"), invalid, "bridge"},
        {"autostart is a string", patched(R"({"autostart": "yes"})"), invalid, "autostart"},
        {"autostart is a number", patched(R"({"autostart": 1})"), invalid, "autostart"},
        {"stp is a string", patched(R"({"stp": "off"})"), invalid, "stp"},
        {"uplink is a boolean", patched(R"({"uplink": true})"), invalid, "uplink"},
        {"mtu is a string", patched(R"({"mtu": "big"})"), invalid, "mtu"},
        {"mtu is a fraction", patched(R"({"mtu": 1500.5})"), invalid, "mtu"},
        {"forward_delay is -1", patched(R"({"forward_delay": -1})"), invalid, "forward_delay"},
        {"forward_delay is 31", patched(R"({"forward_delay": 31})"), invalid, "forward_delay"},
        {"forward_delay is a string", patched(R"({"forward_delay": "2"})"), invalid, "forward_delay"},
        {"mtu is 67", patched(R"({"mtu": 67})"), invalid, "mtu"},
        {"mtu is 65536", patched(R"({"mtu": 65536})"), invalid, "mtu"},
        {"mtu is 0", patched(R"({"mtu": 0})"), invalid, "mtu"},
        {"mtu is negative", patched(R"({"mtu": -1500})"), invalid, "mtu"},
        {"ipv4 is a string", patched(R"({"ipv4": "192.168.122.1/24"})"), invalid, "ipv4"},
        {"ipv4.address is a number", patched(R"({"ipv4": {"address": 3232266753}})"), invalid, "ipv4.address"},
        {"ipv4.dhcp is a boolean", patched(R"({"ipv4": {"dhcp": true}})"), invalid, "ipv4.dhcp"},
        {"ranges is not an array", patched(R"({"ipv4": {"dhcp": {"ranges": "192.168.122.100-192.168.122.200"}}})"),
         invalid, "ipv4.dhcp.ranges"},
        {"range is not a string", patched(R"({"ipv4": {"dhcp": {"ranges": ["192.168.122.100-192.168.122.110", 7]}}})"),
         invalid, "ipv4.dhcp.ranges[1]"},
        {"hosts is not an array", patched(R"({"ipv4": {"dhcp": {"hosts": {}}}})"), invalid, "ipv4.dhcp.hosts"},
        {"hosts item is not an object", patched(R"({"ipv4": {"dhcp": {"hosts": ["52:54:00:00:00:01"]}}})"), invalid,
         "ipv4.dhcp.hosts[0]"},
        {"host name is a number",
         patched(R"({"ipv4": {"dhcp": {"hosts": [{"mac": "52:54:00:00:00:01", "ip": "192.168.122.10", "name": 1}]}}})"),
         invalid, "ipv4.dhcp.hosts[0].name"},
        {"forwards is not an array", patched(R"({"forwards": "none"})"), invalid, "forwards"},
        // Addresses.
        {"missing ipv4", patched(R"({"ipv4": null})"), invalid, "ipv4"},
        {"missing ipv4.address", patched(R"({"ipv4": {"address": null}})"), invalid, "ipv4.address"},
        {"octet above 255", patched(R"({"ipv4": {"address": "192.168.300.1/24"}})"), invalid, "ipv4.address"},
        {"prefix /33", patched(R"({"ipv4": {"address": "10.0.0.1/33", "dhcp": null}})"), invalid, "ipv4.address"},
        {"address without prefix", patched(R"({"ipv4": {"address": "10.0.0.1", "dhcp": null}})"), invalid,
         "ipv4.address"},
        {"address with empty prefix", patched(R"({"ipv4": {"address": "10.0.0.1/", "dhcp": null}})"), invalid,
         "ipv4.address"},
        {"gateway is the network address", patched(R"({"ipv4": {"address": "192.168.122.0/24"}})"), invalid,
         "ipv4.address"},
        {"gateway is the broadcast address", patched(R"({"ipv4": {"address": "192.168.122.255/24"}})"), invalid,
         "ipv4.address"},
        {"prefix /31", patched(R"({"ipv4": {"address": "10.0.0.1/31", "dhcp": null}})"), invalid, "ipv4.address"},
        {"prefix /32", patched(R"({"ipv4": {"address": "10.0.0.1/32", "dhcp": null}})"), invalid, "ipv4.address"},
        {"prefix /7", patched(R"({"ipv4": {"address": "10.0.0.1/7", "dhcp": null}})"), invalid, "ipv4.address"},
        // DHCP lease time.
        {"lease time below dnsmasq's 2 minutes", patched(R"({"ipv4": {"dhcp": {"lease_time": 119}}})"), invalid,
         "ipv4.dhcp.lease_time"},
        {"lease time 0 (infinite is spelt out)", patched(R"({"ipv4": {"dhcp": {"lease_time": 0}}})"), invalid,
         "ipv4.dhcp.lease_time"},
        {"negative lease time", patched(R"({"ipv4": {"dhcp": {"lease_time": -3600}}})"), invalid,
         "ipv4.dhcp.lease_time"},
        {"lease time past 2^31-1", patched(R"({"ipv4": {"dhcp": {"lease_time": 2147483648}}})"), invalid,
         "ipv4.dhcp.lease_time"},
        {"lease time as dnsmasq text", patched(R"({"ipv4": {"dhcp": {"lease_time": "1h"}}})"), invalid,
         "ipv4.dhcp.lease_time"},
        {"fractional lease time", patched(R"({"ipv4": {"dhcp": {"lease_time": 3600.5}}})"), invalid,
         "ipv4.dhcp.lease_time"},
        {"DHCPv6 lease time too short",
         patched(
             R"({"ipv6": {"address": "fd00::1/64", "dhcp": {"ranges": ["fd00::100-fd00::1ff"], "lease_time": 60}}})"),
         invalid, "ipv6.dhcp.lease_time"},
        // DHCP ranges.
        {"range outside the subnet", patched(R"({"ipv4": {"dhcp": {"ranges": ["192.168.123.10-192.168.123.20"]}}})"),
         invalid, "ipv4.dhcp.ranges[0]"},
        {"range ending outside the subnet",
         patched(R"({"ipv4": {"dhcp": {"ranges": ["192.168.122.200-192.168.123.5"]}}})"), invalid,
         "ipv4.dhcp.ranges[0]"},
        {"range starting at the network address",
         patched(R"({"ipv4": {"dhcp": {"ranges": ["192.168.122.0-192.168.122.50"]}}})"), invalid,
         "ipv4.dhcp.ranges[0]"},
        {"range ending at the broadcast address",
         patched(R"({"ipv4": {"dhcp": {"ranges": ["192.168.122.100-192.168.122.255"]}}})"), invalid,
         "ipv4.dhcp.ranges[0]"},
        {"reversed range", patched(R"({"ipv4": {"dhcp": {"ranges": ["192.168.122.200-192.168.122.100"]}}})"), invalid,
         "ipv4.dhcp.ranges[0]"},
        {"range containing the gateway", patched(R"({"ipv4": {"address": "192.168.122.150/24"}})"), invalid,
         "ipv4.dhcp.ranges[0]"},
        {"range starting at the gateway", patched(R"({"ipv4": {"dhcp": {"ranges": ["192.168.122.1-192.168.122.9"]}}})"),
         invalid, "ipv4.dhcp.ranges[0]"},
        {"second range overlapping the first",
         patched(R"({"ipv4": {"dhcp": {"ranges": ["192.168.122.100-192.168.122.150",
                                                   "192.168.122.140-192.168.122.160"]}}})"),
         invalid, "ipv4.dhcp.ranges[1]"},
        {"third range inside the first",
         patched(R"({"ipv4": {"dhcp": {"ranges": ["192.168.122.100-192.168.122.150", "192.168.122.200-192.168.122.210",
                                                   "192.168.122.120-192.168.122.121"]}}})"),
         invalid, "ipv4.dhcp.ranges[2]"},
        {"ranges sharing one address", patched(R"({"ipv4": {"dhcp": {"ranges": ["192.168.122.100-192.168.122.150",
                                                   "192.168.122.150-192.168.122.160"]}}})"),
         invalid, "ipv4.dhcp.ranges[1]"},
        {"range a-b-c",
         patched(R"({"ipv4": {"dhcp": {"ranges": ["192.168.122.100-192.168.122.150-192.168.122.160"]}}})"), invalid,
         "ipv4.dhcp.ranges[0]"},
        {"range without a dash", patched(R"({"ipv4": {"dhcp": {"ranges": ["192.168.122.100"]}}})"), invalid,
         "ipv4.dhcp.ranges[0]"},
        {"range with spaces", patched(R"({"ipv4": {"dhcp": {"ranges": ["192.168.122.100 - 192.168.122.150"]}}})"),
         invalid, "ipv4.dhcp.ranges[0]"},
        {"range with a bad address", patched(R"({"ipv4": {"dhcp": {"ranges": ["192.168.122.100-192.168.122.256"]}}})"),
         invalid, "ipv4.dhcp.ranges[0]"},
        // Static hosts.
        {"host MAC too short",
         patched(R"({"ipv4": {"dhcp": {"hosts": [{"mac": "52:54:00:12:34", "ip": "192.168.122.10"}]}}})"), invalid,
         "ipv4.dhcp.hosts[0].mac"},
        {"host MAC with dashes",
         patched(R"({"ipv4": {"dhcp": {"hosts": [{"mac": "52-54-00-12-34-56", "ip": "192.168.122.10"}]}}})"), invalid,
         "ipv4.dhcp.hosts[0].mac"},
        {"host MAC with non-hex digits",
         patched(R"({"ipv4": {"dhcp": {"hosts": [{"mac": "52:54:00:12:34:zz", "ip": "192.168.122.10"}]}}})"), invalid,
         "ipv4.dhcp.hosts[0].mac"},
        {"host without MAC", patched(R"({"ipv4": {"dhcp": {"hosts": [{"ip": "192.168.122.10"}]}}})"), invalid,
         "ipv4.dhcp.hosts[0].mac"},
        {"host without IP", patched(R"({"ipv4": {"dhcp": {"hosts": [{"mac": "52:54:00:12:34:56"}]}}})"), invalid,
         "ipv4.dhcp.hosts[0].ip"},
        {"host IP malformed",
         patched(R"({"ipv4": {"dhcp": {"hosts": [{"mac": "52:54:00:12:34:56", "ip": "192.168.122.010"}]}}})"), invalid,
         "ipv4.dhcp.hosts[0].ip"},
        {"host IP outside the subnet",
         patched(R"({"ipv4": {"dhcp": {"hosts": [{"mac": "52:54:00:12:34:56", "ip": "10.0.0.5"}]}}})"), invalid,
         "ipv4.dhcp.hosts[0].ip"},
        {"host IP is the gateway",
         patched(R"({"ipv4": {"dhcp": {"hosts": [{"mac": "52:54:00:12:34:56", "ip": "192.168.122.1"}]}}})"), invalid,
         "ipv4.dhcp.hosts[0].ip"},
        {"host IP is the broadcast address",
         patched(R"({"ipv4": {"dhcp": {"hosts": [{"mac": "52:54:00:12:34:56", "ip": "192.168.122.255"}]}}})"), invalid,
         "ipv4.dhcp.hosts[0].ip"},
        {"duplicate MAC differing in case",
         patched(R"({"ipv4": {"dhcp": {"hosts": [{"mac": "52:54:00:ab:cd:ef", "ip": "192.168.122.10"},
                                                  {"mac": "52:54:00:AB:CD:EF", "ip": "192.168.122.11"}]}}})"),
         invalid, "ipv4.dhcp.hosts[1].mac"},
        {"duplicate IP", patched(R"({"ipv4": {"dhcp": {"hosts": [{"mac": "52:54:00:00:00:01", "ip": "192.168.122.10"},
                                                  {"mac": "52:54:00:00:00:02", "ip": "192.168.122.11"},
                                                  {"mac": "52:54:00:00:00:03", "ip": "192.168.122.10"}]}}})"),
         invalid, "ipv4.dhcp.hosts[2].ip"},
        {"duplicate host name",
         patched(R"({"ipv4": {"dhcp": {"hosts": [{"mac": "52:54:00:00:00:01", "ip": "192.168.122.10", "name": "db"},
                                                  {"mac": "52:54:00:00:00:02", "ip": "192.168.122.11",
                                                   "name": "db"}]}}})"),
         invalid, "ipv4.dhcp.hosts[1].name"},
        {"host name with an underscore",
         patched(R"({"ipv4": {"dhcp": {"hosts": [{"mac": "52:54:00:12:34:56", "ip": "192.168.122.10",
                                                  "name": "web_1"}]}}})"),
         invalid, "ipv4.dhcp.hosts[0].name"},
        {"host name starting with '-'",
         patched(R"({"ipv4": {"dhcp": {"hosts": [{"mac": "52:54:00:12:34:56", "ip": "192.168.122.10",
                                                  "name": "-web"}]}}})"),
         invalid, "ipv4.dhcp.hosts[0].name"},
        {"host name with a space",
         patched(R"({"ipv4": {"dhcp": {"hosts": [{"mac": "52:54:00:12:34:56", "ip": "192.168.122.10",
                                                  "name": "my web"}]}}})"),
         invalid, "ipv4.dhcp.hosts[0].name"},
        // Interfaces.
        {"bridge name of 16 bytes", patched(R"({"bridge": "abcdefghijklmnop"})"), invalid, "bridge"},
        {"bridge name with a slash", patched(R"({"bridge": "br/0"})"), invalid, "bridge"},
        {"bridge name '..'", patched(R"({"bridge": ".."})"), invalid, "bridge"},
        {"bridge name with a space", patched(R"({"bridge": "br 0"})"), invalid, "bridge"},
        {"uplink with a space", patched(R"({"uplink": "eth 0"})"), invalid, "uplink"},
        {"uplink of 16 bytes", patched(R"({"uplink": "enp0s31f6abcdefg"})"), invalid, "uplink"},
        {"uplink on an isolated network", patched(R"({"mode": "isolated", "uplink": "eth0"})"), invalid, "uplink"},
        {"forwards on a routed network",
         patched(R"({"mode": "routed", "forwards": [{"proto": "tcp", "host_port": 8080, "guest": "192.168.122.10",
                     "guest_port": 80}]})"),
         invalid, "forwards"},
        {"limits on an isolated network", patched(R"({"mode": "isolated", "limits": {"connections_per_source": 9}})"),
         invalid, "limits"},
        // Not a JSON object at all.
        {"truncated JSON", "{\"name\": \"default\"", invalid, "document"},
        {"plain text", "not json", invalid, "document"},
        {"empty text", "", invalid, "document"},
        {"trailing garbage", patched("{}") + " x", invalid, "document"},
        {"a JSON array", "[]", invalid, "document"},
        {"a JSON string", "\"default\"", invalid, "document"},
    };
}

}  // namespace

TEST_CASE("The base document of the validation table is itself valid", "[network]")
{
    CHECK_FALSE(failure_of(base_document));
    CHECK_FALSE(failure_of(patched("{}")));
}

TEST_CASE("Each bad document is rejected with the right kind and names the field", "[network][validation]")
{
    const auto cases = bad_documents();
    REQUIRE(cases.size() >= 35);
    const BadDocument c = GENERATE_COPY(from_range(cases));
    CAPTURE(c.label, c.text);
    kvmnet::test::check_refused(c.text, c.kind, c.field);
}

TEST_CASE("The design.md example without forwards and limits parses field by field", "[network]")
{
    const Network n = parse_ok(base_document);
    CHECK(n.name == "default");
    CHECK(n.mode == Mode::nat);
    CHECK(n.bridge == "kvmbr0");
    CHECK(n.autostart);
    CHECK_FALSE(n.stp);
    CHECK(n.forward_delay == 0);
    CHECK(n.mtu == 1500);
    CHECK(n.uplink.empty());
    REQUIRE(n.ipv4);
    CHECK(n.ipv4->address.str() == "192.168.122.1/24");
    CHECK(n.ipv4->dhcp);
    REQUIRE(n.ipv4->ranges.size() == 1);
    CHECK(n.ipv4->ranges[0].first.str() == "192.168.122.100");
    CHECK(n.ipv4->ranges[0].last.str() == "192.168.122.254");
    REQUIRE(n.ipv4->hosts.size() == 1);
    CHECK(n.ipv4->hosts[0].mac == "52:54:00:12:34:56");
    CHECK(n.ipv4->hosts[0].ip.str() == "192.168.122.10");
    CHECK(n.ipv4->hosts[0].name == "web");
}

TEST_CASE("A minimal document gets the documented defaults", "[network]")
{
    const Network n = parse_ok(R"({"name": "a", "mode": "isolated", "ipv4": {"address": "10.0.0.1/24"}})");
    CHECK(n.name == "a");
    CHECK(n.mode == Mode::isolated);
    CHECK(n.bridge.empty());
    CHECK_FALSE(n.autostart);
    CHECK_FALSE(n.stp);
    CHECK(n.forward_delay == 0);
    CHECK(n.mtu == 0);
    CHECK(n.uplink.empty());
    REQUIRE(n.ipv4);
    CHECK_FALSE(n.ipv4->dhcp);
    CHECK(n.ipv4->ranges.empty());
    CHECK(n.ipv4->hosts.empty());
}

TEST_CASE("Boundary values that are allowed parse", "[network]")
{
    SECTION("a name of exactly 32 characters using every allowed character class")
    {
        CHECK(parse_ok(patched(R"({"name": "Ab9-_.cdefghijklmnopqrstuvwxyz01"})")).name.size() == 32);
    }
    SECTION("a bridge name of exactly 15 bytes")
    {
        CHECK(parse_ok(patched(R"({"bridge": "abcdefghijklmno"})")).bridge == "abcdefghijklmno");
    }
    SECTION("prefixes /8 and /30")
    {
        CHECK(parse_ok(patched(R"({"ipv4": {"address": "10.0.0.1/8", "dhcp": null}})")).ipv4->address.prefix == 8);
        CHECK(parse_ok(patched(R"({"ipv4": {"address": "10.0.0.1/30", "dhcp": null}})")).ipv4->address.prefix == 30);
    }
    SECTION("forward_delay 0 and 30, mtu 68 and 65535")
    {
        CHECK(parse_ok(patched(R"({"forward_delay": 30})")).forward_delay == 30);
        CHECK(parse_ok(patched(R"({"mtu": 68})")).mtu == 68);
        CHECK(parse_ok(patched(R"({"mtu": 65535})")).mtu == 65535);
    }
    SECTION("empty forwards and empty limits are accepted")
    {
        CHECK(parse_ok(patched(R"({"forwards": [], "limits": {}})")).name == "default");
    }
    SECTION("a dhcp object without ranges or hosts enables static-only DHCP")
    {
        const Network n = parse_ok(patched(R"({"ipv4": {"dhcp": {"ranges": null, "hosts": null}}})"));
        CHECK(n.ipv4->dhcp);
        CHECK(n.ipv4->ranges.empty());
        CHECK(n.ipv4->hosts.empty());
    }
    SECTION("adjacent ranges and a range right after the gateway")
    {
        const Network n = parse_ok(patched(
            R"({"ipv4": {"dhcp": {"ranges": ["192.168.122.2-192.168.122.99", "192.168.122.100-192.168.122.254"]}}})"));
        CHECK(n.ipv4->ranges.size() == 2);
    }
    SECTION("a routed network with an uplink")
    {
        const Network n = parse_ok(patched(R"({"mode": "routed", "uplink": "eth0"})"));
        CHECK(n.mode == Mode::routed);
        CHECK(n.uplink == "eth0");
    }
}

TEST_CASE("Static host MACs are normalised to lower case", "[network]")
{
    const Network n =
        parse_ok(patched(R"({"ipv4": {"dhcp": {"hosts": [{"mac": "52:54:00:AB:cd:EF", "ip": "192.168.122.10"}]}}})"));
    REQUIRE(n.ipv4->hosts.size() == 1);
    CHECK(n.ipv4->hosts[0].mac == "52:54:00:ab:cd:ef");
    CHECK(n.ipv4->hosts[0].name.empty());
}

TEST_CASE("Host names that differ only in case are rejected as duplicates", "[network]")
{
    // DNS names are case-insensitive (RFC 4343), so "db" and "DB" name
    // the same host and dnsmasq answers only one of them; validate() compares
    // host names case-sensitively (daemon/model/network.cpp, `names` set).
    const auto failure = failure_of(
        patched(R"({"ipv4": {"dhcp": {"hosts": [{"mac": "52:54:00:00:00:01", "ip": "192.168.122.10", "name": "db"},
                                                 {"mac": "52:54:00:00:00:02", "ip": "192.168.122.11",
                                                  "name": "DB"}]}}})"));
    REQUIRE(failure);
    CHECK(failure->kind == ErrorKind::InvalidArgument);
    CHECK_THAT(failure->message, Catch::Matchers::StartsWith("ipv4.dhcp.hosts[1].name: "));
}

TEST_CASE("An uplink equal to the network's own bridge is rejected", "[network]")
{
    // Regression: validate() once accepted "uplink" naming the network's own bridge, which
    // would masquerade only traffic going back into the guest bridge.
    const auto failure = failure_of(patched(R"({"uplink": "kvmbr0"})"));
    REQUIRE(failure);
    CHECK(failure->kind == ErrorKind::InvalidArgument);
    CHECK_THAT(failure->message, Catch::Matchers::StartsWith("uplink: "));
}

TEST_CASE("validate checks networks built in code", "[network]")
{
    Network n = parse_ok(base_document);
    SECTION("a valid network passes") { CHECK_NOTHROW(kvmnet::model::validate(n)); }
    SECTION("a default-constructed network fails on its name")
    {
        try {
            kvmnet::model::validate(Network{});
            FAIL("validate accepted an empty network");
        } catch (const kvmnet::Error& e) {
            CHECK(e.kind() == ErrorKind::InvalidArgument);
            CHECK_THAT(std::string(e.what()), Catch::Matchers::StartsWith("name: "));
        }
    }
    SECTION("a network without ipv4 fails on ipv4")
    {
        n.ipv4.reset();
        CHECK_THROWS_WITH(kvmnet::model::validate(n), Catch::Matchers::StartsWith("ipv4: "));
    }
    SECTION("bridge mode needs an uplink and takes no ipv4")
    {
        n.mode = Mode::bridge;
        CHECK_THROWS_WITH(kvmnet::model::validate(n), Catch::Matchers::StartsWith("uplink: "));
        n.uplink = "eth0";
        CHECK_THROWS_WITH(kvmnet::model::validate(n), Catch::Matchers::StartsWith("ipv4: "));
        n.ipv4.reset();
        CHECK_NOTHROW(kvmnet::model::validate(n));
    }
    SECTION("a reversed range added in code is caught")
    {
        n.ipv4->ranges.push_back(
            {*kvmnet::model::Ipv4::parse("192.168.122.50"), *kvmnet::model::Ipv4::parse("192.168.122.40")});
        CHECK_THROWS_WITH(kvmnet::model::validate(n), Catch::Matchers::StartsWith("ipv4.dhcp.ranges[1]: "));
    }
}

TEST_CASE("Network and interface name predicates follow the documented character sets", "[network]")
{
    using kvmnet::model::valid_interface_name;
    using kvmnet::model::valid_network_name;
    CHECK(valid_network_name("default"));
    CHECK(valid_network_name("a"));
    CHECK(valid_network_name("9lives"));
    CHECK(valid_network_name("lab_net-1.v2"));
    CHECK(valid_network_name(std::string(32, 'x')));
    CHECK_FALSE(valid_network_name(std::string(33, 'x')));
    CHECK_FALSE(valid_network_name(""));
    CHECK_FALSE(valid_network_name("_net"));
    CHECK_FALSE(valid_network_name("a/b"));
    CHECK_FALSE(valid_network_name("a b"));
    CHECK_FALSE(valid_network_name("a\nb"));

    CHECK(valid_interface_name("kvmbr0"));
    CHECK(valid_interface_name("eth0.100"));
    CHECK(valid_interface_name(std::string(15, 'x')));
    CHECK_FALSE(valid_interface_name(std::string(16, 'x')));
    CHECK_FALSE(valid_interface_name(""));
    CHECK_FALSE(valid_interface_name("."));
    CHECK_FALSE(valid_interface_name(".."));
    CHECK_FALSE(valid_interface_name("br/0"));
    CHECK_FALSE(valid_interface_name("br:0"));
    CHECK_FALSE(valid_interface_name("br 0"));
}

TEST_CASE("parse_network(to_json(x)) == x for several networks", "[network][json]")
{
    const std::string text = GENERATE(
        as<std::string>{}, std::string(base_document),
        R"({"name": "a", "mode": "isolated", "ipv4": {"address": "10.0.0.1/24"}})",
        R"({"name": "r", "mode": "routed", "bridge": "kvmbr7", "uplink": "eth0", "ipv4": {"address": "10.9.0.1/16"},
            "stp": true, "forward_delay": 15, "mtu": 9000})",
        R"({"name": "s", "mode": "nat", "ipv4": {"address": "172.16.0.1/12", "dhcp": {}}})",
        R"({"name": "m", "mode": "nat", "bridge": "br-m", "uplink": "wlan0",
            "ipv4": {"address": "192.168.50.254/24",
                     "dhcp": {"ranges": ["192.168.50.10-192.168.50.19", "192.168.50.100-192.168.50.199"],
                              "hosts": [{"mac": "52:54:00:AA:00:01", "ip": "192.168.50.2", "name": "one"},
                                        {"mac": "52:54:00:aa:00:02", "ip": "192.168.50.3"}]}}})",
        R"({"name": "l", "mode": "nat", "ipv4": {"address": "10.1.0.1/24",
                                                 "dhcp": {"ranges": ["10.1.0.10-10.1.0.20"], "lease_time": 120}},
            "ipv6": {"address": "fd00:1::1/64", "dhcp": {"ranges": ["fd00:1::100-fd00:1::1ff"],
                                                          "lease_time": "infinite"}}})",
        R"({"name": "i", "mode": "nat", "ipv4": {"address": "10.2.0.1/24", "dhcp": {"lease_time": "infinite"}}})");
    const Network original = parse_ok(text);
    const json serialised = kvmnet::model::to_json(original);
    CAPTURE(serialised.dump());
    const Network again = parse_ok(serialised.dump());
    CHECK(again == original);
    // And serialising again is a fixed point.
    CHECK(kvmnet::model::to_json(again) == serialised);
}

TEST_CASE("to_json of a minimal network has every key with its default", "[network][json]")
{
    const Network n = parse_ok(R"({"name": "a", "mode": "isolated", "ipv4": {"address": "10.0.0.1/24"}})");
    const json expected = json::parse(R"({"name": "a", "mode": "isolated", "bridge": "", "autostart": false,
                                          "ipv4": {"address": "10.0.0.1/24"}, "stp": false, "forward_delay": 0,
                                          "ports": []})");
    CHECK(kvmnet::model::to_json(n) == expected);
}

TEST_CASE("to_json of the full example is exactly the canonical document", "[network][json]")
{
    const Network n = parse_ok(patched(R"({"uplink": "eth0", "stp": true, "forward_delay": 2})"));
    const json expected = json::parse(R"({
        "name": "default", "mode": "nat", "bridge": "kvmbr0", "autostart": true,
        "ipv4": {"address": "192.168.122.1/24",
                 "dhcp": {"ranges": ["192.168.122.100-192.168.122.254"],
                          "hosts": [{"mac": "52:54:00:12:34:56", "ip": "192.168.122.10", "name": "web"}]}},
        "uplink": "eth0", "stp": true, "forward_delay": 2, "mtu": 1500, "ports": []})");
    CHECK(kvmnet::model::to_json(n) == expected);
    SECTION("and a dhcp object without entries still serialises both arrays")
    {
        const Network s = parse_ok(patched(R"({"ipv4": {"dhcp": {"ranges": null, "hosts": null}}})"));
        CHECK(kvmnet::model::to_json(s)["ipv4"]["dhcp"] == json::parse(R"({"ranges": [], "hosts": []})"));
    }
}

TEST_CASE("validate_against refuses clashes with other networks", "[network]")
{
    using kvmnet::model::validate_against;
    const auto net = [](const char* name, const char* bridge, const char* address) {
        return parse_ok(std::string(R"({"name": ")") + name + R"(", "mode": "nat", "bridge": ")" + bridge +
                        R"(", "ipv4": {"address": ")" + address + R"("}})");
    };
    const auto failure = [](const Network& n, const std::vector<Network>& others) {
        return failure_of([&] { validate_against(n, others); });
    };
    const std::vector<Network> others{net("alpha", "kvmbr1", "10.1.0.1/24"), net("beta", "kvmbr2", "10.0.0.1/16")};

    SECTION("the same name is AlreadyExists")
    {
        const auto f = failure(net("beta", "kvmbr9", "172.20.0.1/24"), others);
        REQUIRE(f);
        CHECK(kind_name(f->kind) == "AlreadyExists");
        CHECK_THAT(f->message, Catch::Matchers::StartsWith("name: ") && Catch::Matchers::Contains("beta"));
    }
    SECTION("the same bridge is a Conflict naming the other network")
    {
        const auto f = failure(net("gamma", "kvmbr1", "172.20.0.1/24"), others);
        REQUIRE(f);
        CHECK(kind_name(f->kind) == "Conflict");
        CHECK_THAT(f->message, Catch::Matchers::StartsWith("bridge: ") && Catch::Matchers::Contains("alpha"));
    }
    SECTION("a subnet inside another network's subnet is a Conflict")
    {
        const auto f = failure(net("gamma", "kvmbr3", "10.0.5.1/24"), others);
        REQUIRE(f);
        CHECK(kind_name(f->kind) == "Conflict");
        CHECK_THAT(f->message, Catch::Matchers::StartsWith("ipv4.address: ") && Catch::Matchers::Contains("beta"));
    }
    SECTION("a subnet containing another network's subnet is a Conflict")
    {
        const auto f = failure(net("gamma", "kvmbr3", "10.0.0.1/8"), {others[0]});
        REQUIRE(f);
        CHECK(kind_name(f->kind) == "Conflict");
        CHECK_THAT(f->message, Catch::Matchers::StartsWith("ipv4.address: ") && Catch::Matchers::Contains("alpha"));
    }
    SECTION("disjoint subnets, distinct names and bridges are fine")
    {
        CHECK_FALSE(failure(net("gamma", "kvmbr3", "10.2.0.1/24"), others));
        CHECK_FALSE(failure(net("gamma", "kvmbr3", "192.168.122.1/24"), others));
    }
    SECTION("two networks without a bridge name yet do not clash on it")
    {
        Network a = net("gamma", "x", "10.2.0.1/24");
        Network b = net("delta", "y", "10.3.0.1/24");
        a.bridge.clear();
        b.bridge.clear();
        CHECK_FALSE(failure(a, {b}));
    }
    SECTION("no other networks at all is fine") { CHECK_FALSE(failure(net("gamma", "kvmbr3", "10.0.0.1/8"), {})); }
}

TEST_CASE("Bridge-mode documents with settings and ports round-trip", "[network]")
{
    const std::string text = R"({"name": "lan", "mode": "bridge", "bridge": "br0", "uplink": "eth0",
        "stp": true, "forward_delay": 15, "hello_time": 2, "max_age": 20, "priority": 4096,
        "multicast_snooping": false, "mtu": 9000,
        "ports": [{"name": "tap-web", "tap": true, "owner": 1000, "group": 100, "mac": "52:54:00:AA:BB:CC",
                   "isolated": true,
                   "bandwidth": {"inbound": {"average": 1000, "peak": 2000, "burst": 256}, "outbound": {"average": 500}}},
                  {"name": "vnet3", "vlan": {"pvid": 10, "tagged": [20, 30]}}]})";
    const Network n = parse_network(text);
    CHECK(n.mode == Mode::bridge);
    CHECK_FALSE(n.ipv4);
    CHECK(n.hello_time == 2);
    CHECK(n.max_age == 20);
    REQUIRE(n.priority);
    CHECK(*n.priority == 4096);
    REQUIRE(n.multicast_snooping);
    CHECK_FALSE(*n.multicast_snooping);
    REQUIRE(n.ports.size() == 2);
    CHECK(n.ports[0].mac == kvmnet::model::Mac::parse("52:54:00:aa:bb:cc"));
    CHECK(n.ports[0].tap);
    CHECK(n.ports[0].owner == 1000);
    CHECK(n.ports[0].group == 100);
    CHECK(n.ports[0].isolated);
    CHECK(n.ports[0].inbound.average == 1000);
    CHECK(n.ports[0].inbound.peak == 2000);
    CHECK(n.ports[0].inbound.burst == 256);
    CHECK(n.ports[0].outbound.average == 500);
    CHECK(n.ports[1].vlan_pvid == 10);
    CHECK(n.ports[1].vlan_tagged == std::vector<std::uint16_t>{20, 30});
    CHECK(parse_network(kvmnet::model::to_json(n).dump()) == n);
}

TEST_CASE("A single port parses as AttachPort takes it", "[network]")
{
    const auto p = kvmnet::model::parse_port(std::string(R"({"name": "tap0", "tap": true, "owner": 65534})"));
    CHECK(p.name == "tap0");
    CHECK(p.owner == 65534);
    CHECK(p.group == 0);
    try {
        kvmnet::model::parse_port(std::string(R"({"name": "tap0", "mac": "zz"})"));
        FAIL("accepted a bad MAC");
    } catch (const kvmnet::Error& e) {
        CHECK(e.kind() == ErrorKind::InvalidArgument);
        CHECK_THAT(std::string(e.what()), Catch::Matchers::StartsWith("port.mac: "));
    }
}

TEST_CASE("Ports and uplinks are unique across networks", "[network]")
{
    const Network a = parse_network(
        R"({"name": "a", "mode": "bridge", "bridge": "br0", "uplink": "eth0", "ports": [{"name": "t0", "mac": "52:54:00:00:00:01"}]})");
    const auto conflict = [&](const char* text) {
        try {
            kvmnet::model::validate_against(parse_network(std::string(text)), {a});
        } catch (const kvmnet::Error& e) {
            return e.kind() == ErrorKind::Conflict;
        }
        return false;
    };
    CHECK(conflict(R"({"name": "b", "mode": "bridge", "bridge": "br1", "uplink": "eth0"})"));
    CHECK(conflict(R"({"name": "b", "mode": "bridge", "bridge": "br1", "uplink": "eth1", "ports": [{"name": "t0"}]})"));
    CHECK(conflict(
        R"({"name": "b", "mode": "bridge", "bridge": "br1", "uplink": "eth1", "ports": [{"name": "t1", "mac": "52:54:00:00:00:01"}]})"));
    CHECK_FALSE(
        conflict(R"({"name": "b", "mode": "bridge", "bridge": "br1", "uplink": "eth1", "ports": [{"name": "t1"}]})"));
}

TEST_CASE("Gateways in special-purpose IPv4 ranges are refused, naming the range", "[network][validation]")
{
    const std::vector<std::pair<const char*, const char*>> cases = {
        {"224.0.0.1/24", "multicast"},     {"239.255.0.1/16", "multicast"}, {"240.0.0.1/24", "reserved"},
        {"255.255.255.1/24", "reserved"},  {"0.1.0.1/16", "0.0.0.0/8"},     {"169.254.0.1/16", "link-local"},
        {"169.254.10.1/24", "link-local"}, {"127.0.0.1/8", "loopback"},
    };
    for (const auto& [address, why] : cases) {
        const std::string text =
            patched((std::string(R"({"ipv4": {"address": ")") + address + R"(", "dhcp": null}})").c_str());
        CAPTURE(address);
        kvmnet::test::check_refused(text, ErrorKind::InvalidArgument, "ipv4.address");
        CHECK_THAT(failure_of(text)->message, Catch::Matchers::Contains(why));
    }
    // Neighbours of those ranges are ordinary subnets.
    for (const char* address : {"1.0.0.1/24", "126.255.255.1/24", "169.253.0.1/16", "169.255.0.1/16", "223.255.0.1/16"})
        parse_ok(patched((std::string(R"({"ipv4": {"address": ")") + address + R"(", "dhcp": null}})").c_str()));
}

TEST_CASE("Interface names the kernel reserves or refuses are refused, naming the field", "[network][validation]")
{
    using kvmnet::model::valid_interface_name;
    for (const char* name : {"all", "default"}) {
        CAPTURE(name);
        CHECK_FALSE(valid_interface_name(name));
        const std::string bridge = patched((std::string(R"({"bridge": ")") + name + "\"}").c_str());
        kvmnet::test::check_refused(bridge, ErrorKind::InvalidArgument, "bridge");
        CHECK_THAT(failure_of(bridge)->message, Catch::Matchers::Contains("reserves"));
        kvmnet::test::check_refused(patched((std::string(R"({"uplink": ")") + name + "\"}").c_str()),
                                    ErrorKind::InvalidArgument, "uplink");
        kvmnet::test::check_refused(patched((std::string(R"({"ports": [{"name": ")") + name + "\"}]}").c_str()),
                                    ErrorKind::InvalidArgument, "ports[0].name");
    }
    // Only those exact names: the kernel compares case-sensitively.
    CHECK(valid_interface_name("All"));
    CHECK(valid_interface_name("default0"));
    // dev_valid_name(): length, "." and "..", '/', ':' and whitespace.
    for (const std::string& name :
         {std::string(16, 'b'), std::string("."), std::string(".."), std::string("a/b"), std::string("a:b"),
          std::string("a b"), std::string("a\tb"), std::string("a\nb"), std::string("br%d")}) {
        CAPTURE(name);
        CHECK_FALSE(valid_interface_name(name));
        kvmnet::test::check_refused(patched(json{{"bridge", name}}.dump().c_str()), ErrorKind::InvalidArgument,
                                    "bridge");
    }
    // Every namespace has a loopback already.
    const std::string lo = patched(R"({"bridge": "lo"})");
    kvmnet::test::check_refused(lo, ErrorKind::InvalidArgument, "bridge");
    CHECK_THAT(failure_of(lo)->message, Catch::Matchers::Contains("loopback"));
}

TEST_CASE("Static DHCP hosts refuse multicast, broadcast and all-zero MACs as ports do", "[network][validation]")
{
    for (const char* mac : {"01:00:5e:00:00:01", "ff:ff:ff:ff:ff:ff", "00:00:00:00:00:00", "33:33:00:00:00:01"}) {
        CAPTURE(mac);
        const std::string text = patched(
            (std::string(R"({"ipv4": {"dhcp": {"hosts": [{"mac": ")") + mac + R"(", "ip": "192.168.122.10"}]}}})")
                .c_str());
        kvmnet::test::check_refused(text, ErrorKind::InvalidArgument, "ipv4.dhcp.hosts[0].mac");
        CHECK_THAT(failure_of(text)->message, Catch::Matchers::Contains("not a unicast MAC"));
        const auto host = kvmnet::test::failure_of([&] {
            kvmnet::model::parse_dhcp_host(std::string(R"({"mac": ")") + mac + R"(", "ip": "192.168.122.10"})");
        });
        REQUIRE(host);
        CHECK_THAT(host->message, Catch::Matchers::StartsWith("host.mac: "));
    }
    // A locally administered unicast MAC is a guest's.
    parse_ok(patched(R"({"ipv4": {"dhcp": {"hosts": [{"mac": "02:00:00:00:00:01", "ip": "192.168.122.10"}]}}})"));
}

TEST_CASE("A port's recorded original state round-trips and is checked", "[network][json]")
{
    const std::string text = patched(
        R"({"ports": [{"name": "vg1", "mac": "52:54:00:00:00:01", "original": {"mac": "02:00:00:00:00:AA", "mtu": 1400,
            "up": false, "on_bridge": true, "isolated": true, "hairpin": false}}]})");
    const Network n = parse_ok(text);
    REQUIRE(n.ports.size() == 1);
    REQUIRE(n.ports[0].original);
    CHECK(n.ports[0].original->mac == kvmnet::model::Mac::parse("02:00:00:00:00:aa"));
    CHECK(n.ports[0].original->mtu == 1400);
    CHECK_FALSE(n.ports[0].original->up);
    CHECK(n.ports[0].original->on_bridge);
    CHECK(n.ports[0].original->isolated);
    CHECK(parse_network(kvmnet::model::to_json(n)) == n);
    CHECK_FALSE(parse_ok(patched(R"({"ports": [{"name": "vg1"}]})")).ports[0].original);

    kvmnet::test::check_refused(patched(R"({"ports": [{"name": "vg1", "original": {"mtu": 10}}]})"),
                                ErrorKind::InvalidArgument, "ports[0].original.mtu");
    kvmnet::test::check_refused(patched(R"({"ports": [{"name": "vg1", "original": {"mac": "ff:ff:ff:ff:ff:ff"}}]})"),
                                ErrorKind::InvalidArgument, "ports[0].original.mac");
    kvmnet::test::check_refused(patched(R"({"ports": [{"name": "vg1", "original": {"colour": 1}}]})"),
                                ErrorKind::InvalidArgument, "ports[0].original.colour");
}

TEST_CASE("DHCP lease times: seconds or \"infinite\", the default left out of to_json", "[network][json]")
{
    CHECK(parse_ok(base_document).ipv4->lease_time == 3600);
    CHECK_FALSE(kvmnet::model::to_json(parse_ok(base_document))["ipv4"]["dhcp"].contains("lease_time"));
    const Network n = parse_ok(patched(R"({"ipv4": {"dhcp": {"lease_time": 86400}}})"));
    CHECK(n.ipv4->lease_time == 86400);
    CHECK(kvmnet::model::to_json(n)["ipv4"]["dhcp"]["lease_time"] == 86400);
    const Network inf = parse_ok(patched(R"({"ipv4": {"dhcp": {"lease_time": "infinite"}}})"));
    CHECK(inf.ipv4->lease_time == kvmnet::model::infinite_lease_time);
    CHECK(kvmnet::model::to_json(inf)["ipv4"]["dhcp"]["lease_time"] == "infinite");
    CHECK(parse_ok(patched(R"({"ipv4": {"dhcp": {"lease_time": 120}}})")).ipv4->lease_time == 120);
    const auto failure = failure_of(patched(R"({"ipv4": {"dhcp": {"lease_time": 60}}})"));
    REQUIRE(failure);
    CHECK(failure->message.find("2 minutes") != std::string::npos);
}

}  // namespace unit_test_network
