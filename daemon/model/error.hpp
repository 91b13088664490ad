// Typed errors shared by every layer. Each kind maps 1:1 onto a D-Bus error
// name org.kvmnet1.Error.<Kind>, so a failure deep in the kernel adapters
// reaches the caller with a name a program can branch on and a message a
// person can act on.
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>

namespace kvmnet {

// TooLarge: a reply would pass the bound every reply keeps (api::max_reply_bytes).
enum class ErrorKind { InvalidArgument, NotFound, AlreadyExists, Conflict, Unsupported, Kernel, Busy, TooLarge };

std::string_view error_kind_name(ErrorKind kind);

// Messages quote what clients sent and go to D-Bus (UTF-8, no NUL) and to
// the log: control characters and bytes that are not UTF-8 become \xNN, and
// a message longer than max_error_message bytes is cut (ending in "...").
inline constexpr std::size_t max_error_message = 4096;
std::string printable_message(const std::string& message);
// The length of the well-formed UTF-8 sequence at s[i] that is not a control
// character (C0, DEL, C1) nor a noncharacter sd-bus refuses
// (model/utf8.hpp dbus_code_point), or 0.
std::size_t printable_sequence(const std::string& s, std::size_t i);
// Valid UTF-8 without control characters or noncharacters: a string D-Bus
// can carry back.
bool printable_utf8(const std::string& s);

class Error : public std::runtime_error {
public:
    Error(ErrorKind kind, const std::string& message) : std::runtime_error(printable_message(message)), kind_(kind) {}
    ErrorKind kind() const { return kind_; }

private:
    ErrorKind kind_;
};

// Convenience constructors; `field` is a JSON path such as "ipv4.dhcp.ranges[0]".
inline Error invalid_field(const std::string& field, const std::string& what)
{
    return Error(ErrorKind::InvalidArgument, field + ": " + what);
}

}  // namespace kvmnet
