// Unit tests of what issue 15's overlay status adds to the pure core: the
// OverlayStatus JSON (plan/overlay_status), the changes OverlayChanged
// reports, Leases() naming the VTEP of other hosts' guests
// (plan::add_evpn_lease_hosts), the anycast gateway's IPv6 addresses the
// ND filter keeps local (model::overlay_gateway_ipv6) and kvmnetctl's text
// for them (client/overlay_text).
#include "model/network.hpp"
#include "model/overlay.hpp"
#include "overlay_text.hpp"
#include "plan/frr.hpp"
#include "plan/overlay_status.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <string>

namespace unit_test_overlay_status {

namespace model = kvmnet::model;
namespace plan = kvmnet::plan;
using json = nlohmann::json;

namespace {

model::Ipv4 v4(const std::string& text) { return model::Ipv4::parse(text).value(); }

plan::Vxlans::VxlanFdbEntry fdb(const std::string& mac, const std::string& vtep, bool extern_learn)
{
    return {model::Mac::parse(mac).value(), v4(vtep), extern_learn};
}

model::Network static_network()
{
    return model::parse_network(R"({"name": "span", "mode": "nat", "bridge": "kvmbr7", "uplink": "uplink0",
        "ipv4": {"address": "10.77.0.1/24", "dhcp": {"ranges": ["10.77.0.10-10.77.0.99"]}},
        "overlay": {"vni": 100, "local": "10.99.0.1", "peers": ["10.99.0.3", "10.99.0.2"]}})");
}

model::Network evpn_network()
{
    return model::parse_network(R"({"name": "evpn", "mode": "nat", "bridge": "kvmbr8", "uplink": "uplink0",
        "ipv4": {"address": "10.78.0.1/24", "dhcp": {"ranges": ["10.78.0.10-10.78.0.99"]}},
        "ipv6": {"address": "fd00:78::1/64"},
        "overlay": {"vni": 100, "local_interface": "eth0", "dhcp_slice": {"index": 0, "count": 3},
                    "evpn": {"asn": 65000, "neighbors": ["10.99.0.1", "10.99.0.2", "10.99.0.3"]}}})");
}

}  // namespace

TEST_CASE("overlay status of static peers: flood entry, reachability, remote MACs per VTEP", "[overlay]")
{
    const model::Network n = static_network();
    plan::OverlayObserved o;
    o.device = true;
    o.local = "10.99.0.1";
    o.port_flags = plan::Vxlans::VxlanPortFlags{false, true};
    o.flood = {v4("10.99.0.2")};  // 10.99.0.3's entry is missing
    o.fdb = {fdb("52:54:00:00:00:03", "10.99.0.3", false), fdb("52:54:00:00:00:13", "10.99.0.3", false)};
    o.neighbours = {{"10.99.0.2", "stale"}, {"10.99.0.3", "reachable"}};
    const json j = plan::overlay_status_json(n, o);
    CHECK(j["control"] == "static");
    CHECK(j["device"] == "kvx-100");
    CHECK(j["port_flags"] == json{{"neigh_suppress", false}, {"learning", true}});
    REQUIRE(j["peers"].size() == 2);
    CHECK(j["peers"][0]["vtep"] == "10.99.0.2");
    CHECK(j["peers"][0]["flood"] == true);
    CHECK(j["peers"][0]["reachability"] == "stale");
    CHECK(j["peers"][0]["remote_macs"] == json::array());
    CHECK(j["peers"][1]["vtep"] == "10.99.0.3");
    CHECK(j["peers"][1]["flood"] == false);
    CHECK(j["peers"][1]["reachability"] == "reachable");
    CHECK(j["peers"][1]["remote_macs"] == json{"52:54:00:00:00:03", "52:54:00:00:00:13"});
    CHECK_FALSE(j.contains("evpn"));
}

TEST_CASE("VTEP reachability from the kernel's neighbour state", "[overlay]")
{
    CHECK(plan::vtep_reachability("") == "unknown");
    CHECK(plan::vtep_reachability("reachable") == "reachable");
    CHECK(plan::vtep_reachability("permanent") == "reachable");
    CHECK(plan::vtep_reachability("stale") == "stale");
    CHECK(plan::vtep_reachability("delay") == "stale");
    CHECK(plan::vtep_reachability("failed") == "unreachable");
    CHECK(plan::vtep_reachability("incomplete") == "unreachable");
}

