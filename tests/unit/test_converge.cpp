// The converge path of the repairs: plan::plan_converge of a running network
// with what a repair observed (desired × observed → steps, pure), core::RepairTrigger (marks of every kind → one
// bounded-frequency, budgeted sync) and the two together in core::Manager.
#include "manager_test_prelude.hpp"

#include "core/repair_trigger.hpp"
#include "plan/converge.hpp"

namespace unit_test_converge {

namespace {

using plan::ConvergeStep;

model::Network converge_nat()
{
    return model::parse_network(R"({"name": "web", "mode": "nat", "bridge": "kvmbr5",
        "ipv4": {"address": "10.5.0.1/24"}, "ipv6": {"address": "fd00:5::1/64"},
        "ports": [{"name": "vm1"}, {"name": "vm2"}, {"name": "vm3"}]})");
}

LinkInfo converge_link(int index, const std::string& name, const std::string& alias = {}, int master = 0)
{
    LinkInfo l;
    l.index = index;
    l.name = name;
    l.alias = alias;
    l.master_index = master;
    l.up = true;
    l.kind = alias.empty() ? "tun" : "bridge";
    return l;
}

std::vector<std::string> described(const std::vector<ConvergeStep>& steps)
{
    std::vector<std::string> text;
    for (const ConvergeStep& s : steps)
        text.push_back(plan::describe(s));
    return text;
}

std::map<std::string, std::string> all_on(const model::Network& n)
{
    std::map<std::string, std::string> values;
    for (const auto& key : plan::held_sysctls(n))
        values[key] = "1";
    return values;
}

}  // namespace

TEST_CASE("plan_converge repairs: links", "[converge]")
{
    const model::Network n = converge_nat();
    plan::ConvergeObserved o;
    o.running = &n;                            // a repair: the network runs with its document
    CHECK(plan::plan_converge(n, o).empty());  // nothing observed, nothing planned
    o.links = true;
    SECTION("our bridge, or none: the driver re-plans it")
    {
        o.bridge = converge_link(5, "kvmbr5", "kvmnet:web");
        CHECK(described(plan::plan_converge(n, o)) == std::vector<std::string>{"repair links"});
        o.bridge.reset();
        CHECK(described(plan::plan_converge(n, o)) == std::vector<std::string>{"repair links"});
    }
    SECTION("renamed behind our back: renamed back first")
    {
        o.renamed = converge_link(5, "kvmbr-x", "kvmnet:web");
        CHECK(described(plan::plan_converge(n, o)) ==
              std::vector<std::string>{"rename kvmbr-x back to kvmbr5", "repair links"});
    }
    SECTION("someone else's interface under the name: left alone, and its ports too")
    {
        o.bridge = converge_link(5, "kvmbr5", "");
        o.ports.emplace();
        (*o.ports)["vm1"] = converge_link(7, "vm1");
        CHECK(described(plan::plan_converge(n, o)) ==
              std::vector<std::string>{"leave the interface under the bridge's name alone"});
    }
}

TEST_CASE("plan_converge repairs: ports", "[converge]")
{
    const model::Network n = converge_nat();
    plan::ConvergeObserved o;
    o.running = &n;  // a repair: the network runs with its document
    o.bridge = converge_link(5, "kvmbr5", "kvmnet:web");
    o.ports.emplace();
    (*o.ports)["vm1"] = std::nullopt;                    // gone (the VM stopped)
    (*o.ports)["vm2"] = converge_link(7, "vm2");         // back, not enslaved
    (*o.ports)["vm3"] = converge_link(8, "vm3", {}, 5);  // attached
    CHECK(described(plan::plan_converge(n, o)) == std::vector<std::string>{"port vm1 missing", "attach port vm2"});
    // A port whose last attach failed is tried again, attached or not.
    o.port_problems.insert("vm3");
    CHECK(described(plan::plan_converge(n, o)) ==
          std::vector<std::string>{"port vm1 missing", "attach port vm2", "attach port vm3"});
    // No bridge (being recreated): nothing to attach to.
    o.bridge.reset();
    CHECK(plan::plan_converge(n, o).empty());
}

