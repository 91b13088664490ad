// Unit tests of static DHCPv6 hosts (ipv6.dhcp.hosts, by MAC or by DUID):
// parsing and validation with the field at fault named, the round trip,
// the lines dnsmasq gets (dhcp-hostsfile, id:DUID,[ADDR] / MAC,[ADDR]), and
// AddHost/RemoveHost on a running network over the manager's fake kernel
// and a stand-in dnsmasq: dnsmasq.hosts rewritten, SIGHUP, no restart.
#include "core/manager.hpp"
#include "manager_harness.hpp"
#include "model/network.hpp"
#include "plan/leases.hpp"
#include "plan/planner.hpp"
#include "store/files.hpp"

#include "document_util.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <string>
#include <variant>
#include <vector>

namespace unit_test_dhcp6_hosts {

using Catch::Matchers::Contains;
using kvmnet::Error;
using kvmnet::ErrorKind;
using kvmnet::core::State;
using json = nlohmann::json;
namespace model = kvmnet::model;
namespace plan = kvmnet::plan;
using namespace kvmnet::test;

namespace {

// IPv4 DHCP off: the DHCPv6-only shape, where dnsmasq.conf used to have no hosts file.
const char* const v6_only = R"({"name": "six", "mode": "nat", "bridge": "kvmbr6", "ipv4": {"address": "10.60.0.1/24"},
    "ipv6": {"address": "fd00:60::1/64", "dhcp": {"ranges": ["fd00:60::100-fd00:60::1ff"]}}})";

std::string with_hosts(const std::string& hosts, const char* base = v6_only)
{
    return merged(base, R"({"ipv6": {"dhcp": {"hosts": )" + hosts + "}}}");
}

}  // namespace

TEST_CASE("ipv6.dhcp.hosts parse by MAC or DUID, lower case, and round-trip", "[network][ipv6][dhcp6]")
{
    const auto n = parse_ok(with_hosts(R"([{"mac": "52:54:00:AA:00:01", "ip": "fd00:60::10", "name": "web"},
        {"duid": "00:03:00:01:52:54:00:AA:00:02", "ip": "FD00:60:0:0::20"}])"));
    REQUIRE(n.ipv6->hosts.size() == 2);
    CHECK(n.ipv6->hosts[0].mac == "52:54:00:aa:00:01");
    CHECK(n.ipv6->hosts[0].duid.empty());
    CHECK(n.ipv6->hosts[0].name == "web");
    CHECK(n.ipv6->hosts[1].duid == "00:03:00:01:52:54:00:aa:00:02");
    CHECK(n.ipv6->hosts[1].mac.empty());
    CHECK(n.ipv6->hosts[1].ip.str() == "fd00:60::20");
    const json j = model::to_json(n);
    CHECK(j["ipv6"]["dhcp"]["hosts"] ==
          json::parse(R"([{"mac": "52:54:00:aa:00:01", "ip": "fd00:60::10", "name": "web"},
                          {"duid": "00:03:00:01:52:54:00:aa:00:02", "ip": "fd00:60::20"}])"));
    CHECK(model::parse_network(j.dump()) == n);
    // No hosts: the key stays out, as before.
    CHECK_FALSE(model::to_json(parse_ok(v6_only))["ipv6"]["dhcp"].contains("hosts"));
    CHECK(parse_ok(with_hosts("[]")).ipv6->hosts.empty());
}

