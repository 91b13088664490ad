// Unit tests of what one more network's start, and the re-check of every
// network after lost link notifications, ask of the kernel: only the new
// network's own links and addresses, never a dump of every link, so that
// both stay flat in the number of networks on the host (issue 17: the
// 1,000-network run blocked for 35 s at 812 networks).
#include "core/manager.hpp"
#include "document_util.hpp"
#include "manager_harness.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <sys/socket.h>

namespace unit_test_scale_dumps {

using Catch::Matchers::Contains;
using kvmnet::core::State;
using namespace kvmnet::test;

namespace {

std::string nat_document(int i)
{
    return R"({"name": "n)" + std::to_string(i) + R"(", "mode": "nat", "bridge": "kvn)" + std::to_string(i) +
           R"(", "ipv4": {"address": "10.80.)" + std::to_string(i) + R"(.1/24"}})";
}

}  // namespace

TEST_CASE("Starting one more network dumps no links", "[manager][scale]")
{
    HealingHarness h;  // "iso" running on kvmbr9
    for (int i = 1; i <= 3; ++i) {
        h.m().create(nat_document(i));
        h.m().start("n" + std::to_string(i));
    }
    h.m().create(nat_document(4));
    h.links.reset_calls();
    h.m().start("n4");
    REQUIRE(h.m().state("n4") == State::active);
    CHECK(h.links.count("list_links") == 0);
    // The new bridge's ports, not every link of the host.
    CHECK(h.links.count("list_ports") >= 1);
}

TEST_CASE("A subnet conflict still names the other program's interface", "[manager][scale]")
{
    Harness h;
    kvmnet::plan::LinkInfo theirs;
    theirs.name = "eth7";
    theirs.kind = "";
    const int index = h.links.add_link(theirs);
    h.links.add_address("eth7", ip("10.80.1.9"), 24);
    REQUIRE(h.links.link("eth7").index == index);
    h.m().create(nat_document(2));
    try {
        h.m().create(nat_document(1));
        h.m().start("n1");
        FAIL("no conflict");
    } catch (const kvmnet::Error& e) {
        CHECK(e.kind() == kvmnet::ErrorKind::Conflict);
        CHECK_THAT(std::string(e.what()), Contains("10.80.1.0/24 overlaps 10.80.1.9/24 on interface eth7"));
    }
}

TEST_CASE("Lost link notifications re-check every network once, each from its own bridge", "[manager][scale]")
{
    HealingHarness h;
    for (int i = 1; i <= 3; ++i) {
        h.m().create(nat_document(i));
        h.m().start("n" + std::to_string(i));
    }
    // The notification of this deletion is the one lost.
    h.links.delete_link("kvn2");
    h.links.reset_calls();
    h.m().recheck_links();
    h.let_repairs_run();
    REQUIRE(h.links.has("kvn2"));
    CHECK(h.links.addresses_on("kvn2").size() == 1);
    CHECK(h.m().state("n2") == State::active);
    // Per network its own bridge: O(networks), not a dump of the whole
    // host per network (O(networks²)). The one dump left looks for the
    // missing bridge under another name (renamed_bridge).
    CHECK(h.links.count("list_links") <= 1);
    CHECK(h.links.count("list_addresses_of") >= 1);
}

}  // namespace unit_test_scale_dumps
