// Start and live update on the converge path: plan::plan_converge (pure:
// nothing running → a whole start; the old document running → only the
// steps that differ), and core::Manager applying it, where a live update
// that fails half way converges back to the old document.
#include "manager_test_prelude.hpp"
#include "plan/converge.hpp"

namespace unit_test_converge_start {

namespace {

std::vector<std::string> step_names(const std::vector<plan::ConvergeStep>& steps)
{
    std::vector<std::string> names;
    for (const auto& step : steps)
        names.push_back(plan::describe(step));
    return names;
}

model::Network start_nat()
{
    return model::parse_network(R"({"name": "web", "mode": "nat", "bridge": "kvmbr5",
        "ipv4": {"address": "10.5.0.1/24", "dhcp": {"ranges": ["10.5.0.100-10.5.0.200"]}},
        "ports": [{"name": "vm1", "tap": true}, {"name": "vm2", "tap": true}]})");
}

}  // namespace

TEST_CASE("plan_converge: nothing running plans a whole start", "[converge]")
{
    using V = std::vector<std::string>;
    CHECK(step_names(plan::plan_converge(start_nat(), {})) ==
          V{"set up links", "commit table", "hold forwarding", "attach ports", "start dnsmasq", "record active"});
    // Without IPv4 there is no dnsmasq to wait for.
    const auto lan = model::parse_network(lan_document);
    CHECK(step_names(plan::plan_converge(lan, {})) ==
          V{"set up links", "commit table", "hold forwarding", "attach ports", "record active"});
}

TEST_CASE("plan_converge: the old document running plans only what differs", "[converge]")
{
    using V = std::vector<std::string>;
    const model::Network old = start_nat();
    CHECK(plan::plan_converge(old, {&old, 1500}).empty());

    model::Network next = old;
    next.stp = true;
    CHECK(step_names(plan::plan_converge(next, {&old, 1500})) == V{"set bridge options"});

    // A setting the old document leaves to the kernel goes back to the
    // kernel's default, not left as the new one set it.
    next.multicast_snooping = false;
    next.priority = 4096;
    next.hello_time = 5;
    const auto back = plan::plan_converge(old, {&next, 1500});
    REQUIRE(back.size() == 1);
    const auto& options = std::get<plan::SetBridgeOptions>(back[0]).options;
    CHECK(options.multicast_snooping == true);
    CHECK(options.priority == 0x8000);
    CHECK(options.hello_time_cs == 200);
    CHECK(options.max_age_cs == 0);  // neither sets it: left alone
    CHECK_FALSE(options.stp);

    next = old;
    next.ports.erase(next.ports.begin());  // vm1 goes
    next.ports.back().isolated = true;     // vm2 changes
    next.ports.push_back({});              // vm3 comes
    next.ports.back().name = "vm3";
    CHECK(step_names(plan::plan_converge(next, {&old, 1500})) ==
          V{"detach port vm1", "apply port vm2", "apply port vm3"});

    // The ports' MTU follows the bridge's: every port is applied again (the
    // MTU is one of the bridge options too).
    next = old;
    next.mtu = 9000;
    CHECK(step_names(plan::plan_converge(next, {&old, 1500})) ==
          V{"set bridge options", "set bridge MTU 9000", "apply port vm1", "apply port vm2"});
    // Back to a document without an MTU: the bridge's as it was observed.
    CHECK(step_names(plan::plan_converge(old, {&next, 1500})) ==
          V{"set bridge options", "set bridge MTU 1500", "apply port vm1", "apply port vm2"});
    CHECK(step_names(plan::plan_converge(old, {&next, 0})) ==
          V{"set bridge options", "apply port vm1", "apply port vm2"});
}

TEST_CASE("A start runs its converge step by step and waits for nothing but dnsmasq", "[manager][converge]")
{
    Harness h;
    h.m().create(lan_document);
    h.m().start("lan");
    CHECK(h.m().state("lan") == State::active);
    CHECK(h.runtime_file("active"));
    // A start that fails half way tears down what it made.
    h.m().stop("lan");
    const std::string before = h.links.state();
    h.links.reset_calls();
    h.links.fail_on("set_master", 1);  // the uplink onto the new bridge
    CHECK_THROWS_AS(h.m().start("lan"), Error);
    CHECK(h.m().state("lan") == State::failed);
    CHECK(h.links.state() == before);
    CHECK_FALSE(h.runtime_file("active"));
}

TEST_CASE("Regression: a live Update that fails half way converges back to the old document", "[manager][converge]")
{
    Harness h;
    h.m().create(R"({"name": "lan", "mode": "bridge", "bridge": "lan0", "uplink": "eth0",
                     "ports": [{"name": "vm1", "tap": true}]})");
    h.m().start("lan");
    REQUIRE(h.links.has("vm1"));
    const std::string before = h.links.state();
    const auto spec_before = h.m().spec("lan");
    const std::string stored = *kvmnet::store::read_file(h.state_dir.path + "/networks/lan.json");

    SECTION("ports added before the failing one go again (before the fix vm2 stayed on the bridge)")
    {
        h.links.reset_calls();
        h.links.fail_on("create_tap", 2);  // vm3's
        CHECK_THROWS_AS(h.m().update("lan", R"({"name": "lan", "mode": "bridge", "bridge": "lan0",
            "uplink": "eth0", "stp": true, "forward_delay": 2, "ports": [{"name": "vm1", "tap": true}, {"name": "vm2", "tap": true},
            {"name": "vm3", "tap": true}]})"),
                        Error);
        CHECK(h.links.count("create_tap") == 2);  // failed where it should, not at validation
        CHECK_FALSE(h.links.has("vm2"));
        CHECK_FALSE(h.links.has("vm3"));
        CHECK(h.links.state() == before);
    }
    SECTION("a port the update removed is attached again")
    {
        h.links.reset_calls();
        h.links.fail_on("create_tap", 1);  // vm2's, after vm1 was detached (its tap deleted)
        CHECK_THROWS_AS(h.m().update("lan", R"({"name": "lan", "mode": "bridge", "bridge": "lan0",
            "uplink": "eth0", "ports": [{"name": "vm2", "tap": true}]})"),
                        Error);
        CHECK(h.links.count("create_tap") == 2);  // vm2's failed, vm1's came back
        CHECK_FALSE(h.links.has("vm2"));
        REQUIRE(h.links.has("vm1"));
        CHECK(h.links.link("vm1").master_index == h.links.link("lan0").index);
        CHECK(h.links.link("vm1").up);
    }
    CHECK(h.m().spec("lan") == spec_before);
    CHECK(*kvmnet::store::read_file(h.state_dir.path + "/networks/lan.json") == stored);
    CHECK(kvmnet::core::is_running(h.m().state("lan")));
}

}  // namespace unit_test_converge_start
