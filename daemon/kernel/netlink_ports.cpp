// Guest-port verbs of kernel::NetlinkLinks (the other half of the class is netlink_links.cpp): MAC and master of
// a port, persistent taps QEMU can open without privileges, bridge port isolation, the bridge FDB, the bridge VLAN
// filtering probe, per-port VLANs through bridge VLAN filtering and tc shaping (kernel/tc.cpp).
//
// The rtnetlink requests are built by hand (kernel/netlink_util.hpp) because libnl 3.7 cannot express them: no
// bridge port attributes (IFLA_PROTINFO of AF_BRIDGE), no FDB dump by bridge, no bridge kind data. Each request's
// outcome is checked against the kernel's errno, and where a kernel may silently ignore an attribute it does not
// know (port isolation, VLAN filtering) the verb reads the link back rather than trusting the ACK.
//
// Errors: an absent link is NotFound ("no such interface X"), a bad argument InvalidArgument, a missing kernel
// feature Unsupported (naming the feature and its config option), the rest Kernel; messages carry the operation,
// the link and the errno text, plus the kernel's extended-ack text when it gives one.
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_bridge.h>
#include <linux/if_link.h>
#include <linux/if_tun.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>
#include <netlink/attr.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <map>
#include <vector>

#include "kernel/netlink_links.hpp"

#include "kernel/netlink_util.hpp"
#include "kernel/tc.hpp"
#include "model/error.hpp"
#include "model/mac.hpp"
#include <arpa/inet.h>
#include <linux/inet_diag.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sys/socket.h>

