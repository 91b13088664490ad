// The one time format of every JSON the daemon and kvmnetctl emit: RFC 3339
// in UTC ("2026-11-25T13:40:02Z"), so a reader never guesses a zone and
// sorts times as text.
#pragma once

#include <cstdint>
#include <string>

namespace kvmnet::model {

// "YYYY-MM-DDTHH:MM:SSZ" of a Unix time.
std::string rfc3339_utc(std::int64_t unix_seconds);
// "YYYY-MM-DDTHH:MM:SS.mmmZ" of a Unix time in milliseconds.
std::string rfc3339_utc_ms(std::int64_t unix_milliseconds);

}  // namespace kvmnet::model
