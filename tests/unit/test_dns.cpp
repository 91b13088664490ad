// Unit tests of the network document's "dns" object (parsing, validation,
// round trip) and of what it puts into the dnsmasq configuration: a local
// domain answered only from local data, forwarders as the only upstream, and
// static hosts' names in DNS through the addn-hosts file.
#include "model/network.hpp"
#include "plan/planner.hpp"

#include "document_util.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace unit_test_dns {

using kvmnet::model::Network;
using json = nlohmann::json;

namespace {

const char* const nat_document = R"({"name": "default", "mode": "nat", "bridge": "kvmbr0",
    "ipv4": {"address": "192.168.122.1/24",
             "dhcp": {"ranges": ["192.168.122.100-192.168.122.254"],
                      "hosts": [{"mac": "52:54:00:12:34:56", "ip": "192.168.122.10", "name": "web"},
                                {"mac": "52:54:00:12:34:57", "ip": "192.168.122.11"}]}}})";

std::string with(const char* patch, const char* base = nat_document) { return kvmnet::test::merged(base, patch); }

using kvmnet::test::has_line;

using kvmnet::test::lines_starting;

}  // namespace

TEST_CASE("A dns object parses into a domain and forwarders", "[network][dns]")
{
    const Network n = kvmnet::model::parse_network(
        with(R"({"dns": {"domain": "kvm.lan", "forwarders": ["192.0.2.53", "2001:DB8:0:0::53"]}})"));
    CHECK(n.dns.domain == "kvm.lan");
    // IPv6 forwarders are stored in their canonical form.
    CHECK(n.dns.forwarders == std::vector<std::string>{"192.0.2.53", "2001:db8::53"});
}

TEST_CASE("Without a dns object there is no domain and no upstream", "[network][dns]")
{
    const Network n = kvmnet::model::parse_network(nat_document);
    CHECK(n.dns.empty());
    CHECK_FALSE(kvmnet::model::to_json(n).contains("dns"));
    // An empty object means the same.
    CHECK(kvmnet::model::parse_network(with(R"({"dns": {}})")) == n);
}

TEST_CASE("dns round-trips through to_json", "[network][dns][json]")
{
    const std::string text = GENERATE(as<std::string>{}, with(R"({"dns": {"domain": "kvm.lan"}})"),
                                      with(R"({"dns": {"forwarders": ["192.0.2.53"]}})"),
                                      with(R"({"dns": {"domain": "a-b.c1.example", "forwarders": ["fd00::53",
                                               "198.51.100.1"]}})"));
    const Network original = kvmnet::model::parse_network(text);
    const json serialised = kvmnet::model::to_json(original);
    CAPTURE(serialised.dump());
    CHECK(kvmnet::model::parse_network(serialised.dump()) == original);
    CHECK(serialised["dns"] == json::parse(text)["dns"]);
}

