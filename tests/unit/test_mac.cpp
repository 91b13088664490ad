// Unit tests of model/mac: the strict colon spelling every MAC in the
// daemon goes through (documents, leases, netlink, nftables elements), its
// lower-case text, byte order and the unicast test ports and hosts need.
#include "model/mac.hpp"

#include <catch2/catch.hpp>

#include <array>
#include <cstdint>

namespace unit_test_mac {

using kvmnet::model::Mac;

TEST_CASE("Mac parses the colon spelling in either case and writes lower case")
{
    const auto mac = Mac::parse("52:54:00:AB:cd:Ef");
    REQUIRE(mac);
    CHECK(mac->bytes == std::array<std::uint8_t, 6>{0x52, 0x54, 0x00, 0xab, 0xcd, 0xef});
    CHECK(mac->str() == "52:54:00:ab:cd:ef");
    CHECK(Mac::parse(mac->str()) == mac);
}

TEST_CASE("Mac refuses anything but six two-digit hex bytes separated by colons")
{
    for (const char* bad :
         {"", "52:54:00:ab:cd", "52:54:00:ab:cd:ef:", "52:54:00:ab:cd:e", "52-54-00-ab-cd-ef", "52:54:00:ab:cd:eg",
          "5:254:00:ab:cd:ef", "52:54:00:ab:cd:ef0", " 52:54:00:ab:cd:e", "0x:54:00:ab:cd:ef", "52:54:00:ab:cd:+f"}) {
        INFO(bad);
        CHECK_FALSE(Mac::parse(bad));
    }
}

TEST_CASE("Mac from six bytes, ordering and classes")
{
    const std::uint8_t raw[] = {0xfe, 0x54, 0x00, 0x00, 0x00, 0x01};
    const Mac mac = Mac::from_bytes(raw);
    CHECK(mac.str() == "fe:54:00:00:00:01");
    CHECK(mac.unicast());
    CHECK(Mac{} < mac);
    CHECK(*Mac::parse("00:00:00:00:00:02") > *Mac::parse("00:00:00:00:00:01"));
    CHECK(Mac{}.zero());
    CHECK_FALSE(Mac{}.unicast());
    CHECK(Mac::parse("01:00:5e:00:00:01")->multicast());
    CHECK_FALSE(Mac::parse("01:00:5e:00:00:01")->unicast());
    CHECK(Mac::parse("ff:ff:ff:ff:ff:ff")->multicast());
}

}  // namespace unit_test_mac
