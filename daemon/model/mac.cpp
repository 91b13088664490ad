#include "model/mac.hpp"

#include <cstring>

namespace kvmnet::model {
namespace {

int hex_digit(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

}  // namespace

std::optional<Mac> Mac::parse(std::string_view text)
{
    if (text.size() != 17) return std::nullopt;
    Mac mac;
    for (std::size_t i = 0; i < mac.bytes.size(); ++i) {
        const int high = hex_digit(text[i * 3]), low = hex_digit(text[i * 3 + 1]);
        if (high < 0 || low < 0 || (i < 5 && text[i * 3 + 2] != ':')) return std::nullopt;
        mac.bytes[i] = static_cast<std::uint8_t>(high << 4 | low);
    }
    return mac;
}

Mac Mac::from_bytes(const void* data)
{
    Mac mac;
    std::memcpy(mac.bytes.data(), data, mac.bytes.size());
    return mac;
}

std::string Mac::str() const
{
    static constexpr char digits[] = "0123456789abcdef";
    std::string text;
    text.reserve(17);
    for (std::uint8_t b : bytes) {
        if (!text.empty()) text += ':';
        text += digits[b >> 4];
        text += digits[b & 0xf];
    }
    return text;
}

}  // namespace kvmnet::model
