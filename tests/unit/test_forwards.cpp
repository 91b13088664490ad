// Unit tests of model/forward: port forwards and connection limits in the
// network document (a table of bad forwards and limits, each asserting the
// error kind and the field path it names), good documents, the overlap rules
// within a network and across networks, JSON round trips, the AddForwards /
// RemoveForward helpers, and the gate that keeps parse_network refusing
// forwards and limits until the kernel side exists.
#include "model/forward.hpp"
#include "model/network.hpp"

#include "document_util.hpp"
#include "random_forward.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace unit_test_forwards {

using kvmnet::ErrorKind;
using kvmnet::model::Ipv4;
using kvmnet::model::Limits;
using kvmnet::model::Network;
using kvmnet::model::PortForward;
using kvmnet::model::Proto;
using json = nlohmann::json;

namespace {

// A nat network with two static hosts, "web" (.10) and "db" (.11).
const char* const base_document = R"({
    "name": "default",
    "mode": "nat",
    "bridge": "kvmbr0",
    "ipv4": { "address": "192.168.122.1/24",
              "dhcp": { "ranges": ["192.168.122.100-192.168.122.254"],
                        "hosts": [{ "mac": "52:54:00:12:34:56", "ip": "192.168.122.10", "name": "web" },
                                  { "mac": "52:54:00:12:34:57", "ip": "192.168.122.11", "name": "db" }] } }
})";

// The base document with an RFC 7386 merge patch applied.
std::string patched(const std::string& patch) { return kvmnet::test::merged(base_document, patch); }

// The base document with "forwards" set to `forwards` (a JSON array).
std::string with_forwards(const std::string& forwards) { return patched(R"({"forwards": )" + forwards + "}"); }

// One forward object with `patch` merged into a valid tcp 8080 -> web:80.
std::string forward(const std::string& patch = "{}")
{
    return kvmnet::test::merged(R"({"proto": "tcp", "host_port": 8080, "guest": "192.168.122.10", "guest_port": 80})",
                                patch);
}

Ipv4 ip(const char* text) { return *Ipv4::parse(text); }

using kvmnet::test::BadDocument;
using kvmnet::test::failure_of;
using kvmnet::test::kind_name;
using kvmnet::test::parse_ok;

