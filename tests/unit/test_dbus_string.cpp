// api::dbus_string_ok, the check Describe's and ListForwards' replies pass
// instead of sd-bus's: it must refuse whatever sd-bus refuses (a string that
// is not UTF-8, or holds NUL, would make dbus-daemon drop the connection).
#include "api/dbus_string.hpp"
#include "model/error.hpp"

#include <catch2/catch.hpp>

#include <cstddef>
#include <random>
#include <string>

namespace unit_test_dbus_string {

using kvmnet::api::dbus_string_ok;

namespace {

// The well-formed byte sequences of the Unicode standard (table 3-7), by
// ranges of each byte, NUL excluded: written unlike the implementation.
bool reference_ok(const std::string& s)
{
    std::size_t i = 0;
    const auto in = [&](std::size_t at, unsigned lo, unsigned hi) {
        if (at >= s.size()) return false;
        const auto b = static_cast<unsigned char>(s[at]);
        return b >= lo && b <= hi;
    };
    while (i < s.size()) {
        const std::size_t start = i;
        const auto b = static_cast<unsigned char>(s[i]);
        if (b >= 0x01 && b <= 0x7f) {
            i += 1;
        } else if (b >= 0xc2 && b <= 0xdf && in(i + 1, 0x80, 0xbf)) {
            i += 2;
        } else if (b == 0xe0 && in(i + 1, 0xa0, 0xbf) && in(i + 2, 0x80, 0xbf)) {
            i += 3;
        } else if (((b >= 0xe1 && b <= 0xec) || b == 0xee || b == 0xef) && in(i + 1, 0x80, 0xbf) &&
                   in(i + 2, 0x80, 0xbf)) {
            i += 3;
        } else if (b == 0xed && in(i + 1, 0x80, 0x9f) && in(i + 2, 0x80, 0xbf)) {
            i += 3;
        } else if (b == 0xf0 && in(i + 1, 0x90, 0xbf) && in(i + 2, 0x80, 0xbf) && in(i + 3, 0x80, 0xbf)) {
            i += 4;
        } else if (b >= 0xf1 && b <= 0xf3 && in(i + 1, 0x80, 0xbf) && in(i + 2, 0x80, 0xbf) && in(i + 3, 0x80, 0xbf)) {
            i += 4;
        } else if (b == 0xf4 && in(i + 1, 0x80, 0x8f) && in(i + 2, 0x80, 0xbf) && in(i + 3, 0x80, 0xbf)) {
            i += 4;
        } else {
            return false;
        }
        // sd-bus refuses the noncharacters too (systemd's unichar_is_valid):
        // U+FDD0..U+FDEF (EF B7 90..AF), U+FFFE and U+FFFF (EF BF BE/BF),
        // and U+xFFFE, U+xFFFF of the other planes (F0..F4, a second byte
        // ending in F, BF, BE/BF).
        const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[start + k]); };
        if (i - start == 3 && b == 0xef && byte(1) == 0xb7 && byte(2) >= 0x90 && byte(2) <= 0xaf) return false;
        if (i - start == 3 && b == 0xef && byte(1) == 0xbf && byte(2) >= 0xbe) return false;
        if (i - start == 4 && (byte(1) & 0x0f) == 0x0f && byte(2) == 0xbf && byte(3) >= 0xbe) return false;
    }
    return true;
}

}  // namespace

