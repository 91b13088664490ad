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
