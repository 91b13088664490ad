// The packed record format of AddForwardsFromFd (docs/dbus-api.md,
// "Forward records"): the forwards of one bulk add in a sealed memfd, so the
// bus carries one file descriptor instead of megabytes of structs. Pure
// (no fd, no bus): the client encodes, kvmnetd decodes what it mapped.
//
// Version 1, every integer little-endian, no padding:
//   header (16 bytes): magic "KVFWDREC", u32 version (1), u32 count
//   count records, each 16 bytes of fixed fields
//     u16 host_port, u16 host_port_end, u16 guest_port,
//     u8 proto_len, u8 host_address_len, u8 guest_len, u8 reserved (0),
//     u16 description_len, u32 rate
//   followed by its strings, unterminated, in that order: proto,
//   host_address, guest, description.
// Nothing may follow the last record.
#pragma once

#include "model/forward.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace kvmnet::model {

inline constexpr std::string_view forward_records_magic = "KVFWDREC";
inline constexpr std::uint32_t forward_records_version = 1;
inline constexpr std::size_t forward_records_header_size = 16;
inline constexpr std::size_t forward_record_fixed_size = 16;
// The largest records file kvmnetd maps: max_forwards forwards of ~250
// bytes each (a description of up to max_forward_description bytes is
// allowed, but not on every forward of the largest batch).
inline constexpr std::size_t max_forward_records_bytes = std::size_t{64} << 20;

// The forwards as version-1 records. A string longer than its length field
// holds (proto, host_address or guest over 255 bytes, description over
// 65,535) is InvalidArgument naming "forwards[i].<field>", as is more than
// max_forwards forwards.
std::string encode_forward_records(const std::vector<ForwardFields>& forwards);

// The records back as fields. Lengths and the count are checked against
// the bytes there are before anything is read or reserved: a short or
// mismatched header, another version, a count over max_forwards, a record
// or string running past the end, a reserved byte not 0, a NUL in a string
// or bytes after the last record are InvalidArgument naming "records"
// (header) or "forwards[i]" (the record). The fields' own rules (and that
// there is at least one) are forwards_from_fields'.
std::vector<ForwardFields> decode_forward_records(std::string_view bytes);

}  // namespace kvmnet::model
