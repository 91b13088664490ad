// Path edits of a network document for `kvmnetctl set` and `unset`: pure
// JSON in, JSON out, so every rule is unit-tested without a daemon.
//
// A path is dotted field names with array elements as [N] or .N:
// "ipv4.dhcp.ranges", "ipv4.dhcp.hosts[0].name", "forwards.2.rate" (the
// daemon's error messages name fields the same way).
#pragma once

#include <nlohmann/json.hpp>

#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

namespace kvmnet::client {

// kind is "InvalidArgument" (a malformed path, a field of something that is
// not an object, an index past the end) or "NotFound" (unset of a field that
// is not there); the message starts with the path.
class PathError : public std::runtime_error {
public:
    PathError(std::string kind, const std::string& message) : std::runtime_error(message), kind_(std::move(kind)) {}
    const std::string& kind() const { return kind_; }

private:
    std::string kind_;
};

using PathStep = std::variant<std::string, std::size_t>;  // field name or array index
std::vector<PathStep> parse_path(const std::string& path);

// VALUE of KEY=VALUE: JSON when it parses as JSON (numbers, true, false,
// null, arrays, objects, "quoted strings"), on/off as true/false, any other
// text as that string.
nlohmann::json parse_value(const std::string& text);

// One `set` argument: "PATH=VALUE" or "PATH+=VALUE".
struct Assignment {
    std::string path;
    bool append = false;
    nlohmann::json value;
};
Assignment parse_assignment(const std::string& argument);

// PATH=VALUE: missing objects on the way are created. An object VALUE is
// merged into an object already at PATH as an RFC 7386 merge patch (fields it
// does not name keep their values; a field set to null is removed), so a
// sibling is never lost; any other VALUE replaces what is at PATH (an array
// whole). VALUE null removes PATH, as unset does when it is there.
void set_path(nlohmann::json& document, const std::string& path, const nlohmann::json& value);
// PATH+=VALUE: appends VALUE as one element to the array at PATH (created
// when absent).
void append_path(nlohmann::json& document, const std::string& path, const nlohmann::json& value);
// Removes the field (or the array element, shifting the later ones) at PATH.
void unset_path(nlohmann::json& document, const std::string& path);

// RFC 7386 JSON merge patch of patch onto target.
void merge_patch(nlohmann::json& target, const nlohmann::json& patch);

}  // namespace kvmnet::client
