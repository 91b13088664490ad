// Unit tests of core::Manager against fake kernel adapters (manager_harness.hpp):
// the counter dumps of Statistics and ListForwards kept across table applies
// that did not touch them, and what is read from them always what a fresh
// dump says (the fake's counters restart as the kernel's do).
#include "manager_test_prelude.hpp"
#include "plan/ruleset_parts.hpp"

#include <tuple>

namespace unit_test_counter_reuse {

namespace {

constexpr const char* web_document = R"({"name": "web", "mode": "nat", "bridge": "kvmbr5",
    "ipv4": {"address": "10.5.0.1/24", "dhcp": {"ranges": ["10.5.0.100-10.5.0.200"],
        "hosts": [{"mac": "52:54:00:00:05:01", "ip": "10.5.0.20", "name": "h1"}]}},
    "limits": {"new_connections_per_second": 10},
    "forwards": [{"proto": "tcp", "host_port": 8080, "guest": "10.5.0.10", "guest_port": 80},
                 {"proto": "udp", "host_port": 5353, "guest": "10.5.0.11", "guest_port": 53, "rate": 5},
                 {"proto": "tcp", "host_port": 2222, "guest": "h1", "guest_port": 22}]})";
constexpr const char* lab_document = R"({"name": "lab", "mode": "nat", "bridge": "kvmbr6",
    "ipv4": {"address": "10.6.0.1/24"}})";
constexpr const char* iso_document = R"({"name": "iso", "mode": "isolated", "bridge": "kvmbr7",
    "ipv4": {"address": "10.7.0.1/24"}})";

// What the reads say: each network's Statistics, web's ListForwards.
using Reads = std::tuple<std::string, std::string, std::string, std::string>;

struct CounterHarness : Harness {
    explicit CounterHarness(bool generations)
    {
        firewall.generations = generations;
        dnsmasq = write_fake_dnsmasq(state_dir.path);
        restart_manager();
        // A dump takes 10 us of the test's clock: the dumps are reused for
        // 20 times that, until the clock moves past it.
        firewall.dumping = [this] { clock.advance(10); };
        for (const char* doc : {web_document, lab_document, iso_document}) {
            const std::string name = m().create(doc);
            m().start(name);
            REQUIRE(m().state(name) == State::active);
        }
    }
    Reads read()
    {
        return {m().statistics("web").dump(), m().statistics("lab").dump(), m().statistics("iso").dump(),
                m().list_forwards_text("web")};
    }
    // Past any reuse window (at most 1 s here): what the kernel says now.
    Reads fresh()
    {
        clock.advance(2'000'000);
        return read();
    }
    nlohmann::json document(const std::string& name)
    {
        nlohmann::json doc = m().describe(name);
        doc.erase("state");
        doc.erase("state_reason");
        return doc;
    }
};

// Traffic, fresh dumps with it, `change`, and the reads after it (kept
// dumps where they are still true) against fresh dumps.
void check_after(CounterHarness& h, const std::function<void()>& change)
{
    h.firewall.traffic(7);
    const Reads before = h.fresh();
    INFO(std::get<0>(before));
    REQUIRE(std::get<0>(before).find("\"packets\":0") == std::string::npos);  // web's all counted something
    change();
    const Reads kept = h.read();
    const Reads now = h.fresh();
    CHECK(std::get<0>(kept) == std::get<0>(now));
    CHECK(std::get<1>(kept) == std::get<1>(now));
    CHECK(std::get<2>(kept) == std::get<2>(now));
    CHECK(std::get<3>(kept) == std::get<3>(now));
}

}  // namespace

