// Components of the per-request cost, for reading the control-plane figures:
// how long finding this namespace's listening sockets takes the way
// AddForwards does it (kernel::NetlinkLinks::list_listeners: NETLINK_SOCK_DIAG,
// TCP and UDP, IPv4 and IPv6, filtered by state in the kernel) and, for
// comparison, by reading /proc/net/{tcp,tcp6,udp,udp6} (what it did before).
#include "bench.hpp"
#include "kernel/netlink_links.hpp"

#include <fstream>
#include <sstream>

namespace kvmnet::bench {

namespace {

std::size_t read_procfs(const char* path)
{
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str().size();
}

}  // namespace

int cmd_listener_scan(const Args& args)
{
    const unsigned runs = args.number("runs", 50);
    kernel::NetlinkLinks links;
    for (unsigned r = 0; r < runs; ++r) {
        auto start = Clock::now();
        std::size_t bytes = 0;
        for (const char* path : {"/proc/net/tcp", "/proc/net/tcp6", "/proc/net/udp", "/proc/net/udp6"})
            bytes += read_procfs(path);
        emit("component", "listeners-procfs", 0, "ms", ms_since(start));
        start = Clock::now();
        const std::size_t listeners = links.list_listeners().size();
        emit("component", "listeners-sock-diag", 0, "ms", ms_since(start));
        if (bytes == 0 && listeners > 0) throw std::runtime_error("procfs read nothing");
    }
    return 0;
}

}  // namespace kvmnet::bench