TEST_CASE("plan_converge repairs: held sysctls", "[converge]")
{
    const model::Network n = converge_nat();
    CHECK(plan::held_sysctls(n) == std::vector<std::string>{"net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding",
                                                            "net/ipv4/conf/kvmbr5/forwarding",
                                                            "net/ipv4/conf/kvmbr5/route_localnet"});
    CHECK(plan::held_sysctls(
              model::parse_network(R"({"name": "iso", "mode": "isolated", "ipv4": {"address": "10.6.0.1/24"}})"))
              .empty());
    plan::ConvergeObserved o;
    o.running = &n;  // a repair: the network runs with its document
    o.sysctls = all_on(n);
    CHECK(plan::plan_converge(n, o).empty());
    SECTION("ip_forward off: the links' forwarding comes back with it, the rest is planned")
    {
        (*o.sysctls)["net/ipv4/ip_forward"] = "0";
        (*o.sysctls)["net/ipv4/conf/kvmbr5/forwarding"] = "0";
        (*o.sysctls)["net/ipv4/conf/kvmbr5/route_localnet"] = "0\n";
        CHECK(described(plan::plan_converge(n, o)) ==
              std::vector<std::string>{"turn on net/ipv4/ip_forward", "turn on net/ipv4/conf/kvmbr5/route_localnet"});
    }
    SECTION("the bridge's own forwarding off alone")
    {
        (*o.sysctls)["net/ipv4/conf/kvmbr5/forwarding"] = "0";
        CHECK(described(plan::plan_converge(n, o)) ==
              std::vector<std::string>{"turn on net/ipv4/conf/kvmbr5/forwarding"});
    }
    SECTION("unreadable or not observed: not planned")
    {
        (*o.sysctls)["net/ipv6/conf/all/forwarding"] = "";
        o.sysctls->erase("net/ipv4/conf/kvmbr5/route_localnet");
        CHECK(plan::plan_converge(n, o).empty());
    }
}

TEST_CASE("plan_converge repairs: the routes the kernel keeps for the gateway addresses", "[converge]")
{
    const model::Network n = converge_nat();
    const auto routes = plan::network_routes(n, 5);
    REQUIRE(routes.size() == 2);
    CHECK(routes[0].family == AF_INET);
    CHECK(routes[0].destination.value().str() == "10.5.0.0");
    CHECK(routes[0].prefix_length == 24);
    CHECK(routes[0].preferred_source.value().str() == "10.5.0.1");
    CHECK(routes[0].link_index == 5);
    CHECK(routes[1].family == AF_INET6);
    CHECK(routes[1].destination.value().str() == "fd00:5::");
    CHECK(routes[1].metric == 256);
    CHECK(plan::network_routes(model::parse_network(R"({"name": "lan", "mode": "bridge", "uplink": "eth0"})"), 5)
              .empty());

    plan::ConvergeObserved o;
    o.running = &n;
    o.bridge = converge_link(5, "kvmbr5", "kvmnet:web");
    o.routes.emplace();
    for (const auto& [address, prefix] : {std::tuple{"10.5.0.1", 24}, std::tuple{"fd00:5::1", 64}}) {
        AddressInfo a;
        a.link_index = 5;
        a.address = model::IpAddress::parse(address).value();
        a.prefix_length = static_cast<std::uint8_t>(prefix);
        o.routes->addresses.push_back(a);
    }
    o.routes->routes = routes;
    CHECK(plan::plan_converge(n, o).empty());
    SECTION("a deleted subnet route comes back")
    {
        o.routes->routes.erase(o.routes->routes.begin());
        const auto steps = plan::plan_converge(n, o);
        CHECK(described(steps) == std::vector<std::string>{"add route 10.5.0.0/24"});
        CHECK(std::get<plan::AddRoute>(steps.at(0)).route.preferred_source.value().str() == "10.5.0.1");
        o.routes->routes.clear();
        CHECK(described(plan::plan_converge(n, o)) ==
              std::vector<std::string>{"add route 10.5.0.0/24", "add route fd00:5::/64"});
    }
    SECTION("one that someone replaced (another metric) is theirs")
    {
        o.routes->routes[0].metric = 50;
        o.routes->routes[0].protocol = 4;
        CHECK(plan::plan_converge(n, o).empty());
    }
    SECTION("not without its address, on a bridge that is down or not ours, or with links observed")
    {
        o.routes->routes.clear();
        o.routes->addresses.clear();
        CHECK(plan::plan_converge(n, o).empty());  // re-adding the address brings its route
    }
    SECTION("a bridge that is down: setting it up brings them back")
    {
        o.routes->routes.clear();
        o.bridge->up = false;
        CHECK(plan::plan_converge(n, o).empty());
    }
    SECTION("links observed: the links repair first, routes at the next observation")
    {
        o.routes->routes.clear();
        o.links = true;
        CHECK(described(plan::plan_converge(n, o)) == std::vector<std::string>{"repair links"});
    }
    SECTION("someone else's bridge")
    {
        o.routes->routes.clear();
        o.bridge->alias = "";
        CHECK(plan::plan_converge(n, o).empty());
    }
}