std::vector<BadDocument> bad_documents()
{
    const ErrorKind invalid = ErrorKind::InvalidArgument;
    const ErrorKind conflict = ErrorKind::Conflict;
    const auto one = [](const std::string& patch) { return with_forwards("[" + forward(patch) + "]"); };
    return {
        // Shape and types.
        {"forward is not an object", with_forwards(R"(["tcp 8080"])"), invalid, "forwards[0]"},
        {"unknown forward field", one(R"({"colour": "blue"})"), invalid, "forwards[0].colour"},
        {"misspelt field", one(R"({"guest_port": null, "guestport": 80})"), invalid, "forwards[0].guest_port"},
        {"missing proto", one(R"({"proto": null})"), invalid, "forwards[0].proto"},
        {"unknown proto", one(R"({"proto": "sctp"})"), invalid, "forwards[0].proto"},
        {"proto in upper case", one(R"({"proto": "TCP"})"), invalid, "forwards[0].proto"},
        {"proto is a number", one(R"({"proto": 6})"), invalid, "forwards[0].proto"},
        // Host ports.
        {"missing host_port", one(R"({"host_port": null})"), invalid, "forwards[0].host_port"},
        {"host_port 0", one(R"({"host_port": 0})"), invalid, "forwards[0].host_port"},
        {"host_port 65536", one(R"({"host_port": 65536})"), invalid, "forwards[0].host_port"},
        {"host_port negative", one(R"({"host_port": -80})"), invalid, "forwards[0].host_port"},
        {"host_port a fraction", one(R"({"host_port": 80.5})"), invalid, "forwards[0].host_port"},
        {"host_port a boolean", one(R"({"host_port": true})"), invalid, "forwards[0].host_port"},
        {"host_port range without end", one(R"({"host_port": "8080-"})"), invalid, "forwards[0].host_port"},
        {"host_port reversed range", one(R"({"host_port": "9000-8000", "guest_port": "80-1080"})"), invalid,
         "forwards[0].host_port"},
        {"host_port range with spaces", one(R"({"host_port": "8080 - 8081"})"), invalid, "forwards[0].host_port"},
        {"host_port with a leading zero", one(R"({"host_port": "08080"})"), invalid, "forwards[0].host_port"},
        {"host_port range from 0", one(R"({"host_port": "0-10", "guest_port": "1-11"})"), invalid,
         "forwards[0].host_port"},
        {"host_port range past 65535", one(R"({"host_port": "65535-65536", "guest_port": "80-81"})"), invalid,
         "forwards[0].host_port"},
        {"host_port with a protocol suffix", one(R"({"host_port": "8080/tcp"})"), invalid, "forwards[0].host_port"},
        // Host addresses.
        {"host_address malformed", one(R"({"host_address": "203.0.113.300"})"), invalid, "forwards[0].host_address"},
        {"host_address 0.0.0.0", one(R"({"host_address": "0.0.0.0"})"), invalid, "forwards[0].host_address"},
        {"host_address multicast", one(R"({"host_address": "224.0.0.1"})"), invalid, "forwards[0].host_address"},
        {"host_address broadcast", one(R"({"host_address": "255.255.255.255"})"), invalid, "forwards[0].host_address"},
        {"host_address a number", one(R"({"host_address": 3405803777})"), invalid, "forwards[0].host_address"},
        {"host_address with a prefix", one(R"({"host_address": "203.0.113.1/24"})"), invalid,
         "forwards[0].host_address"},
        // Guests.
        {"missing guest", one(R"({"guest": null})"), invalid, "forwards[0].guest"},
        {"guest a number", one(R"({"guest": 10})"), invalid, "forwards[0].guest"},
        {"guest outside the subnet", one(R"({"guest": "192.168.123.10"})"), invalid, "forwards[0].guest"},
        {"guest is the gateway", one(R"({"guest": "192.168.122.1"})"), invalid, "forwards[0].guest"},
        {"guest is the network address", one(R"({"guest": "192.168.122.0"})"), invalid, "forwards[0].guest"},
        {"guest is the broadcast address", one(R"({"guest": "192.168.122.255"})"), invalid, "forwards[0].guest"},
        {"guest 0.0.0.0", one(R"({"guest": "0.0.0.0"})"), invalid, "forwards[0].guest"},
        {"guest names no static host", one(R"({"guest": "mail"})"), invalid, "forwards[0].guest"},
        {"guest name with an underscore", one(R"({"guest": "web_1"})"), invalid, "forwards[0].guest"},
        {"guest address with a port", one(R"({"guest": "192.168.122.10:80"})"), invalid, "forwards[0].guest"},
        {"guest named without static hosts",
         patched(R"({"ipv4": {"dhcp": {"hosts": null}}, "forwards": [)" + forward(R"({"guest": "web"})") + "]}"),
         invalid, "forwards[0].guest"},
        // Guest ports.
        {"missing guest_port", one(R"({"guest_port": null})"), invalid, "forwards[0].guest_port"},
        {"guest_port 0", one(R"({"guest_port": 0})"), invalid, "forwards[0].guest_port"},
        {"guest_port a string word", one(R"({"guest_port": "http"})"), invalid, "forwards[0].guest_port"},
        {"guest range shorter than the host range", one(R"({"host_port": "8080-8090", "guest_port": "80-85"})"),
         invalid, "forwards[0].guest_port"},
        {"single guest port for a host range", one(R"({"host_port": "8080-8090", "guest_port": 80})"), invalid,
         "forwards[0].guest_port"},
        {"guest range for a single host port", one(R"({"guest_port": "80-81"})"), invalid, "forwards[0].guest_port"},
        {"guest range past 65535", one(R"({"host_port": "8080-8081", "guest_port": "65535-65536"})"), invalid,
         "forwards[0].guest_port"},
        // Description and rate.
        {"description too long", one(R"({"description": ")" + std::string(257, 'x') + R"("})"), invalid,
         "forwards[0].description"},
        {"description with a newline", one(R"({"description": "a\nb"})"), invalid, "forwards[0].description"},
        {"description with a C1 control", one(R"({"description": "a\u0085b"})"), invalid, "forwards[0].description"},
        {"description a number", one(R"({"description": 5})"), invalid, "forwards[0].description"},
        {"rate 0", one(R"({"rate": 0})"), invalid, "forwards[0].rate"},
        {"rate above 1e6", one(R"({"rate": 1000001})"), invalid, "forwards[0].rate"},
        {"rate with a unit", one(R"({"rate": "5/s"})"), invalid, "forwards[0].rate"},
        {"rate a fraction", one(R"({"rate": 2.5})"), invalid, "forwards[0].rate"},
        // The error names the right element.
        {"the third forward is bad",
         with_forwards("[" + forward() + "," + forward(R"({"host_port": 8081})") + "," +
                       forward(R"({"host_port": 8082, "guest_port": 70000})") + "]"),
         invalid, "forwards[2].guest_port"},
        // Modes.
        {"forwards on a routed network", patched(R"({"mode": "routed", "forwards": [)" + forward() + "]}"), invalid,
         "forwards"},
        {"forwards on an isolated network", patched(R"({"mode": "isolated", "forwards": [)" + forward() + "]}"),
         invalid, "forwards"},
        {"forwards on a bridge network",
         patched(R"({"mode": "bridge", "uplink": "eth0", "ipv4": null, "forwards": [)" + forward() + "]}"), invalid,
         "forwards"},
        // Overlaps within the network.
        {"the same forward twice", with_forwards("[" + forward() + "," + forward() + "]"), conflict, "forwards[1]"},
        {"the same host port to another guest",
         with_forwards("[" + forward() + "," + forward(R"({"guest": "db", "guest_port": 81})") + "]"), conflict,
         "forwards[1]"},
        {"both overlaps tcp", with_forwards("[" + forward() + "," + forward(R"({"proto": "both"})") + "]"), conflict,
         "forwards[1]"},
        {"udp overlaps both",
         with_forwards("[" + forward(R"({"proto": "both"})") + "," + forward(R"({"proto": "udp"})") + "]"), conflict,
         "forwards[1]"},
        {"every address overlaps one address",
         with_forwards("[" + forward(R"({"host_address": "203.0.113.1"})") + "," + forward() + "]"), conflict,
         "forwards[1]"},
        {"one address overlaps every address",
         with_forwards("[" + forward() + "," + forward(R"({"host_address": "203.0.113.1"})") + "]"), conflict,
         "forwards[1]"},
        {"a port inside a range",
         with_forwards("[" + forward(R"({"host_port": "8000-8100", "guest_port": "8000-8100"})") + "," +
                       forward(R"({"host_port": 8050})") + "]"),
         conflict, "forwards[1]"},
        {"ranges sharing their ends",
         with_forwards("[" + forward(R"({"host_port": "8000-8010", "guest_port": "1000-1010"})") + "," +
                       forward(R"({"host_port": "8010-8020", "guest_port": "2010-2020"})") + "]"),
         conflict, "forwards[1]"},
        {"a clash far apart",
         with_forwards("[" + forward(R"({"host_port": 1})") + "," + forward(R"({"host_port": 2})") + "," +
                       forward(R"({"host_port": 3, "proto": "udp"})") + "," + forward(R"({"host_port": 4})") + "," +
                       forward(R"({"host_port": 3, "proto": "both", "host_address": "198.51.100.7"})") + "]"),
         conflict, "forwards[4]"},
        // Limits.
        {"limits not an object", patched(R"({"limits": 200})"), invalid, "limits"},
        {"limits an array", patched(R"({"limits": [200]})"), invalid, "limits"},
        {"unknown limit", patched(R"({"limits": {"max_connections": 5}})"), invalid, "limits.max_connections"},
        {"new_connections_per_second 0", patched(R"({"limits": {"new_connections_per_second": 0}})"), invalid,
         "limits.new_connections_per_second"},
        {"new_connections_per_second negative", patched(R"({"limits": {"new_connections_per_second": -5}})"), invalid,
         "limits.new_connections_per_second"},
        {"new_connections_per_second a string", patched(R"({"limits": {"new_connections_per_second": "200/s"}})"),
         invalid, "limits.new_connections_per_second"},
        {"connections_per_source above 1e6", patched(R"({"limits": {"connections_per_source": 1000001}})"), invalid,
         "limits.connections_per_source"},
        {"connections_per_source a boolean", patched(R"({"limits": {"connections_per_source": true}})"), invalid,
         "limits.connections_per_source"},
        {"limits on an isolated network", patched(R"({"mode": "isolated", "limits": {"connections_per_source": 10}})"),
         invalid, "limits"},
        {"limits on a bridge network",
         patched(R"({"mode": "bridge", "uplink": "eth0", "ipv4": null, "limits": {"connections_per_source": 10}})"),
         invalid, "limits"},
    };
}

}  // namespace

