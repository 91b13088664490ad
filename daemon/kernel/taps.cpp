// Persistent taps (plan::Taps) of kernel::NetlinkLinks, as QEMU's -netdev tap,ifname=NAME,script=no opens them.
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

namespace {

class Fd {
public:
    explicit Fd(int fd) : fd_(fd) {}
    ~Fd()
    {
        if (fd_ >= 0) {
            ::close(fd_);
        }
    }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    int get() const { return fd_; }

private:
    int fd_;
};

}  // namespace

// owner/group as QEMU's user would need them; UINT32_MAX (uid/gid -1) leaves that one unrestricted, since the
// kernel rejects -1 in TUNSETOWNER/TUNSETGROUP. With neither set, anyone who can open /dev/net/tun may attach.
void NetlinkLinks::create_tap(const std::string& name, std::uint32_t owner, std::uint32_t group, bool multi_queue)
{
    const std::string operation = "creating tap " + name;
    // '%' would make TUNSETIFF pick a name from a pattern ("tap%d") instead of using ours.
    if (!valid_ifname(name) || name.find('%') != std::string::npos) {
        throw Error(ErrorKind::InvalidArgument, "netlink: " + operation + " failed: invalid interface name");
    }
    if (find_link_record(socket_, name)) {
        throw Error(ErrorKind::AlreadyExists, "netlink: " + operation + " failed: " + name + " already exists");
    }
    const auto fail_errno = [&](ErrorKind kind, const std::string& step, int err) {
        throw Error(kind, "netlink: " + operation + " failed: " + step + ": " + std::strerror(err));
    };
    Fd tun(::open("/dev/net/tun", O_RDWR | O_CLOEXEC));
    if (tun.get() < 0) {
        const int err = errno;
        if (err == ENOENT || err == ENODEV || err == ENXIO) {
            throw Error(ErrorKind::Unsupported, "netlink: " + operation +
                                                    " failed: the TUN/TAP driver is not available in this kernel "
                                                    "(CONFIG_TUN; opening /dev/net/tun: " +
                                                    std::strerror(err) + ")");
        }
        fail_errno(ErrorKind::Kernel, "opening /dev/net/tun", err);
    }
    ifreq request{};
    std::memcpy(request.ifr_name, name.c_str(), name.size());  // valid_ifname: shorter than IFNAMSIZ
    // VNET_HDR because QEMU's virtio-net uses it (it sets its own flags again when it attaches); TUN_EXCL so an
    // existing tap of that name is an error instead of being silently taken over.
    // ifr_flags is a short; IFF_TUN_EXCL is its top bit.
    // MULTI_QUEUE is a property of the device, fixed here: every later open must ask for the same.
    unsigned short flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | IFF_TUN_EXCL;
    if (multi_queue) {
        flags |= IFF_MULTI_QUEUE;
    }
    request.ifr_flags = static_cast<short>(flags);
    if (::ioctl(tun.get(), TUNSETIFF, &request) < 0) {
        const int err = errno;
        if (err == EBUSY || err == EEXIST) {
            throw Error(ErrorKind::AlreadyExists, "netlink: " + operation + " failed: " + name + " already exists");
        }
        fail_errno(ErrorKind::Kernel, "TUNSETIFF", err);
    }
    if (std::strncmp(request.ifr_name, name.c_str(), IFNAMSIZ) != 0) {
        throw Error(ErrorKind::Kernel, "netlink: " + operation + " failed: the kernel named it " +
                                           std::string(request.ifr_name, strnlen(request.ifr_name, IFNAMSIZ)));
    }
    // Until TUNSETPERSIST the device lives only as long as this fd: any failure below removes it again.
    constexpr std::uint32_t unset = std::numeric_limits<std::uint32_t>::max();
    if (owner != unset && ::ioctl(tun.get(), TUNSETOWNER, static_cast<unsigned long>(owner)) < 0) {
        const int err = errno;
        fail_errno(err == EINVAL ? ErrorKind::InvalidArgument : ErrorKind::Kernel,
                   "TUNSETOWNER " + std::to_string(owner), err);
    }
    if (group != unset && ::ioctl(tun.get(), TUNSETGROUP, static_cast<unsigned long>(group)) < 0) {
        const int err = errno;
        fail_errno(err == EINVAL ? ErrorKind::InvalidArgument : ErrorKind::Kernel,
                   "TUNSETGROUP " + std::to_string(group), err);
    }
    if (::ioctl(tun.get(), TUNSETPERSIST, 1UL) < 0) {
        fail_errno(ErrorKind::Kernel, "TUNSETPERSIST", errno);
    }
}

std::optional<plan::Taps::TapInfo> NetlinkLinks::tap_info(const std::string& name)
{
    std::optional<bool> multi_queue;
    std::uint32_t open_queues = 0;
    const std::optional<LinkRecord> link = find_link_record(socket_, name, [&](const nlmsghdr* hdr) {
        // IFLA_TUN_* are reported since Linux 4.20; older kernels give nothing and the port shows no queues.
        if (const nlattr* attr = linkinfo_attribute(hdr, IFLA_INFO_DATA, IFLA_TUN_MULTI_QUEUE, IFLA_TUN_MAX)) {
            multi_queue = nla_get_u8(const_cast<nlattr*>(attr)) != 0;
        }
        if (const nlattr* attr = linkinfo_attribute(hdr, IFLA_INFO_DATA, IFLA_TUN_NUM_QUEUES, IFLA_TUN_MAX)) {
            open_queues = nla_get_u32(const_cast<nlattr*>(attr));
        }
    });
    if (!link || link->kind != "tun" || !multi_queue) {
        return std::nullopt;
    }
    return TapInfo{*multi_queue, open_queues};
}

}  // namespace kvmnet::kernel