TEST_CASE("Bad ipv6.dhcp.hosts are refused naming the field", "[network][ipv6][dhcp6][validation]")
{
    const std::string ok = R"({"mac": "52:54:00:00:00:01", "ip": "fd00:60::10"})";
    const auto two = [&](const std::string& second) { return with_hosts("[" + ok + ", " + second + "]"); };
    check_all_invalid({
        {"not an array", with_hosts(R"({"mac": "52:54:00:00:00:01"})"), "ipv6.dhcp.hosts"},
        {"not an object", with_hosts(R"(["52:54:00:00:00:01"])"), "ipv6.dhcp.hosts[0]"},
        {"neither mac nor duid", with_hosts(R"([{"ip": "fd00:60::10"}])"), "ipv6.dhcp.hosts[0].mac"},
        {"both mac and duid",
         with_hosts(R"([{"mac": "52:54:00:00:00:01", "duid": "00:03:00:01:52:54:00:00:00:01", "ip": "fd00:60::10"}])"),
         "ipv6.dhcp.hosts[0].duid"},
        {"bad mac", with_hosts(R"([{"mac": "52:54:00:00:01", "ip": "fd00:60::10"}])"), "ipv6.dhcp.hosts[0].mac"},
        {"multicast mac", with_hosts(R"([{"mac": "01:00:5e:00:00:01", "ip": "fd00:60::10"}])"),
         "ipv6.dhcp.hosts[0].mac"},
        {"duid too short", with_hosts(R"([{"duid": "00:01", "ip": "fd00:60::10"}])"), "ipv6.dhcp.hosts[0].duid"},
        {"duid not hex", with_hosts(R"([{"duid": "00:03:00:01:zz:54", "ip": "fd00:60::10"}])"),
         "ipv6.dhcp.hosts[0].duid"},
        {"duid without colons", with_hosts(R"([{"duid": "000300015254", "ip": "fd00:60::10"}])"),
         "ipv6.dhcp.hosts[0].duid"},
        {"duid not a string", with_hosts(R"([{"duid": 3, "ip": "fd00:60::10"}])"), "ipv6.dhcp.hosts[0].duid"},
        {"no ip", with_hosts(R"([{"mac": "52:54:00:00:00:01"}])"), "ipv6.dhcp.hosts[0].ip"},
        {"IPv4 ip", with_hosts(R"([{"mac": "52:54:00:00:00:01", "ip": "10.60.0.10"}])"), "ipv6.dhcp.hosts[0].ip"},
        {"ip outside the prefix", with_hosts(R"([{"mac": "52:54:00:00:00:01", "ip": "fd00:61::10"}])"),
         "ipv6.dhcp.hosts[0].ip"},
        {"ip is the gateway", with_hosts(R"([{"mac": "52:54:00:00:00:01", "ip": "fd00:60::1"}])"),
         "ipv6.dhcp.hosts[0].ip"},
        {"ip is the subnet-router anycast address", with_hosts(R"([{"mac": "52:54:00:00:00:01", "ip": "fd00:60::"}])"),
         "ipv6.dhcp.hosts[0].ip"},
        {"bad name", with_hosts(R"([{"mac": "52:54:00:00:00:01", "ip": "fd00:60::10", "name": "a b"}])"),
         "ipv6.dhcp.hosts[0].name"},
        {"unknown field", with_hosts(R"([{"mac": "52:54:00:00:00:01", "ip": "fd00:60::10", "color": "red"}])"),
         "ipv6.dhcp.hosts[0].color"},
        {"duplicate mac", two(R"({"mac": "52:54:00:00:00:01", "ip": "fd00:60::11"})"), "ipv6.dhcp.hosts[1].mac"},
        {"duplicate duid", with_hosts(R"([{"duid": "00:03:00:01:52:54:00:00:00:09", "ip": "fd00:60::10"},
                        {"duid": "00:03:00:01:52:54:00:00:00:09", "ip": "fd00:60::11"}])"),
         "ipv6.dhcp.hosts[1].duid"},
        {"duplicate ip", two(R"({"duid": "00:03:00:01:52:54:00:00:00:02", "ip": "fd00:60:0::10"})"),
         "ipv6.dhcp.hosts[1].ip"},
        {"duplicate name", with_hosts(R"([{"mac": "52:54:00:00:00:01", "ip": "fd00:60::10", "name": "web"},
                        {"mac": "52:54:00:00:00:02", "ip": "fd00:60::11", "name": "WEB"}])"),
         "ipv6.dhcp.hosts[1].name"},
    });
}

TEST_CASE("A guest may have an IPv4 and an IPv6 static host with one MAC and name", "[network][ipv6][dhcp6]")
{
    const auto n = parse_ok(merged(with_hosts(R"([{"mac": "52:54:00:00:00:01", "ip": "fd00:60::10", "name": "web"}])"),
                                   R"({"ipv4": {"dhcp": {"ranges": ["10.60.0.100-10.60.0.200"],
                                       "hosts": [{"mac": "52:54:00:00:00:01", "ip": "10.60.0.10", "name": "web"}]}}})"));
    const auto files = plan::plan_dnsmasq(n, "/r", "");
    CHECK(files.hosts == "52:54:00:00:00:01,10.60.0.10,web\n52:54:00:00:00:01,[fd00:60::10],web\n");
    CHECK(files.names == "10.60.0.10 web\nfd00:60::10 web\n");
}

