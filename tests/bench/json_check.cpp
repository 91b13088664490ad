// One pass over the bytes, with an explicit stack of the open arrays and
// objects (no recursion, no depth limit, as nlohmann's parser). Per call it
// allocates nothing once its thread's buffers have grown.
#include "json_check.hpp"

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

namespace kvmnet::bench {

namespace {

// What a byte can be, looked up rather than compared several times.
enum ByteClass : unsigned char { in_string = 1, space = 2, digit = 4 };
struct ByteClasses {
    unsigned char of[256] = {};
    constexpr ByteClasses()
    {
        for (unsigned c = 0x20; c < 0x80; ++c)
            if (c != '"' && c != '\\') of[c] |= in_string;  // printable ASCII a string holds as it is
        for (unsigned char c : {' ', '\t', '\n', '\r'})
            of[c] |= space;
        for (unsigned c = '0'; c <= '9'; ++c)
            of[c] |= digit;
    }
};
constexpr ByteClasses classes;

class Checker {
public:
    explicit Checker(std::string_view text) : p_(text.data()), end_(text.data() + text.size()) {}

    bool run()
    {
        // The innermost open array or object ('[', '{', or 0 at the top),
        // and the ones around it.
        char top = 0;
        static thread_local std::string outer;
        outer.clear();
        const auto open = [&](char c) {
            if (top != 0) outer.push_back(top);
            top = c;
        };
        const auto close = [&] {
            top = outer.empty() ? 0 : outer.back();
            if (!outer.empty()) outer.pop_back();
        };
        if (p_ != end_ && byte(*p_) == 0xEF) {  // a byte order mark, or nothing valid
            if (end_ - p_ < 3 || byte(p_[1]) != 0xBB || byte(p_[2]) != 0xBF) return false;
            p_ += 3;
        }
        for (;;) {
            // A value is expected here.
            skip_space();
            if (p_ == end_) return false;
            bool nested = false;
            switch (*p_) {
            case '{':
            case '[': {
                const char bracket = *p_++;
                skip_space();
                if (p_ != end_ && *p_ == (bracket == '[' ? ']' : '}')) {  // empty
                    ++p_;
                    break;
                }
                if (bracket == '{' && !member_name()) return false;
                open(bracket);
                nested = true;
                break;
            }
            case '"':
                if (!string()) return false;
                break;
            case 't':
                if (!literal("true")) return false;
                break;
            case 'f':
                if (!literal("false")) return false;
                break;
            case 'n':
                if (!literal("null")) return false;
                break;
            default:
                if (!number()) return false;
            }
            if (nested) continue;
            // After a value: close what ends here, until a ',' asks for the next one.
            for (;;) {
                skip_space();
                // nlohmann's lexer takes a NUL byte between tokens for the
                // end of the input (what follows it is not looked at).
                if (top == 0) return p_ == end_ || *p_ == '\0';
                if (p_ == end_) return false;
                if (*p_ == (top == '[' ? ']' : '}')) {
                    ++p_;
                    close();
                    continue;
                }
                if (*p_ != ',') return false;
                ++p_;
                if (top == '{') {
                    skip_space();
                    if (!member_name()) return false;
                }
                break;
            }
        }
    }

private:
    static unsigned byte(char c) { return static_cast<unsigned char>(c); }
    // Past the bytes of class C. On a local pointer: a char read may alias
    // the member p_, so a loop on p_ would store and reload it per byte.
    void skip(ByteClass c)
    {
        const char* p = p_;
        while (p != end_ && (classes.of[byte(*p)] & c) != 0)
            ++p;
        p_ = p;
    }
    void skip_space() { skip(space); }

    // skip(in_string), eight bytes at a time where there are eight: the
    // first byte a string cannot pass over as it is ('"', '\\', a control
    // character, a byte >= 0x80) found with the word tricks for "has a
    // zero byte" and "has a byte less than n", whose lowest flagged byte
    // is exact. One branch per eight bytes instead of one per byte.
    void skip_in_string()
    {
        if constexpr (std::endian::native == std::endian::little) {
            constexpr std::uint64_t ones = 0x0101010101010101ULL, high = 0x8080808080808080ULL;
            const auto zero_bytes = [](std::uint64_t x) { return (x - ones) & ~x & high; };
            const char* p = p_;
            while (end_ - p >= 8) {
                std::uint64_t v;
                std::memcpy(&v, p, sizeof v);
                const std::uint64_t stop = (v & high) | zero_bytes(v ^ (ones * '"')) | zero_bytes(v ^ (ones * '\\')) |
                                           ((v - ones * 0x20) & ~v & high);
                if (stop != 0) {
                    p_ = p + std::countr_zero(stop) / 8;
                    return;
                }
                p += 8;
            }
            p_ = p;
        }
        skip(in_string);
    }

