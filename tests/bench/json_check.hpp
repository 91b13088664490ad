// The load generator's check of a JSON reply (kvmnet-bench dbus-load): is
// the text one JSON value, as nlohmann::json::accept says, without building
// anything. accept() tokenises into strings and costs the generator more
// CPU than the daemon spends on the call (a Describe reply is ~100 KB);
// this walks the bytes once. tests/unit/test_json_check.cpp holds it to
// accept()'s answers.
#pragma once

#include <string_view>

namespace kvmnet::bench {

// True when TEXT is exactly one JSON value (RFC 8259: strict UTF-8, escapes
// and surrogate pairs checked, numbers finite as a double) with only
// whitespace around it; as in nlohmann, a UTF-8 byte order mark at the start
// is skipped and a NUL byte after the value ends the text.
bool json_valid(std::string_view text);

}  // namespace kvmnet::bench