TEST_CASE("Bad forwards and limits are refused with the kind and field they concern", "[forward]")
{
    const auto table = bad_documents();
    REQUIRE(table.size() >= 25);
    for (const auto& bad : table) {
        CAPTURE(bad.label, bad.text);
        kvmnet::test::check_refused(bad.text, bad.kind, bad.field);
    }
}

TEST_CASE("Good forwards parse field by field", "[forward]")
{
    SECTION("the design.md example")
    {
        const Network n = parse_ok(
            with_forwards(R"([{"proto": "tcp", "host_port": 8080, "guest": "192.168.122.10", "guest_port": 80}])"));
        REQUIRE(n.forwards.size() == 1);
        const PortForward& f = n.forwards[0];
        CHECK(f.proto == Proto::tcp);
        CHECK(f.host_port_first == 8080);
        CHECK(f.host_port_last == 8080);
        CHECK_FALSE(f.host_address);
        CHECK(f.guest == ip("192.168.122.10"));
        CHECK(f.guest_name.empty());
        CHECK(f.guest_port_first == 80);
        CHECK(f.guest_port_last() == 80);
        CHECK(f.port_count() == 1);
        CHECK(f.description.empty());
        CHECK_FALSE(f.rate);
        CHECK(n.limits.empty());
    }
    SECTION("every field, a range and both protocols")
    {
        const Network n = parse_ok(with_forwards(R"([{"proto": "both", "host_port": "8080-8090",
            "host_address": "203.0.113.1", "guest": "192.168.122.20", "guest_port": "80-90",
            "description": "web farm \u2014 caf\u00e9", "rate": 5}])"));
        REQUIRE(n.forwards.size() == 1);
        const PortForward& f = n.forwards[0];
        CHECK(f.proto == Proto::both);
        CHECK(f.host_port_first == 8080);
        CHECK(f.host_port_last == 8090);
        REQUIRE(f.host_address);
        CHECK(*f.host_address == ip("203.0.113.1"));
        CHECK(f.guest == ip("192.168.122.20"));
        CHECK(f.guest_port_first == 80);
        CHECK(f.guest_port_last() == 90);
        CHECK(f.port_count() == 11);
        CHECK(f.description == "web farm \xe2\x80\x94 caf\xc3\xa9");
        REQUIRE(f.rate);
        CHECK(*f.rate == 5);
    }
    SECTION("a guest named by its static host is resolved and keeps its name")
    {
        const Network n =
            parse_ok(with_forwards("[" + forward(R"({"guest": "web"})") + "," +
                                   forward(R"({"guest": "DB", "host_port": 5432, "guest_port": 5432})") + "]"));
        REQUIRE(n.forwards.size() == 2);
        CHECK(n.forwards[0].guest_name == "web");
        CHECK(n.forwards[0].guest == ip("192.168.122.10"));
        CHECK(n.forwards[1].guest_name == "DB");  // names compare without case, and keep their spelling
        CHECK(n.forwards[1].guest == ip("192.168.122.11"));
        CHECK(kvmnet::model::to_json(n)["forwards"][1]["guest"] == "DB");
    }
    SECTION("ports as strings, and ranges of one port")
    {
        const Network n =
            parse_ok(with_forwards("[" + forward(R"({"host_port": "8080-8080", "guest_port": "80"})") + "]"));
        CHECK(n.forwards[0].host_port_first == 8080);
        CHECK(n.forwards[0].host_port_last == 8080);
        CHECK(n.forwards[0].guest_port_first == 80);
    }
    SECTION("the extremes: ports 1 and 65535, a full range, rate 1e6, a 256-byte description")
    {
        const Network n = parse_ok(with_forwards(
            "[" + forward(R"({"host_port": 1, "guest_port": 65535, "rate": 1000000})") + "," +
            forward(R"({"host_port": 65535, "guest_port": 1, "rate": 1, "description": ")" + std::string(256, 'd') +
                    R"("})") +
            "," +
            forward(
                R"({"proto": "udp", "host_port": "1-65535", "guest_port": "1-65535", "host_address": "127.0.0.1"})") +
            "]"));
        CHECK(n.forwards.size() == 3);
        CHECK(n.forwards[2].port_count() == 65535);
    }
    SECTION("what does not overlap is accepted together")
    {
        const Network n = parse_ok(with_forwards(
            "[" + forward() + "," + forward(R"({"proto": "udp"})") +  // same port, other protocol
            "," + forward(R"({"host_port": 8081})") +                 // next port
            "," + forward(R"({"proto": "both", "host_port": "9000-9009", "guest_port": "9000-9009"})") + "," +
            forward(R"({"proto": "both", "host_port": "9010-9019", "guest_port": "9000-9009", "guest": "db"})") + "," +
            forward(R"({"host_port": 443, "guest_port": 443, "host_address": "203.0.113.1"})") + "," +
            forward(R"({"host_port": 443, "guest_port": 443, "host_address": "203.0.113.2", "guest": "db"})") + "," +
            forward(R"({"host_port": 2222, "guest_port": 22, "guest": "web"})") + "," +
            forward(R"({"host_port": 2223, "guest_port": 22, "guest": "db"})") + "]"));
        CHECK(n.forwards.size() == 9);
    }
    SECTION("limits, one or both")
    {
        const Network both =
            parse_ok(patched(R"({"limits": {"new_connections_per_second": 200, "connections_per_source": 1024}})"));
        REQUIRE(both.limits.new_connections_per_second);
        CHECK(*both.limits.new_connections_per_second == 200);
        REQUIRE(both.limits.connections_per_source);
        CHECK(*both.limits.connections_per_source == 1024);
        const Network one = parse_ok(patched(R"({"limits": {"connections_per_source": 1000000}})"));
        CHECK_FALSE(one.limits.new_connections_per_second);
        CHECK(*one.limits.connections_per_source == 1000000);
        const Network routed = parse_ok(patched(R"({"mode": "routed", "limits": {"new_connections_per_second": 1}})"));
        CHECK(*routed.limits.new_connections_per_second == 1);
        CHECK(parse_ok(patched(R"({"limits": {}})")).limits.empty());
    }
}