TEST_CASE("Bad dns objects are refused naming the field", "[network][dns][validation]")
{
    const std::string long_label(64, 'a');
    const std::string long_domain = std::string(63, 'a') + "." + std::string(63, 'b') + "." + std::string(63, 'c') +
                                    "." + std::string(63, 'd');  // 255 bytes
    const std::vector<kvmnet::test::InvalidDocument> cases = {
        {"dns not an object", with(R"({"dns": "kvm.lan"})"), "dns"},
        {"unknown field", with(R"({"dns": {"search": ["x"]}})"), "dns.search"},
        {"domain not a string", with(R"({"dns": {"domain": 1}})"), "dns.domain"},
        {"empty domain", with(R"({"dns": {"domain": ""}})"), "dns.domain"},
        {"domain with a trailing dot", with(R"({"dns": {"domain": "kvm.lan."}})"), "dns.domain"},
        {"domain with an empty label", with(R"({"dns": {"domain": "kvm..lan"}})"), "dns.domain"},
        {"domain with an underscore", with(R"({"dns": {"domain": "kvm_lan"}})"), "dns.domain"},
        {"domain label starting with '-'", with(R"({"dns": {"domain": "-kvm.lan"}})"), "dns.domain"},
        {"domain with a space", with(R"({"dns": {"domain": "kvm lan"}})"), "dns.domain"},
        {"domain with a slash", with(R"({"dns": {"domain": "kvm/lan"}})"), "dns.domain"},
        {"domain label of 64 bytes", with(("{\"dns\": {\"domain\": \"" + long_label + ".lan\"}}").c_str()),
         "dns.domain"},
        {"domain of 255 bytes", with(("{\"dns\": {\"domain\": \"" + long_domain + "\"}}").c_str()), "dns.domain"},
        {"forwarders not an array", with(R"({"dns": {"forwarders": "192.0.2.53"}})"), "dns.forwarders"},
        {"forwarder not a string", with(R"({"dns": {"forwarders": ["192.0.2.53", 53]}})"), "dns.forwarders[1]"},
        {"forwarder not an address", with(R"({"dns": {"forwarders": ["192.0.2.53", "dns.example"]}})"),
         "dns.forwarders[1]"},
        {"forwarder with a port", with(R"({"dns": {"forwarders": ["192.0.2.53#5353"]}})"), "dns.forwarders[0]"},
        {"forwarder with a prefix", with(R"({"dns": {"forwarders": ["192.0.2.53/32"]}})"), "dns.forwarders[0]"},
        {"forwarder 0.0.0.0", with(R"({"dns": {"forwarders": ["0.0.0.0"]}})"), "dns.forwarders[0]"},
        {"forwarder broadcast", with(R"({"dns": {"forwarders": ["255.255.255.255"]}})"), "dns.forwarders[0]"},
        {"forwarder multicast", with(R"({"dns": {"forwarders": ["224.0.0.251"]}})"), "dns.forwarders[0]"},
        {"forwarder ::", with(R"({"dns": {"forwarders": ["::"]}})"), "dns.forwarders[0]"},
        {"forwarder IPv6 multicast", with(R"({"dns": {"forwarders": ["ff02::fb"]}})"), "dns.forwarders[0]"},
        {"forwarder link-local", with(R"({"dns": {"forwarders": ["fe80::1"]}})"), "dns.forwarders[0]"},
        {"forwarder with a zone", with(R"({"dns": {"forwarders": ["fe80::1%eth0"]}})"), "dns.forwarders[0]"},
        {"duplicate forwarder", with(R"({"dns": {"forwarders": ["192.0.2.53", "192.0.2.53"]}})"), "dns.forwarders[1]"},
        {"duplicate forwarder in another spelling", with(R"({"dns": {"forwarders": ["fd00::53", "fd00:0::53"]}})"),
         "dns.forwarders[1]"},
        {"forwarder is the gateway", with(R"({"dns": {"forwarders": ["192.0.2.53", "192.168.122.1"]}})"),
         "dns.forwarders[1]"},
        {"17 forwarders",
         with(R"({"dns": {"forwarders": ["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4", "192.0.2.5",
              "192.0.2.6", "192.0.2.7", "192.0.2.8", "192.0.2.9", "192.0.2.10", "192.0.2.11", "192.0.2.12",
              "192.0.2.13", "192.0.2.14", "192.0.2.15", "192.0.2.16", "192.0.2.17"]}})"),
         "dns.forwarders"},
        {"dns in bridge mode", R"({"name": "lan", "mode": "bridge", "uplink": "eth0", "dns": {"domain": "kvm.lan"}})",
         "dns"},
    };
    kvmnet::test::check_all_invalid(cases);
}

TEST_CASE("Domain names follow host name labels", "[network][dns]")
{
    using kvmnet::model::valid_domain_name;
    CHECK(valid_domain_name("lan"));
    CHECK(valid_domain_name("kvm.lan"));
    CHECK(valid_domain_name("KVM.Example.ORG"));
    CHECK(valid_domain_name("1.2.3"));
    CHECK(valid_domain_name(std::string(63, 'a') + ".b"));
    CHECK_FALSE(valid_domain_name(""));
    CHECK_FALSE(valid_domain_name("."));
    CHECK_FALSE(valid_domain_name(".lan"));
    CHECK_FALSE(valid_domain_name("lan."));
    CHECK_FALSE(valid_domain_name("a..b"));
    CHECK_FALSE(valid_domain_name("a-.b"));
    CHECK_FALSE(valid_domain_name(std::string(64, 'a') + ".b"));
}

TEST_CASE("A domain is served locally only and guests' names expand into it", "[planner][dnsmasq][dns]")
{
    const Network n = kvmnet::model::parse_network(with(R"({"dns": {"domain": "kvm.lan"}})"));
    const auto files = kvmnet::plan::plan_dnsmasq(n, "/run/kvmnet/default", "nobody");
    const std::string& c = files.config;
    CAPTURE(c);
    CHECK(has_line(c, "domain=kvm.lan"));
    CHECK(has_line(c, "local=/kvm.lan/"));
    CHECK(has_line(c, "expand-hosts"));
    CHECK(has_line(c, "domain-needed"));
    // Still nothing upstream: no forwarders were given.
    CHECK(has_line(c, "no-resolv"));
    CHECK(lines_starting(c, "server=").empty());
    CHECK(lines_starting(c, "resolv-file=").empty());
}

TEST_CASE("Forwarders become server lines in document order, and nothing else goes upstream", "[planner][dnsmasq][dns]")
{
    const Network n = kvmnet::model::parse_network(
        with(R"({"dns": {"domain": "kvm.lan", "forwarders": ["198.51.100.53", "2001:db8::53"]}})"));
    const auto c = kvmnet::plan::plan_dnsmasq(n, "/r", "").config;
    CAPTURE(c);
    CHECK(lines_starting(c, "server=") == std::vector<std::string>{"server=198.51.100.53", "server=2001:db8::53"});
    CHECK(has_line(c, "no-resolv"));
    CHECK(has_line(c, "strict-order"));
}