TEST_CASE("dnsmasq gets static DHCPv6 hosts in its hosts file, by id:DUID or MAC", "[planner][dnsmasq][dhcp6]")
{
    const auto bare = plan::plan_dnsmasq(parse_ok(v6_only), "/r", "");
    const auto n = parse_ok(with_hosts(R"([{"mac": "52:54:00:aa:00:01", "ip": "fd00:60::10", "name": "web"},
        {"duid": "00:01:00:01:2c:5f:11:22:52:54:00:aa:00:02", "ip": "fd00:60::20"}])"));
    const auto files = plan::plan_dnsmasq(n, "/r", "");
    CAPTURE(files.config);
    CHECK(files.hosts ==
          "52:54:00:aa:00:01,[fd00:60::10],web\nid:00:01:00:01:2c:5f:11:22:52:54:00:aa:00:02,[fd00:60::20]\n");
    CHECK(files.names == "fd00:60::10 web\n");
    // A DHCPv6-only network reads both files, with or without hosts, so
    // AddHost never needs a restart.
    CHECK(lines_starting(files.config, "dhcp-hostsfile=") ==
          std::vector<std::string>{"dhcp-hostsfile=/r/dnsmasq.hosts"});
    CHECK(lines_starting(files.config, "addn-hosts=") == std::vector<std::string>{"addn-hosts=/r/dnsmasq.names"});
    CHECK(files.config == bare.config);
    // SLAAC only: no DHCPv6, no hosts file.
    const auto slaac = plan::plan_dnsmasq(parse_ok(merged(v6_only, R"({"ipv6": {"dhcp": null}})")), "/r", "");
    CHECK(lines_starting(slaac.config, "dhcp-hostsfile=").empty());
}

TEST_CASE("AddHost takes an IPv6 host when it has a duid or an IPv6 ip", "[network][dhcp6]")
{
    CHECK(std::holds_alternative<model::DhcpHost>(
        model::parse_any_dhcp_host(R"({"mac": "52:54:00:00:00:01", "ip": "10.0.0.5"})")));
    CHECK(std::holds_alternative<model::Dhcp6Host>(
        model::parse_any_dhcp_host(R"({"mac": "52:54:00:00:00:01", "ip": "fd00::5"})")));
    CHECK(std::holds_alternative<model::Dhcp6Host>(
        model::parse_any_dhcp_host(R"({"duid": "00:03:00:01:52:54:00:00:00:01", "ip": "fd00::5"})")));
    // A DUID with an IPv4 address is an IPv6 host with a bad address.
    const auto f = failure_of(
        [] { model::parse_any_dhcp_host(R"({"duid": "00:03:00:01:52:54:00:00:00:01", "ip": "10.0.0.5"})"); });
    REQUIRE(f);
    CHECK_THAT(f->message, Contains("host.ip: '10.0.0.5' is not an IPv6 address"));
    CHECK(model::valid_duid("00:01:02"));
    CHECK_FALSE(model::valid_duid("00:01"));
    CHECK_FALSE(model::valid_duid(""));
    CHECK_FALSE(model::valid_duid("00:01:02:"));
    std::string longest = "00";
    for (int i = 1; i < 130; ++i)
        longest += ":00";
    CHECK(model::valid_duid(longest));
    CHECK_FALSE(model::valid_duid(longest + ":00"));
}

