// core::Evpn over a fake vtysh (a CommandRunner that plays FRR: it keeps
// a running configuration and answers `show` commands as FRR 8.4 does),
// and Diagnose's "evpn" check (plan::drift). The real FRR is exercised by
// tests/e2e/test_overlay_evpn.sh.
#include "core/evpn.hpp"
#include "model/network.hpp"
#include "plan/drift.hpp"
#include "temp_dir.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <fstream>
#include <sstream>

namespace unit_test_evpn {

using namespace kvmnet;

namespace {

std::string read(const std::string& path)
{
    std::ifstream in(path);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

// Plays vtysh against one FRR: `-f FILE` appends the file's lines to the
// running configuration as kvmnet's plan renders them (the fake applies the
// fragment and the removal by re-rendering from what it was told), `-E -c`
// answers the shows.
struct FakeFrr {
    bool up = true;
    std::string admin;  // the administrator's own lines inside router bgp 65000
    std::optional<plan::FrrConfig> ours;
    std::vector<std::string> established;
    std::vector<std::vector<std::string>> calls;
    std::vector<std::string> applied;

    std::string running() const
    {
        std::string text = "Current configuration:\n!\nhostname h1\n!\n";
        if (ours) {
            std::string fragment = plan::render_frr_fragment(*ours);
            text += fragment.substr(fragment.find("router bgp"));
            if (!admin.empty()) text.insert(text.find(" !\n address-family ipv4"), admin);
        } else if (!admin.empty()) {
            text += "router bgp 65000\n" + admin + "exit\n";
        }
        return text + "!\nend\n";
    }

    core::CommandResult operator()(const std::vector<std::string>& argv)
    {
        calls.push_back(argv);
        if (!up) return {1, "Exiting: failed to connect to any daemons.\n"};
        auto f = std::find(argv.begin(), argv.end(), "-f");
        if (f != argv.end()) {
            const std::string text = read(*(f + 1));
            applied.push_back(text);
            const plan::FrrRunning r = plan::parse_frr_running(text);
            if (r.group) {
                plan::FrrConfig c;
                c.asn = *r.asn;
                c.neighbors = r.group_neighbors;
                c.update_source = ours ? ours->update_source : "";
                ours = c;
            } else if (ours) {
                // A removal: drop the neighbours named, the group with "no neighbor kvmnet peer-group".
                std::istringstream in(text);
                std::string line;
                while (std::getline(in, line)) {
                    if (line == " no neighbor kvmnet peer-group") ours.reset();
                    if (ours && line.rfind(" no neighbor ", 0) == 0) {
                        const std::string a = line.substr(13);
                        ours->neighbors.erase(std::remove(ours->neighbors.begin(), ours->neighbors.end(), a),
                                              ours->neighbors.end());
                    }
                }
            }
            return {0, ""};
        }
        std::string out;
        for (std::size_t i = 0; i + 1 < argv.size(); ++i) {
            if (argv[i] != "-c") continue;
            const std::string& c = argv[i + 1];
            out += "h1# " + c + "\n";
            if (c == "show running-config")
                out += running();
            else if (c == "show bgp l2vpn evpn summary json") {
                nlohmann::json peers = nlohmann::json::object();
                if (ours)
                    for (const std::string& a : ours->neighbors)
                        peers[a] = {
                            {"state", std::count(established.begin(), established.end(), a) ? "Established" : "Active"},
                            {"pfxRcd", 0}};
                out += nlohmann::json{{"peers", peers}}.dump() + "\n";
            } else
                out += "{}\n";
        }
        return {0, out};
    }
};

plan::EvpnNetwork red(std::vector<std::string> neighbors = {"10.99.0.1", "10.99.0.2", "10.99.0.3"})
{
    return plan::EvpnNetwork{
        "red", 100, "kbr-red", "kvx-100", model::Ipv4::parse("10.99.0.1"), 65000, std::move(neighbors)};
}

bool applied_with(const FakeFrr& frr, const std::string& needle)
{
    return std::any_of(frr.applied.begin(), frr.applied.end(),
                       [&](const std::string& t) { return t.find(needle) != std::string::npos; });
}

}  // namespace

TEST_CASE("The model's overlay.evpn becomes the network's EVPN side", "[evpn]")
{
    const model::Network n = model::parse_network(R"({"name": "red", "mode": "nat", "bridge": "kbr-red",
        "ipv4": {"address": "192.168.50.1/24"},
        "overlay": {"vni": 100, "local_interface": "eth0",
                    "evpn": {"asn": 65000, "neighbors": ["10.99.0.2"], "route_reflector": "10.99.0.9"}}})");
    const auto e = core::evpn_network(
        n, [](const std::string& ifname) { return ifname == "eth0" ? model::Ipv4::parse("10.99.0.1") : std::nullopt; });
    REQUIRE(e);
    CHECK(e->vni == 100);
    CHECK(e->local == model::Ipv4::parse("10.99.0.1"));
    CHECK(e->vxlan == model::overlay_device_name(100));
    CHECK(e->neighbors == std::vector<std::string>{"10.99.0.2", "10.99.0.9"});
    CHECK_FALSE(core::evpn_network(model::parse_network(R"({"name": "plain", "mode": "nat", "bridge": "kbr-p",
        "ipv4": {"address": "192.168.51.1/24"}})"),
                                   nullptr));
}

