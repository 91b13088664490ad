// Host facts (plan::HostFacts) of kernel::NetlinkLinks: sysctls through /proc/sys and listening sockets through
// NETLINK_SOCK_DIAG. Neither uses the rtnetlink socket.
#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <system_error>
#include <utility>
#include <vector>

#include <linux/if.h>
#include <linux/if_addr.h>
#include <linux/if_bridge.h>
#include <linux/if_link.h>
#include <linux/if_tun.h>
#include <linux/inet_diag.h>
#include <linux/neighbour.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netlink/addr.h>
#include <netlink/attr.h>
#include <netlink/cache.h>
#include <netlink/errno.h>
#include <netlink/handlers.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/socket.h>

// After libnl on purpose: the header names `struct nl_sock` inside kvmnet::kernel with no global forward
// declaration, so unless ::nl_sock is already declared it would mean a distinct kvmnet::kernel::nl_sock.
#include "kernel/netlink_links.hpp"
#include "kernel/netlink_util.hpp"
#include "model/error.hpp"
#include "model/mac.hpp"

namespace kvmnet::kernel {

std::vector<plan::Listener> NetlinkLinks::list_listeners()
{
    // NETLINK_SOCK_DIAG dumps filtered by state in the kernel: unlike
    // /proc/net/tcp, the cost does not grow with established connections.
    std::vector<plan::Listener> result;
    const int fd = ::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (fd < 0) throw Error(ErrorKind::Kernel, std::string("sock_diag: socket: ") + std::strerror(errno));
    struct Closer {
        int fd;
        ~Closer() { ::close(fd); }
    } closer{fd};
    for (const auto& [family, protocol] : {std::pair{AF_INET, IPPROTO_TCP}, std::pair{AF_INET6, IPPROTO_TCP},
                                           std::pair{AF_INET, IPPROTO_UDP}, std::pair{AF_INET6, IPPROTO_UDP}}) {
        struct {
            nlmsghdr header;
            inet_diag_req_v2 request;
        } message{};
        message.header.nlmsg_len = sizeof message;
        message.header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
        message.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
        message.request.sdiag_family = static_cast<std::uint8_t>(family);
        message.request.sdiag_protocol = static_cast<std::uint8_t>(protocol);
        // TCP: LISTEN (10); UDP: unconnected bound sockets show as CLOSE (7).
        message.request.idiag_states = protocol == IPPROTO_TCP ? 1u << 10 : 1u << 7;
        sockaddr_nl kernel{};
        kernel.nl_family = AF_NETLINK;
        if (::sendto(fd, &message, sizeof message, 0, reinterpret_cast<sockaddr*>(&kernel), sizeof kernel) < 0)
            throw Error(ErrorKind::Kernel, std::string("sock_diag: send: ") + std::strerror(errno));
        alignas(nlmsghdr) char buffer[32768];
        for (bool done = false; !done;) {
            const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
            if (n < 0) {
                if (errno == EINTR) continue;
                throw Error(ErrorKind::Kernel, std::string("sock_diag: receive: ") + std::strerror(errno));
            }
            int left = static_cast<int>(n);
            for (auto* h = reinterpret_cast<nlmsghdr*>(buffer); NLMSG_OK(h, left); h = NLMSG_NEXT(h, left)) {
                if (h->nlmsg_type == NLMSG_DONE) {
                    done = true;
                    break;
                }
                if (h->nlmsg_type == NLMSG_ERROR) {
                    const auto* e = static_cast<const nlmsgerr*>(NLMSG_DATA(h));
                    // A kernel without UDP diag (CONFIG_INET_UDP_DIAG) answers ENOENT: no UDP listeners known.
                    if (e->error == -ENOENT) {
                        done = true;
                        break;
                    }
                    throw Error(ErrorKind::Kernel, std::string("sock_diag: ") + std::strerror(-e->error));
                }
                const auto* m = static_cast<const inet_diag_msg*>(NLMSG_DATA(h));
                plan::Listener l;
                l.tcp = protocol == IPPROTO_TCP;
                l.port = ntohs(m->id.idiag_sport);
                l.address = ip_value(family, m->id.idiag_src).value_or(model::IpAddress{});
                result.push_back(l);
            }
        }
    }
    return result;
}

std::optional<std::string> NetlinkLinks::read_sysctl(const std::string& key)
{
    const int fd = ::open(("/proc/sys/" + key).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return std::nullopt;
    char buffer[256];
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    ::close(fd);
    if (n < 0) return std::nullopt;
    std::string text(buffer, static_cast<std::size_t>(n));
    while (!text.empty() && (text.back() == '\n' || text.back() == ' '))
        text.pop_back();
    return text;
}

void NetlinkLinks::write_sysctl(const std::string& key, const std::string& value)
{
    const std::string path = "/proc/sys/" + key;
    const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
    const std::string text = value + "\n";
    const ssize_t n = fd < 0 ? -1 : ::write(fd, text.data(), text.size());
    const int error = errno;
    if (fd >= 0) ::close(fd);
    if (n != static_cast<ssize_t>(text.size())) {
        throw Error(error == ENOENT ? ErrorKind::NotFound : ErrorKind::Kernel,
                    "sysctl: writing " + value + " to " + path + " failed: " + std::strerror(error));
    }
}

}  // namespace kvmnet::kernel
