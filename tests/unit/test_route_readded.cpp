// A gateway's prefix route put back by hand after its repair failed: the
// added route's notification (RTM_NEWROUTE) has the routes observed again,
// so the state no longer names the deleted route (while the budget defers
// the network's repairs, at the deferred run). An added route while none is
// missing is not observed at all (the kernel's own at every start, kvmnet's
// repairs).
#include "manager_test_prelude.hpp"

namespace unit_test_route_readded {

namespace {

std::size_t route_dumps(const FakeLinks& links)
{
    return static_cast<std::size_t>(std::count_if(links.calls().begin(), links.calls().end(),
                                                  [](const Call& c) { return c.verb == "list_routes"; }));
}

}  // namespace

TEST_CASE("A route put back by hand after a failed repair clears the state at its notification",
          "[manager][repair][route]")
{
    HealingHarness h;
    const int index = h.links.link("kvmbr9").index;
    const auto v4 = h.subnet_route(AF_INET);
    REQUIRE(v4);
    h.links.delete_route(*v4);
    h.links.fail_on("add_route", 1);
    h.m().route_changed(index);
    h.let_repairs_run();
    REQUIRE(!h.subnet_route(AF_INET));
    REQUIRE(h.m().state_reason_code("iso") == "route-deleted");

    // The administrator adds it again.
    h.links.add_route("kvmbr9", *v4);
    h.links.reset_calls();
    h.m().route_changed(index, true);
    h.let_repairs_run();
    CHECK(route_dumps(h.links) == 1);
    CHECK(h.links.mutations().empty());  // observed: nothing to repair
    CHECK(h.m().state("iso") == State::active);
    CHECK(h.m().state_reason_code("iso") == "none");
    CHECK(h.listener.repairs.empty());

    // Nothing missing: an added route is not observed.
    h.links.reset_calls();
    h.m().route_changed(index, true);
    h.let_repairs_run();
    CHECK(route_dumps(h.links) == 0);
    CHECK(h.m().state("iso") == State::active);
    h.m().stop("iso");
}

TEST_CASE("A route put back by hand while its repair waits for the budget: the deferred run sees it and adds none",
          "[manager][repair][route]")
{
    HealingHarness h;
    const int index = h.links.link("kvmbr9").index;
    h.spend_route_budget();
    const auto v4 = h.subnet_route(AF_INET);
    h.links.delete_route(*v4);
    h.m().route_changed(index);
    h.let_repairs_run();
    REQUIRE(h.m().state_reason_code("iso") == "repair-budget");

    // Marked, but the network's repairs (observations included) wait for
    // the backoff.
    h.links.add_route("kvmbr9", *v4);
    h.m().route_changed(index, true);
    h.let_repairs_run();
    h.links.reset_calls();
    h.clock.advance(1'000'000);
    CHECK(h.links.mutations().empty());
    CHECK(h.m().state("iso") == State::active);
    CHECK(h.m().state_reason_code("iso") == "none");
    h.m().stop("iso");
}

}  // namespace unit_test_route_readded
