// Unit tests of core/loop_trace's pure parts: the KVMNET_LOOP_TRACE value,
// the log line of a slow turn and the label of a registering place.
#include "core/loop_trace.hpp"

#include <catch2/catch.hpp>

#include <source_location>
#include <string>

namespace unit_test_loop_trace {

namespace core = kvmnet::core;

TEST_CASE("KVMNET_LOOP_TRACE: milliseconds, fractions allowed; anything else is off", "[loop_trace]")
{
    CHECK(core::parse_loop_trace("5") == 5000u);
    CHECK(core::parse_loop_trace("0.5") == 500u);
    CHECK(core::parse_loop_trace("0.0001") == 1u);  // on, at the clock's resolution
    CHECK_FALSE(core::parse_loop_trace(nullptr));
    CHECK_FALSE(core::parse_loop_trace(""));
    CHECK_FALSE(core::parse_loop_trace("0"));
    CHECK_FALSE(core::parse_loop_trace("-3"));
    CHECK_FALSE(core::parse_loop_trace("5ms"));
    CHECK_FALSE(core::parse_loop_trace("fast"));
    CHECK_FALSE(core::parse_loop_trace("nan"));
}

TEST_CASE("A slow turn's line: its label, then its pieces longest first", "[loop_trace]")
{
    CHECK(core::format_loop_turn("core/dnsmasq.cpp:161", 8040, 420, {}) ==
          "loop turn 8.0 ms (cpu 0.4 ms): core/dnsmasq.cpp:161");
    CHECK(core::format_loop_turn("D-Bus (1 messages)", 58900, 20100,
                                 {{"Stop", 58900}, {"Stop > deleting bridge", 34100}, {"Stop > nftables", 3600}}) ==
          "loop turn 58.9 ms (cpu 20.1 ms): D-Bus (1 messages); pieces: Stop 58.9 ms, Stop > deleting bridge 34.1 ms, "
          "Stop > "
          "nftables 3.6 ms");
    CHECK(core::format_loop_turn("t", 9000, 9000, {{"a", 1000}, {"b", 3000}, {"c", 2000}}, 2) ==
          "loop turn 9.0 ms (cpu 9.0 ms): t; pieces: b 3.0 ms, c 2.0 ms (+1 more)");
}

TEST_CASE("A registering place is named by its last two path components and line", "[loop_trace]")
{
    const auto here = std::source_location::current();
    CHECK(core::source_label(here) == "unit/test_loop_trace.cpp:" + std::to_string(here.line()));
}

}  // namespace unit_test_loop_trace
