// The one way user text becomes JSON in the model: every request parser
// (parse_network, parse_port, parse_dhcp_host, parse_forwards) and the
// daemon's AddForwards go through parse_json_text, so they all refuse the
// same things with errors naming the field:
// - syntax errors (nlohmann's message, with the byte position),
// - duplicate keys in one object (nlohmann alone keeps the last one, so
//   {"mtu": 1500, "mtu": 9000} would silently mean 9000),
// - nesting deeper than max_json_depth,
// - text longer than max_document_bytes.
// Each field's own limits (string lengths, array sizes) are checked by the
// parsers on the result.
#pragma once

#include "model/error.hpp"

#include <nlohmann/json_fwd.hpp>

#include <cstddef>
#include <string>

namespace kvmnet::model {

// Objects and arrays nest at most this deep (a valid document nests 4 deep:
// ports[0].bandwidth.inbound.average).
inline constexpr std::size_t max_json_depth = 32;

// Upper bound of a document's text. It holds the largest valid document
// (262144 forwards with 256-byte descriptions, as the daemon writes it with
// indentation) with room to spare; a request over D-Bus is further bounded
// by the bus (the system bus default is 32 MiB per message).
inline constexpr std::size_t max_document_bytes = std::size_t{256} << 20;

// Parses `text` strictly. InvalidArgument naming `field` ("document",
// "forwards", "port", "host") for syntax errors and size, and naming the
// offending key's path for duplicates and depth: keys of a top-level object
// are prefixed with `root` ("" for the network document: "ipv4.dhcp: ...";
// "port": "port.mac: ..."), entries of a top-level array are `field[i]`
// ("forwards[2].guest: ...").
nlohmann::json parse_json_text(const std::string& text, const std::string& field, const std::string& root);

}  // namespace kvmnet::model
