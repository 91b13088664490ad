// Unit tests of the typed form of forwards (AddForwardsTyped's a(ssqqsqsu),
// model::forward_from_fields) and of `kvmnetctl forward add --file`'s
// reading of the file into that form (client/forward_file), issue 17 item 1.
#include "forward_file.hpp"
#include "model/forward.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace unit_test_forward_typed {

using kvmnet::Error;
using kvmnet::ErrorKind;
using kvmnet::model::ForwardFields;
using kvmnet::model::PortForward;

namespace {

ForwardFields web()
{
    ForwardFields f;
    f.proto = "tcp";
    f.host_port = 8080;
    f.guest = "192.168.122.10";
    f.guest_port = 80;
    return f;
}

// The message of the InvalidArgument that body throws ("" if none).
template <typename F>
std::string refusal(F body)
{
    try {
        body();
    } catch (const Error& e) {
        CHECK(e.kind() == ErrorKind::InvalidArgument);
        return e.what();
    }
    return "";
}

}  // namespace

TEST_CASE("typed forwards: the same forward as its JSON object", "[forward][typed]")
{
    const char* documents[] = {
        R"({"proto":"tcp","host_port":8080,"guest":"192.168.122.10","guest_port":80})",
        R"({"proto":"both","host_port":"8000-8010","host_address":"203.0.113.1","guest":"web","guest_port":"9000-9010","description":"a \"range\"","rate":5})",
        R"({"proto":"udp","host_port":5353,"guest":"fd00:1::10","guest_port":53})",
        R"({"proto":"tcp","host_port":443,"host_address":"2001:db8::1","guest":"fd00:1::10","guest_port":8443})",
    };
    for (const char* text : documents) {
        INFO(text);
        const PortForward parsed = kvmnet::model::parse_forward(nlohmann::json::parse(text));
        const ForwardFields fields = kvmnet::model::fields_of(parsed);
        CHECK(kvmnet::model::forward_from_fields(fields, "forwards[0]") == parsed);
    }
    ForwardFields single = web();
    CHECK(single.host_port_end == 0);  // 0: one port
    const PortForward f = kvmnet::model::forward_from_fields(single, "forwards[0]");
    CHECK(f.host_port_last == 8080);
    CHECK(!f.rate);
    CHECK(!f.host_address);
}

TEST_CASE("typed forwards: errors name the entry and the field", "[forward][typed]")
{
    const auto entry = [](ForwardFields f) { return kvmnet::model::forward_from_fields(f, "forwards[3]"); };
    ForwardFields f = web();
    f.proto = "sctp";
    CHECK(refusal([&] { entry(f); }).rfind("forwards[3].proto: unknown protocol 'sctp'", 0) == 0);
    f = web();
    f.host_port = 0;
    CHECK(refusal([&] { entry(f); }).rfind("forwards[3].host_port:", 0) == 0);
    f = web();
    f.host_port_end = 8000;
    CHECK(refusal([&] { entry(f); }).rfind("forwards[3].host_port: range 8080-8000 is reversed", 0) == 0);
    f = web();
    f.host_address = "nowhere";
    CHECK(refusal([&] { entry(f); }).rfind("forwards[3].host_address:", 0) == 0);
    f = web();
    f.host_address = "2001:db8::1";
    CHECK(refusal([&] { entry(f); }).rfind("forwards[3].host_address: an IPv6 host address needs", 0) == 0);
    f = web();
    f.guest = "";
    CHECK(refusal([&] { entry(f); }).rfind("forwards[3].guest: required", 0) == 0);
    f = web();
    f.guest = "not a name";
    CHECK(refusal([&] { entry(f); }).rfind("forwards[3].guest:", 0) == 0);
    f = web();
    f.guest_port = 0;
    CHECK(refusal([&] { entry(f); }).rfind("forwards[3].guest_port:", 0) == 0);
    f = web();
    f.host_port_end = 8090;
    f.guest_port = 65530;  // 65530-65540
    CHECK(refusal([&] { entry(f); }).rfind("forwards[3].guest_port:", 0) == 0);
    f = web();
    f.description = std::string("bell\a");
    CHECK(refusal([&] { entry(f); }).rfind("forwards[3].description:", 0) == 0);
    f = web();
    f.rate = 2000000;
    CHECK(refusal([&] { entry(f); }).rfind("forwards[3].rate:", 0) == 0);

    // The whole request: the index is the entry's, nothing is returned.
    std::vector<ForwardFields> all(3, web());
    all[2].guest_port = 0;
    CHECK(refusal([&] { kvmnet::model::forwards_from_fields(all); }).rfind("forwards[2].guest_port:", 0) == 0);
    CHECK(refusal([&] { kvmnet::model::forwards_from_fields({}); }) == "forwards: no forwards given");
}

TEST_CASE("forward add --file: a JSON array or one object, checked before the bus", "[forward][typed][cli]")
{
    const auto fields = kvmnet::client::forward_file_fields(
        R"([{"proto":"tcp","host_port":8080,"guest":"192.168.122.10","guest_port":80},
            {"proto":"udp","host_port":"5000-5002","guest":"web","guest_port":"6000-6002","rate":7,"description":"d"}])");
    REQUIRE(fields.size() == 2);
    ForwardFields single = web();
    single.host_port_end = 8080;  // fields_of spells the last port out
    CHECK(fields[0] == single);
    CHECK(fields[1].proto == "udp");
    CHECK(fields[1].host_port == 5000);
    CHECK(fields[1].host_port_end == 5002);
    CHECK(fields[1].guest == "web");
    CHECK(fields[1].guest_port == 6000);
    CHECK(fields[1].rate == 7);
    CHECK(fields[1].description == "d");

    const auto one = kvmnet::client::forward_file_fields(
        R"({"proto":"tcp","host_port":8080,"guest":"192.168.122.10","guest_port":80})");
    REQUIRE(one.size() == 1);
    CHECK(one[0] == single);

    CHECK(refusal([] {
              kvmnet::client::forward_file_fields(
                  R"([{"proto":"tcp","host_port":8080,"guest":"192.168.122.10","guest_port":80},
                  {"proto":"tcp","host_port":"x","guest":"192.168.122.10","guest_port":80}])");
          }).rfind("forwards[1].host_port:", 0) == 0);
    CHECK(refusal([] {
              kvmnet::client::forward_file_fields(
                  R"([{"proto":"tcp","host_port":8080,"guest":"192.168.122.10","guest_port":80,"colour":"red"}])");
          }).rfind("forwards[0].colour:", 0) == 0);
    CHECK(refusal([] { kvmnet::client::forward_file_fields("[]"); }) == "forwards: no forwards given");
    CHECK(refusal([] { kvmnet::client::forward_file_fields("[{"); }).rfind("forwards:", 0) == 0);
}

}  // namespace unit_test_forward_typed
