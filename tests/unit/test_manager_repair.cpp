// Unit tests of core::Manager against fake kernel adapters (manager_harness.hpp):
// self-healing (core/manager_repair.cpp).
#include "manager_test_prelude.hpp"

namespace unit_test_manager_repair {

// ---- self-healing (core/manager_repair.cpp) ----------------------------------

TEST_CASE("Self-healing: a deleted bridge is recreated with its addresses, once", "[manager][repair]")
{
    HealingHarness h;
    const auto table = h.firewall.table;
    h.links.delete_link("kvmbr9");
    h.links.reset_calls();
    h.m().link_changed("kvmbr9");
    CHECK(h.m().state("iso") == State::degraded);
    CHECK_THAT(h.m().state_reason("iso"), Contains("kvmbr9 was deleted"));
    CHECK(h.m().state_reason_code("iso") == "bridge-deleted");
    h.let_repairs_run();
    REQUIRE(h.links.has("kvmbr9"));
    CHECK(h.links.link("kvmbr9").alias == "kvmnet:iso");
    CHECK(h.links.link("kvmbr9").up);
    CHECK(h.bridge_addresses() == healthy_addresses);
    CHECK(h.m().state("iso") == State::active);
    REQUIRE(h.listener.repairs.size() == 1);
    CHECK_THAT(h.listener.repairs[0], StartsWith("iso bridge: recreated bridge kvmbr9"));
    CHECK_THAT(h.m().last_repair("iso"), Contains("bridge: recreated bridge kvmbr9"));
    REQUIRE(h.firewall.table);
    CHECK(plan::render(*h.firewall.table) == plan::render(*table));  // rules name the bridge: nothing to redo

    // The notifications of the repair itself change nothing more.
    h.links.reset_calls();
    h.m().link_changed("kvmbr9");
    h.m().address_changed(h.links.link("kvmbr9").index);
    h.let_repairs_run();
    CHECK(h.links.mutations().empty());
    CHECK(h.listener.repairs.size() == 1);
}

TEST_CASE("Self-healing: removed gateway addresses are re-added", "[manager][repair]")
{
    HealingHarness h;
    const int index = h.links.link("kvmbr9").index;
    SECTION("IPv4")
    {
        h.links.delete_address("kvmbr9", ip("10.70.0.1"), 24);
        h.links.reset_calls();
        h.m().address_changed(index);
        h.let_repairs_run();
        CHECK(h.links.mutations() == std::vector<std::string>{"add_address kvmbr9 10.70.0.1/24"});
        REQUIRE(h.listener.repairs.size() == 1);
        CHECK(h.listener.repairs[0] == "iso address: re-added address 10.70.0.1/24");
    }
    SECTION("IPv6")
    {
        h.links.delete_address("kvmbr9", ip("fd00:70::1"), 64);
        h.links.reset_calls();
        h.m().address_changed(index);
        h.let_repairs_run();
        REQUIRE(h.listener.repairs.size() == 1);
        CHECK(h.listener.repairs[0] == "iso address: re-added address fd00:70::1/64");
    }
    CHECK(h.bridge_addresses() == healthy_addresses);
    CHECK(h.m().state("iso") == State::active);
    // Another link's addresses are none of the network's business.
    h.links.reset_calls();
    h.m().address_changed(h.links.link("eth1").index);
    h.let_repairs_run();
    CHECK(h.links.mutations().empty());
}

TEST_CASE("Self-healing: a downed bridge is set up again", "[manager][repair]")
{
    HealingHarness h;
    h.links.set_up("kvmbr9", false);
    h.links.reset_calls();
    h.m().link_changed("kvmbr9");
    CHECK(h.m().state("iso") == State::degraded);
    CHECK_THAT(h.m().state_reason("iso"), Contains("set down"));
    CHECK(h.m().state_reason_code("iso") == "bridge-down");
    h.let_repairs_run();
    CHECK(h.links.mutations() == std::vector<std::string>{"set_up kvmbr9 up"});
    CHECK(h.m().state("iso") == State::active);
    REQUIRE(h.listener.repairs.size() == 1);
    CHECK_THAT(h.listener.repairs[0], StartsWith("iso link: set bridge kvmbr9 up again"));
}

TEST_CASE("Self-healing: a changed or deleted table is re-applied after a burst, once", "[manager][repair]")
{
    HealingHarness h;
    const auto table = h.firewall.table;
    REQUIRE(table);
    const int commits = h.firewall.commits;
    h.firewall.table.reset();  // nft delete table inet kvmnet
    for (int i = 0; i < 5; ++i)
        h.m().firewall_changed("by nft (pid 4242)");
    CHECK(h.m().state("iso") == State::degraded);
    CHECK_THAT(h.m().state_reason("iso"), Contains("by nft (pid 4242)"));
    CHECK(h.m().state_reason_code("iso") == "firewall-changed");
    // Debounced: nothing before the timer, one re-apply when it fires.
    CHECK(h.firewall.commits == commits);
    h.let_repairs_run();
    CHECK(h.firewall.commits == commits + 1);
    REQUIRE(h.firewall.table);
    CHECK(plan::render(*h.firewall.table) == plan::render(*table));
    CHECK(h.m().state("iso") == State::active);
    REQUIRE(h.listener.repairs.size() == 1);
    CHECK_THAT(h.listener.repairs[0], StartsWith("iso firewall: re-applied table inet kvmnet"));
    CHECK_THAT(h.listener.repairs[0], Contains("by nft (pid 4242)"));
    // Nothing running, nothing to repair.
    h.m().stop("iso");
    const int after_stop = h.firewall.commits;
    h.m().firewall_changed("by nft (pid 4243)");
    h.let_repairs_run();
    CHECK(h.firewall.commits == after_stop);
}

TEST_CASE("Self-healing: the daemon's own changes trigger no repair", "[manager][repair]")
{
    HealingHarness h;
    // The notifications a start leaves behind, read afterwards.
    h.m().link_changed("kvmbr9");
    h.m().address_changed(h.links.link("kvmbr9").index);
    h.let_repairs_run();
    // An update that only touches forwards, then a stop and a start.
    h.m().add_forwards("iso", R"({"proto": "udp", "host_port": 5353, "guest": "10.70.0.6", "guest_port": 53})");
    h.m().stop("iso");
    h.m().link_changed("kvmbr9");
    h.let_repairs_run();
    CHECK_FALSE(h.links.has("kvmbr9"));  // a stopped network's bridge stays gone
    h.m().start("iso");
    h.links.reset_calls();
    h.m().link_changed("kvmbr9");
    h.let_repairs_run();
    CHECK(h.links.mutations().empty());
    CHECK(h.listener.repairs.empty());
    CHECK(h.m().last_repair("iso").empty());
}

TEST_CASE("Self-healing: an interface of someone else under the bridge's name is left alone", "[manager][repair]")
{
    HealingHarness h;
    h.links.delete_link("kvmbr9");
    LinkInfo foreign = physical("kvmbr9", "52:54:00:aa:bb:99", 1500);
    foreign.kind = "bridge";
    h.links.add_link(foreign);
    h.links.reset_calls();
    h.m().link_changed("kvmbr9");
    h.let_repairs_run();
    CHECK(h.links.mutations().empty());
    CHECK(h.m().state("iso") == State::degraded);
    CHECK_THAT(h.m().state_reason("iso"), Contains("does not manage"));
    CHECK(h.m().state_reason_code("iso") == "bridge-replaced");
    CHECK(h.listener.repairs.empty());
}

TEST_CASE("Self-healing: repairs beyond the budget are deferred with the reason in the state", "[manager][repair]")
{
    HealingHarness h;
    const auto set_down = [&] {
        h.links.set_up("kvmbr9", false);
        h.m().link_changed("kvmbr9");
        h.let_repairs_run();
        return h.links.link("kvmbr9").up;
    };
    int repaired = 0;
    for (int i = 0; i < 20; ++i)
        repaired += set_down() ? 1 : 0;
    CHECK(repaired == 20);
    // The 21st within the minute waits for the backoff, and says so.
    CHECK_FALSE(set_down());
    CHECK(h.m().state("iso") == State::degraded);
    CHECK(h.m().state_reason("iso").find("over the repair budget") != std::string::npos);
    CHECK(h.m().state_reason_code("iso") == "repair-budget");
    // Notifications meanwhile change nothing: the deferred repair will look.
    h.m().link_changed("kvmbr9");
    h.let_repairs_run();
    CHECK_FALSE(h.links.link("kvmbr9").up);
    // Deferred, not dropped: it runs after its backoff (1 s, doubling).
    h.clock.advance(1'000'000);
    CHECK(h.links.link("kvmbr9").up);
    CHECK(h.m().state("iso") == State::active);
    CHECK_FALSE(set_down());
    h.clock.advance(2'000'000);
    CHECK(h.links.link("kvmbr9").up);
    // A new window: at once again.
    h.clock.advance(60'000'000);
    CHECK(set_down());
}

TEST_CASE("Self-healing: a bridge-mode uplink that disappears degrades the network until it is back",
          "[manager][repair]")
{
    Harness h;
    h.m().create(lan_document);
    h.m().start("lan");
    REQUIRE(h.m().state("lan") == State::active);
    const LinkInfo eth0 = h.links.link("eth0");
    h.links.delete_link("eth0");
    h.m().link_changed("eth0");
    h.let_repairs_run();
    CHECK(h.m().state("lan") == State::degraded);
    CHECK_THAT(h.m().state_reason("lan"), Contains("uplink eth0"));
    CHECK(h.m().state_reason_code("lan") == "uplink-missing");
    CHECK(h.listener.repairs.empty());

    // It comes back (a new device under the same name), not enslaved.
    LinkInfo back = physical("eth0", eth0.mac.value_or(kvmnet::model::Mac{}).str(), eth0.mtu);
    back.up = false;
    h.links.add_link(back);
    h.links.reset_calls();
    h.m().link_changed("eth0");
    h.let_repairs_run();
    CHECK(h.links.link("eth0").master_index == h.links.link("lan0").index);
    CHECK(h.links.link("eth0").up);
    CHECK(h.m().state("lan") == State::active);
    REQUIRE(h.listener.repairs.size() == 1);
    CHECK_THAT(h.listener.repairs[0], StartsWith("lan uplink: attached uplink eth0 to lan0 again"));

    // Enslaved by someone else: theirs, never taken back.
    LinkInfo other = physical("br-other", "52:54:00:aa:bb:77", 1500);
    other.kind = "bridge";
    h.links.add_link(other);
    h.links.set_master("eth0", "br-other");
    h.links.reset_calls();
    h.m().link_changed("eth0");
    h.let_repairs_run();
    CHECK(h.links.mutations().empty());
    CHECK(h.m().state("lan") == State::degraded);
    h.m().stop("lan");
}

TEST_CASE("Self-healing: a bridge-mode bridge gets its static addresses and routes back, not dynamic ones",
          "[manager][repair]")
{
    Harness h;
    h.m().create(lan_document);
    h.m().start("lan");
    REQUIRE(h.m().state("lan") == State::active);
    const std::string before = h.links.state_of("lan0");
    // What the kernel does on `ip link set lan0 down`: IPv6 addresses and
    // routes through the link go. Here: the static route to 10.20.0.0/16,
    // the DHCP default route and the SLAAC-like IPv6 address.
    h.links.set_up("lan0", false);
    for (const auto& r : h.links.routes_on("lan0"))
        if (r.destination == ip("10.20.0.0") || (r.family == AF_INET && !r.destination && r.table == 254))
            h.links.delete_route(r);
    h.links.delete_address("lan0", ip("2001:db8:1::10"), 64);
    h.links.reset_calls();
    h.m().link_changed("lan0");
    h.let_repairs_run();
    CHECK(h.links.link("lan0").up);
    REQUIRE(h.listener.repairs.size() == 1);
    CHECK_THAT(h.listener.repairs[0], Contains("re-added route 10.20.0.0/16 via 192.168.1.254"));
    // The DHCP route and the address with a finite lifetime belong to their clients.
    CHECK_THAT(h.listener.repairs[0], !Contains("re-added route default"));
    CHECK_THAT(h.listener.repairs[0], !Contains("2001:db8:1::10"));
    CHECK(h.m().state("lan") == State::active);
    CHECK(h.links.state_of("lan0") != before);  // the dynamic parts stay gone
    // Nothing more to do on the next notification.
    h.links.reset_calls();
    h.m().link_changed("lan0");
    h.let_repairs_run();
    CHECK(h.links.mutations().empty());
    h.m().stop("lan");
}

TEST_CASE("Self-healing: a renamed bridge is renamed back, not duplicated, and stop deletes it", "[manager][repair]")
{
    HealingHarness h;
    h.links.rename_link("kvmbr9", "kvmbr-x");
    h.links.reset_calls();
    h.m().link_changed("kvmbr-x");
    h.let_repairs_run();
    CHECK(h.links.has("kvmbr9"));
    CHECK_FALSE(h.links.has("kvmbr-x"));
    CHECK(h.links.mutations() == std::vector<std::string>{"rename_link kvmbr-x kvmbr9"});
    REQUIRE(h.listener.repairs.size() == 1);
    CHECK(h.listener.repairs[0] == "iso link: renamed bridge kvmbr-x back to kvmbr9");
    CHECK(h.m().state("iso") == State::active);

    h.links.rename_link("kvmbr9", "kvmbr-x");
    h.m().stop("iso");
    CHECK_FALSE(h.links.has("kvmbr-x"));
    CHECK_FALSE(h.links.has("kvmbr9"));
}

TEST_CASE("Self-healing: interfaces enslaved by someone else go onto a recreated bridge", "[manager][repair]")
{
    HealingHarness h;
    LinkInfo tap = physical("vnet0", "52:54:00:aa:bb:01", 1500);
    tap.kind = "tun";
    tap.master_index = h.links.link("kvmbr9").index;
    h.links.add_link(tap);
    LinkInfo released = physical("vnet1", "52:54:00:aa:bb:02", 1500);
    released.master_index = h.links.link("kvmbr9").index;
    h.links.add_link(released);
    h.m().link_changed("vnet0");
    h.links.link("vnet1").master_index = 0;  // released on purpose while the bridge lives
    h.m().link_changed("vnet1");

    h.links.delete_link("kvmbr9");
    h.m().link_changed("vnet0");  // released by the deletion: remembered all the same
    h.m().link_changed("kvmbr9");
    h.let_repairs_run();
    REQUIRE(h.links.has("kvmbr9"));
    CHECK(h.links.link("vnet0").master_index == h.links.link("kvmbr9").index);
    CHECK(h.links.link("vnet1").master_index == 0);
    REQUIRE(h.listener.repairs.size() == 1);
    CHECK_THAT(h.listener.repairs[0], Contains("re-attached vnet0 (enslaved outside kvmnet)"));
}

}  // namespace unit_test_manager_repair
