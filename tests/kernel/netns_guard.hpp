// The safety catch of the kernel checks: they create links, qdiscs and bridges, so they must only ever run in a
// throwaway network namespace (tests/kernel/run-in-netns.sh), never in the machine's own.
#pragma once

#include <sys/stat.h>

#include <filesystem>
#include <string>
#include <system_error>

namespace kvmnet::test {

// Safe only with positive evidence that this is not the host's namespace: it is not init_net, and either PID 1's
// namespace is readable and differs, or this namespace is one registered by `ip netns add`. Where /proc/1 is hidden
// (containers, sandboxes) the PID 1 test cannot answer, and guessing "safe" is not acceptable. `why` says what
// failed.
inline bool in_safe_netns(std::string& why)
{
    struct stat self {};
    if (stat("/proc/self/ns/net", &self) != 0) {
        why = "cannot stat /proc/self/ns/net";
        return false;
    }
    // Since Linux 6.x init_net has the fixed inode PROC_NET_INIT_INO; older kernels allocate it dynamically.
    constexpr ino_t init_net_inode = 0xEFFFFFF9U;
    if (self.st_ino == init_net_inode) {
        why = "this is init_net (inode 0xEFFFFFF9)";
        return false;
    }
    struct stat init {};
    if (stat("/proc/1/ns/net", &init) == 0) {
        if (self.st_ino == init.st_ino && self.st_dev == init.st_dev) {
            why = "same network namespace as PID 1";
            return false;
        }
        return true;
    }
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator("/run/netns", ec)) {
        struct stat named {};
        if (stat(entry.path().c_str(), &named) == 0 && named.st_ino == self.st_ino && named.st_dev == self.st_dev) {
            return true;
        }
    }
    why = "/proc/1/ns/net is unreadable and this namespace is not one of /run/netns";
    return false;
}

}  // namespace kvmnet::test
