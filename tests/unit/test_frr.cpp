// Unit tests of plan/frr: the FRR fragment kvmnet applies for its EVPN
// networks (golden files tests/golden/frr_*.conf; KVMNET_UPDATE_GOLDEN=1
// rewrites them), what it reads back from FRR's running configuration, the
// removal of only kvmnet's part, and the parsing of FRR's JSON (the samples
// are FRR 8.4's output, taken from zebra + bgpd in test namespaces).
#include "model/error.hpp"
#include "plan/frr.hpp"

#include <catch2/catch.hpp>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

namespace unit_test_frr {

using kvmnet::ErrorKind;
namespace plan = kvmnet::plan;

namespace {

void check_frr_golden(const std::string& name, const std::string& text)
{
    const std::string path = std::string(GOLDEN_DIR) + "/" + name;
    const char* update = std::getenv("KVMNET_UPDATE_GOLDEN");
    if (update && std::string(update) == "1") {
        std::ofstream out(path, std::ios::binary | std::ios::trunc);
        out << text;
        out.close();
        REQUIRE(out.good());
        WARN("rewrote golden file " << path);
        return;
    }
    std::ifstream in(path, std::ios::binary);
    INFO("golden file " << path << " (run with KVMNET_UPDATE_GOLDEN=1 to create it)");
    REQUIRE(in.good());
    std::ostringstream expected;
    expected << in.rdbuf();
    CHECK(text == expected.str());
}

plan::EvpnNetwork evpn(const std::string& name, std::uint32_t vni, std::vector<std::string> neighbors,
                       std::uint32_t asn = 65000)
{
    return plan::EvpnNetwork{name,
                             vni,
                             "kbr-" + name,
                             "kvx-" + std::to_string(vni),
                             kvmnet::model::Ipv4::parse("10.99.0.1"),
                             asn,
                             std::move(neighbors)};
}

// FRR 8.4's `show running-config` with the administrator's own neighbour
// (activated for EVPN too) beside kvmnet's part.
const std::string running_mixed = R"(Building configuration...

Current configuration:
!
frr version 8.4.4
frr defaults traditional
hostname h1
service integrated-vtysh-config
!
router bgp 65000
 neighbor kvmnet peer-group
 neighbor kvmnet remote-as 65000
 neighbor kvmnet description kvmnet EVPN
 neighbor kvmnet update-source 10.99.0.1
 neighbor 10.99.0.2 peer-group kvmnet
 neighbor 10.99.0.3 peer-group kvmnet
 neighbor 192.0.2.7 remote-as 65000
 !
 address-family ipv4 unicast
  no neighbor kvmnet activate
 exit-address-family
 !
 address-family l2vpn evpn
  neighbor kvmnet activate
  neighbor 192.0.2.7 activate
  advertise-all-vni
 exit-address-family
exit
!
router bgp 65010 vrf blue
 neighbor 198.51.100.1 remote-as 65010
exit
!
end
)";

}  // namespace

TEST_CASE("The FRR fragment of two EVPN networks matches its golden file", "[frr][golden]")
{
    // Every host carries the same document, so the neighbours include this
    // host (10.99.0.1): no session to itself.
    const auto c = plan::frr_config(
        {evpn("blue", 200, {"10.99.0.3", "10.99.0.1"}), evpn("red", 100, {"10.99.0.1", "10.99.0.2", "10.99.0.3"})});
    REQUIRE(c);
    CHECK(c->asn == 65000);
    CHECK(c->update_source == "10.99.0.1");
    CHECK(c->neighbors == std::vector<std::string>{"10.99.0.2", "10.99.0.3"});
    check_frr_golden("frr_evpn.conf", plan::render_frr_fragment(*c));
}

TEST_CASE("No EVPN network, no FRR configuration", "[frr]") { CHECK_FALSE(plan::frr_config({})); }

TEST_CASE("Two EVPN networks with different ASNs are a conflict", "[frr]")
{
    try {
        plan::frr_config({evpn("red", 100, {"10.99.0.2"}), evpn("blue", 200, {"10.99.0.2"}, 65001)});
        FAIL("no error");
    } catch (const kvmnet::Error& e) {
        CHECK(e.kind() == ErrorKind::Conflict);
        CHECK(std::string(e.what()).find("AS 65001") != std::string::npos);
    }
}

