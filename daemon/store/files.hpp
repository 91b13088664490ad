// Small filesystem helpers: atomic replacement of a file's contents
// (temp file, fsync, rename, fsync of the directory), reading, mkdir -p.
#pragma once

#include <optional>
#include <string>

namespace kvmnet::store {

// Creates (or truncates) `tmp` and writes `contents` to it, not synced; the
// open fd is the caller's. With exact_mode the mode is set regardless of
// the umask. Throws Kernel (nothing left behind) when the file system
// refuses: read-only, full, over quota.
int write_temp(const std::string& tmp, const std::string& contents, unsigned mode, bool exact_mode);
void write_atomic(const std::string& path, const std::string& contents, unsigned mode = 0644);
// Temp file and rename without fsync: old or new contents after a crash of
// the process, not of the machine (runtime files that a reboot drops anyway).
// Every record under RUNTIME is written so (markers, takeover record,
// confirmation deadline, saved sysctls): it is in place when this returns,
// before the kernel change it guards, so a crashed daemon finds it; a crash
// of the machine drops RUNTIME (a tmpfs) and the kernel state it describes
// alike, so an fsync would buy nothing and hold the event loop on the disk.
void write_replace(const std::string& path, const std::string& contents, unsigned mode = 0644);
std::optional<std::string> read_file(const std::string& path);
void make_directories(const std::string& path, unsigned mode = 0755);
void remove_file(const std::string& path);  // absent is fine

}  // namespace kvmnet::store
