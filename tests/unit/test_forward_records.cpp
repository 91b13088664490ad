// AddForwardsFromFd's record format (model/forward_records.hpp): what the
// client encodes decodes to the same fields, and malformed bytes (truncated,
// another version, counts the bytes cannot hold, lengths past the end) are
// refused with an error naming the header or the record, before anything
// is reserved for them.
#include "model/error.hpp"
#include "model/forward_records.hpp"

#include <catch2/catch.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace unit_test_forward_records {

using kvmnet::ErrorKind;
using kvmnet::model::decode_forward_records;
using kvmnet::model::encode_forward_records;
using kvmnet::model::ForwardFields;

namespace {

std::vector<ForwardFields> sample()
{
    return {
        {"tcp", "", 8080, 0, "192.168.122.10", 80, "", 0},
        {"both", "2001:db8::1", 5000, 5010, "web-1", 6000, "a description: ünïcode", 1000000},
        {"udp", "203.0.113.7", 65535, 0, "fd00::10", 1, "x", 7},
    };
}

void set32(std::string& bytes, std::size_t at, std::uint32_t v)
{
    for (int i = 0; i < 4; ++i)
        bytes[at + static_cast<std::size_t>(i)] = static_cast<char>((v >> (8 * i)) & 0xff);
}

std::string error_of(const std::string& bytes)
{
    try {
        decode_forward_records(bytes);
    } catch (const kvmnet::Error& e) {
        CHECK(e.kind() == ErrorKind::InvalidArgument);
        return e.what();
    }
    FAIL("decoded without an error");
    return {};
}

}  // namespace

TEST_CASE("forward records: encoded forwards decode to the same fields", "[forward_records]")
{
    const auto forwards = sample();
    const std::string bytes = encode_forward_records(forwards);
    CHECK(bytes.substr(0, 8) == "KVFWDREC");
    CHECK(bytes.size() == 16 + 3 * 16 + (3 + 0 + 14 + 0) + (4 + 11 + 5 + 24) + (3 + 11 + 8 + 1));
    CHECK(decode_forward_records(bytes) == forwards);
}

TEST_CASE("forward records: the documented example's bytes", "[forward_records]")
{
    // docs/dbus-api.md, "Forward records": tcp 8080 → 192.168.122.10:80.
    const std::string bytes = encode_forward_records({{"tcp", "", 8080, 0, "192.168.122.10", 80, "", 0}});
    const std::string expected = std::string("KVFWDREC\x01\x00\x00\x00\x01\x00\x00\x00", 16) +
                                 std::string("\x90\x1f\x00\x00\x50\x00\x03\x00\x0e\x00\x00\x00\x00\x00\x00\x00", 16) +
                                 "tcp192.168.122.10";
    CHECK(bytes == expected);
}

TEST_CASE("forward records: an empty batch decodes empty (forwards_from_fields refuses it)", "[forward_records]")
{
    CHECK(decode_forward_records(encode_forward_records({})).empty());
}

TEST_CASE("forward records: malformed headers name the records", "[forward_records]")
{
    const std::string good = encode_forward_records(sample());
    CHECK_THAT(error_of(""), Catch::Contains("records: truncated header"));
    CHECK_THAT(error_of(good.substr(0, 15)), Catch::Contains("records: truncated header"));
    std::string bad = good;
    bad[0] = 'X';
    CHECK_THAT(error_of(bad), Catch::Contains("records: not forward records"));
    bad = good;
    set32(bad, 8, 2);
    CHECK_THAT(error_of(bad), Catch::Contains("records: version 2 is not supported"));
    bad = good;
    set32(bad, 12, 0xffffffffu);
    CHECK_THAT(error_of(bad), Catch::Contains("records: count 4294967295 is more than 262144"));
    // A count under the limit that the bytes cannot hold: refused before any
    // vector of that size is made.
    bad = good;
    set32(bad, 12, 262144);
    CHECK_THAT(error_of(bad), Catch::Contains("records: count 262144 does not fit in"));
    bad = good + "junk";
    CHECK_THAT(error_of(bad), Catch::Contains("records: 4 bytes after the last record"));
}

TEST_CASE("forward records: malformed records name their index", "[forward_records]")
{
    const std::string good = encode_forward_records(sample());
    // Cut inside the last record's strings, then inside its fixed part.
    CHECK_THAT(error_of(good.substr(0, good.size() - 1)), Catch::Contains("forwards[2].description: truncated"));
    const std::size_t third = good.size() - (16 + 3 + 11 + 8 + 1);
    CHECK_THAT(error_of(good.substr(0, third + 10)), Catch::Contains("forwards[2]: truncated"));
    // A count one more than there are records.
    std::string bad = good;
    set32(bad, 12, 4);
    CHECK_THAT(error_of(bad), Catch::Contains("forwards[3]: truncated"));
    // A description length that runs past the end.
    bad = good;
    bad[16 + 10] = static_cast<char>(0xff);
    bad[16 + 11] = static_cast<char>(0xff);
    CHECK_THAT(error_of(bad), Catch::Contains("forwards[0].description: truncated (65535 bytes"));
    // The reserved byte, and a NUL inside a string.
    bad = good;
    bad[16 + 9] = 1;
    CHECK_THAT(error_of(bad), Catch::Contains("forwards[0]: reserved byte is not 0"));
    bad = good;
    bad[16 + 16 + 1] = '\0';
    CHECK_THAT(error_of(bad), Catch::Contains("forwards[0].proto: contains a NUL byte"));
}

TEST_CASE("forward records: strings too long for their length field are refused when encoding", "[forward_records]")
{
    auto forwards = sample();
    forwards[1].guest = std::string(256, 'a');
    try {
        encode_forward_records(forwards);
        FAIL("encoded");
    } catch (const kvmnet::Error& e) {
        CHECK(e.kind() == ErrorKind::InvalidArgument);
        CHECK_THAT(e.what(), Catch::Contains("forwards[1].guest: longer than 255 bytes"));
    }
}

}  // namespace unit_test_forward_records