// ---- the trigger -------------------------------------------------------------

namespace {

struct TriggerHarness {
    FakeClock clock;
    std::vector<std::map<std::string, plan::DriftKinds>> syncs;
    // What the sync does with each scope: ask the budget (true) or find nothing to change (false).
    bool changes = true;
    std::vector<std::string> denied;
    core::RepairTrigger trigger{clock, [this](const std::map<std::string, plan::DriftKinds>& due) {
                                    syncs.push_back(due);
                                    if (!changes) return;
                                    for (const auto& [scope, kinds] : due)
                                        if (!trigger.allow(scope)) denied.push_back(scope);
                                }};
};

}  // namespace

TEST_CASE("RepairTrigger: the first mark syncs almost at once, later ones at a bounded frequency", "[converge]")
{
    TriggerHarness t;
    // After a quiet spell: 5 ms (the rest of the kernel's burst joins it),
    // not a debounce of 100 ms (a deleted bridge waited for it).
    t.trigger.mark("web", plan::drift_links);
    t.clock.advance(4'000);
    t.trigger.mark("web", plan::drift_addresses);
    CHECK(t.syncs.empty());
    t.clock.advance(1'000);
    REQUIRE(t.syncs.size() == 1);
    CHECK(t.syncs[0].at("web") == (plan::drift_links | plan::drift_addresses));
    // Marks of any scope and kind until 100 ms after that sync began are
    // one sync then: a storm is one sync per interval.
    t.clock.advance(45'000);
    t.trigger.mark("web", plan::drift_addresses);
    t.trigger.mark("web", plan::drift_sysctls);
    t.trigger.mark("db", plan::drift_ports);
    t.trigger.mark("", plan::drift_firewall);
    t.clock.advance(54'000);  // 104 ms: the first sync began at 5 ms
    CHECK(t.syncs.size() == 1);
    t.clock.advance(1'000);
    REQUIRE(t.syncs.size() == 2);
    CHECK(t.syncs[1].at("web") == (plan::drift_addresses | plan::drift_sysctls));
    CHECK(plan::drift_kinds_text(t.syncs[1].at("web")) == "addresses, sysctls");
    CHECK(t.syncs[1].at("db") == plan::drift_ports);
    CHECK(t.syncs[1].at("") == plan::drift_firewall);
    t.clock.advance(1'000'000);
    CHECK(t.syncs.size() == 2);
    // Quiet again: at once again.
    t.trigger.mark("db", plan::drift_links);
    t.clock.advance(5'000);
    CHECK(t.syncs.size() == 3);
    // A stopped network's marks go with it.
    t.trigger.mark("web", plan::drift_links);
    t.trigger.forget("web");
    t.clock.advance(1'000'000);
    CHECK(t.syncs.size() == 3);
}

TEST_CASE("RepairTrigger: over the budget a scope's repair is deferred, kept and run after a backoff", "[converge]")
{
    TriggerHarness t;
    for (int i = 0; i < 20; ++i) {
        t.trigger.mark("web", i % 2 ? plan::drift_links : plan::drift_sysctls);
        t.clock.advance(100'000);
    }
    CHECK(t.syncs.size() == 20);
    CHECK(t.denied.empty());
    // A sync that changes nothing costs nothing.
    t.changes = false;
    t.trigger.mark("web", plan::drift_ports);
    t.clock.advance(100'000);
    t.changes = true;
    CHECK(t.trigger.waiting("web").empty());

    t.trigger.mark("web", plan::drift_links);
    t.clock.advance(100'000);
    CHECK(t.denied == std::vector<std::string>{"web"});
    CHECK(t.trigger.waiting("web") ==
          "repair of links over the repair budget of 20 repairs per minute; retrying in 1 s");
    CHECK(t.trigger.pending("web"));
    // Other scopes have budgets of their own.
    t.trigger.mark("", plan::drift_firewall);
    t.clock.advance(100'000);
    CHECK(t.denied.size() == 1);
    CHECK(t.syncs.back().count("") == 1);
    // Marks meanwhile wait with it, then run together, granted.
    t.trigger.mark("web", plan::drift_addresses);
    const auto before = t.syncs.size();
    t.clock.advance(700'000);
    CHECK(t.syncs.size() == before);
    t.clock.advance(200'000);
    REQUIRE(t.syncs.size() == before + 1);
    CHECK(t.syncs.back().at("web") == (plan::drift_links | plan::drift_addresses));
    CHECK(t.denied.size() == 1);
    CHECK(t.trigger.waiting("web").empty());
    // The next one in the window waits twice as long.
    t.trigger.mark("web", plan::drift_links);
    t.clock.advance(100'000);
    CHECK(t.trigger.waiting("web") ==
          "repair of links over the repair budget of 20 repairs per minute; retrying in 2 s");
    // A new window: at once again.
    t.clock.advance(61'000'000);
    t.trigger.mark("web", plan::drift_links);
    t.clock.advance(100'000);
    CHECK(t.trigger.waiting("web").empty());
    // What waits is named: a deferred sysctl repair is not a link repair.
    for (int i = 0; i < 19; ++i) {
        t.trigger.mark("web", plan::drift_links);
        t.clock.advance(100'000);
    }
    t.trigger.mark("web", plan::drift_sysctls);
    t.clock.advance(100'000);
    CHECK(t.trigger.waiting("web") ==
          "repair of sysctls over the repair budget of 20 repairs per minute; retrying in 1 s");
}

// ---- in the manager ----------------------------------------------------------

TEST_CASE("Converge: drift of links, sysctls and the table within one burst is one sync", "[manager][converge]")
{
    HealingHarness h;
    const int commits = h.firewall.commits;
    h.links.set_up("kvmbr9", false);
    h.links.sysctls["net/ipv4/conf/kvmbr9/route_localnet"] = "0";
    h.firewall.table.reset();
    h.m().link_changed("kvmbr9");
    h.m().sysctl_changed();
    h.m().firewall_changed("by nft (pid 4242)");
    CHECK(h.m().state("iso") == State::degraded);
    CHECK(h.listener.repairs.empty());
    h.let_repairs_run();
    CHECK(h.links.link("kvmbr9").up);
    CHECK(h.links.sysctls["net/ipv4/conf/kvmbr9/route_localnet"] == "1");
    CHECK(h.firewall.commits == commits + 1);
    CHECK(h.m().state("iso") == State::active);
    std::vector<std::string> repairs = h.listener.repairs;
    std::sort(repairs.begin(), repairs.end());
    REQUIRE(repairs.size() == 3);
    CHECK_THAT(repairs[0], StartsWith("iso firewall: re-applied table inet kvmnet"));
    CHECK(repairs[1] == "iso link: set bridge kvmbr9 up again");
    CHECK(repairs[2] ==
          "iso sysctl: turned net.ipv4.conf.kvmbr9.route_localnet on again after it was turned off outside kvmnet");
    // Nothing left for a later sync.
    h.links.reset_calls();
    h.clock.advance(10'000'000);
    CHECK(h.links.mutations().empty());
    CHECK(h.listener.repairs.size() == 3);
    h.m().stop("iso");
}

TEST_CASE("Converge: every kind of drift counts against the network's one budget", "[manager][converge]")
{
    HealingHarness h;
    const std::string localnet = "net/ipv4/conf/kvmbr9/route_localnet";
    for (int i = 0; i < 10; ++i) {
        h.links.set_up("kvmbr9", false);
        h.m().link_changed("kvmbr9");
        h.let_repairs_run();
        h.links.sysctls[localnet] = "0";
        h.m().sysctl_changed();
        h.let_repairs_run();
    }
    REQUIRE(h.links.link("kvmbr9").up);
    REQUIRE(h.links.sysctls[localnet] == "1");
    REQUIRE(h.listener.repairs.size() == 20);
    // The 21st, of either kind, is deferred with the reason in the state.
    h.links.sysctls[localnet] = "0";
    h.m().sysctl_changed();
    h.let_repairs_run();
    CHECK(h.links.sysctls[localnet] == "0");
    CHECK(h.m().state("iso") == State::degraded);
    CHECK(h.m().state_reason_code("iso") == "repair-budget");
    // The table has a budget of its own.
    const int commits = h.firewall.commits;
    h.firewall.table.reset();
    h.m().firewall_changed("by nft (pid 4242)");
    h.let_repairs_run();
    CHECK(h.firewall.commits == commits + 1);
    // Deferred, not dropped.
    h.clock.advance(1'000'000);
    CHECK(h.links.sysctls[localnet] == "1");
    CHECK(h.m().state("iso") == State::active);
    h.m().stop("iso");
}

// ---- Update: the cheapest path to the new document ----------------------------

TEST_CASE("plan_update: each path changes only what it can", "[converge]")
{
    const model::Network n = model::parse_network(R"({"name": "web", "mode": "nat", "bridge": "kvmbr5",
        "ipv4": {"address": "10.5.0.1/24", "dhcp": {"ranges": ["10.5.0.100-10.5.0.200"]}}})");
    using plan::UpdatePath;
    const auto path = [&](const model::Network& next, bool running = true) {
        return plan::update_path_name(plan::plan_update(n, next, running));
    };
    // An equal document is no update at all (Manager::update answers at once).
    model::Network next = n;
    next.ipv4->hosts.push_back({});
    next.ipv4->hosts.back().mac = "52:54:00:00:00:07";
    next.ipv4->hosts.back().ip = *model::Ipv4::parse("10.5.0.7");
    CHECK(path(next) == std::string("hosts"));
    CHECK(path(next, false) == std::string("store"));
    const auto forward = model::parse_network(R"({"name": "x", "mode": "nat", "ipv4": {"address": "10.5.0.1/24"},
        "forwards": [{"proto": "tcp", "host_port": 8080, "guest": "10.5.0.5", "guest_port": 80}]})")
                             .forwards.at(0);
    next = n;
    next.forwards.push_back(forward);
    CHECK(path(next) == std::string("table"));
    next = n;
    next.mtu = 9000;
    next.stp = true;
    next.autostart = true;
    next.ports.push_back({});
    next.ports.back().name = "vm1";
    CHECK(path(next) == std::string("live"));
    // A live change and a table change at once: a restart.
    next.forwards.push_back(forward);
    CHECK(path(next) == std::string("restart"));
    next = n;
    next.dns.domain = "example.test";
    CHECK(path(next) == std::string("restart"));
    CHECK(path(next, false) == std::string("store"));
}

}  // namespace unit_test_converge