TEST_CASE("overlay status with EVPN: VTEPs from FRR, never this host, and the sessions", "[overlay][evpn]")
{
    const model::Network n = evpn_network();
    plan::OverlayObserved o;
    o.device = true;
    o.local = "10.99.0.1";  // from local_interface: left out of its own neighbours
    o.port_flags = plan::Vxlans::VxlanPortFlags{true, false};
    o.flood = {v4("10.99.0.2"), v4("10.99.0.3")};
    o.fdb = {fdb("52:54:00:00:00:03", "10.99.0.3", true), fdb("52:54:00:00:00:09", "10.99.0.9", true)};
    o.evpn = {{"state", "partial"}, {"sessions", json::array()}};
    const json j = plan::overlay_status_json(n, o);
    CHECK(j["control"] == "evpn");
    REQUIRE(j["peers"].size() == 3);
    CHECK(j["peers"][0]["vtep"] == "10.99.0.2");
    CHECK(j["peers"][0]["reachability"] == "unknown");
    CHECK(j["peers"][2]["vtep"] == "10.99.0.9");  // a VTEP FRR learned, no neighbour of ours
    CHECK(j["peers"][2]["configured"] == false);
    CHECK(j["peers"][2]["remote_macs"] == json{"52:54:00:00:00:09"});
    CHECK(j["evpn"]["state"] == "partial");
}

TEST_CASE("OverlayChanged: sessions and peers that moved, not ARP ageing", "[overlay]")
{
    const json before = {{"peers",
                          {{{"vtep", "10.99.0.2"}, {"reachability", "reachable"}},
                           {{"vtep", "10.99.0.3"}, {"reachability", "reachable"}}}},
                         {"evpn",
                          {{"sessions",
                            {{{"neighbor", "10.99.0.2"}, {"state", "Established"}},
                             {{"neighbor", "10.99.0.3"}, {"state", "Established"}}}}}}};
    CHECK(plan::overlay_changes(before, before).empty());
    json after = before;
    after["peers"][0]["reachability"] = "stale";
    CHECK(plan::overlay_changes(before, after).empty());
    after["peers"][1]["reachability"] = "unreachable";
    after["evpn"]["sessions"][0]["state"] = "Active";
    after["peers"].push_back({{"vtep", "10.99.0.4"}, {"reachability", "unknown"}});
    const auto changes = plan::overlay_changes(before, after);
    REQUIRE(changes.size() == 3);
    CHECK(changes[0] == std::make_pair(std::string("session"), std::string("10.99.0.2: Established -> Active")));
    CHECK(changes[1] == std::make_pair(std::string("peer"), std::string("10.99.0.3: reachable -> unreachable")));
    CHECK(changes[2] == std::make_pair(std::string("peer"), std::string("10.99.0.4 added (unknown)")));
    CHECK(plan::overlay_changes(after, before).size() == 3);
}

TEST_CASE("Leases() of an EVPN network names the VTEP of other hosts' guests", "[overlay][evpn][leases]")
{
    plan::FrrStatus status;
    status.reachable = true;
    plan::EvpnVniState v;
    v.vni = 100;
    v.remotes = {{"52:54:00:00:00:02", "10.78.0.40", "10.99.0.2"},
                 {"52:54:00:00:00:03", "10.78.0.70", "10.99.0.3"},
                 {"52:54:00:00:00:04", "", "10.99.0.3"},                       // no IP known: not a lease
                 {"52:54:00:00:00:05", "fe80::5054:ff:fe00:5", "10.99.0.2"}};  // IPv6 only: not a lease
    status.vnis[100] = v;
    json leases = json::array({{{"family", "ipv4"}, {"ip", "10.78.0.10"}, {"mac", "52:54:00:00:00:01"}},
                               // moved to host 3 since it took its lease here
                               {{"family", "ipv4"}, {"ip", "10.78.0.11"}, {"mac", "52:54:00:00:00:03"}}});
    plan::add_evpn_lease_hosts(leases, status, 100);
    REQUIRE(leases.size() == 3);
    CHECK_FALSE(leases[0].contains("vtep"));
    CHECK(leases[1]["vtep"] == "10.99.0.3");
    CHECK(leases[2] == json{{"family", "ipv4"},
                            {"ip", "10.78.0.40"},
                            {"expiry", 0},
                            {"expires_at", nullptr},
                            {"mac", "52:54:00:00:00:02"},
                            {"type", "remote"},
                            {"vtep", "10.99.0.2"}});
    json other = json::array();
    plan::add_evpn_lease_hosts(other, status, 200);  // another VNI: nothing known
    CHECK(other.empty());
}