TEST_CASE("forwards_overlap: protocol, address and port range must all overlap", "[forward]")
{
    using kvmnet::model::forwards_overlap;
    const auto make = [](Proto proto, std::uint16_t first, std::uint16_t last, const char* address = nullptr) {
        PortForward f;
        f.proto = proto;
        f.host_port_first = first;
        f.host_port_last = last;
        if (address) f.host_address = ip(address);
        f.guest = ip("192.168.122.10");
        f.guest_port_first = first;
        return f;
    };
    struct Case {
        PortForward a, b;
        bool overlap;
    };
    const std::vector<Case> cases = {
        {make(Proto::tcp, 80, 80), make(Proto::tcp, 80, 80), true},
        {make(Proto::tcp, 80, 80), make(Proto::udp, 80, 80), false},
        {make(Proto::both, 80, 80), make(Proto::udp, 80, 80), true},
        {make(Proto::tcp, 80, 80), make(Proto::both, 80, 80), true},
        {make(Proto::both, 80, 80), make(Proto::both, 80, 80), true},
        {make(Proto::tcp, 80, 90), make(Proto::tcp, 90, 100), true},
        {make(Proto::tcp, 80, 89), make(Proto::tcp, 90, 100), false},
        {make(Proto::tcp, 1, 65535), make(Proto::tcp, 443, 443), true},
        {make(Proto::tcp, 80, 80, "203.0.113.1"), make(Proto::tcp, 80, 80, "203.0.113.2"), false},
        {make(Proto::tcp, 80, 80, "203.0.113.1"), make(Proto::tcp, 80, 80, "203.0.113.1"), true},
        {make(Proto::tcp, 80, 80), make(Proto::tcp, 80, 80, "203.0.113.2"), true},
        {make(Proto::tcp, 80, 80, "127.0.0.1"), make(Proto::tcp, 80, 80), true},
        {make(Proto::udp, 80, 80, "127.0.0.1"), make(Proto::tcp, 80, 80), false},
    };
    for (std::size_t i = 0; i < cases.size(); ++i) {
        CAPTURE(i, kvmnet::model::describe(cases[i].a), kvmnet::model::describe(cases[i].b));
        CHECK(forwards_overlap(cases[i].a, cases[i].b) == cases[i].overlap);
        CHECK(forwards_overlap(cases[i].b, cases[i].a) == cases[i].overlap);
    }
}

namespace {

using kvmnet::testing::Lcg;
using kvmnet::testing::random_forward;

bool brute_force_clash(const std::vector<PortForward>& forwards)
{
    for (std::size_t i = 0; i < forwards.size(); ++i)
        for (std::size_t k = 0; k < i; ++k)
            if (kvmnet::model::forwards_overlap(forwards[i], forwards[k])) return true;
    return false;
}

Network network_with(const char* name, const char* address, std::vector<PortForward> forwards)
{
    Network n = parse_ok(std::string(R"({"name": ")") + name + R"(", "mode": "nat", "ipv4": {"address": ")" + address +
                         R"("}})");
    const Ipv4 guest{n.ipv4->address.network().value + 10};
    for (auto& f : forwards)
        if (f.guest_name.empty()) f.guest = guest;
    n.forwards = std::move(forwards);
    return n;
}

}  // namespace

TEST_CASE("The overlap check within a network agrees with comparing every pair", "[forward]")
{
    Lcg rng{42};
    int clashes = 0;
    for (int round = 0; round < 400; ++round) {
        const std::uint32_t count = 2 + rng.next(30);
        std::vector<PortForward> forwards;
        for (std::uint32_t i = 0; i < count; ++i)
            forwards.push_back(random_forward(rng, 200));
        Network n = network_with("n", "192.168.122.1/24", forwards);
        const bool expected = brute_force_clash(n.forwards);
        clashes += expected;
        const auto f = failure_of([&] { kvmnet::model::validate(n); });
        CAPTURE(round, json(kvmnet::model::to_json(n)["forwards"]).dump());
        CHECK(static_cast<bool>(f) == expected);
        if (f) CHECK(kind_name(f->kind) == "Conflict");
    }
    // The generator produces both outcomes.
    CHECK(clashes > 50);
    CHECK(clashes < 350);
}

