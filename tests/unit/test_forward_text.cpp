// Unit tests of the forwards written as text (model/forward_text.hpp, issue
// 12: kvmnetd's CPU per D-Bus call): every text is the bytes nlohmann
// writes for the same JSON (the forwards' members, ListForwards' counters,
// Describe's compact document, the stored document's dump(2)), and a
// manager whose static hosts and forwards change keeps Describe, Revision,
// ListForwards and the stored document exactly as they are made afresh.
#include "manager_test_prelude.hpp"

#include "model/forward.hpp"
#include "model/forward_text.hpp"
#include "random_forward.hpp"
#include "store/store.hpp"

namespace unit_test_forward_text {

namespace {

using kvmnet::testing::Lcg;

// Forwards of every shape: random ones of both families, and the members
// the generator leaves out (a named guest, descriptions that need escaping
// or carry UTF-8, rates).
std::vector<model::PortForward> assorted_forwards()
{
    Lcg rng{7};
    std::vector<model::PortForward> forwards;
    for (int i = 0; i < 200; ++i)
        forwards.push_back(kvmnet::testing::random_forward(rng, 60000, true));
    for (std::size_t i = 0; i < forwards.size(); i += 3)
        forwards[i].description = "load client " + std::to_string(i);
    forwards[1].description = R"(a "quoted" \ back\slash)";
    forwards[2].description = "caf\xc3\xa9 \xe2\x86\x92 guest";
    forwards[4].rate = 5;
    forwards[5].rate = 1000000;
    model::PortForward named;
    named.host_port_first = named.host_port_last = 8080;
    named.guest_name = "www";
    named.guest = *model::Ipv4::parse("192.168.122.20");
    named.guest_port_first = 80;
    forwards.push_back(named);
    return forwards;
}

}  // namespace

// (Their dump(2) form is checked in the stored document's text below.)
TEST_CASE("A forward's text is nlohmann's dump of to_json", "[forward][text]")
{
    for (const model::PortForward& f : assorted_forwards()) {
        INFO(model::to_json(f).dump());
        std::string text = "x";
        model::append_json_text(text, f);
        CHECK(text == "x" + model::to_json(f).dump());
    }
}

TEST_CASE("ListForwards' members join a forward's in nlohmann's order", "[forward][text]")
{
    for (const model::PortForward& f : assorted_forwards()) {
        for (const bool counters : {false, true})
            for (const std::size_t missing : {std::size_t{0}, std::size_t{3}}) {
                model::ForwardListing listing;
                listing.guest_address = !f.guest_name.empty();
                listing.counters = counters;
                listing.connections = 12;
                listing.first_packet_bytes = 1234567890123ull;
                listing.dropped = 1;
                listing.missing = counters ? missing : 0;
                nlohmann::json j = model::to_json(f);
                if (listing.guest_address) j["guest_address"] = f.guest.str();
                if (counters) {
                    j["connections"] = listing.connections;
                    j["first_packet_bytes"] = listing.first_packet_bytes;
                    j["dropped"] = listing.dropped;
                    if (listing.missing != 0)
                        j["problem"] = std::to_string(listing.missing) + " element(s) missing from the kernel";
                }
                std::string text;
                model::append_json_text(text, f, listing);
                CHECK(text == j.dump());
            }
    }
}

TEST_CASE("The stored document's text is to_json's dump(2)", "[forward][text]")
{
    model::Network n = model::parse_network(R"({"name": "a", "mode": "nat", "bridge": "kvmbra",
        "ipv4": {"address": "192.168.122.1/24", "dhcp": {"ranges": ["192.168.122.100-192.168.122.200"],
                 "hosts": [{"mac": "52:54:00:00:00:01", "ip": "192.168.122.20", "name": "www"}]}},
        "ipv6": {"address": "fd00::1/64"},
        "dns": {"domain": "kvm.lan", "hosts": [{"ip": "192.168.122.5", "names": ["a.kvm.lan", "b.kvm.lan"]}]},
        "limits": {"connections_per_source": 10}, "ports": [{"name": "tap7"}], "autostart": true})");
    CHECK(model::document_text(n) == model::to_json(n).dump(2) + "\n");  // no forwards
    n.forwards = assorted_forwards();
    CHECK(model::document_text(n) == model::to_json(n).dump(2) + "\n");
    // Describe's compact text, its forwards' items given, and the revision's (no forwards).
    std::string items;
    for (const model::PortForward& f : n.forwards) {
        if (!items.empty()) items += ',';
        model::append_json_text(items, f);
    }
    const nlohmann::json extra = {{"state", "active"}, {"state_reason", "a \"reason\""}};
    nlohmann::json whole = model::to_json(n);
    whole.update(extra);
    CHECK(model::network_text(n, true, -1, extra, &items) == whole.dump());
    CHECK(model::network_text(n, true, -1, extra) == whole.dump());
    CHECK(model::network_text(n, false, -1) == model::to_json(n, false).dump());
    CHECK(model::network_text(n, true, 4) == model::to_json(n).dump(4));
    // No DHCP hosts, no DHCP at all.
    n.ipv4->hosts.clear();
    CHECK(model::document_text(n) == model::to_json(n).dump(2) + "\n");
    n.ipv4->dhcp = false;
    n.forwards.clear();
    CHECK(model::document_text(n) == model::to_json(n).dump(2) + "\n");
    CHECK(model::network_text(n, true, -1) == model::to_json(n).dump());
}

