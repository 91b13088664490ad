// The runtime and state layout (store/layout.hpp) and the typed records kept
// in it: the paths are a contract with a daemon of the previous version
// (adoption after an upgrade) and with the e2e tests, so they are spelt out.
#include "core/takeover_record.hpp"
#include "plan/planner.hpp"
#include "store/files.hpp"
#include "store/layout.hpp"
#include "temp_dir.hpp"

#include <catch2/catch.hpp>

#include <filesystem>

namespace unit_test_layout {

using kvmnet::store::Layout;

TEST_CASE("The layout names every file under STATE and RUNTIME", "[layout]")
{
    const Layout l("/var/lib/kvmnet", "/run/kvmnet");
    CHECK(l.document("lan") == "/var/lib/kvmnet/networks/lan.json");
    CHECK(l.journal("lan") == "/var/lib/kvmnet/networks/lan.forwards");
    CHECK(l.mirror("lan") == "/run/kvmnet/.stored/lan.json");
    CHECK(l.committed_table() == "/run/kvmnet/nftables.committed");
    CHECK(l.frr_fragment() == "/run/kvmnet/frr-evpn.conf");
    CHECK(l.saved_sysctl("ip_forward") == "/run/kvmnet/ip_forward.saved");
    CHECK(l.restart_marker("lan") == "/run/kvmnet/lan.restarting");
    CHECK(l.delete_marker("lan") == "/run/kvmnet/lan.deleting");
    CHECK(l.active_marker("lan") == "/run/kvmnet/lan/active");
    CHECK(l.confirm_deadline("lan") == "/run/kvmnet/lan/confirm-deadline");
    CHECK(l.takeover_record("lan") == "/run/kvmnet/lan/takeover.json");
    CHECK(l.dnsmasq_leases("lan") == "/run/kvmnet/lan/dnsmasq.leases");
    CHECK(kvmnet::plan::dnsmasq_paths(l.network_dir("lan")).hosts == "/run/kvmnet/lan/dnsmasq.hosts");
}

TEST_CASE("Markers are recognised by the layout, other runtime entries are not", "[layout]")
{
    const Layout l("/s", "/r");
    CHECK(Layout::marker_network(l.restart_marker("web1")) == "web1");
    CHECK(Layout::marker_network(l.delete_marker("web1")) == "web1");
    CHECK_FALSE(Layout::marker_network(l.committed_table()));
    CHECK_FALSE(Layout::marker_network(l.frr_fragment()));
    CHECK_FALSE(Layout::marker_network(l.saved_sysctl("ip_forward")));
    CHECK_FALSE(Layout::marker_network(l.network_dir("web1")));
}

TEST_CASE("A takeover record written by the previous daemon loads, and round-trips", "[layout]")
{
    const kvmnet::testing::TempDir dir;
    const std::string path = dir.path + "/takeover.json";
    // The hand-written JSON of the daemon before the typed record.
    kvmnet::store::write_atomic(path, R"({"uplink": "eth0", "bridge": "br0",
        "addresses": [{"family": 2, "address": "192.0.2.10", "prefix_length": 24, "broadcast": "192.0.2.255",
                       "label": "eth0", "scope": 0, "flags": 128, "valid_lifetime": 4294967295,
                       "preferred_lifetime": 4294967295}],
        "routes": [{"family": 2, "destination": "", "prefix_length": 0, "gateway": "192.0.2.1",
                    "preferred_source": "", "table": 254, "metric": 100, "protocol": 4, "scope": 0, "type": 1,
                    "flags": 0}]})");
    std::string problem;
    auto record = kvmnet::core::read_takeover_record(path, problem);
    REQUIRE(record);
    CHECK(problem.empty());
    CHECK(record->uplink == "eth0");
    REQUIRE(record->addresses.size() == 1);
    CHECK(record->addresses[0].address.str() == "192.0.2.10");
    CHECK(record->addresses[0].flags == 128);
    REQUIRE(record->routes.size() == 1);
    CHECK(record->routes[0].gateway->str() == "192.0.2.1");
    CHECK(record->routes[0].metric == 100);

    record->routes[0].metric = 200;
    kvmnet::core::write_takeover_record(path, *record);
    const auto again = kvmnet::core::read_takeover_record(path, problem);
    REQUIRE(again);
    CHECK(again->routes[0].metric == 200);
    CHECK(again->addresses[0].label == "eth0");

    SECTION("a damaged record is a problem named with its path, not an empty takeover")
    {
        kvmnet::store::write_atomic(path, R"({"uplink": "eth0", "addresses": [{"family": 2}]})");
        CHECK_FALSE(kvmnet::core::read_takeover_record(path, problem));
        CHECK(problem.rfind(path, 0) == 0);
    }
    SECTION("no record at all is not a problem")
    {
        std::filesystem::remove(path);
        problem.clear();
        CHECK_FALSE(kvmnet::core::read_takeover_record(path, problem));
        CHECK(problem.empty());
    }
}

}  // namespace unit_test_layout
