// The load generator's JSON check (tests/bench/json_check) says what
// nlohmann::json::accept says, which the generator used before: on
// hand-picked edge cases, and on thousands of random mutations of a
// document shaped like the daemon's Describe reply.
#include "json_check.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <random>
#include <string>
#include <vector>

namespace unit_test_json_check {

using kvmnet::bench::json_valid;

namespace {

bool accepted(const std::string& text) { return nlohmann::json::accept(text); }

// Describe-like: nested objects and arrays, every kind of scalar, escapes
// and multi-byte UTF-8.
std::string sample_document()
{
    nlohmann::json forwards = nlohmann::json::array();
    for (unsigned i = 0; i < 6; ++i)
        forwards.push_back({{"proto", "tcp"},
                            {"host_port", 20000 + i},
                            {"guest", "10.100.1.10"},
                            {"guest_port", 80},
                            {"ratio", 0.25 * i - 1},
                            {"description", "load \"client\" \\ é ✓ 𝄞 \t"}});
    const nlohmann::json doc = {
        {"name", "load"},
        {"mode", "nat"},
        {"autostart", true},
        {"problem", nullptr},
        {"big", 18446744073709551615ULL},
        {"negative", -9223372036854775807LL},
        {"tiny", 1.5e-300},
        {"ipv4", {{"address", "10.100.0.1/16"}, {"dhcp", {{"hosts", nlohmann::json::array()}}}}},
        {"forwards", forwards},
        {"empty", nlohmann::json::object()}};
    return doc.dump(2);
}

}  // namespace

TEST_CASE("json_valid agrees with nlohmann on edge cases", "[json_check]")
{
    const std::vector<std::string> cases = {"",
                                            " ",
                                            "{}",
                                            "[]",
                                            "[ ]",
                                            "{ }",
                                            "0",
                                            "-0",
                                            "01",
                                            "-",
                                            "-a",
                                            "1.",
                                            "1.5",
                                            ".5",
                                            "1e",
                                            "1e+",
                                            "1e+5",
                                            "1E-5",
                                            "1.5e300",
                                            "1e400",
                                            "-1e400",
                                            "1e-400",
                                            "123456789012345678",
                                            "1234567890123456789",
                                            "18446744073709551616",
                                            std::string(400, '9'),
                                            "-9223372036854775809",
                                            "true",
                                            "tru",
                                            "truex",
                                            "false",
                                            "null",
                                            "nul",
                                            "NaN",
                                            "\"\"",
                                            "\"a",
                                            "\"\\\"\"",
                                            "\"\\/\"",
                                            "\"\\x\"",
                                            "\"\\u00e9\"",
                                            "\"\\u00G9\"",
                                            "\"\\ud834\\udd1e\"",
                                            "\"\\ud834\"",
                                            "\"\\ud834x\"",
                                            "\"\\ud834\\u0041\"",
                                            "\"\\udd1e\"",
                                            "\"\\uDBFF\\uDFFF\"",
                                            "\"tab\there\"",
                                            std::string("\"nul\0\"", 6),
                                            std::string("0\0", 2),
                                            std::string("[1]\0x", 4),
                                            std::string("[1\0]", 4),
                                            std::string("\0", 1),
                                            "\"\xc3\xa9\"",
                                            "\"\xc3\"",
                                            "\"\xc0\xaf\"",
                                            "\"\xe0\x80\xaf\"",
                                            "\"\xed\xa0\x80\"",
                                            "\"\xf4\x90\x80\x80\"",
                                            "\"\xf0\x9d\x84\x9e\"",
                                            "\"\xff\"",
                                            "\xef\xbb\xbf{}",
                                            "\xef\xbb{}",
                                            "\xef{}",
                                            "{\"a\":1}",
                                            "{\"a\" : 1 , \"b\":[1,2]}",
                                            "{\"a\":1,}",
                                            "{\"a\"}",
                                            "{\"a\":}",
                                            "{1:2}",
                                            "{\"a\":1 \"b\":2}",
                                            "[1,]",
                                            "[,1]",
                                            "[1 2]",
                                            "[[[[]]]]",
                                            "[[[[]]]",
                                            "[]]",
                                            "{}}",
                                            "[1]x",
                                            " [1] \n\t\r",
                                            "[1]/",
                                            "[\"a\",{\"b\":[null,true,false,-1.5e-3]}]",
                                            std::string(5000, '[') + std::string(5000, ']'),
                                            std::string(5000, '[') + std::string(4999, ']'),
                                            "\t",
                                            "[\"\x7f\"]",
                                            "[\"\x1f\"]"};
    for (const auto& text : cases) {
        INFO("text: " << text.substr(0, 60));
        CHECK(json_valid(text) == accepted(text));
    }
}

TEST_CASE("json_valid agrees with nlohmann on a special byte anywhere in a long string", "[json_check]")
{
    // The string scan reads eight bytes at a time: every offset of the
    // word, and the tail shorter than a word.
    static const char specials[] = "\"\\\x00\x01\x1f\x20\x7f\x80\xc3\xe2\xed\xf0\xff";
    for (std::size_t length = 1; length < 26; ++length)
        for (std::size_t at = 0; at < length; ++at)
            for (std::size_t k = 0; k < sizeof specials - 1; ++k) {
                std::string text = "[\"" + std::string(length, 'a') + "\"]";
                text[2 + at] = specials[k];
                INFO("length " << length << ", byte " << int(static_cast<unsigned char>(specials[k])) << " at " << at);
                CHECK(json_valid(text) == accepted(text));
            }
}

TEST_CASE("json_valid agrees with nlohmann on mutated documents", "[json_check]")
{
    const std::string base = sample_document();
    REQUIRE(json_valid(base));
    REQUIRE(nlohmann::json::accept(base));
    // Bytes that matter to the grammar, and some that are never valid.
    static const char bytes[] = "{}[]\":,\\/-+.0123456789eEtrufalsn \t\r\nbu\x00\x1f\x7f\x80\xbf\xc3\xed\xf4\xff";
    const std::string alphabet(bytes, sizeof bytes - 1);
    std::mt19937 random(12);
    unsigned valid = 0, invalid = 0;
    for (unsigned i = 0; i < 20000; ++i) {
        std::string text = base;
        const unsigned edits = 1 + random() % 3;
        for (unsigned e = 0; e < edits; ++e) {
            const std::size_t at = random() % text.size();
            const char c = alphabet[random() % alphabet.size()];
            switch (random() % 3) {
            case 0: text[at] = c; break;
            case 1: text.insert(text.begin() + static_cast<std::ptrdiff_t>(at), c); break;
            default: text.erase(at, 1 + random() % 4);
            }
            if (text.empty()) text = "x";
        }
        const bool expected = accepted(text);
        (expected ? valid : invalid) += 1;
        if (json_valid(text) != expected) {
            INFO("mutation " << i << ": " << text);
            CHECK(json_valid(text) == expected);
        }
    }
    // Both answers were tried often enough for the comparison to mean something.
    CHECK(valid > 1000);
    CHECK(invalid > 1000);
}

}  // namespace unit_test_json_check
