// Unit tests of model/json_text: the strict JSON text parser every request
// parser shares (duplicate keys, nesting depth, syntax errors naming the
// field, the same result as nlohmann's own parser otherwise).
#include "model/forward.hpp"
#include "model/json_text.hpp"
#include "model/network.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <string>

namespace unit_test_json_text {

using kvmnet::ErrorKind;
using kvmnet::model::parse_json_text;
using json = nlohmann::json;

namespace {

// The message of the InvalidArgument `f` throws; fails the test for any
// other outcome.
template <class F>
std::string invalid_message(F f)
{
    try {
        f();
    } catch (const kvmnet::Error& e) {
        CHECK(e.kind() == ErrorKind::InvalidArgument);
        return e.what();
    }
    FAIL("no error");
    return "";
}

std::string nested(std::size_t depth) { return std::string(depth, '[') + std::string(depth, ']'); }

}  // namespace

TEST_CASE("Valid text parses to what nlohmann's parser gives", "[json_text]")
{
    for (const char* text : {
             R"({"a": 1, "b": [1, 2.5, "x", null, true, {"c": {}}], "d": {"e": []}})",
             R"([{"a": 1}, {"a": 1}])",
             R"("just a string")",
             "  42 ",
             R"({"a": {"x": 1}, "b": {"x": 2}})",
             R"({"\u00e9": "\ud83d\ude00", "": 0})",
         }) {
        CAPTURE(text);
        CHECK(parse_json_text(text, "document", "") == json::parse(text));
    }
}

TEST_CASE("Duplicate keys are refused naming the key's path", "[json_text]")
{
    CHECK(invalid_message([] { parse_json_text(R"({"mtu": 1500, "mtu": 9000})", "document", ""); }) ==
          "mtu: duplicate key");
    CHECK(invalid_message([] {
              parse_json_text(R"({"ipv4": {"dhcp": {"ranges": [], "ranges": []}}})", "document", "");
          }) == "ipv4.dhcp.ranges: duplicate key");
    CHECK(invalid_message([] {
              parse_json_text(R"({"forwards": [{}, {"proto": "tcp", "proto": "udp"}]})", "document", "");
          }) == "forwards[1].proto: duplicate key");
    CHECK(invalid_message([] { parse_json_text(R"({"mac": "x", "mac": "y"})", "port", "port"); }) ==
          "port.mac: duplicate key");
    CHECK(invalid_message([] { parse_json_text(R"([{"guest": "a", "guest": "b"}])", "forwards", "forward"); }) ==
          "forwards[0].guest: duplicate key");
    CHECK(invalid_message([] { parse_json_text(R"({"guest": "a", "guest": "b"})", "forwards", "forward"); }) ==
          "forward.guest: duplicate key");
    // The same key in different objects is fine.
    CHECK_NOTHROW(parse_json_text(R"({"a": {"k": 1}, "b": {"k": 1}, "k": 1})", "document", ""));
}

TEST_CASE("Every request parser refuses duplicate keys", "[json_text]")
{
    using namespace kvmnet::model;
    CHECK_THAT(invalid_message([] {
                   parse_network(R"({"name": "a", "mode": "nat", "name": "b",
                                     "ipv4": {"address": "10.0.0.1/24"}})");
               }),
               Catch::Matchers::StartsWith("name: duplicate key"));
    CHECK_THAT(invalid_message([] { parse_port(R"({"name": "tap0", "name": "tap1"})"); }),
               Catch::Matchers::StartsWith("port.name: duplicate key"));
    CHECK_THAT(invalid_message([] { parse_dhcp_host(R"({"mac": "52:54:00:00:00:01", "ip": "1.2.3.4", "ip": "x"})"); }),
               Catch::Matchers::StartsWith("host.ip: duplicate key"));
    CHECK_THAT(invalid_message([] {
                   parse_forwards(std::string(R"({"proto": "tcp", "host_port": 1, "host_port": 2, "guest": "10.0.0.2",
                                      "guest_port": 1})"));
               }),
               Catch::Matchers::StartsWith("forward.host_port: duplicate key"));
}

TEST_CASE("Nesting is limited", "[json_text]")
{
    const std::size_t max = kvmnet::model::max_json_depth;
    CHECK_NOTHROW(parse_json_text(nested(max), "document", ""));
    std::string path = "document";
    for (std::size_t i = 0; i < max; ++i)
        path += "[0]";
    CHECK(invalid_message([&] { parse_json_text(nested(max + 1), "document", ""); }) ==
          path + ": nested deeper than " + std::to_string(max) + " levels");
    CHECK(invalid_message([] {
              std::string text = R"({"ipv4": )";
              for (int i = 0; i < 40; ++i)
                  text += R"({"x": )";
              parse_json_text(text + "1" + std::string(41, '}'), "document", "");
          }).find(": nested deeper than 32 levels") != std::string::npos);
    // A million brackets are refused quickly, not parsed.
    CHECK_THAT(invalid_message([] { parse_json_text(std::string(1000000, '['), "document", ""); }),
               Catch::Matchers::EndsWith("nested deeper than 32 levels"));
}

TEST_CASE("Syntax errors name the field and keep nlohmann's position", "[json_text]")
{
    CHECK_THAT(invalid_message([] { parse_json_text(R"({"name": )", "document", ""); }),
               Catch::Matchers::StartsWith("document: not valid JSON: [json.exception.parse_error.101]"));
    CHECK_THAT(invalid_message([] { parse_json_text("", "port", "port"); }),
               Catch::Matchers::StartsWith("port: not valid JSON: "));
    CHECK_THAT(invalid_message([] { parse_json_text("{} x", "host", "host"); }),
               Catch::Matchers::StartsWith("host: not valid JSON: "));
    CHECK_THAT(invalid_message([] { parse_json_text("\"\xff\"", "forwards", "forward"); }),
               Catch::Matchers::StartsWith("forwards: not valid JSON: "));
}

TEST_CASE("Error messages escape control characters and bytes that are not UTF-8, and are bounded",
          "[json_text][error]")
{
    using kvmnet::Error;
    CHECK(std::string(Error(ErrorKind::InvalidArgument, std::string("name: 'a\0b\nc\x7f'", 14)).what()) ==
          "name: 'a\\x00b\\x0ac\\x7f'");
    CHECK(std::string(Error(ErrorKind::InvalidArgument, "n\xc3\xa9t \xe2\x9c\x93").what()) ==
          "n\xc3\xa9t \xe2\x9c\x93");
    CHECK(std::string(Error(ErrorKind::InvalidArgument, "bad \xc3 \xff \xed\xa0\x80 \xc2\x85").what()) ==
          "bad \\xc3 \\xff \\xed\\xa0\\x80 \\xc2\\x85");
    const std::string long_message(10000, 'x');
    const std::string cut = Error(ErrorKind::Kernel, long_message).what();
    CHECK(cut.size() == kvmnet::max_error_message);
    CHECK(cut.substr(cut.size() - 3) == "...");
    // A name with a NUL is refused with the NUL shown, not cut off there.
    CHECK_THAT(invalid_message([] {
                   kvmnet::model::parse_network(
                       R"({"name": "a\u0000b", "mode": "nat", "ipv4": {"address": "10.0.0.1/24"}})");
               }),
               Catch::Matchers::StartsWith("name: 'a\\x00b' is not a valid network name"));
}

}  // namespace unit_test_json_text