TEST_CASE("validate_against refuses forwards another network already has", "[forward]")
{
    using kvmnet::model::validate_against;
    const auto fwd = [](Proto proto, std::uint16_t first, std::uint16_t last, const char* address = nullptr) {
        PortForward f;
        f.proto = proto;
        f.host_port_first = first;
        f.host_port_last = last;
        if (address) f.host_address = ip(address);
        f.guest_port_first = first;
        return f;
    };
    const std::vector<Network> others{
        network_with("alpha", "10.1.0.1/24", {fwd(Proto::tcp, 8080, 8080), fwd(Proto::udp, 5000, 5010)}),
        network_with("beta", "10.2.0.1/24", {fwd(Proto::both, 443, 443, "203.0.113.1")}),
    };
    for (const auto& o : others)
        REQUIRE_NOTHROW(kvmnet::model::validate(o));

    SECTION("the same protocol and port is a Conflict naming the other network")
    {
        const auto f = failure_of(
            [&] { validate_against(network_with("gamma", "10.3.0.1/24", {fwd(Proto::tcp, 8080, 8080)}), others); });
        REQUIRE(f);
        CHECK(kind_name(f->kind) == "Conflict");
        CHECK_THAT(f->message, Catch::Matchers::StartsWith("forwards[0]: ") && Catch::Matchers::Contains("'alpha'"));
    }
    SECTION("a range reaching into another network's range")
    {
        const auto f = failure_of([&] {
            validate_against(network_with("gamma", "10.3.0.1/24",
                                          {fwd(Proto::tcp, 5000, 5010), fwd(Proto::both, 4990, 5000, "198.51.100.1")}),
                             others);
        });
        REQUIRE(f);
        CHECK(kind_name(f->kind) == "Conflict");
        CHECK_THAT(f->message, Catch::Matchers::StartsWith("forwards[1]: ") && Catch::Matchers::Contains("'alpha'"));
    }
    SECTION("every address against a specific address of another network")
    {
        const auto f = failure_of(
            [&] { validate_against(network_with("gamma", "10.3.0.1/24", {fwd(Proto::udp, 443, 443)}), others); });
        REQUIRE(f);
        CHECK(kind_name(f->kind) == "Conflict");
        CHECK_THAT(f->message, Catch::Matchers::StartsWith("forwards[0]: ") && Catch::Matchers::Contains("'beta'"));
    }
    SECTION("what does not overlap passes")
    {
        CHECK_NOTHROW(
            validate_against(network_with("gamma", "10.3.0.1/24",
                                          {fwd(Proto::udp, 8080, 8080), fwd(Proto::tcp, 5000, 5010),
                                           fwd(Proto::tcp, 443, 443, "203.0.113.2"), fwd(Proto::tcp, 8081, 8081)}),
                             others));
    }
    SECTION("the indexed path sees a long range behind shorter ones that start later")
    {
        // Other networks' forwards are not re-validated here and may overlap
        // each other: 100-160 followed by 110-111 must still hide nothing.
        const std::vector<Network> overlapping{network_with(
            "delta", "10.4.0.1/24", {fwd(Proto::tcp, 100, 160), fwd(Proto::tcp, 110, 111), fwd(Proto::tcp, 120, 121)})};
        std::vector<PortForward> many;
        for (std::uint16_t p = 20000; p < 20010; ++p)
            many.push_back(fwd(Proto::tcp, p, p));
        many.push_back(fwd(Proto::tcp, 150, 150));
        const auto f = failure_of([&] { validate_against(network_with("gamma", "10.3.0.1/24", many), overlapping); });
        REQUIRE(f);
        CHECK_THAT(f->message, Catch::Matchers::StartsWith("forwards[10]: ") && Catch::Matchers::Contains("'delta'") &&
                                   Catch::Matchers::Contains("100-160"));
    }
    SECTION("many forwards (the indexed path) find the same conflict")
    {
        std::vector<PortForward> many;
        for (std::uint16_t p = 20000; p < 20100; ++p)
            many.push_back(fwd(Proto::both, p, p));
        CHECK_NOTHROW(validate_against(network_with("gamma", "10.3.0.1/24", many), others));
        many.push_back(fwd(Proto::udp, 5005, 5005, "203.0.113.9"));
        const auto f = failure_of([&] { validate_against(network_with("gamma", "10.3.0.1/24", many), others); });
        REQUIRE(f);
        CHECK(kind_name(f->kind) == "Conflict");
        CHECK_THAT(f->message, Catch::Matchers::StartsWith("forwards[100]: ") && Catch::Matchers::Contains("'alpha'"));
    }
}

