// A port's MAC and its recorded original MAC are model::Mac values: the
// document keeps its exact spelling (lower case, left out when absent), a
// stored document written before the change loads to the same values, and
// what is not a unicast MAC is refused naming the field.
#include "document_util.hpp"
#include "model/network.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <string>

namespace unit_test_port_mac_json {

using kvmnet::ErrorKind;
using kvmnet::model::Mac;
using kvmnet::model::parse_port;
using kvmnet::model::to_json;

TEST_CASE("A port's MACs keep the document's spelling byte for byte", "[network][json][mac]")
{
    // As the daemon stored ports before the MACs were typed: lower case.
    const std::string stored =
        R"({"mac":"52:54:00:aa:bb:cc","name":"vg1","original":{"mac":"02:00:00:00:00:aa","mtu":1400,"on_bridge":false,"up":true}})";
    const auto port = parse_port(stored);
    CHECK(port.mac == Mac::parse("52:54:00:aa:bb:cc"));
    REQUIRE(port.original);
    CHECK(port.original->mac == Mac::parse("02:00:00:00:00:aa"));
    CHECK(to_json(port).dump() == stored);

    // Upper case in, lower case out, as before.
    const auto upper = parse_port(std::string(R"({"name": "vg1", "mac": "52:54:00:AA:BB:CC"})"));
    CHECK(to_json(upper).dump() == R"({"mac":"52:54:00:aa:bb:cc","name":"vg1"})");

    // "" is no MAC, and no MAC is left out of the document.
    const auto none = parse_port(std::string(R"({"name": "vg1", "mac": "", "original": {"mac": ""}})"));
    CHECK_FALSE(none.mac);
    REQUIRE(none.original);
    CHECK_FALSE(none.original->mac);
    CHECK(to_json(none).dump() == R"({"name":"vg1","original":{"on_bridge":false,"up":false}})");
}

TEST_CASE("A port's MAC that is not a unicast address is refused naming the field", "[network][json][mac]")
{
    const auto refused = [](const std::string& text, const std::string& message) {
        try {
            parse_port(text);
            FAIL("accepted " << text);
        } catch (const kvmnet::Error& e) {
            CHECK(e.kind() == ErrorKind::InvalidArgument);
            CHECK(std::string(e.what()) == message);
        }
    };
    refused(R"({"name": "vg1", "mac": "52:54:00:ZZ:00:01"})",
            "port.mac: '52:54:00:zz:00:01' is not a unicast MAC address like 52:54:00:12:34:56");
    refused(R"({"name": "vg1", "mac": "01:00:5e:00:00:01"})",
            "port.mac: '01:00:5e:00:00:01' is not a unicast MAC address like 52:54:00:12:34:56");
    refused(R"({"name": "vg1", "original": {"mac": "00:00:00:00:00:00"}})",
            "port.original.mac: '00:00:00:00:00:00' is not a unicast MAC address");

    // A port built in code is checked by validate_port.
    kvmnet::model::Port port;
    port.name = "vg1";
    port.mac = Mac::parse("ff:ff:ff:ff:ff:ff");
    CHECK_THROWS_AS(kvmnet::model::validate_port(port, "port"), kvmnet::Error);
}

}  // namespace unit_test_port_mac_json