TEST_CASE("the anycast gateway's IPv6 addresses: ipv6.address and the EUI-64 link-local of its MAC", "[overlay]")
{
    CHECK(model::overlay_gateway_ipv6(static_network()).empty());  // no ipv6
    model::Network n = evpn_network();
    n.overlay->gateway_mac = "02:00:5e:10:20:30";
    const auto a = model::overlay_gateway_ipv6(n);
    REQUIRE(a.size() == 2);
    CHECK(a[0].str() == "fd00:78::1");
    CHECK(a[1].str() == "fe80::5eff:fe10:2030");  // 02 with the U/L bit inverted is 00
}

TEST_CASE("kvmnetctl's overlay text", "[overlay][client]")
{
    CHECK(kvmnet::client::overlay_config_text(json::parse(
              R"({"vni": 100, "local": "10.99.0.1", "port": 4789, "peers": ["10.99.0.2", "10.99.0.3"]})")) ==
          "VNI 100 over 10.99.0.1:4789, peers 10.99.0.2 10.99.0.3");
    CHECK(kvmnet::client::overlay_config_text(json::parse(
              R"({"vni": 7, "local_interface": "eth0", "port": 4789, "dhcp_slice": {"index": 1, "count": 3},
                  "evpn": {"asn": 65000, "neighbors": ["10.99.0.2"]}})")) ==
          "VNI 7 over the address of eth0:4789, EVPN AS 65000 with 10.99.0.2, DHCP slice 2/3");
    const json status = json::parse(R"({
        "network": "evpn", "state": "active", "vni": 100, "device": "kvx-100", "device_present": true,
        "local": "10.99.0.1", "port": 4789, "control": "evpn",
        "port_flags": {"neigh_suppress": true, "learning": false},
        "peers": [{"vtep": "10.99.0.2", "configured": true, "flood": true, "reachability": "reachable",
                   "neighbour_state": "reachable", "remote_macs": ["52:54:00:00:00:02"]},
                  {"vtep": "10.99.0.3", "configured": true, "flood": false, "reachability": "unknown",
                   "neighbour_state": null, "remote_macs": []}],
        "evpn": {"state": "partial", "asn": 65000, "sessions": [
            {"neighbor": "10.99.0.2", "state": "Established", "established": true, "uptime": "00:01:02",
             "prefixes_received": 3},
            {"neighbor": "10.99.0.3", "state": "Active", "established": false}]}})");
    CHECK(kvmnet::client::overlay_status_text(status) ==
          "network evpn: active, VNI 100 on kvx-100, local 10.99.0.1:4789, EVPN\n"
          "bridge port: neigh_suppress on, learning off\n"
          "peers (2):\n"
          "  10.99.0.2  reachable (ARP reachable), flood entry yes\n"
          "    remote MACs (1): 52:54:00:00:00:02\n"
          "  10.99.0.3  unknown, flood entry no\n"
          "    remote MACs (0)\n"
          "EVPN: partial, AS 65000\n"
          "  BGP 10.99.0.2  Established, up 00:01:02, 3 prefixes\n"
          "  BGP 10.99.0.3  Active\n");
    const auto lines = kvmnet::client::overlay_summary_lines(status);
    REQUIRE(lines.size() == 2);
    CHECK(lines[0] == "kvx-100: 2 peers, 1 reachable, 1 remote MAC (kvmnetctl overlay status)");
    CHECK(lines[1] == "EVPN partial: 1 of 2 BGP sessions established");
}

}  // namespace unit_test_overlay_status
