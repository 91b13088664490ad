// UTF-8 as D-Bus and the logs take it (model/error.cpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace kvmnet {

// The length of the well-formed UTF-8 sequence at s[i] (no overlong form,
// no surrogate, nothing past U+10FFFF), or 0; its code point in `code`.
std::size_t utf8_sequence(std::string_view s, std::size_t i, std::uint32_t& code);

}  // namespace kvmnet