TEST_CASE("dbus_string_ok takes UTF-8 without NUL, and nothing else", "[dbus]")
{
    CHECK(dbus_string_ok(""));
    CHECK(dbus_string_ok(R"({"forwards":[{"guest":"10.0.0.1","host_port":8080}]})"));
    CHECK(dbus_string_ok("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbd"));
    // NUL and a stray high byte at every offset of a long ASCII text (each
    // lane of the eight-byte words, and the tail).
    const std::string ascii(37, 'a');
    for (std::size_t at = 0; at < ascii.size(); ++at) {
        CAPTURE(at);
        std::string s = ascii;
        s[at] = '\0';
        CHECK_FALSE(dbus_string_ok(s));
        s[at] = '\x80';
        CHECK_FALSE(dbus_string_ok(s));
        s[at] = '\xff';
        CHECK_FALSE(dbus_string_ok(s));
    }
    CHECK_FALSE(dbus_string_ok("\xc0\x80"));           // overlong NUL
    CHECK_FALSE(dbus_string_ok("\xe0\x80\xaf"));       // overlong '/'
    CHECK_FALSE(dbus_string_ok("\xf0\x80\x80\xaf"));   // overlong '/'
    CHECK_FALSE(dbus_string_ok("\xed\xa0\x80"));       // a surrogate
    CHECK_FALSE(dbus_string_ok("\xf4\x90\x80\x80"));   // past U+10FFFF
    CHECK_FALSE(dbus_string_ok("abc\xe2\x82"));        // cut short at the end
    CHECK_FALSE(dbus_string_ok("\xe2\x82xyzxyzxyz"));  // a continuation missing
    // The noncharacters sd-bus refuses (sd_bus_message_append: EINVAL).
    CHECK_FALSE(dbus_string_ok("\xef\xb7\x90"));          // U+FDD0
    CHECK_FALSE(dbus_string_ok("abcdefgh\xef\xbf\xbf"));  // U+FFFF after a word
    CHECK_FALSE(dbus_string_ok("\xf4\x8f\xbf\xbe"));      // U+10FFFE
    CHECK(dbus_string_ok("\xef\xb7\xb0 \xef\xbf\xbd"));   // U+FDF0, U+FFFD: characters
}

TEST_CASE("printable_utf8 refuses what a D-Bus reply could not carry back", "[dbus]")
{
    // A forward's description is checked with it: "\uFFFF" in the request's
    // JSON would otherwise be stored, and every Describe after fail.
    CHECK(kvmnet::printable_utf8("caf\xc3\xa9 \xef\xbf\xbd"));
    CHECK_FALSE(kvmnet::printable_utf8("\xef\xbf\xbf"));
    CHECK_FALSE(kvmnet::printable_utf8("x\xef\xb7\xaf"));
    CHECK_FALSE(kvmnet::printable_utf8("\xf0\x9f\xbf\xbe"));
    // Error messages escape them like control characters.
    CHECK(kvmnet::printable_message("a\xef\xbf\xbf"
                                    "b") == "a\\xef\\xbf\\xbfb");
}

TEST_CASE("dbus_string_ok agrees with the standard's table on every short sequence", "[dbus]")
{
    // Every one- and two-byte string, every three-byte one whose first byte
    // is not ASCII, and random four- to twenty-byte ones, alone and after
    // eight ASCII bytes (the word-at-a-time path first).
    const auto both = [](const std::string& s) {
        if (dbus_string_ok(s) != reference_ok(s)) return false;
        const std::string after = "abcdefgh" + s;
        return dbus_string_ok(after) == reference_ok(after);
    };
    std::size_t disagree = 0;
    for (unsigned a = 0; a < 256; ++a) {
        if (!both(std::string(1, static_cast<char>(a)))) ++disagree;
        for (unsigned b = 0; b < 256; ++b) {
            const std::string two{static_cast<char>(a), static_cast<char>(b)};
            if (!both(two)) ++disagree;
            if (a < 0x80) continue;
            for (unsigned c = 0; c < 256; ++c)
                if (!both(two + static_cast<char>(c))) ++disagree;
        }
    }
    std::mt19937 random(12);
    std::uniform_int_distribution<int> byte(0, 255), length(4, 20);
    for (int n = 0; n < 200000; ++n) {
        std::string s(static_cast<std::size_t>(length(random)), '\0');
        for (char& c : s)
            c = static_cast<char>(byte(random) % 3 == 0 ? 0x80 + byte(random) % 0x40 : byte(random));
        if (!both(s)) ++disagree;
    }
    CHECK(disagree == 0);
}

}  // namespace unit_test_dbus_string