TEST_CASE("Evpn puts kvmnet's part into FRR, keeps the administrator's, and removes only its own", "[evpn]")
{
    testing::TempDir dir;
    FakeFrr frr;
    frr.admin = " neighbor 192.0.2.7 remote-as 65000\n";
    core::Evpn evpn("/usr/bin/vtysh", dir.path + "/vty", dir.path + "/frr-evpn.conf",
                    [&](const std::vector<std::string>& argv) { return frr(argv); });

    evpn.sync({red()});
    CHECK(evpn.problem().empty());
    REQUIRE(frr.ours);
    CHECK(frr.ours->neighbors == std::vector<std::string>{"10.99.0.2", "10.99.0.3"});
    CHECK(frr.calls.front()[1] == "--vty_socket");  // every call goes to this FRR
    CHECK(read(dir.path + "/frr-evpn.conf").find("neighbor 10.99.0.3 peer-group kvmnet") != std::string::npos);

    SECTION("an unchanged set of networks asks FRR nothing")
    {
        const std::size_t calls = frr.calls.size();
        evpn.sync({red()});
        CHECK(frr.calls.size() == calls);
    }
    SECTION("a neighbour dropped from the document is removed, the others stay")
    {
        evpn.sync({red({"10.99.0.2"})});
        CHECK(applied_with(frr, " no neighbor 10.99.0.3\n"));
        CHECK(frr.ours->neighbors == std::vector<std::string>{"10.99.0.2"});
        CHECK(frr.running().find("192.0.2.7") != std::string::npos);
    }
    SECTION("the last EVPN network stopped: kvmnet's part goes, the administrator's neighbour stays")
    {
        evpn.sync({});
        CHECK_FALSE(frr.ours);
        CHECK_FALSE(applied_with(frr, "no neighbor 192.0.2.7"));
        CHECK_FALSE(evpn.wanted());
    }
    SECTION("sessions: EvpnState's input")
    {
        frr.established = {"10.99.0.2"};
        evpn.refresh();
        CHECK(plan::evpn_state(evpn.status(), red()) == "partial");
        frr.established = {"10.99.0.2", "10.99.0.3"};
        evpn.refresh();
        CHECK(plan::evpn_state(evpn.status(), red()) == "established");
        frr.up = false;
        evpn.refresh();
        CHECK(plan::evpn_state(evpn.status(), red()) == "frr-unreachable");
        CHECK(evpn.status().error.find("failed to connect") != std::string::npos);
    }
    SECTION("an FRR that restarted without kvmnet's part gets it back at the next poll")
    {
        frr.ours.reset();
        evpn.refresh();
        REQUIRE(frr.ours);
        CHECK(frr.ours->neighbors == std::vector<std::string>{"10.99.0.2", "10.99.0.3"});
    }
}

TEST_CASE("Evpn with FRR not running: no error for the start, applied once FRR answers", "[evpn]")
{
    testing::TempDir dir;
    FakeFrr frr;
    frr.up = false;
    core::Evpn evpn("/usr/bin/vtysh", "", dir.path + "/frr-evpn.conf",
                    [&](const std::vector<std::string>& argv) { return frr(argv); });
    CHECK_NOTHROW(evpn.check({red()}));
    evpn.sync({red()});
    CHECK(evpn.problem().find("FRR does not answer") != std::string::npos);
    CHECK(frr.calls.front()[1] != "--vty_socket");  // FRR's default sockets
    frr.up = true;
    evpn.refresh();
    CHECK(evpn.problem().empty());
    REQUIRE(frr.ours);
}

