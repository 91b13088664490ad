// `kvmnetctl import-libvirt FILE... | --all [--dir DIR] [--strict] [--dry-run]`
#pragma once

#include <string>
#include <vector>

namespace kvmnet::cli {

extern const char* const import_libvirt_usage;

// Returns the exit status; usage errors are reported here (status 2) before
// any bus connection. D-Bus errors of CreateNetwork propagate (as
// sdbus::Error) after the networks this run created are deleted again.
int import_libvirt(const std::vector<std::string>& args);

}  // namespace kvmnet::cli
