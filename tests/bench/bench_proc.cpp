// Components of the per-request cost, for reading the control-plane figures:
// how long finding this namespace's listening sockets takes by reading
// /proc/net/{tcp,tcp6,udp,udp6} (what AddForwards does to warn about shadowed
// local services, as of the commit measured) and, for comparison, by asking
// NETLINK_SOCK_DIAG for TCP listeners only.
#include "bench.hpp"

#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
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

// One SOCK_DIAG_BY_FAMILY dump of the TCP sockets in state LISTEN; returns
// how many there are.
std::size_t tcp_listeners(int fd, std::uint8_t family)
{
    struct {
        nlmsghdr header;
        inet_diag_req_v2 request;
    } message{};
    message.header.nlmsg_len = sizeof message;
    message.header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    message.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    message.request.sdiag_family = family;
    message.request.sdiag_protocol = IPPROTO_TCP;
    message.request.idiag_states = 1U << TCP_LISTEN;
    if (::send(fd, &message, sizeof message, 0) < 0)
        throw std::runtime_error(std::string("sock_diag send: ") + std::strerror(errno));
    std::array<char, 32768> buffer{};
    std::size_t count = 0;
    for (;;) {
        const ssize_t n = ::recv(fd, buffer.data(), buffer.size(), 0);
        if (n < 0) throw std::runtime_error(std::string("sock_diag recv: ") + std::strerror(errno));
        int left = static_cast<int>(n);
        for (auto* h = reinterpret_cast<nlmsghdr*>(buffer.data()); NLMSG_OK(h, left); h = NLMSG_NEXT(h, left)) {
            if (h->nlmsg_type == NLMSG_DONE) return count;
            if (h->nlmsg_type == NLMSG_ERROR) throw std::runtime_error("sock_diag: error reply");
            ++count;
        }
    }
}

}  // namespace

int cmd_listener_scan(const Args& args)
{
    const unsigned runs = args.number("runs", 50);
    const int fd = ::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (fd < 0) throw std::runtime_error(std::string("NETLINK_SOCK_DIAG socket: ") + std::strerror(errno));
    for (unsigned r = 0; r < runs; ++r) {
        auto start = Clock::now();
        std::size_t bytes = 0;
        for (const char* path : {"/proc/net/tcp", "/proc/net/tcp6", "/proc/net/udp", "/proc/net/udp6"})
            bytes += read_procfs(path);
        emit("component", "listeners-procfs", 0, "ms", ms_since(start));
        start = Clock::now();
        const std::size_t listeners = tcp_listeners(fd, AF_INET) + tcp_listeners(fd, AF_INET6);
        emit("component", "tcp-listeners-sock-diag", 0, "ms", ms_since(start));
        if (bytes == 0 && listeners > 0) throw std::runtime_error("procfs read nothing");
    }
    ::close(fd);
    return 0;
}

}  // namespace kvmnet::bench