TEST_CASE("FRR's running configuration: kvmnet's group, its neighbours and the administrator's", "[frr]")
{
    const plan::FrrRunning r = plan::parse_frr_running(running_mixed);
    REQUIRE(r.asn);
    CHECK(*r.asn == 65000);  // not the VRF instance's 65010
    CHECK(r.group);
    CHECK(r.group_neighbors == std::vector<std::string>{"10.99.0.2", "10.99.0.3"});
    CHECK(r.other_neighbors == std::vector<std::string>{"192.0.2.7"});
    CHECK(r.other_evpn_active == std::vector<std::string>{"192.0.2.7"});
    CHECK(r.advertise_all_vni);

    const plan::FrrRunning empty = plan::parse_frr_running("Current configuration:\n!\nhostname h1\n!\nend\n");
    CHECK_FALSE(empty.asn);
    CHECK_FALSE(empty.group);
}

TEST_CASE("What kvmnet applied reads back as kvmnet's", "[frr]")
{
    const auto c = plan::frr_config({evpn("red", 100, {"10.99.0.2", "10.99.0.3"})});
    REQUIRE(c);
    const plan::FrrRunning r = plan::parse_frr_running(plan::render_frr_fragment(*c));
    CHECK(r.group);
    CHECK(r.group_neighbors == c->neighbors);
    CHECK(r.other_neighbors.empty());
    CHECK(plan::render_frr_removal(r, c).empty());
}

TEST_CASE("Removal touches only kvmnet's part of FRR", "[frr]")
{
    const plan::FrrRunning r = plan::parse_frr_running(running_mixed);
    SECTION("a neighbour no network wants any more")
    {
        const auto c = plan::frr_config({evpn("red", 100, {"10.99.0.2"})});
        CHECK(plan::render_frr_removal(r, c) == "router bgp 65000\n no neighbor 10.99.0.3\nexit\n");
    }
    SECTION("the last EVPN network stopped: the group goes, advertise-all-vni stays for 192.0.2.7")
    {
        CHECK(
            plan::render_frr_removal(r, std::nullopt) ==
            "router bgp 65000\n no neighbor 10.99.0.2\n no neighbor 10.99.0.3\n no neighbor kvmnet peer-group\nexit\n");
    }
    SECTION("with no other EVPN neighbour, advertise-all-vni goes too")
    {
        const auto c = plan::frr_config({evpn("red", 100, {"10.99.0.2"})});
        const plan::FrrRunning ours = plan::parse_frr_running(plan::render_frr_fragment(*c));
        CHECK(plan::render_frr_removal(ours, std::nullopt) ==
              "router bgp 65000\n no neighbor 10.99.0.2\n no neighbor kvmnet peer-group\n"
              " address-family l2vpn evpn\n  no dup-addr-detection max-moves 20 time 180\n  no advertise-all-vni\n"
              " exit-address-family\nexit\n");
    }
    SECTION("nothing of kvmnet's there")
    {
        CHECK(plan::render_frr_removal(plan::parse_frr_running("hostname h1\n"), std::nullopt).empty());
    }
}

TEST_CASE("A configuration that would disturb FRR's own is refused, naming why", "[frr]")
{
    const plan::FrrRunning r = plan::parse_frr_running(running_mixed);
    auto kind_and_text = [&](const plan::EvpnNetwork& n) -> std::string {
        try {
            plan::check_frr_conflicts(r, *plan::frr_config({n}));
        } catch (const kvmnet::Error& e) {
            CHECK(e.kind() == ErrorKind::Conflict);
            return e.what();
        }
        return "";
    };
    CHECK(kind_and_text(evpn("red", 100, {"10.99.0.2"})).empty());
    CHECK(kind_and_text(evpn("red", 100, {"10.99.0.2"}, 65001)).find("already runs BGP as AS 65000") !=
          std::string::npos);
    CHECK(kind_and_text(evpn("red", 100, {"192.0.2.7"})).find("already has neighbor 192.0.2.7") != std::string::npos);
}

