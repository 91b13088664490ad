// Unit tests of model/ipv4: strict dotted-quad and prefix parsing, text round
// trips, and the subnet arithmetic (mask, network, broadcast, contains,
// overlaps) that validation and the planner rely on.
#include "model/ipv4.hpp"

#include <catch2/catch.hpp>

#include <cstdint>
#include <string>

namespace unit_test_ipv4 {

using kvmnet::model::Ipv4;
using kvmnet::model::Ipv4Interface;

namespace {

Ipv4 ip(const std::string& text)
{
    auto parsed = Ipv4::parse(text);
    REQUIRE(parsed);
    return *parsed;
}

Ipv4Interface cidr(const std::string& text)
{
    auto parsed = Ipv4Interface::parse(text);
    REQUIRE(parsed);
    return *parsed;
}

}  // namespace

TEST_CASE("Well-formed dotted quads parse to the expected host-order value", "[ipv4]")
{
    struct Case {
        const char* text;
        std::uint32_t value;
    };
    const auto c = GENERATE(values<Case>({
        {"0.0.0.0", 0x00000000u},
        {"255.255.255.255", 0xffffffffu},
        {"192.168.122.1", 0xc0a87a01u},
        {"10.0.0.1", 0x0a000001u},
        {"1.2.3.4", 0x01020304u},
        {"100.64.0.0", 0x64400000u},
        {"0.0.0.255", 0x000000ffu},
        {"127.0.0.1", 0x7f000001u},
    }));
    CAPTURE(c.text);
    auto parsed = Ipv4::parse(c.text);
    REQUIRE(parsed);
    CHECK(parsed->value == c.value);
    CHECK(parsed->str() == c.text);
}

TEST_CASE("Malformed dotted quads are rejected", "[ipv4]")
{
    const std::string text = GENERATE(as<std::string>{},
                                      "",                   // empty
                                      "1.2.3",              // missing octet
                                      "1.2.3.",             // empty last octet
                                      "1.2..4",             // empty middle octet
                                      ".1.2.3",             // empty first octet
                                      "1.2.3.4.5",          // extra octet
                                      "256.0.0.1",          // > 255
                                      "1.2.3.300",          // > 255
                                      "1234.1.1.1",         // four digits
                                      "99999999999.1.1.1",  // overflows
                                      "01.2.3.4",           // leading zero (octal in inet_aton)
                                      "1.2.3.04",           // leading zero
                                      "00.0.0.0",           // double zero
                                      "1.2.3.000",          // triple zero
                                      " 1.2.3.4",           // leading space
                                      "1.2.3.4 ",           // trailing space
                                      "1. 2.3.4",           // inner space
                                      "1.2.3.4x",           // trailing characters
                                      "1.2.3.4/24",         // prefix is not part of an address
                                      "0x1.2.3.4",          // hex
                                      "+1.2.3.4",           // sign
                                      "1.2.3.-4",           // negative
                                      "1,2,3,4",            // wrong separator
                                      "a.b.c.d",            // letters
                                      "16909060");          // single integer shorthand
    CAPTURE(text);
    CHECK_FALSE(Ipv4::parse(text));
}

TEST_CASE("An address with an embedded NUL byte is rejected", "[ipv4]")
{
    CHECK_FALSE(Ipv4::parse(std::string("1.2.3.4\0", 8)));
    CHECK_FALSE(Ipv4Interface::parse(std::string("1.2.3.4/24\0", 11)));
}

TEST_CASE("Addresses order by numeric value, not by text", "[ipv4]")
{
    CHECK(ip("10.0.0.2") < ip("10.0.0.10"));
    CHECK(ip("9.255.255.255") < ip("10.0.0.0"));
    CHECK(ip("192.168.1.1") == ip("192.168.1.1"));
}

TEST_CASE("Every prefix length from /0 to /32 is accepted and round-trips", "[ipv4]")
{
    const int prefix = GENERATE(range(0, 33));
    const std::string text = "10.1.2.3/" + std::to_string(prefix);
    CAPTURE(text);
    auto parsed = Ipv4Interface::parse(text);
    REQUIRE(parsed);
    CHECK(parsed->prefix == prefix);
    CHECK(parsed->address == ip("10.1.2.3"));
    CHECK(parsed->str() == text);
}

TEST_CASE("Malformed address/prefix strings are rejected", "[ipv4]")
{
    const std::string text = GENERATE(as<std::string>{},
                                      "10.0.0.1",       // no prefix
                                      "10.0.0.1/",      // empty prefix
                                      "/24",            // no address
                                      "/",              // nothing at all
                                      "10.0.0.1/33",    // too long
                                      "10.0.0.1/99",    // too long
                                      "10.0.0.1/100",   // three digits
                                      "10.0.0.1/08",    // leading zero
                                      "10.0.0.1/00",    // leading zero
                                      "10.0.0.1/-1",    // negative
                                      "10.0.0.1/+8",    // sign
                                      "10.0.0.1/ 8",    // space
                                      "10.0.0.1/8 ",    // trailing space
                                      "10.0.0.1/2x",    // trailing character
                                      "10.0.0.1/24/",   // second slash
                                      "10.0.0.1//24",   // double slash
                                      "10.0.0.1/24/8",  // two prefixes
                                      "10.0.0.256/24",  // bad address
                                      "010.0.0.1/24",   // leading zero in address
                                      "10.0.0/24",      // missing octet
                                      "10.0.0.1 /24",   // space before slash
                                      "10.0.0.1/a");    // letter
    CAPTURE(text);
    CHECK_FALSE(Ipv4Interface::parse(text));
}

TEST_CASE("Interface text round-trips through parse and str", "[ipv4]")
{
    const std::string text = GENERATE(as<std::string>{}, "192.168.122.1/24", "10.0.0.1/8", "0.0.0.0/0",
                                      "255.255.255.255/32", "172.16.5.9/12", "100.64.0.1/10");
    CAPTURE(text);
    const auto a = cidr(text);
    CHECK(a.str() == text);
    CHECK(Ipv4Interface::parse(a.str()) == a);
}

TEST_CASE("Mask, network and broadcast follow the prefix length", "[ipv4]")
{
    struct Case {
        const char* cidr;
        std::uint32_t mask;
        const char* network;
        const char* broadcast;
        const char* network_str;
    };
    const auto c = GENERATE(values<Case>({
        {"192.168.122.1/24", 0xffffff00u, "192.168.122.0", "192.168.122.255", "192.168.122.0/24"},
        {"10.1.2.3/8", 0xff000000u, "10.0.0.0", "10.255.255.255", "10.0.0.0/8"},
        {"172.16.5.9/12", 0xfff00000u, "172.16.0.0", "172.31.255.255", "172.16.0.0/12"},
        {"10.0.0.5/30", 0xfffffffcu, "10.0.0.4", "10.0.0.7", "10.0.0.4/30"},
        {"10.0.0.5/31", 0xfffffffeu, "10.0.0.4", "10.0.0.5", "10.0.0.4/31"},
        {"10.0.0.5/32", 0xffffffffu, "10.0.0.5", "10.0.0.5", "10.0.0.5/32"},
        {"10.0.0.5/0", 0x00000000u, "0.0.0.0", "255.255.255.255", "0.0.0.0/0"},
        {"10.0.0.5/1", 0x80000000u, "0.0.0.0", "127.255.255.255", "0.0.0.0/1"},
        {"192.168.1.200/25", 0xffffff80u, "192.168.1.128", "192.168.1.255", "192.168.1.128/25"},
    }));
    CAPTURE(c.cidr);
    const auto a = cidr(c.cidr);
    CHECK(a.mask() == c.mask);
    CHECK(a.network().str() == c.network);
    CHECK(a.broadcast().str() == c.broadcast);
    CHECK(a.network_str() == c.network_str);
}

TEST_CASE("contains is true exactly for addresses inside the subnet", "[ipv4]")
{
    struct Case {
        const char* cidr;
        const char* ip;
        bool inside;
    };
    const auto c = GENERATE(values<Case>({
        {"192.168.122.1/24", "192.168.122.0", true},
        {"192.168.122.1/24", "192.168.122.255", true},
        {"192.168.122.1/24", "192.168.122.77", true},
        {"192.168.122.1/24", "192.168.123.0", false},
        {"192.168.122.1/24", "192.168.121.255", false},
        {"10.0.0.1/8", "10.255.255.255", true},
        {"10.0.0.1/8", "11.0.0.0", false},
        {"10.0.0.5/32", "10.0.0.5", true},
        {"10.0.0.5/32", "10.0.0.4", false},
        {"10.0.0.5/0", "203.0.113.9", true},
        {"192.168.1.200/25", "192.168.1.127", false},
        {"192.168.1.200/25", "192.168.1.128", true},
    }));
    CAPTURE(c.cidr, c.ip);
    CHECK(cidr(c.cidr).contains(ip(c.ip)) == c.inside);
}

TEST_CASE("overlaps is symmetric and true when either subnet contains the other", "[ipv4]")
{
    struct Case {
        const char* a;
        const char* b;
        bool overlap;
    };
    const auto c = GENERATE(values<Case>({
        {"10.0.0.1/16", "10.0.5.1/24", true},
        {"10.0.0.1/24", "10.0.0.200/24", true},
        {"10.0.0.1/24", "10.0.1.1/24", false},
        {"192.168.122.1/24", "192.168.122.129/25", true},
        {"192.168.122.1/25", "192.168.122.129/25", false},
        {"10.0.0.1/8", "11.0.0.1/8", false},
        {"10.0.0.1/8", "10.200.3.4/30", true},
        {"0.0.0.0/0", "203.0.113.1/24", true},
        {"172.16.0.1/12", "172.32.0.1/16", false},
        {"172.16.0.1/12", "172.31.255.1/24", true},
        {"10.0.0.5/32", "10.0.0.5/32", true},
        {"10.0.0.5/32", "10.0.0.6/32", false},
    }));
    CAPTURE(c.a, c.b);
    CHECK(cidr(c.a).overlaps(cidr(c.b)) == c.overlap);
    CHECK(cidr(c.b).overlaps(cidr(c.a)) == c.overlap);
}

}  // namespace unit_test_ipv4
