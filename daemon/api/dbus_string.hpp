// What sd-bus checks of a string before it appends it, done faster: a
// reply of a few hundred forwards' JSON spent most of its CPU in sd-bus's
// check, a decoding call per byte (api/service.cpp, reply_text).
#pragma once

#include "model/utf8.hpp"

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace kvmnet::api {

// Whether `text` may be a D-Bus string: UTF-8 (no overlong forms, no
// surrogates, nothing past U+10FFFF; kvmnet::utf8_sequence) without NUL
// and without the noncharacters sd-bus refuses (kvmnet::dbus_code_point),
// looked at eight bytes at a time while they are ASCII.
inline bool dbus_string_ok(std::string_view text)
{
    constexpr std::uint64_t high = 0x8080808080808080ull, ones = 0x0101010101010101ull;
    for (std::size_t i = 0; i < text.size();) {
        if (text.size() - i >= 8) {
            std::uint64_t w = 0;
            std::memcpy(&w, text.data() + i, sizeof w);
            // No high bit and no zero byte among the eight.
            if (((w | ((w - ones) & ~w)) & high) == 0) {
                i += 8;
                continue;
            }
        }
        std::uint32_t code = 0;
        const std::size_t length = utf8_sequence(text, i, code);
        if (length == 0 || code == 0 || !dbus_code_point(code)) return false;
        i += length;
    }
    return true;
}

}  // namespace kvmnet::api