TEST_CASE("FRR's EVPN JSON: sessions, VNIs and the hosts remote guests are on", "[frr]")
{
    const std::string summary = R"({"routerId":"10.99.0.1","as":65000,"peers":{
      "10.99.0.2":{"hostname":"h2","remoteAs":65000,"peerUptime":"00:00:07","pfxRcd":2,"state":"Established"},
      "10.99.0.3":{"remoteAs":65000,"peerUptime":"never","pfxRcd":0,"state":"Active"}},"totalPeers":2})";
    const std::string vnis = R"({"100":{"vni":100,"type":"L2","vxlanIf":"kvx-100","numMacs":3,"numArpNd":2,
      "numRemoteVteps":1,"tenantVrf":"default","remoteVteps":["10.99.0.2"]}})";
    const std::string macs = R"({"100":{"numMacs":3,"macs":{
      "52:54:00:00:00:01":{"type":"local","intf":"g1"},
      "52:54:00:00:00:02":{"type":"remote","remoteVtep":"10.99.0.2"},
      "52:54:00:00:00:03":{"type":"remote","remoteVtep":"10.99.0.2"}}}})";
    const std::string arp = R"({"100":{"numArpNd":3,
      "192.168.50.11":{"type":"local","state":"active","mac":"52:54:00:00:00:01"},
      "fe80::5054:ff:fe00:2":{"type":"remote","mac":"52:54:00:00:00:02","remoteVtep":"10.99.0.2"},
      "192.168.50.12":{"type":"remote","state":"active","mac":"52:54:00:00:00:02","remoteVtep":"10.99.0.2"}}})";

    plan::FrrStatus s;
    s.reachable = true;
    s.peers = plan::parse_bgp_evpn_summary(summary);
    REQUIRE(s.peers.size() == 2);
    CHECK(s.peers[0].established());
    CHECK(s.peers[0].prefixes_received == 2);
    CHECK_FALSE(s.peers[1].established());
    s.vnis = plan::parse_evpn_vnis(vnis);
    plan::add_evpn_remotes(s.vnis, macs, arp);
    REQUIRE(s.vnis.count(100) == 1);
    CHECK(s.vnis[100].vxlan == "kvx-100");
    CHECK(s.vnis[100].remote_vteps == std::vector<std::string>{"10.99.0.2"});
    REQUIRE(s.vnis[100].remotes.size() == 2);
    CHECK(s.vnis[100].remotes[0].ip == "192.168.50.12");  // IPv4 rather than the link-local address
    CHECK(s.vnis[100].remotes[1].ip.empty());
    CHECK(plan::evpn_vtep_of(s, 100, "52:54:00:00:00:03") == "10.99.0.2");
    CHECK(plan::evpn_vtep_of(s, 100, "52:54:00:00:00:01").empty());  // local

    const plan::EvpnNetwork red = evpn("red", 100, {"10.99.0.1", "10.99.0.2", "10.99.0.3"});
    CHECK(plan::evpn_state(s, red) == "partial");
    CHECK(plan::evpn_state(s, evpn("red", 100, {"10.99.0.2"})) == "established");
    CHECK(plan::evpn_state(s, evpn("red", 100, {"10.99.0.3"})) == "down");
    const nlohmann::json j = plan::evpn_status_json(s, red);
    CHECK(j["state"] == "partial");
    REQUIRE(j["sessions"].size() == 2);
    CHECK(j["sessions"][0] == nlohmann::json{{"neighbor", "10.99.0.2"},
                                             {"state", "Established"},
                                             {"established", true},
                                             {"prefixes_received", 2},
                                             {"uptime", "00:00:07"}});
    CHECK(j["sessions"][1]["state"] == "Active");
    CHECK(j["remote_guests"][0] ==
          nlohmann::json{{"mac", "52:54:00:00:00:02"}, {"ip", "192.168.50.12"}, {"vtep", "10.99.0.2"}});

    plan::FrrStatus down;
    down.error = "vtysh: failed to connect to any daemons";
    CHECK(plan::evpn_state(down, red) == "frr-unreachable");
    CHECK(plan::evpn_status_json(down, red)["sessions"][0]["state"] == "unknown");
}

TEST_CASE("FRR output that is not what we expect parses to nothing", "[frr]")
{
    CHECK(plan::parse_bgp_evpn_summary("").empty());
    CHECK(plan::parse_bgp_evpn_summary("{}").empty());
    CHECK(plan::parse_bgp_evpn_summary("% BGP instance not found").empty());
    CHECK(plan::parse_evpn_vnis("[1,2]").empty());
    std::map<std::uint32_t, plan::EvpnVniState> v;
    plan::add_evpn_remotes(v, "{\"x\":{}}", "not json");
    CHECK(v.empty());
}

}  // namespace unit_test_frr