TEST_CASE("Without dns the config has no domain and no upstream lines", "[planner][dnsmasq][dns]")
{
    const Network n = kvmnet::model::parse_network(nat_document);
    const auto c = kvmnet::plan::plan_dnsmasq(n, "/r", "").config;
    CAPTURE(c);
    CHECK(lines_starting(c, "domain").empty());
    CHECK(lines_starting(c, "local=").empty());
    CHECK(lines_starting(c, "server=").empty());
    CHECK_FALSE(has_line(c, "expand-hosts"));
}

TEST_CASE("Static hosts with names are in DNS before they take a lease", "[planner][dnsmasq][dns]")
{
    const Network n = kvmnet::model::parse_network(with(R"({"dns": {"domain": "kvm.lan"}})"));
    const auto files = kvmnet::plan::plan_dnsmasq(n, "/run/kvmnet/default", "");
    CHECK(has_line(files.config, "addn-hosts=/run/kvmnet/default/dnsmasq.names"));
    // Only named hosts; expand-hosts adds the domain.
    CHECK(files.names == "192.168.122.10 web\n");
    SECTION("and the config does not depend on the hosts, so AddHost needs no restart")
    {
        Network more = n;
        more.ipv4->hosts.push_back({"52:54:00:12:34:58", *kvmnet::model::Ipv4::parse("192.168.122.12"), "db"});
        const auto again = kvmnet::plan::plan_dnsmasq(more, "/run/kvmnet/default", "");
        CHECK(again.config == files.config);
        CHECK(again.names == "192.168.122.10 web\n192.168.122.12 db\n");
    }
}

TEST_CASE("DNS host, SRV and TXT records parse, round-trip and go into dnsmasq's files", "[network][dns][planner]")
{
    const Network n = kvmnet::model::parse_network(with(R"({"dns": {"domain": "kvm.lan",
        "hosts": [{"ip": "192.168.122.20", "names": ["db", "Pg.kvm.lan"]}, {"ip": "fd00:0::20", "names": ["db6"]}],
        "srv": [{"service": "ldap", "proto": "tcp", "target": "db.kvm.lan", "port": 389, "priority": 10, "weight": 5},
                {"service": "sip", "proto": "udp", "domain": "voice.lan", "target": "pbx.voice.lan", "port": 5060}],
        "txt": [{"name": "kvm.lan", "value": "v=spf1 -all, really"}]}})"));
    REQUIRE(n.dns.hosts.size() == 2);
    CHECK(n.dns.hosts[0].names == std::vector<std::string>{"db", "pg.kvm.lan"});
    CHECK(n.dns.hosts[1].ip == "fd00::20");
    const json serialised = kvmnet::model::to_json(n);
    CHECK(kvmnet::model::parse_network(serialised.dump()) == n);
    CHECK(serialised["dns"]["srv"][1] == json::parse(R"({"service": "sip", "proto": "udp", "domain": "voice.lan",
        "target": "pbx.voice.lan", "port": 5060, "priority": 0, "weight": 0})"));

    const auto files = kvmnet::plan::plan_dnsmasq(n, "/r", "");
    CAPTURE(files.config);
    CHECK(has_line(files.config, "srv-host=_ldap._tcp,db.kvm.lan,389,10,5"));
    CHECK(has_line(files.config, "srv-host=_sip._udp.voice.lan,pbx.voice.lan,5060,0,0"));
    CHECK(has_line(files.config, "txt-record=kvm.lan,\"v=spf1 -all, really\""));
    CHECK(lines_starting(files.config, "addn-hosts=") == std::vector<std::string>{"addn-hosts=/r/dnsmasq.names"});
    CHECK(files.names == "192.168.122.10 web\n192.168.122.20 db pg.kvm.lan\nfd00::20 db6\n");

    // Without DHCP the names file is still read when there are dns.hosts.
    const Network dns_only = kvmnet::model::parse_network(
        with(R"({"ipv4": {"dhcp": null}, "dns": {"hosts": [{"ip": "10.9.9.9", "names": ["x"]}]}})"));
    const auto only = kvmnet::plan::plan_dnsmasq(dns_only, "/r", "");
    CHECK(lines_starting(only.config, "addn-hosts=") == std::vector<std::string>{"addn-hosts=/r/dnsmasq.names"});
    CHECK(only.names == "10.9.9.9 x\n");
    // dns.hosts change only dnsmasq.names, never dnsmasq.conf (a SIGHUP, no restart).
    Network other = n;
    other.dns.hosts.pop_back();
    CHECK(kvmnet::plan::plan_dnsmasq(other, "/r", "").config == files.config);
}