TEST_CASE("Counters read across a change are what a fresh dump says", "[manager][forward][counters]")
{
    const bool generations = GENERATE(true, false);  // commits of differences, or whole tables
    CAPTURE(generations);
    CounterHarness h(generations);

    SECTION("a forward added")
    {
        check_after(h, [&] {
            h.m().add_forwards("web", R"({"proto": "tcp", "host_port": 9000, "guest": "10.5.0.12", "guest_port": 80})");
        });
    }
    SECTION("a forward removed")
    {
        check_after(h, [&] { h.m().remove_forward("web", model::make_forward_key("tcp", "", 8080)); });
    }
    SECTION("a forward removed and added again")
    {
        check_after(h, [&] {
            h.m().remove_forward("web", model::make_forward_key("udp", "", 5353));
            h.m().add_forwards(
                "web", R"({"proto": "udp", "host_port": 5353, "guest": "10.5.0.11", "guest_port": 53, "rate": 5})");
        });
    }
    SECTION("a static host added and removed")
    {
        check_after(h, [&] {
            h.m().add_host("web", R"({"mac": "52:54:00:00:05:02", "ip": "10.5.0.21", "name": "h2"})");
            h.m().remove_host("web", "52:54:00:00:05:02");
        });
    }
    SECTION("a named host moved: its forward's elements change")
    {
        check_after(h, [&] {
            nlohmann::json doc = h.document("web");
            doc["ipv4"]["dhcp"]["hosts"][0]["ip"] = "10.5.0.22";
            h.m().update("web", doc.dump());
        });
    }
    SECTION("web's limits changed: its chains are filled again")
    {
        check_after(h, [&] {
            nlohmann::json doc = h.document("web");
            doc["limits"]["new_connections_per_second"] = 20;
            h.m().update("web", doc.dump());
        });
    }
    SECTION("another network stopped and started")
    {
        check_after(h, [&] { h.m().stop("lab"); });
        check_after(h, [&] { h.m().start("lab"); });
    }
    SECTION("web stopped and started")
    {
        check_after(h, [&] {
            h.m().stop("web");
            h.m().start("web");
        });
    }
    SECTION("iso stopped and started")
    {
        check_after(h, [&] {
            h.m().stop("iso");
            h.m().start("iso");
        });
    }
    SECTION("the table deleted by someone else and repaired")
    {
        check_after(h, [&] {
            h.firewall.delete_table("kvmnet");  // nft delete table inet kvmnet
            h.m().firewall_changed("by nft (pid 4242)");
            h.let_repairs_run();
            REQUIRE(h.firewall.table);
        });
    }
}

TEST_CASE("A start or stop of another network keeps the counter dumps", "[manager][forward][counters]")
{
    CounterHarness h(true);
    h.fresh();
    const int element_dumps = h.firewall.element_dumps, rule_dumps = h.firewall.rule_dumps;
    h.m().stop("lab");
    h.m().start("lab");
    // web's drop counters, its limits rules and its forwards' elements:
    // none of them was touched, none is read again.
    h.m().statistics("web");
    h.m().list_forwards_text("web");
    CHECK(h.firewall.element_dumps == element_dumps);
    CHECK(h.firewall.rule_dumps == rule_dumps);
    // lab's elements were deleted and added: its drop counters are read again.
    h.m().statistics("lab");
    CHECK(h.firewall.element_dumps == element_dumps + static_cast<int>(plan::drop_counter_sets().size()));
    // A network without limits has no rules of its own to read.
    h.clock.advance(2'000'000);
    h.m().statistics("lab");
    h.m().statistics("iso");
    CHECK(h.firewall.rule_dumps == rule_dumps);
}

TEST_CASE("limits_chains names the chains plan_network_part makes", "[planner][counters]")
{
    for (const char* mode : {"nat", "routed", "isolated"})
        for (const nlohmann::json& limits :
             {nlohmann::json::object(), nlohmann::json{{"new_connections_per_second", 5}},
              nlohmann::json{{"connections_per_source", 3}},
              nlohmann::json{{"new_connections_per_second", 5}, {"connections_per_source", 3}}}) {
            nlohmann::json doc = nlohmann::json::parse(R"({"name": "web", "bridge": "kvmbr5",
                "ipv4": {"address": "10.5.0.1/24"}})");
            doc["mode"] = mode;
            if (std::string(mode) == "isolated" && !limits.empty()) continue;  // refused: nothing to limit
            doc["limits"] = limits;
            const model::Network n = model::parse_network(doc);
            std::vector<std::string> planned;
            for (const plan::Chain& c : plan::plan_network_part(n).chains)
                planned.push_back(c.name);
            CAPTURE(doc.dump());
            CHECK(plan::limits_chains(n) == planned);
        }
    const model::Network bridged =
        model::parse_network(nlohmann::json::parse(R"({"name": "lan", "mode": "bridge", "bridge": "lan0",
            "uplink": "eth0"})"));
    CHECK(plan::limits_chains(bridged) == std::vector<std::string>{});
    CHECK(plan::plan_network_part(bridged).chains.empty());
}

}  // namespace unit_test_counter_reuse
