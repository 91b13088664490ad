// Typed errors shared by every layer. Each kind maps 1:1 onto a D-Bus error
// name org.kvmnet1.Error.<Kind>, so a failure deep in the kernel adapters
// reaches the caller with a name a program can branch on and a message a
// person can act on.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace kvmnet {

enum class ErrorKind { InvalidArgument, NotFound, AlreadyExists, Conflict, Unsupported, Kernel, Busy };

std::string_view error_kind_name(ErrorKind kind);

class Error : public std::runtime_error {
public:
    Error(ErrorKind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
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
