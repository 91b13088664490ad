// Unit tests of the "fast_path" field of the network document: which
// networks may ask for the flowtable fast path, and that the field survives
// a JSON round trip while documents without it keep their shape.
#include "model/network.hpp"

#include "document_util.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <string>

namespace unit_test_fast_path {

using kvmnet::model::parse_network;
using kvmnet::model::to_json;

namespace {

const char* const nat_with_uplink = R"({
    "name": "fp", "mode": "nat", "bridge": "kvmbfp", "uplink": "uplink0",
    "ipv4": { "address": "192.168.140.1/24" }
})";

std::string patched(const char* patch) { return kvmnet::test::merged(nat_with_uplink, patch); }

}  // namespace

TEST_CASE("fast_path: nat and routed networks with an uplink may ask for it")
{
    CHECK_FALSE(kvmnet::test::parse_ok(nat_with_uplink).fast_path);
    CHECK(kvmnet::test::parse_ok(patched(R"({"fast_path": true})")).fast_path);
    CHECK(kvmnet::test::parse_ok(patched(R"({"fast_path": true, "mode": "routed"})")).fast_path);
    CHECK_FALSE(kvmnet::test::parse_ok(patched(R"({"fast_path": false})")).fast_path);
}

TEST_CASE("fast_path: refused where nothing is forwarded or nothing is named to cover")
{
    kvmnet::test::check_all_invalid({
        {"not a boolean", patched(R"({"fast_path": "yes"})"), "fast_path"},
        {"a number", patched(R"({"fast_path": 1})"), "fast_path"},
        {"isolated network", patched(R"({"fast_path": true, "mode": "isolated", "uplink": null})"), "fast_path"},
        {"no uplink", patched(R"({"fast_path": true, "uplink": null})"), "fast_path"},
    });
}

TEST_CASE("fast_path: written only when on, read back the same")
{
    const nlohmann::json off = to_json(parse_network(std::string(nat_with_uplink)));
    CHECK_FALSE(off.contains("fast_path"));
    const nlohmann::json on = to_json(parse_network(patched(R"({"fast_path": true})")));
    CHECK(on.at("fast_path") == true);
    CHECK(to_json(parse_network(on.dump())) == on);
}

}  // namespace unit_test_fast_path