    // `"name" :` of an object member, at the opening quote.
    bool member_name()
    {
        if (p_ == end_ || *p_ != '"' || !string()) return false;
        skip_space();
        if (p_ == end_ || *p_ != ':') return false;
        ++p_;
        return true;
    }

    bool literal(std::string_view word)
    {
        if (static_cast<std::size_t>(end_ - p_) < word.size() || std::string_view(p_, word.size()) != word)
            return false;
        p_ += word.size();
        return true;
    }

    // Four hex digits of a \u escape.
    bool hex4(unsigned& unit)
    {
        if (end_ - p_ < 4) return false;
        unit = 0;
        for (int i = 0; i < 4; ++i) {
            const char c = *p_++;
            unsigned v = 0;
            if (c >= '0' && c <= '9') {
                v = static_cast<unsigned>(c - '0');
            } else if (c >= 'a' && c <= 'f') {
                v = static_cast<unsigned>(c - 'a' + 10);
            } else if (c >= 'A' && c <= 'F') {
                v = static_cast<unsigned>(c - 'A' + 10);
            } else {
                return false;
            }
            unit = unit * 16 + v;
        }
        return true;
    }

    // The continuation bytes of one UTF-8 sequence whose lead byte was
    // just read: RFC 3629's table (no overlong forms, no surrogates, at
    // most U+10FFFF).
    bool utf8_tail(unsigned lead)
    {
        unsigned lo = 0x80, hi = 0xBF;
        int more = 0;
        if (lead >= 0xC2 && lead <= 0xDF) {
            more = 1;
        } else if (lead >= 0xE0 && lead <= 0xEF) {
            more = 2;
            if (lead == 0xE0) lo = 0xA0;
            if (lead == 0xED) hi = 0x9F;
        } else if (lead >= 0xF0 && lead <= 0xF4) {
            more = 3;
            if (lead == 0xF0) lo = 0x90;
            if (lead == 0xF4) hi = 0x8F;
        } else {
            return false;
        }
        if (end_ - p_ < more) return false;
        for (int i = 0; i < more; ++i) {
            const unsigned b = byte(*p_++);
            if (b < lo || b > hi) return false;
            lo = 0x80;
            hi = 0xBF;
        }
        return true;
    }

    // A string, at its opening quote.
    bool string()
    {
        ++p_;
        for (;;) {
            // The common bytes first: printable ASCII other than '"' and '\'.
            skip_in_string();
            if (p_ == end_) return false;
            const unsigned c = byte(*p_++);
            if (c == '"') return true;
            if (c < 0x20) return false;
            if (c >= 0x80) {
                if (!utf8_tail(c)) return false;
                continue;
            }
            // A backslash.
            if (p_ == end_) return false;
            switch (*p_++) {
            case '"':
            case '\\':
            case '/':
            case 'b':
            case 'f':
            case 'n':
            case 'r':
            case 't': break;
            case 'u': {
                unsigned unit = 0;
                if (!hex4(unit)) return false;
                if (unit >= 0xDC00 && unit <= 0xDFFF) return false;  // a low surrogate first
                if (unit >= 0xD800 && unit <= 0xDBFF) {
                    if (end_ - p_ < 2 || p_[0] != '\\' || p_[1] != 'u') return false;
                    p_ += 2;
                    if (!hex4(unit) || unit < 0xDC00 || unit > 0xDFFF) return false;
                }
                break;
            }
            default: return false;
            }
        }
    }

    bool digits()
    {
        const char* start = p_;
        skip(digit);
        return p_ != start;
    }

    // -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?, and finite as nlohmann
    // reads it: an integer beyond 64 bits becomes a double, and a double
    // that overflows is refused.
    bool number()
    {
        const char* start = p_;
        if (*p_ == '-') ++p_;
        if (p_ == end_) return false;
        if (*p_ == '0') {
            ++p_;
        } else if (*p_ < '1' || *p_ > '9' || !digits()) {
            return false;
        }
        bool fraction_or_exponent = false;
        if (p_ != end_ && *p_ == '.') {
            ++p_;
            if (!digits()) return false;
            fraction_or_exponent = true;
        }
        if (p_ != end_ && (*p_ == 'e' || *p_ == 'E')) {
            ++p_;
            if (p_ != end_ && (*p_ == '+' || *p_ == '-')) ++p_;
            if (!digits()) return false;
            fraction_or_exponent = true;
        }
        // Up to 18 digits always fit in 64 bits; longer ones and every
        // fraction or exponent go through strtod, as in nlohmann.
        if (!fraction_or_exponent && p_ - start <= 18) return true;
        static thread_local std::string token;
        token.assign(start, p_);
        return std::isfinite(std::strtod(token.c_str(), nullptr));
    }

    const char* p_;
    const char* end_;
};

}  // namespace

bool json_valid(std::string_view text) { return Checker(text).run(); }

}  // namespace kvmnet::bench
