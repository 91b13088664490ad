// Error messages safe for D-Bus and logs.
#include "model/error.hpp"
#include "model/utf8.hpp"

#include <cstdint>

namespace kvmnet {

std::size_t utf8_sequence(std::string_view s, std::size_t i, std::uint32_t& code)
{
    const auto c = static_cast<unsigned char>(s[i]);
    code = c;
    if (c < 0x80) return 1;
    std::size_t length = 0;
    std::uint32_t cp = 0, min = 0;
    if ((c & 0xe0) == 0xc0) {
        length = 2, cp = c & 0x1f, min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
        length = 3, cp = c & 0x0f, min = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
        length = 4, cp = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (i + length > s.size()) return 0;
    for (std::size_t k = 1; k < length; ++k) {
        const auto cc = static_cast<unsigned char>(s[i + k]);
        if ((cc & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (cc & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    code = cp;
    return length;
}

std::size_t printable_sequence(const std::string& s, std::size_t i)
{
    std::uint32_t cp = 0;
    const std::size_t length = utf8_sequence(s, i, cp);
    if (length == 0 || cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp <= 0x9f) || !dbus_code_point(cp)) return 0;
    return length;
}

bool printable_utf8(const std::string& s)
{
    for (std::size_t i = 0; i < s.size();) {
        const std::size_t n = printable_sequence(s, i);
        if (n == 0) return false;
        i += n;
    }
    return true;
}

std::string printable_message(const std::string& message)
{
    const bool cut = message.size() > max_error_message;
    const std::size_t end = cut ? max_error_message - 3 : message.size();
    std::string result;
    result.reserve(end + 3);
    for (std::size_t i = 0; i < end;) {
        const std::size_t n = printable_sequence(message, i);
        if (n == 0 || i + n > end) {
            static const char hex[] = "0123456789abcdef";
            const auto c = static_cast<unsigned char>(message[i]);
            result += "\\x";
            result += hex[c >> 4];
            result += hex[c & 0xf];
            ++i;
        } else {
            result.append(message, i, n);
            i += n;
        }
    }
    if (cut) result += "...";
    return result;
}

}  // namespace kvmnet
