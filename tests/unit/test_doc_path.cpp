// Unit tests of client/doc_path: the path edits behind `kvmnetctl set` and
// `unset`, above all that a sibling is never lost.
#include "doc_path.hpp"

#include <catch2/catch.hpp>

#include <functional>

namespace unit_test_doc_path {

using kvmnet::client::append_path;
using kvmnet::client::merge_patch;
using kvmnet::client::parse_assignment;
using kvmnet::client::parse_path;
using kvmnet::client::parse_value;
using kvmnet::client::PathError;
using kvmnet::client::PathStep;
using kvmnet::client::set_path;
using kvmnet::client::unset_path;
using json = nlohmann::json;

namespace {

json sample()
{
    return json::parse(R"({"name": "st", "mode": "nat", "stp": false,
        "ipv4": {"address": "192.168.176.1/24",
                 "dhcp": {"ranges": ["192.168.176.10-192.168.176.20"],
                          "hosts": [{"mac": "52:54:00:00:00:01", "ip": "192.168.176.5", "name": "a"},
                                    {"mac": "52:54:00:00:00:02", "ip": "192.168.176.6"}]}},
        "limits": {"connections_per_source": 2}})");
}

std::string kind_of(const std::function<void()>& f)
{
    try {
        f();
    } catch (const PathError& e) {
        return e.kind() + ": " + e.what();
    }
    return "no error";
}

}  // namespace

TEST_CASE("paths: dotted fields, [N] and .N elements")
{
    CHECK(parse_path("ipv4.address") == std::vector<PathStep>{std::string("ipv4"), std::string("address")});
    CHECK(parse_path("ipv4.dhcp.hosts[1].name") == std::vector<PathStep>{std::string("ipv4"), std::string("dhcp"),
                                                                         std::string("hosts"), std::size_t{1},
                                                                         std::string("name")});
    CHECK(parse_path("a[0][2]") == std::vector<PathStep>{std::string("a"), std::size_t{0}, std::size_t{2}});
    for (const char* bad : {"", ".a", "a.", "a..b", "a[", "a[x]", "a[1]b", "a[]"})
        CHECK_THROWS_AS(parse_path(bad), PathError);
}

TEST_CASE("values: JSON when it parses, on/off as booleans, else a string")
{
    CHECK(parse_value("15") == json(15));
    CHECK(parse_value("true") == json(true));
    CHECK(parse_value("on") == json(true));
    CHECK(parse_value("off") == json(false));
    CHECK(parse_value("null").is_null());
    CHECK(parse_value("192.168.1.1/24") == json("192.168.1.1/24"));
    CHECK(parse_value("10.0.0.5-10.0.0.9") == json("10.0.0.5-10.0.0.9"));
    CHECK(parse_value("\"on\"") == json("on"));
    CHECK(parse_value(R"({"a": 1})") == json{{"a", 1}});
    CHECK(parse_value("") == json(""));
}

TEST_CASE("assignments: = and +=, the path checked first")
{
    auto a = parse_assignment("ipv4.dhcp.ranges+=10.0.0.5-10.0.0.9");
    CHECK(a.append);
    CHECK(a.path == "ipv4.dhcp.ranges");
    CHECK(a.value == json("10.0.0.5-10.0.0.9"));
    a = parse_assignment("forwards[0].description=a=b");
    CHECK_FALSE(a.append);
    CHECK(a.path == "forwards[0].description");
    CHECK(a.value == json("a=b"));
    CHECK_THROWS_AS(parse_assignment("stp"), PathError);
    CHECK_THROWS_AS(parse_assignment("=1"), PathError);
    CHECK_THROWS_AS(parse_assignment("a..b=1"), PathError);
}

TEST_CASE("set: a nested field, siblings kept, missing objects created")
{
    json doc = sample();
    set_path(doc, "ipv4.address", "192.168.177.1/24");
    CHECK(doc["ipv4"]["address"] == "192.168.177.1/24");
    CHECK(doc["ipv4"]["dhcp"] == sample()["ipv4"]["dhcp"]);
    set_path(doc, "dns.domain", "kvm.lan");
    CHECK(doc["dns"] == json{{"domain", "kvm.lan"}});
    set_path(doc, "ipv4.dhcp.hosts[1].name", "b");
    set_path(doc, "ipv4.dhcp.hosts.0.name", "a2");
    CHECK(doc["ipv4"]["dhcp"]["hosts"][1]["name"] == "b");
    CHECK(doc["ipv4"]["dhcp"]["hosts"][0] ==
          json{{"mac", "52:54:00:00:00:01"}, {"ip", "192.168.176.5"}, {"name", "a2"}});
}