namespace {

// Every read made of network `name` against the same read made afresh.
void check_reads(Manager& m, const std::string& name, const std::string& state_dir)
{
    CHECK(m.describe_text(name) == m.describe(name).dump());
    CHECK(m.revision(name) == kvmnet::store::revision_of(m.spec(name)));
    nlohmann::json listed = nlohmann::json::array();
    for (const auto& item : m.list_forwards_page(name, "", 4096).items)
        listed.push_back(item);
    CHECK(m.list_forwards_text(name) == listed.dump());
    // The document on disk is the one in memory (with its journal: the
    // forwards added or removed since the last save).
    const auto stored = kvmnet::store::read_file(state_dir + "/networks/" + name + ".json");
    REQUIRE(stored);
    CHECK(model::parse_network(*stored).ipv4 == m.spec(name).ipv4);
}

std::string forward(unsigned port, const std::string& guest = "10.7.0.10")
{
    return R"({"proto": "tcp", "host_port": )" + std::to_string(port) + R"(, "guest": ")" + guest +
           R"(", "guest_port": 80, "description": "client \"7\""})";
}

std::string host(unsigned n, const std::string& name = "")
{
    return R"({"mac": "52:54:00:00:07:)" + std::to_string(10 + n) + R"(", "ip": "10.7.0.)" + std::to_string(20 + n) +
           (name.empty() ? "" : R"(", "name": ")" + name) + R"("})";
}

}  // namespace

TEST_CASE("Host and forward changes keep Describe, Revision, ListForwards and the document exact",
          "[manager][forward][text]")
{
    Harness h;
    h.dnsmasq = write_fake_dnsmasq(h.state_dir.path);
    h.restart_manager();
    Manager& m = h.m();
    m.create(R"({"name": "web", "mode": "nat", "bridge": "kvmbr7", "ipv4": {"address": "10.7.0.1/24",
        "dhcp": {"ranges": ["10.7.0.100-10.7.0.200"]}}})");
    m.start("web");
    REQUIRE(m.state("web") == State::active);
    for (unsigned port = 8000; port < 8006; ++port)
        m.add_forwards("web", forward(port));
    check_reads(m, "web", h.state_dir.path);

    // Forwards naming no host: each host change keeps the forwards as they are.
    const std::string forwards_before = nlohmann::json::parse(m.describe_text("web"))["forwards"].dump();
    m.add_host("web", host(1));
    check_reads(m, "web", h.state_dir.path);
    m.add_forwards("web", forward(8100));
    m.remove_forward("web", model::make_forward_key("tcp", "", 8000));
    m.add_host("web", host(2));
    check_reads(m, "web", h.state_dir.path);
    m.remove_forward("web", model::make_forward_key("tcp", "", 8005));  // the last one
    m.remove_host("web", "52:54:00:00:07:11");
    check_reads(m, "web", h.state_dir.path);
    CHECK(nlohmann::json::parse(m.describe_text("web"))["forwards"].dump() != forwards_before);
    REQUIRE(m.spec("web").ipv4->hosts.size() == 1);

    // Refused host changes change nothing.
    const std::string revision = m.revision("web");
    CHECK_THROWS_AS(m.add_host("web", host(2)), Error);  // its MAC is there
    CHECK(m.revision("web") == revision);
    CHECK(m.spec("web").forwards.size() == 5);
    check_reads(m, "web", h.state_dir.path);

    // A forward naming a host: that host cannot go, the others can, and a
    // forward follows its host's address.
    m.add_host("web", host(3, "www"));
    m.add_forwards("web", forward(9000, "www"));
    check_reads(m, "web", h.state_dir.path);
    try {
        m.remove_host("web", "52:54:00:00:07:13");
        FAIL("removed the host a forward names");
    } catch (const Error& e) {
        CHECK_THAT(e.what(), StartsWith("forwards[5].guest: no static DHCP host named 'www'"));
    }
    check_reads(m, "web", h.state_dir.path);
    m.add_host("web", host(4));
    m.remove_host("web", "52:54:00:00:07:12");
    check_reads(m, "web", h.state_dir.path);
    CHECK(m.spec("web").forwards.size() == 6);
    CHECK(m.spec("web").forwards.back().guest.str() == "10.7.0.23");
}

}  // namespace unit_test_forward_text
