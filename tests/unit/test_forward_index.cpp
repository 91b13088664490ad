// Unit tests of model::ForwardIndex (the overlap index AddForwards keeps
// across calls), the journal's direct JSON writer for forwards, and the
// revision's forwards part (store::forward_hash), issue 17 item 2.
#include "model/forward.hpp"
#include "model/network.hpp"
#include "random_forward.hpp"
#include "store/store.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace unit_test_forward_index {

using kvmnet::model::ForwardIndex;
using kvmnet::model::ForwardKey;
using kvmnet::model::Ipv4;
using kvmnet::model::Ipv6;
using kvmnet::model::PortForward;
using kvmnet::model::Proto;
using kvmnet::testing::Lcg;
using kvmnet::testing::random_forward;

namespace {

// What the index replaces: every held forward compared with the new one.
bool linear_clash(const std::vector<PortForward>& held, const PortForward& f)
{
    for (const PortForward& h : held)
        if (kvmnet::model::forwards_overlap(h, f)) return true;
    return false;
}

}  // namespace

TEST_CASE("the forward index finds the same clashes as comparing every forward", "[forward][index]")
{
    Lcg rng{17};
    int clashes = 0, checks = 0;
    for (int round = 0; round < 200; ++round) {
        // Held forwards that do not overlap each other (as validation keeps
        // a network's), added and removed at random, and a probe after each.
        std::vector<PortForward> held;
        ForwardIndex index;
        for (int step = 0; step < 80; ++step) {
            if (!held.empty() && rng.next(4) == 0) {
                const std::size_t k = rng.next(static_cast<std::uint32_t>(held.size()));
                index.erase(held[k]);
                held.erase(held.begin() + static_cast<std::ptrdiff_t>(k));
                REQUIRE(index.size() == held.size());
                continue;
            }
            const PortForward f = random_forward(rng, 300, true);
            const bool expected = linear_clash(held, f);
            const std::optional<ForwardKey> found = index.find(f);
            CAPTURE(round, step, kvmnet::model::describe(f));
            REQUIRE(found.has_value() == expected);
            ++checks;
            if (found) {
                ++clashes;
                // It names a held forward that does overlap.
                bool named = false;
                for (const PortForward& h : held)
                    named = named || (kvmnet::model::forward_key(h) == *found && kvmnet::model::forwards_overlap(h, f));
                CHECK(named);
                continue;
            }
            held.push_back(f);
            index.insert(f);
            REQUIRE(index.size() == held.size());
        }
        // Built at once from the same forwards, it answers the same.
        const ForwardIndex rebuilt(held);
        for (int probe = 0; probe < 20; ++probe) {
            const PortForward f = random_forward(rng, 300, true);
            REQUIRE(rebuilt.find(f).has_value() == linear_clash(held, f));
        }
    }
    // Both answers were exercised.
    CHECK(clashes > checks / 10);
    CHECK(clashes < checks * 9 / 10);
}

TEST_CASE("the forward index: every address overlaps each address, IPv4 never IPv6", "[forward][index]")
{
    const auto forward = [](const char* text) { return kvmnet::model::parse_forward(nlohmann::json::parse(text)); };
    ForwardIndex index;
    index.insert(forward(R"({"proto": "tcp", "host_port": "8000-8010", "host_address": "203.0.113.5",
                             "guest": "10.0.0.5", "guest_port": "8000-8010"})"));
    CHECK(index.find(forward(R"({"proto": "both", "host_port": 8010, "guest": "10.0.0.6", "guest_port": 1})"))
              .has_value());
    CHECK_FALSE(index.find(forward(R"({"proto": "udp", "host_port": 8010, "guest": "10.0.0.6", "guest_port": 1})"))
                    .has_value());
    CHECK_FALSE(index.find(forward(R"({"proto": "tcp", "host_port": 8011, "guest": "10.0.0.6", "guest_port": 1})"))
                    .has_value());
    CHECK_FALSE(index
                    .find(forward(R"({"proto": "tcp", "host_port": 8005, "host_address": "203.0.113.6",
                                      "guest": "10.0.0.6", "guest_port": 1})"))
                    .has_value());
    CHECK_FALSE(
        index.find(forward(R"({"proto": "tcp", "host_port": 8005, "guest": "fd00::5", "guest_port": 1})")).has_value());
    index.erase(forward(R"({"proto": "tcp", "host_port": 8000, "host_address": "203.0.113.5", "guest": "10.0.0.9",
                          "guest_port": 1})"));
    CHECK(index.size() == 0);
    CHECK_FALSE(index.find(forward(R"({"proto": "both", "host_port": 8010, "guest": "10.0.0.6", "guest_port": 1})"))
                    .has_value());
}

TEST_CASE("the journal's forward text is to_json's", "[forward][index]")
{
    Lcg rng{5};
    for (int i = 0; i < 300; ++i) {
        PortForward f = random_forward(rng, 60000, true);
        if (rng.next(3) == 0) f.description = "web \"front\" \\ ü";
        if (rng.next(3) == 0) f.rate = 1 + rng.next(1000);
        if (!f.ipv6 && rng.next(4) == 0) f.guest_name = "web-" + std::to_string(i);
        std::string text;
        kvmnet::model::append_json(text, f);
        CAPTURE(text);
        CHECK(nlohmann::json::parse(text) == kvmnet::model::to_json(f));
    }
}

TEST_CASE("the revision's forwards part: order does not matter, every field does", "[forward][index]")
{
    Lcg rng{9};
    std::vector<PortForward> forwards;
    for (int i = 0; i < 50; ++i)
        forwards.push_back(random_forward(rng, 60000, true));
    std::vector<PortForward> reversed(forwards.rbegin(), forwards.rend());
    CHECK(kvmnet::store::forwards_hash(forwards) == kvmnet::store::forwards_hash(reversed));

    PortForward base = forwards.front();
    base.ipv6 = false;
    base.guest = *Ipv4::parse("192.168.122.10");
    std::vector<PortForward> changed(8, base);
    changed[0].host_port_last = static_cast<std::uint16_t>(base.host_port_last + 1);
    changed[1].guest_port_first = static_cast<std::uint16_t>(base.guest_port_first + 1);
    changed[2].description = "x";
    changed[3].rate = 5;
    changed[4].proto = base.proto == Proto::tcp ? Proto::udp : Proto::tcp;
    changed[5].guest_name = "web";
    changed[6].host_port_first = static_cast<std::uint16_t>(base.host_port_first - 1);
    changed[7].ipv6 = !base.ipv6;
    for (const PortForward& c : changed)
        CHECK(kvmnet::store::forward_hash(c) != kvmnet::store::forward_hash(base));
}

}  // namespace unit_test_forward_index
