// Unit tests of multiqueue guest ports: the document's "queues" (model), and
// the manager making, listing and re-making taps with IFF_MULTI_QUEUE against
// fake kernel adapters (manager_harness.hpp).
#include "manager_test_prelude.hpp"

namespace unit_test_port_queues {

namespace {

std::optional<Error> parse_error(const std::string& port)
{
    return error_of([&] { kvmnet::model::parse_port(port); });
}

}  // namespace

TEST_CASE("Port queues: validated, only for taps, 1 is the default and left out", "[model][ports]")
{
    CHECK(kvmnet::model::parse_port(R"({"name": "t0", "tap": true})").queues == 1);
    CHECK(kvmnet::model::parse_port(R"({"name": "t0", "tap": true, "queues": 1})").queues == 1);
    CHECK(kvmnet::model::parse_port(R"({"name": "t0", "tap": true, "queues": 4})").queues == 4);
    CHECK(kvmnet::model::parse_port(R"({"name": "t0", "tap": true, "queues": 256})").queues == 256);

    for (const char* bad : {"0", "257", "-1", "65537", "2.5", "\"4\"", "true", "null"}) {
        INFO(bad);
        std::string port = R"({"name": "t0", "tap": true, "queues": )";
        port.append(bad).append("}");
        const auto err = parse_error(port);
        REQUIRE(err);
        CHECK(err->kind() == ErrorKind::InvalidArgument);
        CHECK_THAT(err->what(), StartsWith("port.queues: must be an integer between 1 and 256"));
    }
    const auto not_tap = parse_error(R"({"name": "veth0", "queues": 4})");
    REQUIRE(not_tap);
    CHECK(not_tap->kind() == ErrorKind::InvalidArgument);
    CHECK_THAT(not_tap->what(), StartsWith("port.queues: only meaningful for taps"));

    // In a whole document the path names the port's place.
    const auto in_document = error_of([] {
        kvmnet::model::parse_network(
            R"({"name": "n", "mode": "isolated", "ipv4": {"address": "10.1.0.1/24"}, "ports": [{"name": "t0", "tap": true, "queues": 0}]})");
    });
    REQUIRE(in_document);
    CHECK_THAT(in_document->what(), StartsWith("ports[0].queues: must be"));

    CHECK_FALSE(kvmnet::model::to_json(kvmnet::model::parse_port(R"({"name": "t0", "tap": true, "queues": 1})"))
                    .contains("queues"));
    const auto four = kvmnet::model::parse_port(R"({"name": "t0", "tap": true, "queues": 4})");
    CHECK(kvmnet::model::to_json(four)["queues"] == 4);
    CHECK(kvmnet::model::parse_port(kvmnet::model::to_json(four).dump()) == four);
}

TEST_CASE("Port queues: the manager makes the tap multiqueue, lists it, and re-makes it so", "[manager][ports]")
{
    HealingHarness h;

    SECTION("queues > 1 creates an IFF_MULTI_QUEUE tap; ListPorts shows the kernel's flag")
    {
        h.m().attach_port("iso", R"({"name": "mq0", "tap": true, "owner": 1000, "group": 1000, "queues": 4})");
        REQUIRE(h.links.has("mq0"));
        CHECK(h.links.fake("mq0").multi_queue);
        const auto ports = h.m().list_ports("iso");
        REQUIRE(ports.size() == 1);
        CHECK(ports[0]["queues"] == 4);
        CHECK(ports[0]["multi_queue"] == true);
        CHECK(ports[0]["open_queues"] == 0);
        CHECK(h.m().spec("iso").ports.at(0).queues == 4);
    }
    SECTION("a single-queue tap stays as taps were")
    {
        h.m().attach_port("iso", R"({"name": "sq0", "tap": true})");
        CHECK_FALSE(h.links.fake("sq0").multi_queue);
        const auto ports = h.m().list_ports("iso");
        CHECK_FALSE(ports.at(0).contains("queues"));
        CHECK(ports.at(0)["multi_queue"] == false);
    }
    SECTION("a tap of a stopped network is made multiqueue at attach")
    {
        h.m().stop("iso");
        h.m().attach_port("iso", R"({"name": "mq0", "tap": true, "queues": 2})");
        CHECK(h.links.fake("mq0").multi_queue);
    }
    SECTION("a deleted tap comes back multiqueue when the deleted bridge is recreated")
    {
        h.m().attach_port("iso", R"({"name": "mq0", "tap": true, "queues": 4})");
        h.links.delete_link("mq0");
        h.links.delete_link("kvmbr9");
        h.m().link_changed("mq0");
        h.m().link_changed("kvmbr9");
        h.let_repairs_run();
        REQUIRE(h.links.has("kvmbr9"));
        REQUIRE(h.links.has("mq0"));
        CHECK(h.links.fake("mq0").multi_queue);
        CHECK(h.links.fake("mq0").info.master_index == h.links.link("kvmbr9").index);
    }
    SECTION("a deleted tap comes back multiqueue at the next start")
    {
        h.m().attach_port("iso", R"({"name": "mq0", "tap": true, "queues": 4})");
        h.m().stop("iso");
        h.links.delete_link("mq0");
        h.m().start("iso");
        REQUIRE(h.links.has("mq0"));
        CHECK(h.links.fake("mq0").multi_queue);
    }
    SECTION("re-attaching may change the count but not single- to multiqueue while the tap exists")
    {
        h.m().attach_port("iso", R"({"name": "mq0", "tap": true, "queues": 4})");
        h.m().attach_port("iso", R"({"name": "mq0", "tap": true, "queues": 8})");
        CHECK(h.m().spec("iso").ports.at(0).queues == 8);
        const auto spec_before = h.m().spec("iso");
        const std::string before = h.links.state();
        const auto err = error_of([&] { h.m().attach_port("iso", R"({"name": "mq0", "tap": true})"); });
        REQUIRE(err);
        CHECK(err->kind() == ErrorKind::Conflict);
        CHECK_THAT(err->what(), StartsWith("port.queues: tap mq0 exists as a multiqueue tap"));
        CHECK(h.m().spec("iso") == spec_before);
        CHECK(h.links.state() == before);
    }
    SECTION("bad queues change nothing")
    {
        const auto spec_before = h.m().spec("iso");
        const std::string before = h.links.state();
        const auto err = error_of([&] { h.m().attach_port("iso", R"({"name": "mq0", "tap": true, "queues": 300})"); });
        REQUIRE(err);
        CHECK(err->kind() == ErrorKind::InvalidArgument);
        CHECK_THAT(err->what(), StartsWith("port.queues: "));
        CHECK(h.links.count("create_tap") == 0);
        CHECK(h.m().spec("iso") == spec_before);
        CHECK(h.links.state() == before);
    }
}

}  // namespace unit_test_port_queues
