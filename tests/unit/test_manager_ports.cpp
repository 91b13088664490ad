// Unit tests of core::Manager against fake kernel adapters (manager_harness.hpp):
// guest ports and the MAC-conflict watch.
#include "manager_test_prelude.hpp"

namespace unit_test_manager_ports {

// ---- 6. guest ports -------------------------------------------------------------

TEST_CASE("Guest ports on a bridge-mode network", "[manager]")
{
    Harness h;
    h.m().create(lan_document);
    h.m().start("lan");
    const int bridge = h.links.link("lan0").index;

    SECTION("a tap is created for its owner, enslaved, and deleted on detach")
    {
        h.m().attach_port(
            "lan", R"({"name": "vm1-tap", "tap": true, "owner": 1000, "group": 100, "mac": "52:54:00:12:34:56"})");
        REQUIRE(h.links.has("vm1-tap"));
        const FakeLink& tap = h.links.fake("vm1-tap");
        CHECK(tap.tap);
        CHECK(tap.owner == 1000);
        CHECK(tap.group == 100);
        CHECK(tap.info.master_index == bridge);
        CHECK(tap.info.up);
        CHECK(tap.info.mac == kvmnet::model::Mac::parse("fe:54:00:12:34:56"));
        CHECK_FALSE(tap.isolated);
        const auto ports = h.m().list_ports("lan");
        REQUIRE(ports.size() == 1);
        CHECK(ports[0]["name"] == "vm1-tap");
        CHECK(ports[0]["state"] == "attached");
        CHECK(ports[0]["host_mac"] == "fe:54:00:12:34:56");
        CHECK_FALSE(ports[0].contains("problem"));

        h.m().detach_port("lan", "vm1-tap");
        CHECK_FALSE(h.links.has("vm1-tap"));
        CHECK(h.m().list_ports("lan").empty());
        CHECK(h.m().spec("lan").ports.empty());
    }
    SECTION("a MAC that is already in use is refused and nothing is created")
    {
        h.m().attach_port("lan", R"({"name": "vm1-tap", "tap": true, "mac": "52:54:00:12:34:56"})");
        const std::string before = h.links.state();
        const auto spec_before = h.m().spec("lan");
        // The bridge carries the uplink's MAC, so this one is both.
        for (const std::string& mac : {eth0_mac, std::string("52:54:00:aa:bb:02"), std::string("52:54:00:12:34:56")}) {
            INFO(mac);
            h.links.reset_calls();
            const auto err = error_of(
                [&] { h.m().attach_port("lan", R"({"name": "vm2-tap", "tap": true, "mac": ")" + mac + R"("})"); });
            REQUIRE(err);
            CHECK(err->kind() == ErrorKind::Conflict);
            CHECK_THAT(err->what(), Contains(mac));
            CHECK(h.links.mutations().empty());
            CHECK(h.links.state() == before);
            CHECK(h.m().spec("lan") == spec_before);
        }
    }
    SECTION("a tap whose setup fails is deleted again")
    {
        const std::string before = h.links.state();
        h.links.reset_calls();
        h.links.fail_on("set_master", 1);
        const auto err = error_of([&] { h.m().attach_port("lan", R"({"name": "vm1-tap", "tap": true})"); });
        REQUIRE(err);
        CHECK_THAT(err->what(), Contains("injected"));
        CHECK(h.links.count("create_tap") == 1);
        CHECK_FALSE(h.links.has("vm1-tap"));
        CHECK(h.links.state() == before);
        CHECK(h.m().spec("lan").ports.empty());
    }
    SECTION("VLANs are unsupported without bridge VLAN filtering")
    {
        const std::string before = h.links.state();
        h.links.reset_calls();
        const auto err = error_of([&] {
            h.m().attach_port("lan", R"({"name": "vm1-tap", "tap": true, "vlan": {"pvid": 10, "tagged": [20, 30]}})");
        });
        REQUIRE(err);
        CHECK(err->kind() == ErrorKind::Unsupported);
        CHECK_THAT(err->what(), Contains("bridge VLAN filtering"));
        CHECK_THAT(err->what(), Contains("CONFIG_BRIDGE_VLAN_FILTERING"));
        CHECK(h.links.count("vlan_filtering_supported") == 1);
        CHECK(h.links.mutations().empty());
        CHECK(h.links.state() == before);
        CHECK(h.m().spec("lan").ports.empty());

        // A stopped network only records its ports: refused all the same.
        h.m().stop("lan");
        const std::string stopped = h.links.state();
        h.links.reset_calls();
        const auto again = error_of(
            [&] { h.m().attach_port("lan", R"({"name": "vm1-tap", "tap": true, "vlan": {"tagged": [20]}})"); });
        REQUIRE(again);
        CHECK(again->kind() == ErrorKind::Unsupported);
        CHECK_THAT(again->what(), Contains("VLAN filtering"));
        CHECK(h.links.mutations().empty());
        CHECK(h.links.state() == stopped);
        CHECK(h.m().spec("lan").ports.empty());
    }
    SECTION("VLANs are applied through bridge VLAN filtering where the kernel has it")
    {
        h.links.vlan_filtering = true;
        h.links.reset_calls();
        h.m().attach_port("lan", R"({"name": "vm1-tap", "tap": true, "vlan": {"pvid": 10, "tagged": [20, 30]}})");
        CHECK(h.links.count("set_port_vlans") == 1);
        const auto calls = h.links.calls();
        const auto call =
            std::find_if(calls.begin(), calls.end(), [](const Call& c) { return c.verb == "set_port_vlans"; });
        REQUIRE(call != calls.end());
        CHECK(call->link == "vm1-tap");
        CHECK(call->detail == "lan0 pvid 10 tagged 20,30");
        const FakeLink& tap = h.links.fake("vm1-tap");
        CHECK(tap.info.master_index == bridge);
        CHECK(tap.pvid == 10);
        CHECK(tap.tagged == std::vector<std::uint16_t>{20, 30});
        CHECK(h.links.fake("lan0").vlan_filtering);
        const auto spec = h.m().spec("lan");
        REQUIRE(spec.ports.size() == 1);
        CHECK(spec.ports[0].vlan_pvid == 10);
        CHECK(spec.ports[0].vlan_tagged == std::vector<std::uint16_t>{20, 30});
        const auto ports = h.m().list_ports("lan");
        REQUIRE(ports.size() == 1);
        CHECK(ports[0]["vlan"]["pvid"] == 10);

        // Replaced without VLANs: back to the default membership.
        h.links.reset_calls();
        h.m().attach_port("lan", R"({"name": "vm1-tap", "tap": true})");
        CHECK(h.links.count("set_port_vlans") == 1);
        CHECK(h.links.fake("vm1-tap").pvid == 1);
        CHECK(h.links.fake("vm1-tap").tagged.empty());
        CHECK(h.m().spec("lan").ports.at(0).vlan_pvid == 0);
    }
    SECTION("a port whose VLANs the kernel refuses is not stored and its tap is deleted again")
    {
        h.links.vlan_filtering = true;
        const std::string before = h.links.state();
        h.links.reset_calls();
        h.links.fail_on("set_port_vlans", 1);
        const auto err =
            error_of([&] { h.m().attach_port("lan", R"({"name": "vm1-tap", "tap": true, "vlan": {"pvid": 10}})"); });
        REQUIRE(err);
        CHECK_THAT(err->what(), Contains("injected"));
        CHECK_FALSE(h.links.has("vm1-tap"));
        CHECK(h.links.state() == before);
        CHECK(h.m().spec("lan").ports.empty());
    }
    SECTION("a port whose interface vanishes is reported missing and re-attached when it returns")
    {
        h.m().attach_port("lan", R"({"name": "vm1-tap", "tap": true, "mac": "52:54:00:12:34:56"})");
        h.links.delete_link("vm1-tap");
        h.m().link_changed("vm1-tap");
        h.let_repairs_run();
        auto ports = h.m().list_ports("lan");
        REQUIRE(ports.size() == 1);
        CHECK(ports[0]["state"] == "missing");
        CHECK(ports[0]["problem"] == "interface is missing");

        // QEMU makes the tap again (not enslaved, down, a random MAC).
        LinkInfo again;
        again.name = "vm1-tap";
        again.kind = "tun";
        again.mtu = 1500;
        again.mac = kvmnet::model::Mac::parse("02:11:22:33:44:55");
        h.links.add_link(again);
        h.m().link_changed("vm1-tap");
        h.let_repairs_run();
        const LinkInfo& tap = h.links.link("vm1-tap");
        CHECK(tap.master_index == bridge);
        CHECK(tap.up);
        CHECK(tap.mac == kvmnet::model::Mac::parse("fe:54:00:12:34:56"));
        ports = h.m().list_ports("lan");
        REQUIRE(ports.size() == 1);
        CHECK(ports[0]["state"] == "attached");
        CHECK_FALSE(ports[0].contains("problem"));
        CHECK(h.m().state("lan") == State::active);
    }
}

TEST_CASE("Attaching an existing interface that fails half-way leaves it as it was", "[manager]")
{
    // Regression: attach_port undoes a failed apply_port only by deleting a tap it
    // created. An existing interface (a veth, or a tap QEMU made) keeps
    // whatever apply_port did before the failing step (new MAC, enslaved to
    // the bridge, set up), while the port is not added to the document: the
    // interface is now on the bridge, invisible to list_ports and refused by
    // detach_port ("has no port named ...").
    Harness h;
    h.m().create(lan_document);
    h.m().start("lan");
    LinkInfo veth;
    veth.name = "veth-vm";
    veth.kind = "veth";
    veth.mtu = 1500;
    veth.mac = kvmnet::model::Mac::parse("02:aa:00:00:00:01");
    h.links.add_link(veth);
    const std::string before = h.links.state();
    h.links.reset_calls();
    h.links.fail_on("set_port_isolated", 1);
    CHECK_THROWS_AS(h.m().attach_port("lan", R"({"name": "veth-vm", "mac": "52:54:00:77:77:77"})"), Error);
    CHECK(h.m().spec("lan").ports.empty());
    CHECK(h.links.link("veth-vm").master_index == 0);
    CHECK(h.links.state() == before);
}

TEST_CASE("AttachPort refuses a host interface; DetachPort gives back what attach changed", "[manager]")
{
    Harness h;
    h.m().create(R"({"name": "web", "mode": "bridge", "bridge": "kvmbr5", "uplink": "eth0", "mtu": 1450})");
    h.m().start("web");

    // eth1 carries 172.16.0.5/24 and a default route (populate_host).
    const std::string before = h.links.state();
    const auto refused = error_of([&] { h.m().attach_port("web", R"({"name": "eth1"})"); });
    REQUIRE(refused);
    CHECK(refused->kind() == ErrorKind::Conflict);
    CHECK_THAT(refused->what(), StartsWith("port: eth1 is a host interface") && Contains("172.16.0.5/24") &&
                                    Contains("the default route"));
    CHECK(h.links.state() == before);
    CHECK(h.m().spec("web").ports.empty());

    LinkInfo veth = physical("vg1", "02:00:00:00:00:aa", 1400);
    veth.kind = "veth";
    veth.up = false;
    h.links.add_link(veth);
    h.m().attach_port("web", R"({"name": "vg1", "mac": "52:54:00:00:00:01", "isolated": true,
                                 "original": {"mac": "02:00:00:00:00:bb"}})");
    const LinkInfo attached = h.links.link("vg1");
    CHECK(attached.mac == kvmnet::model::Mac::parse("fe:54:00:00:00:01"));
    CHECK(attached.mtu == 1450);
    CHECK(attached.up);
    CHECK(attached.master_index == h.links.link("kvmbr5").index);
    // Recorded from the interface, not taken from the caller.
    REQUIRE(h.m().spec("web").ports.at(0).original);
    CHECK(h.m().spec("web").ports.at(0).original->mac == model::Mac::parse("02:00:00:00:00:aa"));
    CHECK(h.m().spec("web").ports.at(0).original->mtu == 1400);
    CHECK_FALSE(h.m().spec("web").ports.at(0).original->up);

