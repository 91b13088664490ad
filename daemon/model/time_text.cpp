#include "model/time_text.hpp"

#include <cstdio>
#include <ctime>

namespace kvmnet::model {

std::string rfc3339_utc(std::int64_t unix_seconds)
{
    const auto t = static_cast<std::time_t>(unix_seconds);
    std::tm utc{};
    ::gmtime_r(&t, &utc);
    char text[32];
    std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &utc);
    return text;
}

std::string rfc3339_utc_ms(std::int64_t unix_milliseconds)
{
    // Floor division, so times before 1970 keep a millisecond part in 0..999.
    std::int64_t seconds = unix_milliseconds / 1000, millis = unix_milliseconds % 1000;
    if (millis < 0) {
        millis += 1000;
        seconds -= 1;
    }
    std::string text = rfc3339_utc(seconds);
    char fraction[8];
    std::snprintf(fraction, sizeof fraction, ".%03d", static_cast<int>(millis));
    text.insert(text.size() - 1, fraction);
    return text;
}

}  // namespace kvmnet::model