TEST_CASE("Across networks, the indexed check agrees with comparing every pair", "[forward]")
{
    Lcg rng{7};
    int clashes = 0;
    for (int round = 0; round < 300; ++round) {
        // Other networks' forwards may even overlap each other: only clashes
        // involving the new network count.
        std::vector<Network> others;
        for (int o = 0; o < 3; ++o) {
            std::vector<PortForward> forwards;
            for (std::uint32_t i = 0, count = rng.next(15); i < count; ++i)
                forwards.push_back(random_forward(rng, 400));
            others.push_back(network_with(("o" + std::to_string(o)).c_str(),
                                          ("10." + std::to_string(o) + ".0.1/24").c_str(), forwards));
        }
        std::vector<PortForward> mine;
        for (std::uint32_t i = 0, count = 1 + rng.next(20); i < count; ++i)
            mine.push_back(random_forward(rng, 400));
        const Network n = network_with("mine", "10.9.0.1/24", mine);
        bool expected = false;
        for (const auto& o : others)
            for (const auto& a : n.forwards)
                for (const auto& b : o.forwards)
                    expected = expected || kvmnet::model::forwards_overlap(a, b);
        clashes += expected;
        const auto f = failure_of([&] { kvmnet::model::validate_forwards_against(n, others); });
        CAPTURE(round);
        CHECK(static_cast<bool>(f) == expected);
        if (f) CHECK(kind_name(f->kind) == "Conflict");
    }
    CHECK(clashes > 30);
    CHECK(clashes < 270);
}

TEST_CASE("Thousands of forwards validate without comparing every pair", "[forward]")
{
    std::vector<PortForward> forwards;
    for (std::uint32_t p = 1; p <= 40000; ++p) {
        PortForward f;
        f.proto = p % 3 == 0 ? Proto::both : (p % 3 == 1 ? Proto::tcp : Proto::udp);
        f.host_port_first = f.host_port_last = static_cast<std::uint16_t>(p);
        f.guest_port_first = 80;
        forwards.push_back(f);
    }
    Network n = network_with("big", "10.0.0.1/16", forwards);
    CHECK_NOTHROW(kvmnet::model::validate(n));
    // One more, clashing with the very first.
    PortForward extra = n.forwards.front();
    extra.host_address = ip("203.0.113.1");
    n.forwards.push_back(extra);
    const auto f = failure_of([&] { kvmnet::model::validate(n); });
    REQUIRE(f);
    CHECK(kind_name(f->kind) == "Conflict");
    CHECK_THAT(f->message,
               Catch::Matchers::StartsWith("forwards[40000]: ") && Catch::Matchers::Contains("forwards[0]"));
}

TEST_CASE("parse_network(to_json(x)) == x with forwards and limits", "[forward][json]")
{
    const std::string text =
        GENERATE(as<std::string>{},
                 with_forwards(R"([{"proto": "tcp", "host_port": 8080, "guest": "192.168.122.10", "guest_port": 80}])"),
                 patched(R"({"limits": {"new_connections_per_second": 200, "connections_per_source": 1024},
                    "forwards": [{"proto": "both", "host_port": "8080-8090", "host_address": "203.0.113.1",
                                  "guest": "web", "guest_port": "80-90", "description": "farm", "rate": 5},
                                 {"proto": "udp", "host_port": "53", "guest": "Db", "guest_port": 5353}]})"),
                 patched(R"({"limits": {"connections_per_source": 7}})"),
                 patched(R"({"mode": "routed", "limits": {"new_connections_per_second": 9}})"));
    const Network original = parse_ok(text);
    const json serialised = kvmnet::model::to_json(original);
    CAPTURE(serialised.dump());
    const Network again = parse_ok(serialised.dump());
    CHECK(again == original);
    CHECK(kvmnet::model::to_json(again) == serialised);
}

TEST_CASE("to_json of forwards and limits has a stable shape", "[forward][json]")
{
    const Network n = parse_ok(patched(R"({"limits": {"connections_per_source": 1024},
        "forwards": [{"proto": "tcp", "host_port": "8080", "guest": "192.168.122.10", "guest_port": "80"},
                     {"rate": 5, "description": "dns", "guest_port": "53-54", "guest": "web",
                      "host_address": "203.0.113.1", "host_port": "5353-5354", "proto": "both"}]})"));
    const json j = kvmnet::model::to_json(n);
    CHECK(j["forwards"] == json::parse(R"([
        {"proto": "tcp", "host_port": 8080, "guest": "192.168.122.10", "guest_port": 80},
        {"proto": "both", "host_port": "5353-5354", "host_address": "203.0.113.1", "guest": "web",
         "guest_port": "53-54", "description": "dns", "rate": 5}])"));
    CHECK(j["limits"] == json::parse(R"({"connections_per_source": 1024})"));
    SECTION("and a network without forwards or limits has neither key")
    {
        const json plain = kvmnet::model::to_json(parse_ok(patched(R"({"forwards": [], "limits": {}})")));
        CHECK_FALSE(plain.contains("forwards"));
        CHECK_FALSE(plain.contains("limits"));
    }
}

TEST_CASE("AddForwards' incremental check agrees with validating the whole network", "[forward]")
{
    using kvmnet::model::validate_added_forwards;
    const auto field = [](std::size_t i) { return "forwards[" + std::to_string(i) + "]"; };
    Lcg rng{7};
    int refused = 0;
    for (int round = 0; round < 400; ++round) {
        // A valid network (drop clashing forwards as they come), another
        // network, and a few or many forwards to add.
        Network n = network_with("n", "192.168.122.1/24", {});
        Network other = network_with("o", "192.168.123.1/24", {});
        for (std::uint32_t i = 0, count = rng.next(20); i < count; ++i) {
            PortForward f = random_forward(rng, 200);
            Network& into = rng.next(2) == 0 ? n : other;
            f.guest = Ipv4{into.ipv4->address.network().value + 10};
            into.forwards.push_back(f);
            if (failure_of([&] { kvmnet::model::validate(into); }) ||
                failure_of([&] { kvmnet::model::validate_against(n, {other}); }))
                into.forwards.pop_back();
        }
        std::vector<PortForward> added;
        const std::uint32_t count = rng.next(2) == 0 ? 1 + rng.next(3) : 9 + rng.next(10);
        for (std::uint32_t i = 0; i < count; ++i)
            added.push_back(random_forward(rng, 200));

        Network merged = n;
        merged.forwards.insert(merged.forwards.end(), added.begin(), added.end());
        const auto whole = failure_of([&] {
            kvmnet::model::validate(merged);
            kvmnet::model::validate_against(merged, {other});
        });
        auto copy = added;
        const auto incremental = failure_of([&] { validate_added_forwards(n, copy, field, {&other}); });
        CAPTURE(round, json(kvmnet::model::to_json(merged)["forwards"]).dump());
        REQUIRE(static_cast<bool>(incremental) == static_cast<bool>(whole));
        if (incremental) {
            ++refused;
            CHECK(kind_name(incremental->kind) == "Conflict");
            CHECK_THAT(incremental->message, Catch::Matchers::StartsWith("forwards["));
        }
    }
    CHECK(refused > 40);
    CHECK(refused < 360);
}

