// Unit tests of core::Manager against fake kernel adapters (manager_harness.hpp):
// port forwards on running and stopped networks.
#include "manager_test_prelude.hpp"

namespace unit_test_manager_forwards {

// ---- port forwards ----------------------------------------------------------

namespace {

std::size_t forward_elements_in(const FakeFirewall& f)
{
    std::size_t n = 0;
    for (const auto& set : plan::forward_sets())
        n += f.elements(set.name).size();
    return n;
}

}  // namespace

TEST_CASE("Forwards on a running network are element batches, journalled, and all or nothing", "[manager][forward]")
{
    Harness h;
    h.dnsmasq = write_fake_dnsmasq(h.state_dir.path);
    h.restart_manager();
    h.m().create(R"({"name": "web", "mode": "nat", "bridge": "kvmbr5", "ipv4": {"address": "10.5.0.1/24"}})");
    h.m().start("web");
    REQUIRE(h.m().state("web") == State::active);
    const int commits = h.firewall.commits;
    const std::string journal = h.state_dir.path + "/networks/web.forwards";

    const auto warnings = h.m().add_forwards(
        "web", R"([{"proto": "both", "host_port": "8000-8001", "guest": "10.5.0.10", "guest_port": "80-81"},
                   {"proto": "tcp", "host_port": 2222, "guest": "10.5.0.11", "guest_port": 22, "rate": 5}])");
    CHECK(h.firewall.commits == commits);  // no table replacement
    CHECK(h.firewall.element_batches == 1);
    CHECK(forward_elements_in(h.firewall) == 4 + 1 + 1);  // 2 ports x 2 protocols, the rated map and its over set
    CHECK(h.firewall.elements("fwd4_any_rate").at(0).limit_per_second == 5);
    CHECK(h.m().spec("web").forwards.size() == 2);
    CHECK(warnings.empty());
    CHECK(fs::exists(journal));
    // A listing knows each forward's elements (the fake's counters are 0).
    const auto listed = nlohmann::json::parse(h.m().list_forwards_text("web"));
    REQUIRE(listed.size() == 2);
    CHECK(listed[0]["connections"] == 0);
    CHECK_FALSE(listed[0].contains("problem"));

    SECTION("a forward over a local listener is added with a warning")
    {
        h.links.listeners = {{true, ip("0.0.0.0"), 9000}, {false, ip("0.0.0.0"), 9000}, {true, ip("127.0.0.1"), 9001}};
        REQUIRE(sd_event_run(h.loop.get(), 0) >= 0);  // listeners are listed once per loop turn
        const auto w =
            h.m().add_forwards("web", R"({"proto": "tcp", "host_port": 9000, "guest": "10.5.0.10", "guest_port": 80})");
        REQUIRE(w.size() == 1);
        CHECK_THAT(w[0], StartsWith("forward: a local process listens on tcp 0.0.0.0:9000"));
        CHECK(h.m().spec("web").forwards.size() == 3);
    }
    SECTION("a kernel failure changes nothing")
    {
        h.firewall.fail_elements = true;
        const std::string before = read_text(journal);
        CHECK_THROWS_AS(
            h.m().add_forwards("web", R"({"proto": "tcp", "host_port": 9000, "guest": "10.5.0.10", "guest_port": 80})"),
            Error);
        CHECK(h.m().spec("web").forwards.size() == 2);
        CHECK(read_text(journal) == before);
        CHECK_THROWS_AS(h.m().remove_forward("web", model::make_forward_key("tcp", "", 2222)), Error);
        CHECK(h.m().spec("web").forwards.size() == 2);
    }
    SECTION("refusals name the request's entries and change nothing")
    {
        try {
            h.m().add_forwards("web", R"([{"proto": "tcp", "host_port": 9000, "guest": "10.5.0.10", "guest_port": 80},
                                          {"proto": "udp", "host_port": 8001, "guest": "10.5.0.10", "guest_port": 80}])");
            FAIL("accepted a clashing forward");
        } catch (const Error& e) {
            CHECK(e.kind() == ErrorKind::Conflict);
            CHECK_THAT(e.what(), Catch::Matchers::StartsWith("forwards[1]: udp *:8001 is already forwarded"));
        }
        CHECK(forward_elements_in(h.firewall) == 6);
        CHECK(h.m().spec("web").forwards.size() == 2);
    }
    SECTION("remove takes exactly its elements away; the journal survives a restart")
    {
        h.m().remove_forward("web", model::make_forward_key("both", "", 8000));
        CHECK(forward_elements_in(h.firewall) == 2);
        CHECK_THROWS_AS(h.m().remove_forward("web", model::make_forward_key("both", "", 8000)), Error);
        h.restart_manager();
        h.m().load();
        REQUIRE(h.m().spec("web").forwards.size() == 1);
        CHECK(h.m().spec("web").forwards[0].host_port_first == 2222);
        CHECK_FALSE(fs::exists(journal));  // folded into the document at load
        CHECK(read_text(h.state_dir.path + "/networks/web.json").find("2222") != std::string::npos);
    }
    SECTION("an Update that changes only forwards and limits replaces the table, no restart")
    {
        nlohmann::json doc = h.m().describe("web");
        doc.erase("state");
        doc.erase("state_reason");
        doc["limits"] = {{"connections_per_source", 10}};
        doc["forwards"].erase(0);
        h.m().update("web", doc.dump());
        CHECK(h.m().state("web") == State::active);
        CHECK(forward_elements_in(h.firewall) == 2);
        CHECK(h.m().spec("web").limits.connections_per_source == 10u);
        CHECK_FALSE(fs::exists(journal));
    }
}

TEST_CASE("Forwards on a stopped network are stored and applied at start", "[manager][forward]")
{
    Harness h;
    h.dnsmasq = write_fake_dnsmasq(h.state_dir.path);
    h.restart_manager();
    h.m().create(R"({"name": "web", "mode": "nat", "bridge": "kvmbr5", "ipv4": {"address": "10.5.0.1/24",
        "dhcp": {"hosts": [{"mac": "52:54:00:00:00:0a", "ip": "10.5.0.10", "name": "www"}]}}})");
    h.m().add_forwards("web", R"({"proto": "tcp", "host_port": 8080, "guest": "WWW", "guest_port": 80})");
    CHECK(h.firewall.element_batches == 0);
    CHECK_FALSE(h.firewall.table);
    h.m().start("web");
    REQUIRE(h.firewall.elements("fwd4_any").size() == 1);
    CHECK(h.firewall.elements("fwd4_any")[0].data == std::vector<std::string>{"10.5.0.10", "80"});
    // The named host moves: its forward follows on the running network.
    nlohmann::json doc = h.m().describe("web");
    doc.erase("state");
    doc.erase("state_reason");
    doc["ipv4"]["dhcp"]["hosts"][0]["ip"] = "10.5.0.20";
    h.m().update("web", doc.dump());
    REQUIRE(h.firewall.elements("fwd4_any").size() == 1);
    CHECK(h.firewall.elements("fwd4_any")[0].data == std::vector<std::string>{"10.5.0.20", "80"});
    // A host that a forward names cannot go away under it.
    CHECK_THROWS_AS(h.m().remove_host("web", "52:54:00:00:00:0a"), Error);
}

}  // namespace unit_test_manager_forwards
