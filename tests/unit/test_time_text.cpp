// Unit tests of model/time_text: RFC 3339 UTC, the time format of every JSON
// the daemon and kvmnetctl emit.
#include "model/time_text.hpp"

#include <catch2/catch.hpp>

#include <cstdlib>
#include <ctime>
#include <string>

namespace unit_test_time_text {

using kvmnet::model::rfc3339_utc;
using kvmnet::model::rfc3339_utc_ms;

TEST_CASE("Times are RFC 3339 in UTC", "[time]")
{
    CHECK(rfc3339_utc(0) == "1970-01-01T00:00:00Z");
    CHECK(rfc3339_utc(1718000000) == "2024-06-10T06:13:20Z");
    CHECK(rfc3339_utc(4000000000) == "2096-10-02T07:06:40Z");  // past 2038
    CHECK(rfc3339_utc_ms(1718000000123) == "2024-06-10T06:13:20.123Z");
    CHECK(rfc3339_utc_ms(1718000000005) == "2024-06-10T06:13:20.005Z");
    CHECK(rfc3339_utc_ms(-1) == "1969-12-31T23:59:59.999Z");
}

TEST_CASE("Times do not depend on the local time zone", "[time]")
{
    const char* before = std::getenv("TZ");
    const std::string saved = before ? before : "";
    ::setenv("TZ", "America/New_York", 1);
    ::tzset();
    const std::string text = rfc3339_utc(1718000000);
    if (before)
        ::setenv("TZ", saved.c_str(), 1);
    else
        ::unsetenv("TZ");
    ::tzset();
    CHECK(text == "2024-06-10T06:13:20Z");
}

}  // namespace unit_test_time_text