namespace kvmnet::kernel {

namespace {

// RTM_SETLINK on an existing link, with whatever attributes `fill` adds; false from `fill` = out of message space.
NlResult set_link(nl_sock* socket, int family, int ifindex, const std::function<bool(nl_msg*)>& fill)
{
    ifinfomsg header{};
    header.ifi_family = static_cast<unsigned char>(family);
    header.ifi_index = ifindex;
    NlMsgPtr msg = new_request(RTM_SETLINK, 0, &header, sizeof(header));
    if (!fill(msg.get())) {
        throw Error(ErrorKind::Kernel, "netlink: building a link change request failed");
    }
    return transact(socket, msg.get());
}

NlResult delete_link_named(nl_sock* socket, const std::string& name)
{
    ifinfomsg header{};
    header.ifi_family = AF_UNSPEC;
    NlMsgPtr msg = new_request(RTM_DELLINK, 0, &header, sizeof(header));
    if (nla_put_string(msg.get(), IFLA_IFNAME, name.c_str()) < 0) {
        throw Error(ErrorKind::Kernel, "netlink: building a link deletion request failed");
    }
    return transact(socket, msg.get());
}

// Finds attribute `type` inside IFLA_LINKINFO / `info_member` (IFLA_INFO_DATA or IFLA_INFO_SLAVE_DATA) of a
// RTM_NEWLINK reply; nullptr when any level is missing.
const nlattr* linkinfo_attribute(const nlmsghdr* hdr, int info_member, int type, int max_type)
{
    nlattr* tb[IFLA_MAX + 1] = {};
    if (hdr->nlmsg_type != RTM_NEWLINK ||
        nlmsg_parse(const_cast<nlmsghdr*>(hdr), sizeof(ifinfomsg), tb, IFLA_MAX, nullptr) < 0 ||
        tb[IFLA_LINKINFO] == nullptr) {
        return nullptr;
    }
    nlattr* info[IFLA_INFO_MAX + 1] = {};
    if (nla_parse_nested(info, IFLA_INFO_MAX, tb[IFLA_LINKINFO], nullptr) < 0 || info[info_member] == nullptr) {
        return nullptr;
    }
    std::vector<nlattr*> data(static_cast<std::size_t>(max_type) + 1, nullptr);
    if (nla_parse_nested(data.data(), max_type, info[info_member], nullptr) < 0) {
        return nullptr;
    }
    return data[static_cast<std::size_t>(type)];
}

// The kinds every link-change verb shares: a link that vanished mid-way is NotFound, the rest is Kernel.
ErrorKind change_kind(const NlResult& result)
{
    switch (-result.error) {
    case ENODEV: return ErrorKind::NotFound;
    case EBUSY: return ErrorKind::Busy;
    case EOPNOTSUPP: return ErrorKind::Unsupported;
    default: return ErrorKind::Kernel;
    }
}

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

void NetlinkLinks::set_mac(const std::string& name, const std::string& mac)
{
    const std::string operation = "setting MAC " + mac + " on " + name;
    const std::optional<model::Mac> bytes = model::Mac::parse(mac);
    if (!bytes) {
        throw Error(ErrorKind::InvalidArgument,
                    "netlink: " + operation + " failed: not a MAC address (expected aa:bb:cc:dd:ee:ff)");
    }
    // The kernel refuses these with a bare EADDRNOTAVAIL.
    if (!bytes->unicast()) {
        throw Error(ErrorKind::InvalidArgument,
                    "netlink: " + operation + " failed: a port needs a unicast, non-zero MAC address");
    }
    const LinkRecord link = require_link_record(socket_, name, operation);
    const NlResult result = set_link(socket_, AF_UNSPEC, link.index, [&](nl_msg* msg) {
        return nla_put(msg, IFLA_ADDRESS, static_cast<int>(bytes->bytes.size()), bytes->bytes.data()) >= 0;
    });
    if (!result.ok()) {
        // EBUSY: a driver without live address change (IFF_LIVE_ADDR_CHANGE) while the link is up.
        throw_result(change_kind(result), operation, result);
    }
}

void NetlinkLinks::set_master(const std::string& name, const std::string& master)
{
    const std::string operation =
        master.empty() ? "releasing " + name + " from its master" : "enslaving " + name + " to " + master;
    const LinkRecord link = require_link_record(socket_, name, operation);
    int master_index = 0;
    if (!master.empty()) {
        const LinkRecord bridge = require_link_record(socket_, master, operation);
        // IFLA_MASTER would also enslave to a bond or VRF; the contract is bridges only.
        if (bridge.kind != "bridge") {
            throw Error(ErrorKind::InvalidArgument, "netlink: " + operation + " failed: " + master +
                                                        " is not a bridge (kind \"" + bridge.kind + "\")");
        }
        master_index = bridge.index;
    }
    const NlResult result = set_link(socket_, AF_UNSPEC, link.index, [&](nl_msg* msg) {
        return nla_put_u32(msg, IFLA_MASTER, static_cast<std::uint32_t>(master_index)) >= 0;
    });
    if (!result.ok()) {
        if (-result.error == ELOOP) {
            // A bridge into itself or into one of its own ports; errno's own text ("Too many levels of symbolic
            // links") would only puzzle.
            throw Error(ErrorKind::InvalidArgument, "netlink: " + operation + " failed: that would make a loop of " +
                                                        "bridges (" + describe(result) + ")");
        }
        throw_result(change_kind(result), operation, result);
    }
}

// owner/group as QEMU's user would need them; UINT32_MAX (uid/gid -1) leaves that one unrestricted, since the
// kernel rejects -1 in TUNSETOWNER/TUNSETGROUP. With neither set, anyone who can open /dev/net/tun may attach.
void NetlinkLinks::create_tap(const std::string& name, std::uint32_t owner, std::uint32_t group)
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
    request.ifr_flags =
        static_cast<short>(static_cast<unsigned short>(IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | IFF_TUN_EXCL));
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

void NetlinkLinks::set_port_flag(const std::string& name, int attribute, bool on, const std::string& what,
                                 const std::string& feature)
{
    const std::string operation = "turning " + what + (on ? " on" : " off") + " on " + name;
    const LinkRecord link = require_link_record(socket_, name, operation);
    // The kernel's answer for a non-port is EOPNOTSUPP, which would read like a missing feature.
    if (link.slave_kind != "bridge") {
        throw Error(ErrorKind::InvalidArgument, "netlink: " + operation + " failed: " + name + " is not a bridge port");
    }
    const NlResult result = set_link(socket_, AF_BRIDGE, link.index, [&](nl_msg* msg) {
        // NLA_F_NESTED is not decoration here: without it the bridge reads IFLA_PROTINFO as the old one-byte
        // STP port state.
        nlattr* protinfo = nla_nest_start(msg, IFLA_PROTINFO | NLA_F_NESTED);
        if (protinfo == nullptr || nla_put_u8(msg, attribute, on ? 1 : 0) < 0) {
            return false;
        }
        nla_nest_end(msg, protinfo);
        return true;
    });
    if (!result.ok()) {
        throw_result(change_kind(result), operation, result);
    }
    // Old kernels ignore an unknown attribute and ACK; only the read-back tells.
    std::optional<bool> reported;
    require_link_record(socket_, name, operation, [&](const nlmsghdr* hdr) {
        if (const nlattr* attr = linkinfo_attribute(hdr, IFLA_INFO_SLAVE_DATA, attribute, IFLA_BRPORT_MAX)) {
            reported = nla_get_u8(const_cast<nlattr*>(attr)) != 0;
        }
    });
    if (!reported) {
        throw Error(ErrorKind::Unsupported,
                    "netlink: " + operation + " failed: " + feature + " is not available in this kernel");
    }
    if (*reported != on) {
        throw Error(ErrorKind::Kernel, "netlink: " + operation + " failed: the kernel acknowledged but reports " +
                                           what + " " + (*reported ? "on" : "off"));
    }
}

void NetlinkLinks::set_port_isolated(const std::string& name, bool isolated)
{
    set_port_flag(name, IFLA_BRPORT_ISOLATED, isolated, "port isolation",
                  "bridge port isolation (IFLA_BRPORT_ISOLATED, Linux 4.18)");
}

void NetlinkLinks::set_port_hairpin(const std::string& name, bool hairpin)
{
    set_port_flag(name, IFLA_BRPORT_MODE, hairpin, "hairpin mode", "bridge hairpin mode (IFLA_BRPORT_MODE)");
}

std::optional<plan::LinkAdapter::PortFlags> NetlinkLinks::port_flags(const std::string& name)
{
    std::optional<bool> isolated, hairpin;
    const std::optional<LinkRecord> link = find_link_record(socket_, name, [&](const nlmsghdr* hdr) {
        if (const nlattr* attr = linkinfo_attribute(hdr, IFLA_INFO_SLAVE_DATA, IFLA_BRPORT_ISOLATED, IFLA_BRPORT_MAX)) {
            isolated = nla_get_u8(const_cast<nlattr*>(attr)) != 0;
        }
        if (const nlattr* attr = linkinfo_attribute(hdr, IFLA_INFO_SLAVE_DATA, IFLA_BRPORT_MODE, IFLA_BRPORT_MAX)) {
            hairpin = nla_get_u8(const_cast<nlattr*>(attr)) != 0;
        }
    });
    if (!link || link->slave_kind != "bridge" || !isolated || !hairpin) {
        return std::nullopt;
    }
    return PortFlags{*isolated, *hairpin};
}

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
                char text[INET6_ADDRSTRLEN] = {};
                ::inet_ntop(family, m->id.idiag_src, text, sizeof text);
                l.address = text;
                result.push_back(std::move(l));
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

std::vector<plan::FdbEntry> NetlinkLinks::list_fdb(const std::string& bridge)
{
    const std::string operation = "listing the FDB of " + bridge;
    const LinkRecord link = require_link_record(socket_, bridge, operation);
    if (link.kind != "bridge") {
        throw Error(ErrorKind::InvalidArgument,
                    "netlink: " + operation + " failed: " + bridge + " is not a bridge (kind \"" + link.kind + "\")");
    }
    std::vector<plan::FdbEntry> entries;
    NlResult result;
    // A dump that races a change is flagged by the kernel; a few retries make a consistent snapshot.
    for (int attempt = 0; attempt < 3; ++attempt) {
        entries.clear();
        // The filter is spelt the way iproute2 spells it (ifinfomsg + IFLA_MASTER), which every kernel since 4.12
        // honours on a non-strict socket; entries are still checked below, so an unfiltered dump is harmless.
        ifinfomsg header{};
        header.ifi_family = AF_BRIDGE;
        NlMsgPtr msg = new_request(RTM_GETNEIGH, NLM_F_DUMP, &header, sizeof(header));
        if (nla_put_u32(msg.get(), IFLA_MASTER, static_cast<std::uint32_t>(link.index)) < 0) {
            throw Error(ErrorKind::Kernel, "netlink: building the FDB dump request failed");
        }
        result = transact(
            socket_, msg.get(),
            [&](const nlmsghdr* hdr) {
                if (hdr->nlmsg_type != RTM_NEWNEIGH) {
                    return;
                }
                const auto* ndm = static_cast<const ndmsg*>(nlmsg_data(hdr));
                nlattr* tb[NDA_MAX + 1] = {};
                if (ndm->ndm_family != AF_BRIDGE ||
                    nlmsg_parse(const_cast<nlmsghdr*>(hdr), sizeof(ndmsg), tb, NDA_MAX, nullptr) < 0) {
                    return;
                }
                // The ports' own address lists ("self" entries) come without NDA_MASTER: not the bridge's FDB.
                if (tb[NDA_MASTER] == nullptr || static_cast<int>(nla_get_u32(tb[NDA_MASTER])) != link.index ||
                    tb[NDA_LLADDR] == nullptr || nla_len(tb[NDA_LLADDR]) != 6) {
                    return;
                }
                plan::FdbEntry entry;
                entry.mac = model::Mac::from_bytes(nla_data(tb[NDA_LLADDR])).str();
                entry.port_index = ndm->ndm_ifindex;
                if (tb[NDA_VLAN] != nullptr) {
                    entry.vlan = nla_get_u16(tb[NDA_VLAN]);
                }
                entry.local = (ndm->ndm_state & NUD_PERMANENT) != 0;
                entries.push_back(std::move(entry));
            },
            true);
        if (result.error != -EINTR) {
            break;
        }
    }
    if (!result.ok()) {
        throw_result(result.error == -ENODEV ? ErrorKind::NotFound : ErrorKind::Kernel, operation, result);
    }
    return entries;
}

// Probes by creating a throwaway bridge with IFLA_BR_VLAN_FILTERING=1 and reading it back: kernels without
// CONFIG_BRIDGE_VLAN_FILTERING refuse with EOPNOTSUPP (and create nothing), kernels older than the attribute
// ignore it. The bridge lives in the daemon's namespace for a moment, so it is deleted on every path.
bool NetlinkLinks::vlan_filtering_supported()
{
    if (vlan_filtering_) {
        return *vlan_filtering_;
    }
    const std::string name = "kvmprobe" + std::to_string(::getpid());  // at most 15 characters: pids < 2^22
    const std::string operation = "probing bridge VLAN filtering with " + name;

    const auto create = [&] {
        ifinfomsg header{};
        header.ifi_family = AF_UNSPEC;
        NlMsgPtr msg = new_request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, &header, sizeof(header));
        nlattr* linkinfo = nullptr;
        nlattr* data = nullptr;
        if (nla_put_string(msg.get(), IFLA_IFNAME, name.c_str()) < 0 ||
            (linkinfo = nla_nest_start(msg.get(), IFLA_LINKINFO)) == nullptr ||
            nla_put_string(msg.get(), IFLA_INFO_KIND, "bridge") < 0 ||
            (data = nla_nest_start(msg.get(), IFLA_INFO_DATA)) == nullptr ||
            nla_put_u8(msg.get(), IFLA_BR_VLAN_FILTERING, 1) < 0) {
            throw Error(ErrorKind::Kernel, "netlink: building the VLAN filtering probe failed");
        }
        nla_nest_end(msg.get(), data);
        nla_nest_end(msg.get(), linkinfo);
        return transact(socket_, msg.get());
    };