TEST_CASE("AddForwards' check names the request's entries and resolves guests", "[forward]")
{
    using kvmnet::model::validate_added_forwards;
    Network n = parse_ok(with_forwards("[" + forward() + "]"));
    const auto one = [](std::size_t) { return std::string("forward"); };
    const auto parse = [](const std::string& text) { return kvmnet::model::parse_forwards(json::parse(text)); };
    SECTION("a named guest gets its host's address")
    {
        auto added = parse(forward(R"({"host_port": 9000, "guest": "DB"})"));
        validate_added_forwards(n, added, one, {});
        CHECK(added[0].guest == ip("192.168.122.11"));
    }
    SECTION("an unknown name, an address outside the subnet and the gateway are refused")
    {
        for (const char* guest : {R"("nobody")", R"("10.0.0.5")", R"("192.168.122.1")"}) {
            auto added = parse(forward(std::string(R"({"host_port": 9000, "guest": )") + guest + "}"));
            const auto f = failure_of([&] { validate_added_forwards(n, added, one, {}); });
            REQUIRE(f);
            CHECK(kind_name(f->kind) == "InvalidArgument");
            CHECK_THAT(f->message, Catch::Matchers::StartsWith("forward.guest: "));
        }
    }
    SECTION("a clash with the network's own forward names both")
    {
        auto added = parse(forward(R"({"proto": "both"})"));
        const auto f = failure_of([&] { validate_added_forwards(n, added, one, {}); });
        REQUIRE(f);
        CHECK(kind_name(f->kind) == "Conflict");
        CHECK(f->message == "forward: both *:8080 is already forwarded by this network, forwards[0] (tcp *:8080)");
    }
    SECTION("a clash with another network names it")
    {
        Network other = parse_ok(R"({"name": "lab", "mode": "nat", "bridge": "kvmbr1",
            "ipv4": {"address": "10.9.0.1/24"},
            "forwards": [{"proto": "udp", "host_port": "5000-5010", "guest": "10.9.0.5", "guest_port": "5000-5010"}]})");
        auto added = parse("[" + forward(R"({"host_port": 9000})") + "," +
                           forward(R"({"proto": "udp", "host_port": 5005})") + "]");
        const auto f = failure_of([&] {
            validate_added_forwards(n, added, [](std::size_t i) { return "forwards[" + std::to_string(i) + "]"; },
                                    {&other});
        });
        REQUIRE(f);
        CHECK(kind_name(f->kind) == "Conflict");
        CHECK_THAT(f->message, Catch::Matchers::StartsWith("forwards[1]: udp *:5005 is already forwarded by network "
                                                           "'lab'"));
    }
    SECTION("forwards on a network that is not nat are refused")
    {
        Network routed = parse_ok(R"({"name": "r", "mode": "routed", "bridge": "kvmbr2",
            "ipv4": {"address": "10.8.0.1/24"}})");
        auto added = parse(forward(R"({"guest": "10.8.0.5"})"));
        const auto f = failure_of([&] { validate_added_forwards(routed, added, one, {}); });
        REQUIRE(f);
        CHECK(f->message == "forwards: port forwards need a nat network, not a routed network");
    }
}

TEST_CASE("parse_forwards takes one forward or an array of them", "[forward]")
{
    using kvmnet::model::parse_forwards;
    SECTION("one object")
    {
        const auto forwards = parse_forwards(forward(R"({"guest": "web"})"));
        REQUIRE(forwards.size() == 1);
        CHECK(forwards[0].guest_name == "web");
        CHECK(forwards[0].guest == Ipv4{});  // resolved only inside a network
    }
    SECTION("an array")
    {
        const auto forwards = parse_forwards("[" + forward() + "," + forward(R"({"proto": "udp"})") + "]");
        REQUIRE(forwards.size() == 2);
        CHECK(forwards[1].proto == Proto::udp);
    }
    SECTION("errors name forward.<key> for one object and forwards[i].<key> in an array")
    {
        const auto one = failure_of([&] { parse_forwards(forward(R"({"rate": 0})")); });
        REQUIRE(one);
        CHECK_THAT(one->message, Catch::Matchers::StartsWith("forward.rate: "));
        const auto many = failure_of([&] { parse_forwards("[" + forward() + "," + forward(R"({"x": 1})") + "]"); });
        REQUIRE(many);
        CHECK_THAT(many->message, Catch::Matchers::StartsWith("forwards[1].x: "));
    }
    SECTION("an empty array, another type or bad JSON is InvalidArgument on forwards")
    {
        for (const char* text : {"[]", "\"tcp 80\"", "5", "{\"proto\": ", ""}) {
            CAPTURE(text);
            const auto f = failure_of([&] { parse_forwards(std::string(text)); });
            REQUIRE(f);
            CHECK(kind_name(f->kind) == "InvalidArgument");
            CHECK_THAT(f->message, Catch::Matchers::StartsWith("forwards: "));
        }
    }
    SECTION("added to a network, they are resolved and validated there")
    {
        Network n = parse_ok(base_document);
        for (auto& f : parse_forwards("[" + forward(R"({"guest": "web"})") + "," + forward(R"({"guest": "db"})") + "]"))
            n.forwards.push_back(f);
        kvmnet::model::resolve_forward_guests(n);
        CHECK(n.forwards[1].guest == ip("192.168.122.11"));
        const auto f = failure_of([&] { kvmnet::model::validate(n); });
        REQUIRE(f);
        CHECK(kind_name(f->kind) == "Conflict");
        CHECK_THAT(f->message, Catch::Matchers::StartsWith("forwards[1]: "));
    }
}

