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
// A small record rewritten in place (created when absent): the new contents
// at offset 0, then the file cut to their length. No new inode per write, as
// write_replace makes one (a temporary created, the old inode freed at the
// rename): at every forward change that was most of a write's cost on the
// event loop, most of all on an ext4 without a journal, where each new inode
// is searched for past every inode freed in the last minute. Only for records
// whose parser rejects trailing bytes, or whose reader compares the whole
// file before trusting it (dnsmasq's hosts and names files at adoption): a
// crash between the write and the cut leaves the new contents followed by the
// tail of longer old ones, which must read as no record at all.
void overwrite(const std::string& path, const std::string& contents, unsigned mode = 0644);
std::optional<std::string> read_file(const std::string& path);
void make_directories(const std::string& path, unsigned mode = 0755);
void remove_file(const std::string& path);  // absent is fine

}  // namespace kvmnet::store
