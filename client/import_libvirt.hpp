// `kvmnetctl import-libvirt FILE... | --all [--dir DIR] [--strict] [--dry-run]`
#pragma once

#include <string>
#include <vector>

namespace kvmnet::cli {

extern const char* const import_libvirt_usage;

// Returns the exit status; usage errors are reported here (status 2) before
// any bus connection. D-Bus errors of CreateNetwork propagate (as
// sdbus::Error) after the networks this run created are deleted again.
// `ask_password`: the calls allow interactive authorization (polkit may ask
// an agent), as kvmnetctl's other changing commands do unless
// --no-ask-password.
int import_libvirt(const std::vector<std::string>& args, bool ask_password);

}  // namespace kvmnet::cli