    NlResult created = create();
    if (created.error == -EEXIST) {
        // Only a probe of an earlier process with our pid can have left this name behind; it is ours to remove.
        const std::optional<LinkRecord> stale = find_link_record(socket_, name);
        if (!stale || stale->kind != "bridge") {
            throw_result(ErrorKind::Kernel, operation, created);
        }
        delete_link_named(socket_, name);
        created = create();
    }

    std::optional<bool> supported;
    std::string failure;
    if (created.ok()) {
        try {
            find_link_record(socket_, name, [&](const nlmsghdr* hdr) {
                const nlattr* attr = linkinfo_attribute(hdr, IFLA_INFO_DATA, IFLA_BR_VLAN_FILTERING, IFLA_BR_MAX);
                supported = attr != nullptr && nla_get_u8(const_cast<nlattr*>(attr)) == 1;
            });
            if (!supported) {
                failure = "the probe bridge vanished before it could be read back";
            }
        } catch (const Error& e) {
            failure = e.what();
        }
    } else if (created.error == -EOPNOTSUPP) {
        // "Operation not supported": no VLAN filtering, or (extack "Unknown device type") no bridge at all.
        supported = false;
    } else {
        failure = describe(created);
    }

    // Delete whatever exists under the name, also when creation reported an error: a failure after
    // registration may leave the link in place on some kernels.
    const NlResult removed = delete_link_named(socket_, name);
    if (!removed.ok() && removed.error != -ENODEV) {
        if (supported) {
            vlan_filtering_ = supported;  // the answer is known; the stray link is the problem to report
        }
        throw_result(ErrorKind::Kernel, "deleting the VLAN filtering probe bridge " + name, removed);
    }
    if (!supported) {
        throw Error(ErrorKind::Kernel, "netlink: " + operation + " failed: " + failure);
    }
    vlan_filtering_ = supported;
    return *supported;
}

namespace {

const char* const vlan_filtering_missing =
    "bridge VLAN filtering (CONFIG_BRIDGE_VLAN_FILTERING) is not available in this kernel";

// The VLANs of bridge port `ifindex` as vid -> BRIDGE_VLAN_INFO_* flags, from the AF_BRIDGE link dump that
// `bridge vlan show` uses (RTEXT_FILTER_BRVLAN: one IFLA_BRIDGE_VLAN_INFO per vid, no ranges).
std::map<std::uint16_t, std::uint16_t> port_vlans(nl_sock* socket, int ifindex, const std::string& operation)
{
    std::map<std::uint16_t, std::uint16_t> vlans;
    NlResult result;
    for (int attempt = 0; attempt < 3; ++attempt) {
        vlans.clear();
        ifinfomsg header{};
        header.ifi_family = AF_BRIDGE;
        NlMsgPtr msg = new_request(RTM_GETLINK, NLM_F_DUMP, &header, sizeof(header));
        if (nla_put_u32(msg.get(), IFLA_EXT_MASK, RTEXT_FILTER_BRVLAN) < 0) {
            throw Error(ErrorKind::Kernel, "netlink: building the bridge VLAN dump request failed");
        }
        result = transact(
            socket, msg.get(),
            [&](const nlmsghdr* hdr) {
                if (hdr->nlmsg_type != RTM_NEWLINK) {
                    return;
                }
                const auto* ifi = static_cast<const ifinfomsg*>(nlmsg_data(hdr));
                nlattr* tb[IFLA_MAX + 1] = {};
                if (ifi->ifi_index != ifindex ||
                    nlmsg_parse(const_cast<nlmsghdr*>(hdr), sizeof(ifinfomsg), tb, IFLA_MAX, nullptr) < 0 ||
                    tb[IFLA_AF_SPEC] == nullptr) {
                    return;
                }
                nlattr* attr = nullptr;
                int remaining = 0;
                nla_for_each_nested(attr, tb[IFLA_AF_SPEC], remaining)
                {
                    if (nla_type(attr) != IFLA_BRIDGE_VLAN_INFO ||
                        nla_len(attr) < static_cast<int>(sizeof(bridge_vlan_info))) {
                        continue;
                    }
                    bridge_vlan_info info{};
                    std::memcpy(&info, nla_data(attr), sizeof(info));
                    vlans[info.vid] = info.flags;
                }
            },
            true);
        if (result.error != -EINTR) {
            break;
        }
    }
    if (!result.ok()) {
        throw_result(result.error == -ENODEV ? ErrorKind::NotFound : ErrorKind::Kernel, operation, result);
    }
    return vlans;
}

// One RTM_SETLINK (add) or RTM_DELLINK (remove) of AF_BRIDGE on a port, carrying one IFLA_BRIDGE_VLAN_INFO per
// entry, as `bridge vlan add|del dev PORT vid N [pvid untagged]` sends it (without "self": the bridge, the
// port's master, handles it).
NlResult change_port_vlans(nl_sock* socket, int type, int ifindex, const std::vector<bridge_vlan_info>& entries)
{
    ifinfomsg header{};
    header.ifi_family = AF_BRIDGE;
    header.ifi_index = ifindex;
    NlMsgPtr msg = new_request(type, 0, &header, sizeof(header));
    nlattr* spec = nla_nest_start(msg.get(), IFLA_AF_SPEC);
    bool ok = spec != nullptr;
    for (const bridge_vlan_info& entry : entries) {
        ok = ok && nla_put(msg.get(), IFLA_BRIDGE_VLAN_INFO, sizeof(entry), &entry) >= 0;
    }
    if (!ok) {
        throw Error(ErrorKind::Kernel, "netlink: building a bridge VLAN request failed");
    }
    nla_nest_end(msg.get(), spec);
    return transact(socket, msg.get());
}

}  // namespace

void NetlinkLinks::set_port_vlans(const std::string& bridge, const std::string& port, std::uint16_t pvid,
                                  const std::vector<std::uint16_t>& tagged)
{
    std::string wanted_text = pvid != 0 ? "pvid " + std::to_string(pvid) : std::string("no pvid");
    std::map<std::uint16_t, std::uint16_t> wanted;  // vid -> flags
    if (pvid != 0) {
        wanted[pvid] = BRIDGE_VLAN_INFO_PVID | BRIDGE_VLAN_INFO_UNTAGGED;
    }
    for (std::size_t i = 0; i < tagged.size(); ++i) {
        wanted_text += (i == 0 ? ", tagged " : ",") + std::to_string(tagged[i]);
    }
    const std::string operation = "setting VLANs (" + wanted_text + ") on port " + port + " of " + bridge;
    const auto invalid = [&](const std::string& why) {
        throw Error(ErrorKind::InvalidArgument, "netlink: " + operation + " failed: " + why);
    };
    if (pvid > 4094) {
        invalid("VLAN ids are 1 to 4094");
    }
    for (const std::uint16_t vid : tagged) {
        if (vid == 0 || vid > 4094) {
            invalid("VLAN ids are 1 to 4094");
        }
        if (wanted.count(vid) != 0) {
            invalid("VLAN " + std::to_string(vid) + (vid == pvid ? " is also the pvid" : " is listed twice"));
        }
        wanted[vid] = 0;
    }

    const LinkRecord bridge_link = require_link_record(socket_, bridge, operation);
    if (bridge_link.kind != "bridge") {
        invalid(bridge + " is not a bridge (kind \"" + bridge_link.kind + "\")");
    }
    const LinkRecord port_link = require_link_record(socket_, port, operation);
    if (port_link.master_index != bridge_link.index || port_link.slave_kind != "bridge") {
        invalid(port + " is not a port of " + bridge);
    }

    // VLAN filtering on the bridge: a change of its kind data, like `ip link set BRIDGE type bridge
    // vlan_filtering 1`. Kernels without CONFIG_BRIDGE_VLAN_FILTERING refuse with EOPNOTSUPP, kernels older than
    // the attribute ignore it, so the bridge is read back either way.
    const auto filtering = [&] {
        std::optional<bool> on;
        require_link_record(socket_, bridge, operation, [&](const nlmsghdr* hdr) {
            if (const nlattr* attr = linkinfo_attribute(hdr, IFLA_INFO_DATA, IFLA_BR_VLAN_FILTERING, IFLA_BR_MAX)) {
                on = nla_get_u8(const_cast<nlattr*>(attr)) != 0;
            }
        });
        return on.value_or(false);
    };
    if (!filtering()) {
        ifinfomsg header{};
        header.ifi_family = AF_UNSPEC;
        header.ifi_index = bridge_link.index;
        NlMsgPtr msg = new_request(RTM_NEWLINK, 0, &header, sizeof(header));
        nlattr* linkinfo = nullptr;
        nlattr* data = nullptr;
        if ((linkinfo = nla_nest_start(msg.get(), IFLA_LINKINFO)) == nullptr ||
            nla_put_string(msg.get(), IFLA_INFO_KIND, "bridge") < 0 ||
            (data = nla_nest_start(msg.get(), IFLA_INFO_DATA)) == nullptr ||
            nla_put_u8(msg.get(), IFLA_BR_VLAN_FILTERING, 1) < 0) {
            throw Error(ErrorKind::Kernel, "netlink: building the VLAN filtering request failed");
        }
        nla_nest_end(msg.get(), data);
        nla_nest_end(msg.get(), linkinfo);
        const NlResult result = transact(socket_, msg.get());
        if (result.error == -EOPNOTSUPP) {
            throw Error(ErrorKind::Unsupported, "netlink: " + operation + " failed: turning VLAN filtering on for " +
                                                    bridge + ": " + vlan_filtering_missing + " (" + describe(result) +
                                                    ")");
        }
        if (!result.ok()) {
            throw_result(change_kind(result), operation + ": turning VLAN filtering on for " + bridge, result);
        }
        if (!filtering()) {
            throw Error(ErrorKind::Unsupported, "netlink: " + operation + " failed: the kernel acknowledged " +
                                                    "vlan_filtering 1 on " + bridge + " but did not keep it; " +
                                                    vlan_filtering_missing);
        }
    }

    // Add (or re-flag) the wanted VLANs first, then remove the rest: the port is never left in no VLAN at all,
    // and an existing VLAN whose flags differ is updated in place by the add.
    const std::map<std::uint16_t, std::uint16_t> current = port_vlans(socket_, port_link.index, operation);
    std::vector<bridge_vlan_info> add;
    for (const auto& [vid, flags] : wanted) {
        const auto it = current.find(vid);
        if (it == current.end() || (it->second & (BRIDGE_VLAN_INFO_PVID | BRIDGE_VLAN_INFO_UNTAGGED)) != flags) {
            add.push_back(bridge_vlan_info{flags, vid});
        }
    }
    std::vector<bridge_vlan_info> remove;
    for (const auto& [vid, flags] : current) {
        if (wanted.count(vid) == 0) {
            remove.push_back(bridge_vlan_info{0, vid});
        }
    }
    for (const auto& [type, entries] : {std::pair{RTM_SETLINK, &add}, std::pair{RTM_DELLINK, &remove}}) {
        if (entries->empty()) {
            continue;
        }
        const NlResult result = change_port_vlans(socket_, type, port_link.index, *entries);
        if (result.error == -EOPNOTSUPP) {
            throw Error(ErrorKind::Unsupported,
                        "netlink: " + operation + " failed: " + vlan_filtering_missing + " (" + describe(result) + ")");
        }
        if (!result.ok()) {
            throw_result(change_kind(result),
                         std::string(type == RTM_SETLINK ? "adding" : "removing") + " VLANs while " + operation,
                         result);
        }
    }

    // The kernel applies the entries one by one; the read-back shows what it actually holds.
    std::map<std::uint16_t, std::uint16_t> now = port_vlans(socket_, port_link.index, operation);
    for (auto& [vid, flags] : now) {
        flags &= BRIDGE_VLAN_INFO_PVID | BRIDGE_VLAN_INFO_UNTAGGED;
    }
    if (now != wanted) {
        std::string held;
        for (const auto& [vid, flags] : now) {
            held += (held.empty() ? "" : ", ") + std::to_string(vid) +
                    ((flags & BRIDGE_VLAN_INFO_PVID) != 0 ? " pvid" : "") +
                    ((flags & BRIDGE_VLAN_INFO_UNTAGGED) != 0 ? " untagged" : "");
        }
        throw Error(ErrorKind::Kernel, "netlink: " + operation +
                                           " failed: the kernel acknowledged but the port is in " +
                                           (held.empty() ? std::string("no VLAN") : "VLAN " + held));
    }
}

void NetlinkLinks::set_bandwidth(const std::string& name, const plan::PortBandwidth& bandwidth)
{
    tc::validate(name, bandwidth);
    const LinkRecord link = require_link_record(socket_, name, "setting bandwidth on " + name);
    tc::apply_bandwidth(link.index, name, bandwidth);
}

}  // namespace kvmnet::kernel
