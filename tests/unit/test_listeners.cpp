// Which listeners a forward shadows.
#include "model/forward.hpp"
#include "plan/listeners.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

namespace unit_test_listeners {

using kvmnet::plan::Listener;
using kvmnet::plan::shadowed_listeners;

namespace {

// What sock_diag reports for: 127.0.0.1:8080 and 0.0.0.0:22 (tcp), [::]:80
// and [::1]:8081 (tcp), 203.203.113.1:5000 (udp).
Listener listener(bool tcp, const std::string& address, std::uint16_t port)
{
    return {tcp, kvmnet::model::IpAddress::parse(address).value(), port};
}

std::vector<Listener> listeners()
{
    return {listener(true, "127.0.0.1", 8080), listener(true, "0.0.0.0", 22), listener(true, "::", 80),
            listener(true, "::1", 8081), listener(false, "203.203.113.1", 5000)};
}

kvmnet::model::PortForward forward(const std::string& text)
{
    return kvmnet::model::parse_forward(nlohmann::json::parse(text));
}

}  // namespace

TEST_CASE("shadowed_listeners: protocol, port range and address", "[listeners]")
{
    const std::vector<Listener> all = listeners();
    const auto base = R"("guest": "192.168.122.10", "guest_port": )";
    CHECK(shadowed_listeners(forward(std::string(R"({"proto": "tcp", "host_port": 8080, )") + base + "80}"), all)
              .size() == 1);  // 127.0.0.1:8080: forwards on every address include loopback
    CHECK(shadowed_listeners(
              forward(std::string(R"({"proto": "tcp", "host_port": 8080, "host_address": "203.0.113.9", )") + base +
                      "80}"),
              all)
              .empty());  // only on 127.0.0.1
    CHECK(
        shadowed_listeners(
            forward(std::string(R"({"proto": "tcp", "host_port": 22, "host_address": "203.0.113.9", )") + base + "22}"),
            all)
            .size() == 1);  // 0.0.0.0:22
    CHECK(shadowed_listeners(
              forward(std::string(R"({"proto": "udp", "host_port": "4999-5001", )") + base + R"("4999-5001"})"), all)
              .size() == 1);
    CHECK(shadowed_listeners(forward(std::string(R"({"proto": "udp", "host_port": 22, )") + base + "22}"), all)
              .empty());  // tcp only
    CHECK(
        shadowed_listeners(forward(std::string(R"({"proto": "both", "host_port": 80, )") + base + "80}"), all).size() ==
        1);  // [::]:80
}

TEST_CASE("shadowed_listeners: an IPv4-mapped IPv6 socket receives its IPv4 address", "[listeners]")
{
    const auto f = forward(
        R"({"proto": "tcp", "host_port": 8080, "host_address": "203.0.113.9", "guest": "192.168.122.10", "guest_port": 80})");
    CHECK(shadowed_listeners(f, {listener(true, "::ffff:203.0.113.9", 8080)}).size() == 1);
    CHECK(shadowed_listeners(f, {listener(true, "::ffff:203.0.113.10", 8080)}).empty());
    CHECK(shadowed_listeners(f, {listener(true, "fd00::1", 8080)}).empty());
}

}  // namespace unit_test_listeners
