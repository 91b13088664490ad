// UTF-8 as D-Bus and the logs take it (model/error.cpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace kvmnet {

// The length of the well-formed UTF-8 sequence at s[i] (no overlong form,
// no surrogate, nothing past U+10FFFF), or 0; its code point in `code`.
std::size_t utf8_sequence(std::string_view s, std::size_t i, std::uint32_t& code);

// Whether sd-bus takes the code point in a string (systemd's
// unichar_is_valid): besides what utf8_sequence refuses, not the
// noncharacters U+FDD0..U+FDEF and U+xFFFE, U+xFFFF of every plane. A
// reply holding one would fail to be sent, or be refused by the client.
inline bool dbus_code_point(std::uint32_t cp) { return !(cp >= 0xfdd0 && cp <= 0xfdef) && (cp & 0xfffe) != 0xfffe; }

}  // namespace kvmnet