TEST_CASE("Bad DNS records are refused naming the field", "[network][dns][validation]")
{
    const std::vector<kvmnet::test::InvalidDocument> cases = {
        {"host without ip", with(R"({"dns": {"hosts": [{"names": ["a"]}]}})"), "dns.hosts[0].ip"},
        {"host ip not an address", with(R"({"dns": {"hosts": [{"ip": "db", "names": ["a"]}]}})"), "dns.hosts[0].ip"},
        {"host without names", with(R"({"dns": {"hosts": [{"ip": "10.0.0.1"}]}})"), "dns.hosts[0].names"},
        {"host with no names", with(R"({"dns": {"hosts": [{"ip": "10.0.0.1", "names": []}]}})"), "dns.hosts[0].names"},
        {"host name with '_'", with(R"({"dns": {"hosts": [{"ip": "10.0.0.1", "names": ["ok", "a_b"]}]}})"),
         "dns.hosts[0].names[1]"},
        {"host name twice", with(R"({"dns": {"hosts": [{"ip": "10.0.0.1", "names": ["a", "A"]}]}})"),
         "dns.hosts[0].names[1]"},
        {"host name not a string", with(R"({"dns": {"hosts": [{"ip": "10.0.0.1", "names": [1]}]}})"),
         "dns.hosts[0].names[0]"},
        {"host unknown field", with(R"({"dns": {"hosts": [{"ip": "10.0.0.1", "names": ["a"], "ttl": 5}]}})"),
         "dns.hosts[0].ttl"},
        {"srv without service", with(R"({"dns": {"srv": [{"proto": "tcp", "target": "a", "port": 1}]}})"),
         "dns.srv[0].service"},
        {"srv service with '_'",
         with(R"({"dns": {"srv": [{"service": "_ldap", "proto": "tcp", "target": "a", "port": 1}]}})"),
         "dns.srv[0].service"},
        {"srv service of 16 bytes",
         with(R"({"dns": {"srv": [{"service": "abcdefghijklmnop", "proto": "tcp", "target": "a", "port": 1}]}})"),
         "dns.srv[0].service"},
        {"srv proto sctp", with(R"({"dns": {"srv": [{"service": "x", "proto": "sctp", "target": "a", "port": 1}]}})"),
         "dns.srv[0].proto"},
        {"srv without target", with(R"({"dns": {"srv": [{"service": "x", "proto": "tcp", "port": 1}]}})"),
         "dns.srv[0].target"},
        {"srv bad target", with(R"({"dns": {"srv": [{"service": "x", "proto": "tcp", "target": "a,b", "port": 1}]}})"),
         "dns.srv[0].target"},
        {"srv bad domain",
         with(R"({"dns": {"srv": [{"service": "x", "proto": "tcp", "domain": "a b", "target": "a", "port": 1}]}})"),
         "dns.srv[0].domain"},
        {"srv port 0", with(R"({"dns": {"srv": [{"service": "x", "proto": "tcp", "target": "a", "port": 0}]}})"),
         "dns.srv[0].port"},
        {"srv port 65536",
         with(R"({"dns": {"srv": [{"service": "x", "proto": "tcp", "target": "a", "port": 65536}]}})"),
         "dns.srv[0].port"},
        {"srv without port", with(R"({"dns": {"srv": [{"service": "x", "proto": "tcp", "target": "a"}]}})"),
         "dns.srv[0].port"},
        {"srv weight 65536",
         with(R"({"dns": {"srv": [{"service": "x", "proto": "tcp", "target": "a", "port": 1, "weight": 65536}]}})"),
         "dns.srv[0].weight"},
        {"txt without value", with(R"({"dns": {"txt": [{"name": "a"}]}})"), "dns.txt[0].value"},
        {"txt bad name", with(R"({"dns": {"txt": [{"name": "a/b", "value": "x"}]}})"), "dns.txt[0].name"},
        {"txt value with a quote", with(R"({"dns": {"txt": [{"name": "a", "value": "say \"hi\""}]}})"),
         "dns.txt[0].value"},
        {"txt value with a newline", with(R"({"dns": {"txt": [{"name": "a", "value": "a\nb"}]}})"), "dns.txt[0].value"},
        {"txt value of 256 bytes",
         with(("{\"dns\": {\"txt\": [{\"name\": \"a\", \"value\": \"" + std::string(256, 'v') + "\"}]}}").c_str()),
         "dns.txt[0].value"},
        {"records in bridge mode",
         R"({"name": "b", "mode": "bridge", "uplink": "eth0", "dns": {"txt": [{"name": "a", "value": "x"}]}})", "dns"},
    };
    kvmnet::test::check_all_invalid(cases);
}

}  // namespace unit_test_dns
