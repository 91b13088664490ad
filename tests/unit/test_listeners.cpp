// /proc/net socket tables and which listeners a forward shadows.
#include "model/forward.hpp"
#include "plan/listeners.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

using kvmnet::plan::Listener;
using kvmnet::plan::parse_proc_net;
using kvmnet::plan::shadowed_listeners;

namespace {

// Real lines from /proc/net/tcp and tcp6 (trimmed after the inode).
const char* const tcp =
    R"(  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1
   1: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4243 1
   2: 0100007F:1F90 0100007F:A1B2 01 00000000:00000000 00:00000000 00000000     0        0 4244 1
   3: garbage
)";
const char* const tcp6 = R"(  sl  local_address                         remote_address                        st
   0: 00000000000000000000000000000000:0050 00000000000000000000000000000000:0000 0A 0
   1: 00000000000000000000000001000000:1F91 00000000000000000000000000000000:0000 0A 0
)";
const char* const udp = R"(  sl  local_address rem_address   st
  10: 0171CBCB:1388 00000000:0000 07 0
  11: 0171CBCB:1389 0200CBCB:0035 01 0
)";

kvmnet::model::PortForward forward(const std::string& text)
{
    return kvmnet::model::parse_forward(nlohmann::json::parse(text));
}

}  // namespace

TEST_CASE("parse_proc_net reads listening sockets only", "[listeners]")
{
    const auto v4 = parse_proc_net(tcp, true, false);
    REQUIRE(v4.size() == 2);
    CHECK(v4[0].address == "127.0.0.1");
    CHECK(v4[0].port == 8080);
    CHECK(v4[1].address == "0.0.0.0");
    CHECK(v4[1].port == 22);
    const auto v6 = parse_proc_net(tcp6, true, true);
    REQUIRE(v6.size() == 2);
    CHECK(v6[0].address == "::");
    CHECK(v6[0].port == 80);
    CHECK(v6[1].address == "::1");
    CHECK(v6[1].port == 8081);
    const auto u = parse_proc_net(udp, false, false);
    REQUIRE(u.size() == 1);  // the connected socket (01) is not a listener
    CHECK(u[0].address == "203.203.113.1");
    CHECK(u[0].port == 5000);
    CHECK_FALSE(u[0].tcp);
    CHECK(parse_proc_net("", true, false).empty());
}

TEST_CASE("shadowed_listeners: protocol, port range and address", "[listeners]")
{
    std::vector<Listener> all = parse_proc_net(tcp, true, false);
    for (auto& l : parse_proc_net(tcp6, true, true))
        all.push_back(l);
    for (auto& l : parse_proc_net(udp, false, false))
        all.push_back(l);
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
