// Unit tests of the reads kept between changes (core/read_cache.hpp, issue
// 12: the D-Bus load). Whatever changes a network - forwards added, removed
// or reordered, static hosts, autostart, an Update, a start or stop, a
// degraded bridge, a Reload of an edited file, a delete and a new network of
// the same name - the kept Describe texts and the revision are exactly what
// they are when made afresh.
#include "manager_test_prelude.hpp"

#include "core/read_cache.hpp"
#include "model/network.hpp"
#include "store/store.hpp"

namespace unit_test_read_cache {

namespace {

// The kept reads of every network against the ones made from scratch.
void check_reads(Manager& m)
{
    for (const std::string& name : m.names()) {
        INFO("network " << name);
        CHECK(m.describe_text(name) == m.describe(name).dump());
        CHECK(m.revision(name) == kvmnet::store::revision_of(m.spec(name)));
    }
    nlohmann::json all = {{"networks", nlohmann::json::array()}};
    for (const std::string& name : m.names())
        all["networks"].push_back(m.describe(name));
    CHECK(m.describe_all_text() == all.dump());
}

std::string forward(unsigned port, const std::string& guest = "10.31.0.10")
{
    return R"({"proto": "tcp", "host_port": )" + std::to_string(port) + R"(, "guest": ")" + guest +
           R"(", "guest_port": 80})";
}

}  // namespace

TEST_CASE("Kept Describe texts and revisions follow every change of a network", "[manager][read-cache]")
{
    Harness h;
    Manager& m = h.m();
    m.create(R"({"name": "a", "mode": "nat", "bridge": "kvmbra", "ipv4": {"address": "10.31.0.1/24"}})");
    m.create(R"({"name": "b", "mode": "isolated", "bridge": "kvmbrb", "ipv4": {"address": "10.32.0.1/24",
                 "dhcp": {"ranges": ["10.32.0.100-10.32.0.200"]}}})");
    check_reads(m);  // made
    check_reads(m);  // kept

    SECTION("forwards added, removed and reordered")
    {
        for (unsigned port = 8000; port < 8005; ++port) {
            m.add_forwards("a", forward(port));
            check_reads(m);
        }
        m.remove_forward("a", kvmnet::model::make_forward_key("tcp", "", 8003));
        check_reads(m);
        // The same set again in another order, with no read in between:
        // the revision's forwards part (a sum) and the vector's size are
        // what they were, the text is not.
        const std::string before = m.describe_text("a");
        m.remove_forward("a", kvmnet::model::make_forward_key("tcp", "", 8001));
        m.add_forwards("a", forward(8001));
        check_reads(m);
        CHECK(m.describe_text("a") != before);
        nlohmann::json doc = kvmnet::model::to_json(m.spec("a"));
        std::reverse(doc["forwards"].begin(), doc["forwards"].end());
        const std::string revision = m.revision("a");
        m.update("a", doc.dump());
        check_reads(m);
        CHECK(m.revision("a") == revision);
        CHECK(nlohmann::json::parse(m.describe_text("a"))["forwards"] == doc["forwards"]);
    }
    SECTION("static hosts, autostart and an Update")
    {
        m.add_host("b", R"({"mac": "52:54:00:00:00:01", "ip": "10.32.0.11", "name": "one"})");
        check_reads(m);
        m.add_host("b", R"({"mac": "52:54:00:00:00:02", "ip": "10.32.0.12"})");
        check_reads(m);
        m.remove_host("b", "52:54:00:00:00:01");
        check_reads(m);
        m.set_autostart("a", true);
        check_reads(m);
        m.set_autostart("a", false);
        check_reads(m);
        nlohmann::json doc = kvmnet::model::to_json(m.spec("a"));
        doc["mtu"] = 1400;
        m.update("a", doc.dump());
        check_reads(m);
    }
    SECTION("start, a degraded bridge, stop")
    {
        // Bridge mode: no dnsmasq to start here.
        m.create(kvmnet::test::lan_document);
        check_reads(m);
        m.start("lan");
        check_reads(m);
        CHECK(nlohmann::json::parse(m.describe_text("lan"))["state"] == "active");
        h.links.delete_link("lan0");
        m.link_changed("eth0");  // released by the deletion
        m.link_changed("lan0");
        REQUIRE(m.state("lan") == State::degraded);
        check_reads(m);
        CHECK(nlohmann::json::parse(m.describe_text("lan"))["state_reason"] == m.state_reason("lan"));
        h.let_repairs_run();
        h.run_loop(10'000);
        check_reads(m);
        m.stop("lan");
        check_reads(m);
        CHECK(nlohmann::json::parse(m.describe_text("lan"))["state"] == "inactive");
    }
    SECTION("a Reload of an edited file")
    {
        const std::string path = h.state_dir.path + "/networks/a.json";
        nlohmann::json doc = nlohmann::json::parse(kvmnet::store::read_file(path).value());
        doc["mtu"] = 1400;
        kvmnet::store::write_atomic(path, doc.dump(2) + "\n");
        m.reload();
        check_reads(m);
        CHECK(nlohmann::json::parse(m.describe_text("a"))["mtu"] == 1400);
    }
    SECTION("deleted, and a new network of the same name")
    {
        const std::string old_text = m.describe_text("a");
        m.remove("a");
        check_reads(m);
        m.create(R"({"name": "a", "mode": "routed", "bridge": "kvmbra", "ipv4": {"address": "10.33.0.1/24"}})");
        check_reads(m);
        CHECK(m.describe_text("a") != old_text);
    }
}

TEST_CASE("The revision's document part is made again only when the document changes", "[read-cache]")
{
    std::uint64_t revisions_made = 0;  // document parts made, not taken from the cache
    kvmnet::core::ReadCache cache([&](const kvmnet::model::Network& spec) {
        ++revisions_made;
        return kvmnet::store::revision_base(spec);
    });
    kvmnet::model::Network n = kvmnet::model::parse_network(R"({"name": "a", "mode": "nat", "bridge": "kvmbra", "ipv4":
            {"address": "10.31.0.1/24", "dhcp": {"ranges": ["10.31.0.100-10.31.0.200"]}},
            "forwards": [{"proto": "tcp", "host_port": 80, "guest": "10.31.0.10", "guest_port": 80}]})");
    const auto revision = [&] { return cache.revision(n, kvmnet::store::forwards_hash(n.forwards)); };
    CHECK(revision() == kvmnet::store::revision_of(n));
    CHECK(revision() == kvmnet::store::revision_of(n));
    CHECK(revisions_made == 1);
    CHECK(n.forwards.size() == 1);  // set aside and back

    // Forwards only: the kept part, a new forwards part.
    n.forwards.push_back(n.forwards.front());
    n.forwards.back().host_port_first = n.forwards.back().host_port_last = 81;
    CHECK(revision() == kvmnet::store::revision_of(n));
    CHECK(revisions_made == 1);

    // Anything else: made again.
    n.ipv4->hosts.push_back({.mac = "52:54:00:00:00:01", .ip = *kvmnet::model::Ipv4::parse("10.31.0.11"), .name = ""});
    CHECK(revision() == kvmnet::store::revision_of(n));
    CHECK(revisions_made == 2);
    n.autostart = !n.autostart;
    CHECK(revision() == kvmnet::store::revision_of(n));
    CHECK(revisions_made == 3);
    CHECK(revision() == kvmnet::store::revision_of(n));
    CHECK(revisions_made == 3);

    // Gone, and back: compared like any change.
    cache.erase("a");
    CHECK(revision() == kvmnet::store::revision_of(n));
    CHECK(revisions_made == 4);
}

}  // namespace unit_test_read_cache