    h.m().detach_port("web", "vg1");
    const LinkInfo detached = h.links.link("vg1");
    CHECK(detached.mac == kvmnet::model::Mac::parse("02:00:00:00:00:aa"));
    CHECK(detached.mtu == 1400);
    CHECK_FALSE(detached.up);
    CHECK(detached.master_index == 0);
    CHECK(h.m().spec("web").ports.empty());
}

// ---- 7. MAC-conflict watch ------------------------------------------------------

TEST_CASE("A guest MAC flapping between two ports degrades the network and is reported", "[manager]")
{
    Harness h;
    h.m().create(lan_document);
    h.m().attach_port("lan", R"({"name": "vnet-a", "tap": true})");
    h.m().attach_port("lan", R"({"name": "vnet-b", "tap": true})");
    const int a = h.links.link("vnet-a").index;
    const int b = h.links.link("vnet-b").index;
    const std::string mac = "52:54:00:de:ad:01";
    // One poll per second: seen on A, then on B, then back on A.
    h.links.fdb_script = [&](int call) {
        const int port = call == 2 ? b : a;
        return std::vector<plan::FdbEntry>{{*kvmnet::model::Mac::parse(eth0_mac), 0, 0, true},
                                           {*kvmnet::model::Mac::parse(mac), port, 0, false}};
    };
    h.m().start("lan");
    REQUIRE(h.m().state("lan") == State::active);
    REQUIRE(h.links.count("list_fdb") == 0);

    const auto spent = h.run_loop(5'000'000, [&] { return !h.listener.conflicts.empty(); });
    CHECK(spent < 4'500'000);
    CHECK(h.links.count("list_fdb") == 3);
    CHECK(h.m().state("lan") == State::degraded);
    CHECK_THAT(h.m().state_reason("lan"), Contains(mac) && Contains("vnet-a") && Contains("vnet-b"));
    CHECK(h.m().state_reason_code("lan") == "mac-conflict");
    REQUIRE(h.listener.conflicts.size() == 1);
    CHECK(h.listener.conflicts[0].network == "lan");
    CHECK(h.listener.conflicts[0].mac == mac);
    CHECK(h.listener.conflicts[0].ports == std::vector<std::string>{"vnet-a", "vnet-b"});
}

