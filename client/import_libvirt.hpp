// `kvmnetctl import-libvirt FILE... | --all [--dir DIR] [--strict] [--dry-run]`
#pragma once

#include <string>
#include <vector>

namespace kvmnet::cli {

struct ImportOptions {
    std::vector<std::string> files;
    bool all = false, strict = false, dry_run = false;
    std::string dir;  // with all; empty: libvirt's own
};

// The usage errors (FILE... or --all, not both or neither; --dir only with
// --all), checked before any bus connection: throws std::invalid_argument.
void check_import_options(const ImportOptions& options);

// Returns the exit status. D-Bus errors of CreateNetwork propagate (as
// sdbus::Error) after the networks this run created are deleted again.
// `ask_password`: the calls allow interactive authorization (polkit may ask
// an agent), as kvmnetctl's other changing commands do unless
// --no-ask-password.
int import_libvirt(ImportOptions options, bool ask_password);

}  // namespace kvmnet::cli
