// The value codec of nftables sets: nft's datatypes as plan::SetType, their
// wire layout (concatenations padded to 32-bit registers) and the text
// spelling plan::SetElement uses, both ways. No netlink here.
#pragma once

#include "plan/ruleset.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace kvmnet::kernel::nft {

// Bytes of one value of the type, before any concatenation padding.
std::uint32_t type_length(plan::SetType t);

// nft's byte order of the type (enum byteorder: 0 invalid, 1 host, 2 big
// endian), kept in the set's userdata; nft reads it back when listing.
std::uint32_t type_byteorder(plan::SetType t);

// Key or data layout: a single type uses its own length; in a concatenation
// each part starts on a 32-bit register boundary.
struct Layout {
    std::uint32_t id = 0;
    std::uint32_t length = 0;
    std::vector<std::uint32_t> offsets;
};

// Throws InvalidArgument (naming `what`) for no types, too many, or too long a value.
Layout layout(const std::vector<plan::SetType>& types, const std::string& what);

// `values` (one text per type) in wire form; InvalidArgument naming `what` when one does not parse.
std::vector<unsigned char> encode(const std::vector<plan::SetType>& types, const Layout& l,
                                  const std::vector<std::string>& values, const std::string& what);

// An element of an interval set: its first and last value in wire form.
// A value of an address type may be a prefix ("192.0.2.0/24", "fd00::/64":
// its first and last address, the address having no host bits); any other
// value is both first and last. InvalidArgument naming `what` otherwise.
struct Range {
    std::vector<unsigned char> first, last;
};
Range encode_range(const std::vector<plan::SetType>& types, const Layout& l, const std::vector<std::string>& values,
                   const std::string& what);

// The texts of an interval element (prefixes where first and last differ,
// as encode_range takes them; "first-last" for a range that is no prefix);
// empty when a length is not the layout's.
std::vector<std::string> decode_range(const std::vector<plan::SetType>& types, const Layout& l, const void* first,
                                      std::uint32_t first_length, const void* last, std::uint32_t last_length);

// The texts of a wire value; empty when `length` is not the layout's.
std::vector<std::string> decode(const std::vector<plan::SetType>& types, const Layout& l, const void* data,
                                std::uint32_t length);

// "key . key" of an element, for messages.
std::string element_text(const plan::SetElement& e);

// "ip saddr . th dport" of a rule's keys, and their types.
std::string keys_text(const std::vector<plan::Field>& keys);
std::vector<plan::SetType> key_types(const std::vector<plan::Field>& keys);

// The comment in a userdata blob: TLVs (type, length, value), the comment a
// NUL-terminated string of type `type`.
std::string udata_comment(const void* udata, std::uint32_t length, unsigned type);

}  // namespace kvmnet::kernel::nft