TEST_CASE("Static DHCPv6 hosts are added and removed on a running network without restarting dnsmasq",
          "[manager][dhcp6]")
{
    Harness h;
    h.dnsmasq = write_fake_dnsmasq(h.state_dir.path);
    h.restart_manager();
    h.m().create(v6_only);
    h.m().start("six");
    REQUIRE(h.m().state("six") == State::active);
    const std::string run = h.runtime_dir.path + "/six";
    const std::string pid = read_text(run + "/dnsmasq.pid");
    const std::string config = read_text(run + "/dnsmasq.conf");
    const auto hups = [&] {
        h.run_loop(100'000);  // the fake handles SIGHUP between two sleeps
        return read_text(run + "/hups");
    };

    h.m().add_host("six", R"({"mac": "52:54:00:00:00:02", "ip": "fd00:60::50", "name": "web2"})");
    h.run_loop(100'000);  // one SIGHUP handled before the next (signals do not queue)
    h.m().add_host("six", R"({"duid": "00:03:00:01:52:54:00:00:00:03", "ip": "fd00:60::51"})");
    h.run_loop(100'000);  // one SIGHUP handled before the next (signals do not queue)
    CHECK(read_text(run + "/dnsmasq.hosts") ==
          "52:54:00:00:00:02,[fd00:60::50],web2\nid:00:03:00:01:52:54:00:00:00:03,[fd00:60::51]\n");
    CHECK(read_text(run + "/dnsmasq.names") == "fd00:60::50 web2\n");
    CHECK(hups() == "hup\nhup\n");
    CHECK(read_text(run + "/dnsmasq.pid") == pid);
    CHECK(read_text(run + "/dnsmasq.conf") == config);
    CHECK(h.m().spec("six").ipv6->hosts.size() == 2);
    CHECK_THAT(read_text(h.state_dir.path + "/networks/six.json"), Contains("fd00:60::51"));

    const auto refused = [&](const std::string& doc, ErrorKind kind, const std::string& text) {
        const auto before = h.m().spec("six");
        const auto e = error_of([&] { h.m().add_host("six", doc); });
        REQUIRE(e);
        CHECK(e->kind() == kind);
        CHECK_THAT(e->what(), Contains(text));
        CHECK(h.m().spec("six") == before);
    };
    refused(R"({"mac": "52:54:00:00:00:02", "ip": "fd00:60::60"})", ErrorKind::Conflict, "host.mac:");
    refused(R"({"duid": "00:03:00:01:52:54:00:00:00:03", "ip": "fd00:60::60"})", ErrorKind::Conflict, "host.duid:");
    refused(R"({"mac": "52:54:00:00:00:04", "ip": "fd00:60::51"})", ErrorKind::Conflict, "host.ip:");
    refused(R"({"mac": "52:54:00:00:00:04", "ip": "fd00:60::60", "name": "WEB2"})", ErrorKind::Conflict, "host.name:");
    refused(R"({"mac": "52:54:00:00:00:04", "ip": "fd00:61::60"})", ErrorKind::InvalidArgument, "host.ip:");
    refused(R"({"duid": "00:01", "ip": "fd00:60::60"})", ErrorKind::InvalidArgument, "host.duid:");
    // IPv4 hosts need ipv4.dhcp, which this network has not.
    refused(R"({"mac": "52:54:00:00:00:04", "ip": "10.60.0.60"})", ErrorKind::InvalidArgument, "ipv4.dhcp:");
    // An address dnsmasq has leased to another client.
    kvmnet::store::write_atomic(run + "/dnsmasq.leases",
                                "duid 00:01:00:01:2c:5f:11:22:52:54:00:00:00:01\n"
                                "1700000000 1234 fd00:60::120 * 00:03:00:01:52:54:00:00:00:09\n");
    refused(R"({"duid": "00:03:00:01:52:54:00:00:00:05", "ip": "fd00:60::120"})", ErrorKind::Conflict,
            "leased to 00:03:00:01:52:54:00:00:00:09");

    // RemoveHost by DUID, then by MAC.
    h.m().remove_host("six", "00:03:00:01:52:54:00:00:00:03");
    h.run_loop(100'000);  // one SIGHUP handled before the next (signals do not queue)
    CHECK(read_text(run + "/dnsmasq.hosts") == "52:54:00:00:00:02,[fd00:60::50],web2\n");
    h.m().remove_host("six", "52:54:00:00:00:02");
    h.run_loop(100'000);  // one SIGHUP handled before the next (signals do not queue)
    CHECK(read_text(run + "/dnsmasq.hosts").empty());
    CHECK(hups() == "hup\nhup\nhup\nhup\n");
    CHECK(read_text(run + "/dnsmasq.pid") == pid);
    const auto gone = error_of([&] { h.m().remove_host("six", "52:54:00:00:00:02"); });
    REQUIRE(gone);
    CHECK(gone->kind() == ErrorKind::NotFound);

    // Update with only the IPv6 hosts changed takes the same path.
    json doc = model::to_json(h.m().spec("six"));
    doc["ipv6"]["dhcp"]["hosts"] = json::parse(R"([{"mac": "52:54:00:00:00:07", "ip": "fd00:60::70"}])");
    h.m().update("six", doc.dump());
    CHECK(read_text(run + "/dnsmasq.hosts") == "52:54:00:00:00:07,[fd00:60::70]\n");
    CHECK(hups() == "hup\nhup\nhup\nhup\nhup\n");
    CHECK(read_text(run + "/dnsmasq.pid") == pid);
}

TEST_CASE("A DHCPv6 lease of a static DHCPv6 host is static", "[leases][dhcp6]")
{
    const auto n = parse_ok(with_hosts(R"([{"duid": "00:01:00:01:2c:5f:11:22:52:54:00:00:00:01", "ip": "fd00:60::10"},
                                           {"mac": "52:54:00:00:00:02", "ip": "fd00:60::20"}])"));
    const auto leases = plan::parse_leases("duid 00:01:00:01:aa:bb:cc:dd:52:54:00:99:99:99\n"
                                           "1700000000 1 fd00:60::10 * 00:01:00:01:2c:5f:11:22:52:54:00:00:00:01\n"
                                           "1700000000 2 fd00:60::20 * 00:03:00:01:52:54:00:00:00:02\n"
                                           "1700000000 3 fd00:60::30 * 00:03:00:01:52:54:00:00:00:03\n"
                                           "1700000000 4 fd00:60::10 * 00:03:00:01:52:54:00:00:00:04\n");
    REQUIRE(leases.size() == 4);
    std::vector<std::string> types;
    for (const auto& l : plan::to_json(leases, {}, n.ipv6->hosts))
        types.push_back(l["type"]);
    // By DUID; by the MAC in a DUID-LL; an address from the range; another
    // client on a reserved address.
    CHECK(types == std::vector<std::string>{"static", "static", "dynamic", "dynamic"});
    for (const auto& l : plan::to_json(leases, {}))
        CHECK(l["type"] == "dynamic");
}

}  // namespace unit_test_dhcp6_hosts