TEST_CASE("FDB notifications of a MAC flapping between two ports are a conflict at once", "[manager]")
{
    Harness h;
    h.m().create(lan_document);
    h.m().attach_port("lan", R"({"name": "vnet-a", "tap": true})");
    h.m().attach_port("lan", R"({"name": "vnet-b", "tap": true})");
    h.m().start("lan");
    const int bridge = h.links.link("lan0").index;
    const int a = h.links.link("vnet-a").index;
    const int b = h.links.link("vnet-b").index;
    const std::string mac = "52:54:00:de:ad:02";

    // Another bridge's notifications, and a single move (a migrating guest), are no conflict.
    h.m().fdb_learned(h.links.link("br-ext").index, mac, a);
    h.m().fdb_learned(h.links.link("br-ext").index, mac, b);
    h.m().fdb_learned(h.links.link("br-ext").index, mac, a);
    h.m().fdb_learned(bridge, mac, a);
    h.m().fdb_learned(bridge, mac, b);
    CHECK(h.m().state("lan") == State::active);
    CHECK(h.listener.conflicts.empty());

    h.m().fdb_learned(bridge, mac, a);
    CHECK(h.m().state("lan") == State::degraded);
    CHECK_THAT(h.m().state_reason("lan"), Contains(mac) && Contains("vnet-a") && Contains("vnet-b"));
    REQUIRE(h.listener.conflicts.size() == 1);
    CHECK(h.listener.conflicts[0].mac == mac);
    CHECK(h.listener.conflicts[0].ports == std::vector<std::string>{"vnet-a", "vnet-b"});
    // The same conflict again is not announced twice.
    h.m().fdb_learned(bridge, mac, b);
    CHECK(h.listener.conflicts.size() == 1);
}

TEST_CASE("The MAC-conflict watch covers ports attached after a poll found none", "[manager]")
{
    // Regression: poll_fdb re-arms its timer only while some running network has
    // ports, and only attach_ports (called from bring_up) arms it again;
    // attach_port, update and link_changed apply ports without re-arming it.
    // A network started without ports (the usual case: ports come and go
    // with VMs) loses the poll for good after its first tick, until some
    // network is started again. Since FDB notifications (fdb_learned) also
    // feed the watch, conflicts are still noticed, but the poll's two jobs
    // are gone: the safety net for lost notifications, and expiring a
    // resolved conflict, so the network then stays degraded forever.
    Harness h;
    h.m().create(lan_document);
    h.m().start("lan");
    h.run_loop(1'150'000);  // the first poll finds no ports
    h.m().attach_port("lan", R"({"name": "vnet-a", "tap": true})");
    h.links.reset_calls();
    h.run_loop(1'150'000, [&] { return h.links.count("list_fdb") > 0; });
    CHECK(h.links.count("list_fdb") > 0);
}

}  // namespace unit_test_manager_ports
