// Unit tests of core::Manager against fake kernel adapters (manager_harness.hpp):
// a link's removal (RTM_DELLINK) is judged without looking the link up. The
// lookup waited for RTNL while a Stop's worker deleted the bridge, and the
// next call (a start of one more network) waited behind it.
#include "manager_test_prelude.hpp"

namespace unit_test_link_removed {

TEST_CASE("A removed link is judged gone without a lookup", "[manager][repair]")
{
    HealingHarness h;
    h.links.delete_link("kvmbr9");
    h.links.reset_calls();
    h.m().link_changed("kvmbr9", true);
    // Only the running network's own assessment of its bridge looks.
    CHECK(h.links.count("find_link") == 1);
    CHECK(h.m().state("iso") == State::degraded);
    CHECK_THAT(h.m().state_reason("iso"), Contains("kvmbr9 was deleted"));
    h.let_repairs_run();
    REQUIRE(h.links.has("kvmbr9"));
    CHECK(h.bridge_addresses() == healthy_addresses);
    CHECK(h.m().state("iso") == State::active);
}

TEST_CASE("A removal heard after the link was made again is put right by the repair", "[manager][repair]")
{
    // Notifications describe the past: the removal arrives after the bridge
    // exists again. Judged gone, the repair's sync finds it healthy and
    // changes nothing in the kernel.
    HealingHarness h;
    h.links.reset_calls();
    h.m().link_changed("kvmbr9", true);
    CHECK(h.links.count("find_link") == 1);  // the assessment's
    h.let_repairs_run();
    CHECK(h.links.mutations().empty());
    CHECK(h.m().state("iso") == State::active);
    CHECK(h.listener.repairs.empty());
}

TEST_CASE("The removal of an earlier link of the bridge's name leaves the running bridge alone", "[manager][repair]")
{
    // A stop's old bridge, heard after a start made the new one: another
    // index than the running bridge's. Nothing is looked up or repaired.
    HealingHarness h;
    const auto bridge = h.links.find_link("kvmbr9");
    REQUIRE(bridge);
    h.m().link_changed("kvmbr9");  // the running network takes its index from this lookup
    h.links.reset_calls();
    h.m().link_changed("kvmbr9", true, bridge->index + 1000);
    CHECK(h.links.count("find_link") == 0);
    CHECK(h.m().state("iso") == State::active);
    h.let_repairs_run();
    CHECK(h.listener.repairs.empty());
    h.links.reset_calls();
    // The removal of the running bridge itself is judged as before.
    h.m().link_changed("kvmbr9", true, bridge->index);
    CHECK(h.links.count("find_link") == 1);  // the assessment's
}

TEST_CASE("A link that changed, not removed, is still looked up once", "[manager][repair]")
{
    HealingHarness h;
    h.links.reset_calls();
    h.m().link_changed("kvmbr9");
    // Once for the notification (the running network's bridge index is
    // taken from the same lookup, not a second one), once for the network's
    // assessment.
    CHECK(h.links.count("find_link") == 2);
}

TEST_CASE("The notifications of a bridge a Stop's worker deletes need no lookup", "[manager][stop]")
{
    WorkerHarness h;
    h.m().create(R"({"name": "lab", "mode": "isolated", "bridge": "kvmbr1", "ipv4": {"address": "10.10.0.1/24"}})");
    h.m().start("lab");
    REQUIRE(h.m().state("lab") == State::active);
    bool answered = false;
    h.m().stop("lab", [&](std::exception_ptr) { answered = true; });
    REQUIRE_FALSE(answered);  // the deletion is the worker's
    h.links.reset_calls();
    // The bridge's down (RTM_NEWLINK) heard while the worker deletes it: a
    // lookup would wait for RTNL until the deletion is done.
    h.m().link_changed("kvmbr1");
    CHECK(h.links.count("find_link") == 0);
    h.run_loop(10'000'000, [&] { return answered; });
    REQUIRE(answered);
    CHECK(h.m().state("lab") == State::inactive);
    // Once the Stop is done, a link of that name is looked up again (someone
    // else's, or a repair's).
    h.m().link_changed("kvmbr1");
    CHECK(h.links.count("find_link") == 1);
}

}  // namespace unit_test_link_removed
