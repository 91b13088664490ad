// core::MacWatch with a clock moved by hand: a MAC flapping between two
// ports is a conflict, a single move is not, and a conflict is forgotten
// once it has been quiet for long enough.
#include "core/mac_watch.hpp"
#include "fakes/fake_clock.hpp"

#include <catch2/catch.hpp>

#include <string>

namespace unit_test_mac_watch {

using kvmnet::core::MacWatch;
using kvmnet::test::FakeClock;

namespace {
const std::string mac = "52:54:00:de:ad:01";
}

TEST_CASE("MacWatch: flapping is a conflict, a single move is not, and the conflict expires", "[mac_watch]")
{
    FakeClock clock;
    MacWatch watch(clock);

    CHECK_FALSE(watch.learned(mac, 3));
    CHECK_FALSE(watch.learned(mac, 3));  // same port: nothing moved
    clock.advance(1'000'000);
    CHECK_FALSE(watch.learned(mac, 4));  // one move: a guest migrating
    clock.advance(1'000'000);
    const auto flap = watch.learned(mac, 3);  // back within the window: two senders
    REQUIRE(flap);
    CHECK(flap->previous == 4);
    CHECK(flap->port == 3);

    CHECK(watch.report("MAC conflict"));
    CHECK(watch.conflict() == "MAC conflict");
    CHECK_FALSE(watch.report("MAC conflict"));  // the same one is not new
    CHECK_FALSE(watch.expire());

    // Still flapping: the conflict stays recent.
    clock.advance(MacWatch::conflict_memory_usec - 1'000'000);
    CHECK_FALSE(watch.learned(mac, 4));  // the last move was long ago: this one alone is no flap
    clock.advance(1'000'000);
    REQUIRE(watch.learned(mac, 3));
    CHECK_FALSE(watch.report("MAC conflict"));
    clock.advance(MacWatch::conflict_memory_usec);
    CHECK_FALSE(watch.expire());
    CHECK(watch.conflict() == "MAC conflict");

    // Quiet past the memory: forgotten, once.
    clock.advance(1);
    CHECK(watch.expire());
    CHECK(watch.conflict().empty());
    CHECK_FALSE(watch.expire());
}

TEST_CASE("MacWatch: moves further apart than the window are migrations", "[mac_watch]")
{
    FakeClock clock;
    MacWatch watch(clock);
    watch.learned(mac, 1);
    for (int i = 0; i < 4; ++i) {
        clock.advance(MacWatch::flap_window_usec);
        CHECK_FALSE(watch.learned(mac, i % 2 == 0 ? 2 : 1));
    }
    // Moving straight back after a migration is the flap.
    clock.advance(MacWatch::flap_window_usec - 1);
    CHECK(watch.learned(mac, 2));
}

TEST_CASE("MacWatch: a recreated bridge's port indexes start over, a conflict stays", "[mac_watch]")
{
    FakeClock clock;
    MacWatch watch(clock);
    watch.learned(mac, 1);
    watch.learned(mac, 2);
    REQUIRE(watch.learned(mac, 1));
    watch.report("conflict");

    watch.forget_ports();
    CHECK_FALSE(watch.learned(mac, 7));  // first sighting behind the new bridge
    CHECK(watch.conflict() == "conflict");

    watch.reset();
    CHECK(watch.conflict().empty());
    CHECK_FALSE(watch.learned(mac, 2));
}

}  // namespace unit_test_mac_watch