TEST_CASE("Forward keys identify a forward for RemoveForward", "[forward]")
{
    using kvmnet::model::forward_key;
    using kvmnet::model::make_forward_key;
    using kvmnet::model::same_forward;
    const auto a =
        kvmnet::model::parse_forward(json::parse(forward(R"({"host_port": "8080-8090", "guest_port": "80-90"})")));
    const auto b = kvmnet::model::parse_forward(
        json::parse(forward(R"({"guest": "web", "guest_port": 1000, "host_port": "8080"})")));
    CHECK(same_forward(a, b));  // proto + host address + first host port only
    CHECK(forward_key(a) == make_forward_key("tcp", "", 8080));
    CHECK_FALSE(same_forward(a, kvmnet::model::parse_forward(json::parse(forward(R"({"proto": "udp"})")))));
    CHECK_FALSE(
        same_forward(a, kvmnet::model::parse_forward(json::parse(forward(R"({"host_address": "203.0.113.1"})")))));
    CHECK(make_forward_key("both", "203.0.113.1", 443) ==
          forward_key(kvmnet::model::parse_forward(
              json::parse(forward(R"({"proto": "both", "host_address": "203.0.113.1", "host_port": 443})")))));
    CHECK(kvmnet::model::describe(make_forward_key("udp", "203.0.113.1", 53)) == "udp 203.0.113.1:53");
    CHECK(kvmnet::model::describe(make_forward_key("tcp", "", 80)) == "tcp *:80");
    CHECK(kvmnet::model::describe(a) == "tcp *:8080-8090 -> 192.168.122.10:80-90");
    CHECK(kvmnet::model::describe(b) == "tcp *:8080 -> web:1000");

    const auto field_of = [](auto f) {
        const auto failure = failure_of(f);
        return failure ? failure->message.substr(0, failure->message.find(':')) : std::string("(none)");
    };
    CHECK(field_of([] { make_forward_key("icmp", "", 80); }) == "proto");
    CHECK(field_of([] { make_forward_key("tcp", "nowhere", 80); }) == "host_address");
    CHECK(field_of([] { make_forward_key("tcp", "0.0.0.0", 80); }) == "host_address");
    CHECK(field_of([] { make_forward_key("tcp", "", 0); }) == "host_port");
    CHECK(field_of([] { make_forward_key("tcp", "", 65536); }) == "host_port");
}

TEST_CASE("Named guests follow their static host", "[forward]")
{
    Network n = parse_ok(with_forwards("[" + forward(R"({"guest": "web"})") + "]"));
    SECTION("a moved host is picked up by resolve_forward_guests")
    {
        n.ipv4->hosts[0].ip = ip("192.168.122.50");
        CHECK_NOTHROW(kvmnet::model::validate(n));  // validate looks the name up itself
        kvmnet::model::resolve_forward_guests(n);
        CHECK(n.forwards[0].guest == ip("192.168.122.50"));
    }
    SECTION("removing the host a forward names is refused")
    {
        n.ipv4->hosts.erase(n.ipv4->hosts.begin());
        CHECK_THROWS_WITH(kvmnet::model::validate(n), Catch::Matchers::StartsWith("forwards[0].guest: "));
        kvmnet::model::resolve_forward_guests(n);
        CHECK(n.forwards[0].guest == Ipv4{});
    }
}

TEST_CASE("validate catches forwards and limits built in code", "[forward]")
{
    Network n = parse_ok(with_forwards("[" + forward() + "]"));
    const auto field_of = [&] {
        const auto f = failure_of([&] { kvmnet::model::validate(n); });
        return f ? f->message.substr(0, f->message.find(": ")) : std::string("(none)");
    };
    REQUIRE(field_of() == "(none)");
    SECTION("a reversed host range")
    {
        n.forwards[0].host_port_last = 8000;
        CHECK(field_of() == "forwards[0].host_port");
    }
    SECTION("host port 0")
    {
        n.forwards[0].host_port_first = 0;
        CHECK(field_of() == "forwards[0].host_port");
    }
    SECTION("a guest range running past 65535")
    {
        n.forwards[0].host_port_last = 8090;
        n.forwards[0].guest_port_first = 65530;
        CHECK(field_of() == "forwards[0].guest_port");
    }
    SECTION("no guest at all")
    {
        n.forwards[0].guest = Ipv4{};
        CHECK(field_of() == "forwards[0].guest");
    }
    SECTION("a description with a DEL or broken UTF-8")
    {
        n.forwards[0].description = "a\x7f";
        CHECK(field_of() == "forwards[0].description");
        n.forwards[0].description = "caf\xc3";
        CHECK(field_of() == "forwards[0].description");
        n.forwards[0].description = "\xc0\xaf";  // overlong '/'
        CHECK(field_of() == "forwards[0].description");
    }
    SECTION("rates and limits out of range")
    {
        n.forwards[0].rate = 0;
        CHECK(field_of() == "forwards[0].rate");
        n.forwards[0].rate.reset();
        n.limits.connections_per_source = 2000000;
        CHECK(field_of() == "limits.connections_per_source");
        n.limits.connections_per_source = 0;
        CHECK(field_of() == "limits.connections_per_source");
    }
}

}  // namespace unit_test_forwards