TEST_CASE("Evpn refuses a start FRR cannot take without disturbing its own configuration", "[evpn]")
{
    testing::TempDir dir;
    FakeFrr frr;
    frr.admin = " neighbor 10.99.0.2 remote-as 65000\n";
    core::Evpn evpn("/usr/bin/vtysh", "", dir.path + "/frr-evpn.conf",
                    [&](const std::vector<std::string>& argv) { return frr(argv); });
    try {
        evpn.check({red()});
        FAIL("no error");
    } catch (const Error& e) {
        CHECK(e.kind() == ErrorKind::Conflict);
        CHECK(std::string(e.what()).find("already has neighbor 10.99.0.2") != std::string::npos);
    }
    CHECK(frr.applied.empty());
}

TEST_CASE("Diagnose's evpn check", "[evpn][drift]")
{
    const model::Network n = model::parse_network(
        R"({"name": "red", "mode": "isolated", "bridge": "kbr-red", "ipv4": {"address": "192.168.50.1/24"}})");
    plan::Observed o;
    o.running = true;
    auto evpn_check = [&](const plan::EvpnView& v) {
        o.evpn = v;
        for (const plan::Finding& f : plan::drift(n, o).findings)
            if (f.check == "evpn") return std::make_pair(f.status, f.detail);
        return std::make_pair(plan::Status::pass, std::string("no check"));
    };
    auto [s1, d1] = evpn_check({"established", {{"10.99.0.2", "Established"}, {"10.99.0.3", "Established"}}, "", ""});
    CHECK(s1 == plan::Status::pass);
    CHECK(d1 == "BGP EVPN established with 10.99.0.2, 10.99.0.3");
    auto [s2, d2] = evpn_check({"partial", {{"10.99.0.2", "Established"}, {"10.99.0.3", "Active"}}, "", ""});
    CHECK(s2 == plan::Status::fail);
    CHECK(d2 == "BGP EVPN not established with 10.99.0.3 (Active); established with 10.99.0.2");
    auto [s3, d3] = evpn_check({"frr-unreachable", {{"10.99.0.2", "unknown"}}, "FRR does not answer: x", ""});
    CHECK(s3 == plan::Status::fail);
    CHECK(d3.find("BGP EVPN not established: FRR does not answer") == 0);
    const auto said = d3.find("FRR does not answer");
    REQUIRE(said != std::string::npos);
    CHECK(d3.find("FRR does not answer", said + 1) == std::string::npos);  // said once, not wrapped again
    // No session up degrades the network (evpn-session); one of several is
    // only the check's failure. (The observation has no bridge, so the
    // state's own reason is bridge-deleted: the evpn finding is looked at.)
    auto evpn_reason = [&](const plan::EvpnView& v) {
        o.evpn = v;
        for (const plan::Finding& f : plan::drift(n, o).findings)
            if (f.check == "evpn") return std::make_pair(f.code, f.reason);
        return std::make_pair(std::string("no check"), std::string());
    };
    CHECK(evpn_reason({"partial", {{"10.99.0.2", "Established"}, {"10.99.0.3", "Active"}}, "", ""}).first.empty());
    CHECK(evpn_reason({"established", {{"10.99.0.2", "Established"}}, "", ""}).first.empty());
    const auto down = evpn_reason({"down", {{"10.99.0.2", "Active"}, {"10.99.0.3", "Connect"}}, "", ""});
    CHECK(down.first == "evpn-session");
    CHECK(down.second == "BGP EVPN not established with 10.99.0.2 (Active), 10.99.0.3 (Connect)");
    CHECK(evpn_reason({"frr-unreachable", {{"10.99.0.2", "unknown"}}, "FRR does not answer (timeout)", ""}).first ==
          "evpn-session");
    CHECK(evpn_reason({"established", {}, "", ""}).first.empty());  // no neighbours: nothing to be down
    // With nothing else wrong, it is the state's reason.
    o.bridge = plan::LinkInfo{};
    o.bridge->name = "kbr-red";
    o.bridge->alias = "kvmnet:red";
    o.bridge->up = true;
    o.evpn = plan::EvpnView{"down", {{"10.99.0.2", "Active"}}, "", ""};
    const plan::Drift::Reason r = plan::drift(n, o).state();
    CHECK(r.code == "evpn-session");
}

}  // namespace unit_test_evpn
