// Unit tests of AddForwards' local-listener warnings (core/manager_forwards.cpp):
// one sock_diag listing serves the calls of one loop turn.
#include "manager_test_prelude.hpp"

namespace unit_test_listener_turn {

namespace {

// Ends the loop turn: the next add_forwards lists the listeners again.
void next_turn(Harness& h) { REQUIRE(sd_event_run(h.loop.get(), 0) >= 0); }

std::string forward_on(int port)
{
    return R"({"proto": "tcp", "host_port": )" + std::to_string(port) + R"(, "guest": "10.70.0.10", "guest_port": 80})";
}

}  // namespace

TEST_CASE("AddForwards lists the local listeners once per loop turn", "[manager][forward]")
{
    HealingHarness h;  // "iso" running, with one forward (tcp 8080)
    h.links.listeners = {{true, ip("0.0.0.0"), 9000}};
    next_turn(h);
    CHECK(h.m().add_forwards("iso", forward_on(9000)).size() == 1);
    // A listener that appears within the same turn is not seen by the
    // turn's later calls (they share its listing)...
    h.links.listeners.push_back({true, ip("0.0.0.0"), 9001});
    h.links.listeners.push_back({true, ip("0.0.0.0"), 9002});
    CHECK(h.m().add_forwards("iso", forward_on(9001)).empty());
    // ... and is by the next turn's.
    next_turn(h);
    const auto warnings = h.m().add_forwards("iso", forward_on(9002));
    REQUIRE(warnings.size() == 1);
    CHECK_THAT(warnings[0], StartsWith("forward: a local process listens on tcp 0.0.0.0:9002"));
    CHECK(h.m().spec("iso").forwards.size() == 4);
}

}  // namespace unit_test_listener_turn