TEST_CASE("set: an object value is merged (the issue's ipv4={address} keeps the DHCP ranges)")
{
    json doc = sample();
    set_path(doc, "ipv4", json::parse(R"({"address": "192.168.176.1/25"})"));
    CHECK(doc["ipv4"]["address"] == "192.168.176.1/25");
    CHECK(doc["ipv4"]["dhcp"] == sample()["ipv4"]["dhcp"]);
    // null members remove, as in RFC 7386
    set_path(doc, "limits", json::parse(R"({"connections_per_source": null, "new_connections_per_second": 5})"));
    CHECK(doc["limits"] == json{{"new_connections_per_second", 5}});
    // an empty object changes nothing
    set_path(doc, "limits", json::object());
    CHECK(doc["limits"] == json{{"new_connections_per_second", 5}});
    // arrays are replaced whole when named
    set_path(doc, "ipv4.dhcp.ranges", json::array());
    CHECK(doc["ipv4"]["dhcp"]["ranges"] == json::array());
    CHECK(doc["ipv4"]["dhcp"]["hosts"].size() == 2);
}

TEST_CASE("set: null removes; errors name the path")
{
    json doc = sample();
    set_path(doc, "limits", nullptr);
    CHECK_FALSE(doc.contains("limits"));
    set_path(doc, "limits", nullptr);  // absent: nothing to do
    CHECK(kind_of([&] { set_path(doc, "stp.x", 1); }) == "InvalidArgument: stp.x: stp is a boolean, not an object");
    CHECK(kind_of([&] { set_path(doc, "ipv4.dhcp.hosts[2].name", "c"); }) ==
          "InvalidArgument: ipv4.dhcp.hosts[2]: no such element (ipv4.dhcp.hosts has 2; += appends one)");
    CHECK(kind_of([&] { set_path(doc, "ipv4[0]", 1); }) == "InvalidArgument: ipv4[0]: ipv4 is an object, not an array");
    CHECK(kind_of([&] { set_path(doc, "ipv4.dhcp.hosts.x", 1); }) ==
          "InvalidArgument: ipv4.dhcp.hosts.x: 'x' is not an array index");
}

TEST_CASE("append: += adds one element, creating the array")
{
    json doc = sample();
    append_path(doc, "ipv4.dhcp.ranges", "192.168.176.30-192.168.176.40");
    CHECK(doc["ipv4"]["dhcp"]["ranges"] == json{"192.168.176.10-192.168.176.20", "192.168.176.30-192.168.176.40"});
    append_path(doc, "dns.forwarders", "192.0.2.53");
    CHECK(doc["dns"]["forwarders"] == json{"192.0.2.53"});
    append_path(doc, "ipv4.dhcp.hosts", json{{"mac", "52:54:00:00:00:03"}, {"ip", "192.168.176.7"}});
    CHECK(doc["ipv4"]["dhcp"]["hosts"].size() == 3);
    CHECK(kind_of([&] { append_path(doc, "ipv4.address", "x"); }) ==
          "InvalidArgument: ipv4.address: is a string, not an array; += appends to arrays");
}

TEST_CASE("unset: a field or an element, NotFound when absent")
{
    json doc = sample();
    unset_path(doc, "ipv4.dhcp.hosts[0]");
    CHECK(doc["ipv4"]["dhcp"]["hosts"] == json::array({{{"mac", "52:54:00:00:00:02"}, {"ip", "192.168.176.6"}}}));
    unset_path(doc, "ipv4.dhcp.ranges");
    CHECK(doc["ipv4"]["dhcp"] == json{{"hosts", doc["ipv4"]["dhcp"]["hosts"]}});
    CHECK(doc["ipv4"]["address"] == "192.168.176.1/24");
    unset_path(doc, "limits");
    CHECK_FALSE(doc.contains("limits"));
    CHECK(kind_of([&] { unset_path(doc, "limits"); }) == "NotFound: limits: no such field");
    CHECK(kind_of([&] { unset_path(doc, "dns.domain"); }) == "NotFound: dns: no such field");
    CHECK(kind_of([&] { unset_path(doc, "ipv4.dhcp.hosts[3]"); }) ==
          "NotFound: ipv4.dhcp.hosts[3]: no such element (ipv4.dhcp.hosts has 1)");
    CHECK(kind_of([&] { unset_path(doc, "name.x"); }) == "InvalidArgument: name.x: name is a string, not an object");
}

TEST_CASE("merge patch: RFC 7386 examples")
{
    json target = json::parse(R"({"a": "b", "c": {"d": "e", "f": "g"}})");
    merge_patch(target, json::parse(R"({"a": "z", "c": {"f": null}})"));
    CHECK(target == json::parse(R"({"a": "z", "c": {"d": "e"}})"));
    json t2 = json::parse(R"({"a": [{"b": "c"}]})");
    merge_patch(t2, json::parse(R"({"a": [1]})"));
    CHECK(t2 == json::parse(R"({"a": [1]})"));
    json t3 = json::array({1});
    merge_patch(t3, json::parse(R"({"a": "b", "c": null})"));
    CHECK(t3 == json::parse(R"({"a": "b"})"));
}

}  // namespace unit_test_doc_path
