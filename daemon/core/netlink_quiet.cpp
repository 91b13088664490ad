#include "core/netlink_quiet.hpp"

#include "core/process.hpp"
#include "model/error.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <memory>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace kvmnet::core {

namespace {

struct Fd {
    int fd = -1;
    explicit Fd(int f) : fd(f) {}
    ~Fd()
    {
        if (fd >= 0) ::close(fd);
    }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
};

Error failed(pid_t pid, const std::string& what)
{
    const int err = errno;
    std::string text{"taking dnsmasq pid "};
    text += std::to_string(pid);
    text += " out of the address and route notifications: ";
    text += what;
    text += ": ";
    text += std::strerror(err);
    return Error(ErrorKind::Kernel, text);
}

bool rtnetlink(int fd)
{
    int domain = 0, protocol = 0;
    socklen_t len = sizeof domain;
    if (::getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0 || domain != AF_NETLINK) return false;
    len = sizeof protocol;
    return ::getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &protocol, &len) == 0 && protocol == NETLINK_ROUTE;
}

}  // namespace

int quiet_route_notifications(pid_t pid)
{
    const PidFd pidfd(pid);
    if (pidfd.fd() < 0) throw failed(pid, "pidfd_open");
    std::string dir{"/proc/"};
    dir += std::to_string(pid);
    dir += "/fd";
    const std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir(dir.c_str()), ::closedir);
    if (!d) throw failed(pid, std::string{"opendir "} += dir);
    int quieted = 0;
    while (const dirent* entry = ::readdir(d.get())) {
        if (entry->d_name[0] < '0' || entry->d_name[0] > '9') continue;
        std::string link{dir};
        link += '/';
        link += entry->d_name;
        char target[64] = {};
        if (::readlink(link.c_str(), target, sizeof target - 1) <= 0 || std::strncmp(target, "socket:", 7) != 0)
            continue;
        const int theirs = std::atoi(entry->d_name);
        const Fd fd(static_cast<int>(::syscall(SYS_pidfd_getfd, pidfd.fd(), theirs, 0)));
        if (fd.fd < 0) {
            if (errno == EBADF) continue;  // closed by dnsmasq since readdir saw it
            throw failed(pid, "pidfd_getfd");
        }
        if (!rtnetlink(fd.fd)) continue;
        // The IPv4 address group too: dnsmasq with bind-interfaces acts on
        // an address notification by nothing but the turn of its loop it
        // causes (newaddress() does nothing without bind-dynamic, DHCPv6 or
        // RA), and that turn is what binds its DHCP socket to a recreated
        // bridge; the daemon gives it that turn itself (Dnsmasq::rebind).
        for (const int group : {RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV4_ROUTE, RTNLGRP_IPV6_IFADDR, RTNLGRP_IPV6_ROUTE})
            if (::setsockopt(fd.fd, SOL_NETLINK, NETLINK_DROP_MEMBERSHIP, &group, sizeof group) != 0)
                throw failed(pid, "leaving a netlink group");
        ++quieted;
    }
    return quieted;
}

}  // namespace kvmnet::core
