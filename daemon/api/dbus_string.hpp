// What sd-bus checks of a string before it appends it, done faster: a
// reply of a few hundred forwards' JSON spent most of its CPU in sd-bus's
// check, a decoding call per byte (api/service.cpp, reply_text).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace kvmnet::api {

// Whether `text` may be a D-Bus string: UTF-8 (no overlong forms, no
// surrogates, nothing past U+10FFFF) without NUL, looked at eight bytes at
// a time while they are ASCII.
inline bool dbus_string_ok(std::string_view text)
{
    const auto* p = reinterpret_cast<const unsigned char*>(text.data());
    const auto* const end = p + text.size();
    constexpr std::uint64_t high = 0x8080808080808080ull, ones = 0x0101010101010101ull;
    while (p < end) {
        if (end - p >= 8) {
            std::uint64_t w = 0;
            std::memcpy(&w, p, sizeof w);
            // No high bit and no zero byte among the eight.
            if (((w | ((w - ones) & ~w)) & high) == 0) {
                p += 8;
                continue;
            }
        }
        const unsigned c = *p;
        if (c == 0) return false;
        if (c < 0x80) {
            ++p;
            continue;
        }
        std::size_t more = 0;
        std::uint32_t code = 0, least = 0;
        if ((c & 0xe0) == 0xc0) {
            more = 1, code = c & 0x1f, least = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            more = 2, code = c & 0x0f, least = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            more = 3, code = c & 0x07, least = 0x10000;
        } else {
            return false;
        }
        if (static_cast<std::size_t>(end - p) <= more) return false;
        for (std::size_t i = 1; i <= more; ++i) {
            if ((p[i] & 0xc0) != 0x80) return false;
            code = (code << 6) | (p[i] & 0x3fu);
        }
        if (code < least || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) return false;
        p += more + 1;
    }
    return true;
}

}  // namespace kvmnet::api
