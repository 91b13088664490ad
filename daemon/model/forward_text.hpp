// Forwards and networks as JSON text, written directly: Describe,
// ListForwards, the revision and the stored document write every forward
// and static host of a network, a few hundred in the D-Bus load test, where
// nlohmann's tree of each was most of their cost.
// The bytes are nlohmann's (members in key order, its number and string
// forms), so texts and revisions made before stay the same.
#pragma once

#include "model/forward.hpp"
#include "model/network.hpp"

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace kvmnet::model {

// What ListForwards adds to a forward's members (core::Manager).
struct ForwardListing {
    bool guest_address = false;  // "guest_address": the address a named guest resolved to
    bool counters = false;       // "connections", "first_packet_bytes", "dropped"
    std::uint64_t connections = 0;
    std::uint64_t first_packet_bytes = 0;
    std::uint64_t dropped = 0;
    std::size_t missing = 0;  // "problem": this many elements missing from the kernel
};
// Appends to_json(forward), with `listing`'s members, as nlohmann's dump()
// writes it (compact, members in key order): the same bytes, without the
// JSON tree (Describe and ListForwards write every forward of a network).
void append_json_text(std::string& out, const PortForward& forward, const ForwardListing& listing = {});
// to_json(forward) as an item of dump(step)'s "forwards" array: the
// object's braces at `indent` spaces (the first one not written), its
// members at indent + step.
void append_pretty_json_text(std::string& out, const PortForward& forward, int indent, int step = 2);
// `s` as a JSON string, as nlohmann dumps it.
void append_json_string(std::string& out, std::string_view s);
// `ip` as a JSON string ("192.0.2.1", quotes included), without a temporary.
void append_json_ipv4(std::string& out, Ipv4 ip);
// to_json(network, with_forwards) and the members of `extra` (an object)
// as dump() (indent < 0) or dump(indent) writes it, the static IPv4 hosts
// and the forwards written directly; the forwards' items taken from
// `forwards_items` when given (append_json_text's, joined by commas;
// compact text only).
std::string network_text(const Network& network, bool with_forwards, int indent,
                         const nlohmann::json& extra = nlohmann::json::object(),
                         const std::string* forwards_items = nullptr);
// network_text(network, true, 2) + "\n": the stored document's text.
std::string document_text(const Network& network);

}  // namespace kvmnet::model
