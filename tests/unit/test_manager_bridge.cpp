// Unit tests of core::Manager against fake kernel adapters (manager_harness.hpp):
// the bridge-mode takeover and its rollback at every step, and refusals that
// change nothing. No root and no kernel: FakeLinks keeps links, addresses
// and routes in memory and reproduces the kernel behaviours the takeover's
// ordering relies on (see the comments in core/manager_bridge.cpp), so a
// wrong order or an incomplete rollback shows up as a difference between the
// fake's state and a snapshot taken before the start.
#include "manager_test_prelude.hpp"

namespace unit_test_manager_bridge {

namespace {

// What the manager should name as the failing step for a call of the takeover.
std::string expected_step(const Call& c)
{
    if (c.verb == "create_bridge" || c.verb == "set_alias") return "creating bridge lan0";
    if (c.verb == "set_up") return "bringing lan0 up";
    if (c.verb == "set_master") return "enslaving eth0 to lan0";
    if (c.verb == "add_address_info") return "adding address " + c.detail + " to lan0";
    if (c.verb == "delete_route" || c.verb == "add_route") return "moving route " + c.detail + " to lan0";
    if (c.verb == "delete_address") return "removing address " + c.detail + " from eth0";
    return {};  // reads: whichever phase was reading
}

}  // namespace

// ---- 1. takeover and stop ---------------------------------------------------

TEST_CASE("Bridge mode moves the uplink's own addresses and routes to the bridge and stop puts them back", "[manager]")
{
    Harness h;
    h.m().create(lan_document);
    const std::string before = h.links.state();
    const auto eth0_addresses = h.links.addresses_on("eth0");
    const auto eth0_routes = h.links.routes_on("eth0");
    std::map<std::string, std::string> others;
    for (const char* name : {"lo", "eth1", "wlan0", "br-ext", "eth2"})
        others[name] = h.links.state_of(name);

    h.m().start("lan");
    CHECK(h.m().state("lan") == State::active);
    REQUIRE(h.links.has("lan0"));
    const LinkInfo bridge = h.links.link("lan0");
    CHECK(bridge.kind == "bridge");
    CHECK(bridge.alias == "kvmnet:lan");
    CHECK(bridge.mac == kvmnet::model::Mac::parse(eth0_mac));
    CHECK(bridge.mtu == 1500);
    CHECK(bridge.up);
    CHECK(h.links.link("eth0").master_index == bridge.index);
    CHECK(h.runtime_file("takeover.json"));
    CHECK(h.runtime_file("active"));
    REQUIRE(h.firewall.table);
    CHECK(h.firewall.table->name == "kvmnet");

    // Addresses: all but the link-local one, every field kept, IPv4 labels following the link.
    std::vector<AddressInfo> moved_addresses, kept_addresses;
    for (AddressInfo a : eth0_addresses) {
        if (a.address.v6() && a.address.v6()->is_link_local()) {
            kept_addresses.push_back(a);
            continue;
        }
        a.link_index = bridge.index;
        if (a.label.rfind("eth0", 0) == 0) a.label = "lan0" + a.label.substr(4);
        moved_addresses.push_back(a);
    }
    REQUIRE(moved_addresses.size() == 3);
    CHECK(texts(h.links.addresses_on("lan0")) == texts(moved_addresses));
    CHECK(texts(h.links.addresses_on("eth0")) == texts(kept_addresses));

    // Routes: all but the kernel's own, every field kept; the kernel made the
    // prefix routes of the moved addresses on the bridge itself.
    const auto not_kernel = [](std::vector<RouteInfo> routes) {
        routes.erase(std::remove_if(routes.begin(), routes.end(),
                                    [](const RouteInfo& r) { return r.protocol == rtprot_kernel; }),
                     routes.end());
        return routes;
    };
    std::vector<RouteInfo> moved_routes = not_kernel(eth0_routes);
    REQUIRE(moved_routes.size() == 8);
    for (auto& r : moved_routes)
        r.link_index = bridge.index;
    CHECK(texts(not_kernel(h.links.routes_on("lan0"))) == texts(moved_routes));
    CHECK(not_kernel(h.links.routes_on("eth0")).empty());
    for (const auto& [name, state] : others)
        CHECK(h.links.state_of(name) == state);

    h.m().stop("lan");
    CHECK(h.m().state("lan") == State::inactive);
    CHECK_FALSE(h.links.has("lan0"));
    CHECK(h.links.state() == before);
    CHECK_FALSE(h.firewall.table);
    CHECK_FALSE(h.runtime_file("takeover.json"));
    CHECK_FALSE(h.runtime_file("active"));
}

// ---- 2. rollback at every step ----------------------------------------------

TEST_CASE("A takeover that fails at any call is rolled back exactly", "[manager]")
{
    // A successful dry run lists every call the start makes, in order.
    std::vector<Call> dry;
    {
        Harness h;
        h.m().create(lan_document);
        h.links.reset_calls();
        h.m().start("lan");
        REQUIRE(h.m().state("lan") == State::active);
        dry = h.links.calls();
    }
    const auto count = [&](const std::string& verb) {
        return std::count_if(dry.begin(), dry.end(), [&](const Call& c) { return c.verb == verb; });
    };
    CHECK(count("create_bridge") == 1);
    CHECK(count("set_alias") == 1);
    CHECK(count("set_up") == 1);
    CHECK(count("set_master") == 1);
    CHECK(count("add_address_info") == 3);
    CHECK(count("delete_route") == 8);
    CHECK(count("add_route") == 8);
    CHECK(count("delete_address") == 3);

    std::map<std::string, int> seen;
    int injected = 0;
    for (const Call& c : dry) {
        const int nth = ++seen[c.verb];
        INFO("failing call " << nth << " of " << c.verb << " " << c.link << " " << c.detail);
        Harness h;
        h.m().create(lan_document);
        const std::string before = h.links.state();
        h.links.reset_calls();
        h.links.fail_on(c.verb, nth);
        const auto err = error_of([&] { h.m().start("lan"); });
        REQUIRE(err);
        ++injected;
        const std::string message = err->what();
        CHECK_THAT(message, StartsWith("starting network 'lan' failed while ") && Contains("injected failure"));
        const std::string step = expected_step(c);
        if (!step.empty()) CHECK_THAT(message, Contains("while " + step + ": injected"));
        CHECK(h.m().state("lan") == State::failed);
        CHECK_THAT(h.m().state_reason("lan"), Contains("injected failure") && StartsWith(step));
        CHECK(h.m().state_reason_code("lan") == "start-failed");
        CHECK(h.links.state() == before);
        CHECK_FALSE(h.firewall.table);
        CHECK_FALSE(h.runtime_file("active"));
    }
    CHECK(injected >= 30);
}

TEST_CASE("A takeover failing at set_alias deletes the bridge it created", "[manager]")
{
    // Regression: take_over_uplink pushes its single undo (restore_uplink) right after
    // create_bridge, but restore_uplink deletes the bridge only when it
    // carries the owner alias. When set_alias is the call that fails, the new
    // bridge has no alias, so the rollback leaves it behind, and every later
    // start is refused ("bridge: interface lan0 already exists and is not
    // managed by this network") until someone deletes it by hand.
    Harness h;
    h.m().create(lan_document);
    const std::string before = h.links.state();
    h.links.reset_calls();
    h.links.fail_on("set_alias", 1);
    CHECK_THROWS_AS(h.m().start("lan"), Error);
    CHECK(h.m().state("lan") == State::failed);
    CHECK_FALSE(h.links.has("lan0"));
    CHECK(h.links.state() == before);
    h.links.reset_calls();
    CHECK_NOTHROW(h.m().start("lan"));
}

TEST_CASE("A takeover failing at create_bridge leaves no record for a later stop to replay", "[manager]")
{
    // Regression: take_over_uplink writes takeover.json before create_bridge but
    // pushes the undo that removes it (restore_uplink) only after
    // create_bridge succeeded. When create_bridge fails, the record stays.
    // The network is "failed", so a later stop() runs restore_uplink on that
    // stale record and puts back whatever the uplink had at the time of the
    // failed start, even if the host's configuration has changed since
    // (here: a SLAAC address that expired in between comes back, forever).
    Harness h;
    h.m().create(lan_document);
    h.links.reset_calls();
    h.links.fail_on("create_bridge", 1);
    CHECK_THROWS_AS(h.m().start("lan"), Error);
    CHECK_FALSE(h.runtime_file("takeover.json"));
    h.links.delete_address("eth0", ip("2001:db8:1::10"), 64);
    const std::string later = h.links.state();
    h.m().stop("lan");
    CHECK(h.links.state() == later);
}

// ---- 3. refusals --------------------------------------------------------------

TEST_CASE("Bridge-mode starts the manager refuses change nothing", "[manager]")
{
    Harness h;
    std::string uplink;
    ErrorKind kind = ErrorKind::Kernel;
    std::vector<std::string> mentions;
    SECTION("a wireless uplink")
    {
        uplink = "wlan0";
        kind = ErrorKind::Unsupported;
        mentions = {"wlan0", "wireless", "nat", "routed"};
    }
    SECTION("an uplink enslaved to another bridge")
    {
        uplink = "eth2";
        kind = ErrorKind::Conflict;
        mentions = {"eth2", "already enslaved to br-ext"};
    }
    SECTION("a missing uplink")
    {
        uplink = "eth9";
        kind = ErrorKind::NotFound;
        mentions = {"eth9"};
    }
    SECTION("a multipath route on the host")
    {
        uplink = "eth0";
        kind = ErrorKind::Unsupported;
        mentions = {"multipath"};
        h.links.add_raw_route({.family = AF_INET,
                               .destination = ip("10.50.0.0"),
                               .prefix_length = 16,
                               .link_index = 0,
                               .protocol = rtprot_static,
                               .unreproducible = true});
    }
    h.m().create(lan_with_uplink(uplink));
    const std::string before = h.links.state();
    h.links.reset_calls();
    const auto err = error_of([&] { h.m().start("lan"); });
    REQUIRE(err);
    CHECK(err->kind() == kind);
    for (const auto& m : mentions)
        CHECK_THAT(err->what(), Contains(m));
    CHECK(h.m().state("lan") == State::failed);
    CHECK(h.links.mutations().empty());
    CHECK(h.links.state() == before);
    CHECK(h.firewall.commits == 0);
    CHECK_FALSE(h.runtime_file("takeover.json"));
    CHECK_FALSE(h.runtime_file("active"));
}

TEST_CASE("A bridge network whose start failed can be stopped and deleted", "[manager]")
{
    // Regression (fixed in ba5166f): stop() of a failed bridge-mode network
    // found no takeover record to restore and threw, so remove() could never
    // delete a network whose start had been refused or rolled back.
    Harness h;
    std::string uplink = "eth0";
    SECTION("refused before any change") { uplink = "wlan0"; }
    SECTION("rolled back after a failing step") { h.links.fail_on("add_route", 2); }
    h.m().create(lan_with_uplink(uplink));
    const std::string before = h.links.state();
    CHECK_THROWS_AS(h.m().start("lan"), Error);
    REQUIRE(h.m().state("lan") == State::failed);
    h.links.reset_calls();
    CHECK_NOTHROW(h.m().stop("lan"));
    CHECK(h.m().state("lan") == State::inactive);
    CHECK(h.links.mutations().empty());
    CHECK_NOTHROW(h.m().remove("lan"));
    CHECK(h.m().names().empty());
    CHECK(h.links.state() == before);
}

}  // namespace unit_test_manager_bridge
