// kvmnet-applet's text (applet/text, applet/bus Dict): the documents its
// forms send, and the lines it shows for typed reads and Diagnose.
#include "bus.hpp"
#include "text.hpp"

#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

namespace unit_test_applet_text {

using namespace kvmnet::applet;
using nlohmann::json;

namespace {

// An a{sv} written in GVariant text format.
Dict dict(const char* text)
{
    GVariant* v = g_variant_ref_sink(g_variant_new_parsed(text));
    Dict d(v);
    g_variant_unref(v);
    return d;
}

}  // namespace

TEST_CASE("applet: a forward typed into the form becomes the AddForwards object")
{
    CHECK(json::parse(forward_document("tcp", "8080", "192.168.122.10", "80", "")) ==
          json{{"proto", "tcp"}, {"host_port", 8080}, {"guest", "192.168.122.10"}, {"guest_port", 80}});
    // Ranges go as strings, as the document takes them; a description only when given.
    CHECK(json::parse(forward_document("udp", "9000-9003", "web", "7000-7003", "dns")) ==
          json{{"proto", "udp"},
               {"host_port", "9000-9003"},
               {"guest", "web"},
               {"guest_port", "7000-7003"},
               {"description", "dns"}});
    // What is not a port goes as typed, so the daemon's error names it.
    CHECK(json::parse(forward_document("tcp", "eighty", "x", "", ""))["host_port"] == "eighty");
    CHECK(json::parse(forward_document("tcp", "99999", "x", "80", ""))["host_port"] == 99999);
    CHECK(json::parse(forward_document("tcp", "12345678901234", "x", "80", ""))["host_port"] == "12345678901234");
}

TEST_CASE("applet: a static host typed into the form becomes the AddHost object")
{
    CHECK(json::parse(host_document("52:54:00:00:00:01", "10.0.0.5", "")) ==
          json{{"mac", "52:54:00:00:00:01"}, {"ip", "10.0.0.5"}});
    CHECK(json::parse(host_document("52:54:00:00:00:01", "10.0.0.5", "db"))["name"] == "db");
}

TEST_CASE("applet: Dict reads typed values and merges PropertiesChanged")
{
    Dict props = dict("{'Name': <'desk'>, 'State': <'degraded'>, 'StateReason': <'bridge kvmbr0 is down'>, "
                      "'LeaseCount': <uint32 1>, 'Autostart': <false>, 'DhcpRanges': <['10.0.0.100-10.0.0.199']>, "
                      "'Mode': <'nat'>, 'Bridge': <'kvmbr0'>, 'IPv4Address': <'10.0.0.1/24'>, 'IPv6Address': <''>}");
    CHECK(props.str("Name") == "desk");
    CHECK(props.num("LeaseCount") == 1);
    CHECK(props.str("LeaseCount").empty());  // a number is not a string
    CHECK(props.strings("DhcpRanges") == std::vector<std::string>{"10.0.0.100-10.0.0.199"});
    CHECK(state_text(props) == "degraded: bridge kvmbr0 is down");
    CHECK(summary_text(props) == "nat · bridge kvmbr0 · 10.0.0.1/24 · 1 guest");

    props.merge(dict("{'State': <'active'>, 'StateReason': <''>, 'LeaseCount': <uint32 2>}"));
    CHECK(state_text(props) == "active");
    CHECK(summary_text(props) == "nat · bridge kvmbr0 · 10.0.0.1/24 · 2 guests");
    CHECK(props.str("Name") == "desk");

    const Dict copy = props;  // values are shared references, not moved
    CHECK(copy.num("LeaseCount") == 2);
    CHECK(props.str("nosuch").empty());
    CHECK(props.num("nosuch") == 0);
}

TEST_CASE("applet: lease, forward and port lines")
{
    const Dict lease = dict("{'mac': <'52:54:00:16:00:01'>, 'address': <'10.0.0.145'>, 'hostname': <''>, "
                            "'client_id': <''>, 'expires': <int64 0>, 'family': <'ipv4'>, 'type': <'static'>}");
    CHECK(lease_text(lease, 1000) == "52:54:00:16:00:01  10.0.0.145  -  never expires  static");

    const Dict forward =
        dict("{'proto': <'udp'>, 'host_address': <''>, 'host_port': <uint16 9000>, 'host_port_end': <uint16 9003>, "
             "'guest': <'web'>, 'guest_address': <'10.0.0.5'>, 'guest_port': <uint16 7000>, "
             "'guest_port_end': <uint16 7003>, 'description': <'dns'>, 'rate': <uint32 5>, "
             "'connections': <uint64 12>, 'first_packet_bytes': <uint64 720>, 'dropped': <uint64 3>, "
             "'problem': <''>}");
    CHECK(forward_key_text(forward) == "udp *:9000-9003");
    CHECK(forward_text(forward, true) ==
          "udp *:9000-9003 → web (10.0.0.5):7000-7003  rate 5/s  connections 12  dropped 3  \"dns\"");
    CHECK(forward_text(forward, false) ==
          "udp *:9000-9003 → web (10.0.0.5):7000-7003  rate 5/s  (not running)  \"dns\"");

    const Dict port = dict("{'name': <'vnet0'>, 'tap': <true>, 'mac': <''>, 'host_mac': <'fe:54:00:00:00:01'>, "
                           "'isolated': <false>, 'state': <'missing'>, 'problem': <'no interface vnet0'>, "
                           "'rx_bytes': <uint64 0>, 'tx_bytes': <uint64 0>}");
    CHECK(port_text(port) == "vnet0  missing  fe:54:00:00:00:01  tap  rx 0 B  tx 0 B  problem: no interface vnet0");
}

TEST_CASE("applet: the diagnosis names failing checks first")
{
    const auto lines = diagnose_lines(R"({"network": "desk", "verdict": "fail", "checks": [
        {"check": "bridge", "status": "pass", "detail": "kvmbr0 exists and is up"},
        {"check": "foreign-firewall", "status": "fail",
         "detail": "another firewall drops forwarded traffic: table ip filter, chain FORWARD"},
        {"check": "ip-forward", "status": "warn", "detail": ""}]})");
    CHECK(lines ==
          std::vector<std::string>{
              "Verdict: fail",
              "FAIL foreign-firewall: another firewall drops forwarded traffic: table ip filter, chain FORWARD",
              "WARN ip-forward", "PASS bridge: kvmbr0 exists and is up"});
    CHECK(diagnose_lines("not json") == std::vector<std::string>{"diagnose: the daemon's answer is not JSON"});
}

TEST_CASE("applet: static hosts from the exported document")
{
    const auto hosts = static_hosts(R"({"name": "desk", "mode": "nat",
        "ipv4": {"address": "10.0.0.1/24", "dhcp": {"ranges": [], "hosts": [{"mac": "52:54:00:00:00:09", "ip": "10.0.0.9", "name": "db"}]}},
        "ipv6": {"address": "fd00::1/64", "dhcp": {"hosts": [{"duid": "00:01:02", "ip": "fd00::9"}]}}})");
    REQUIRE(hosts.size() == 2);
    CHECK(hosts[0].key == "52:54:00:00:00:09");
    CHECK(hosts[0].text == "52:54:00:00:00:09  10.0.0.9  db");
    CHECK(hosts[1].key == "00:01:02");
    CHECK(hosts[1].text == "00:01:02  fd00::9");
    CHECK(static_hosts(R"({"ipv4": {"dhcp": {"hosts": [{"mac": 5}]}}})").empty());
    CHECK(static_hosts("[").empty());
}

}  // namespace unit_test_applet_text
