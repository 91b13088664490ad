// Links (plan::Links) of kernel::NetlinkLinks on libnl-route-3 (3.7): fresh dumps on every call (the reconciler
// wants the kernel's truth, not a cache that may have drifted) and link-level attributes. Bridges, the one link
// kind with its own options, are bridges.cpp.
//
// Error kinds: a missing link (or, for delete_address and delete_route, a missing address or route) is NotFound, a
// name, address or route that is already there is AlreadyExists, input the kernel would refuse or silently alter is
// InvalidArgument, a kernel without the feature is Unsupported, everything else is Kernel. Messages name the
// operation and the link or route and carry the errno's text, plus the kernel's extended-ack text where it gave one.
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

std::optional<model::Mac> link_mac(nl_addr* addr)
{
    if (addr == nullptr || nl_addr_get_len(addr) != 6) {
        return std::nullopt;
    }
    return model::Mac::from_bytes(nl_addr_get_binary_addr(addr));
}

// `wireless` costs two sysfs lookups: a dump of every link (O(networks)
// per start) leaves it false; find_link, which reads an uplink, fills it.
plan::LinkInfo to_info(rtnl_link* link, bool read_wireless)
{
    plan::LinkInfo info;
    info.index = rtnl_link_get_ifindex(link);
    if (const char* name = rtnl_link_get_name(link)) {
        info.name = name;
    }
    if (const char* kind = rtnl_link_get_type(link)) {
        info.kind = kind;
    }
    if (const char* alias = rtnl_link_get_ifalias(link)) {
        info.alias = alias;
    }
    info.mtu = rtnl_link_get_mtu(link);
    info.up = (rtnl_link_get_flags(link) & IFF_UP) != 0;
    info.carrier = (rtnl_link_get_flags(link) & IFF_LOWER_UP) != 0;
    info.master_index = rtnl_link_get_master(link);
    info.mac = link_mac(rtnl_link_get_addr(link));
    // Wireless NICs cannot be bridge-mode uplinks (an access point drops frames from foreign MACs), and rtnetlink
    // has no flag for them. Inside `ip netns exec`, /sys is remounted for the namespace, so the name resolves to
    // this namespace's link. Errors count as "no".
    if (read_wireless && !info.name.empty()) {
        const std::filesystem::path sys = std::filesystem::path("/sys/class/net") / info.name;
        std::error_code ec;
        info.wireless = std::filesystem::exists(sys / "wireless", ec) || std::filesystem::exists(sys / "phy80211", ec);
    }
    // libnl fills these from IFLA_STATS64 when the kernel sends it (always, since 2.6.35), so they do not wrap at
    // 4 GiB.
    info.stats.rx_bytes = rtnl_link_get_stat(link, RTNL_LINK_RX_BYTES);
    info.stats.tx_bytes = rtnl_link_get_stat(link, RTNL_LINK_TX_BYTES);
    info.stats.rx_packets = rtnl_link_get_stat(link, RTNL_LINK_RX_PACKETS);
    info.stats.tx_packets = rtnl_link_get_stat(link, RTNL_LINK_TX_PACKETS);
    info.stats.rx_dropped = rtnl_link_get_stat(link, RTNL_LINK_RX_DROPPED);
    info.stats.tx_dropped = rtnl_link_get_stat(link, RTNL_LINK_TX_DROPPED);
    return info;
}

}  // namespace

NetlinkLinks::NetlinkLinks()
{
    socket_ = nl_socket_alloc();
    if (socket_ == nullptr) {
        throw Error(ErrorKind::Kernel, "netlink: allocating a socket failed");
    }
    const int err = nl_connect(socket_, NETLINK_ROUTE);
    if (err < 0) {
        nl_socket_free(socket_);
        socket_ = nullptr;
        throw Error(ErrorKind::Kernel, std::string("netlink: connecting to NETLINK_ROUTE failed: ") + nl_geterror(err));
    }
    // Extended acks carry the kernel's reason ("Nexthop has invalid gateway") into our error messages. Kernels
    // before 4.12 lack the option; the errno alone then has to do.
    enable_extended_ack(socket_);
}

NetlinkLinks::~NetlinkLinks()
{
    // nl_socket_free closes the fd too.
    nl_socket_free(socket_);
}

std::vector<plan::LinkInfo> NetlinkLinks::list_links()
{
    nl_cache* raw = nullptr;
    const int err = rtnl_link_alloc_cache(socket_, AF_UNSPEC, &raw);
    CachePtr cache(raw);
    if (err < 0) {
        fail("listing links", err);
    }
    std::vector<plan::LinkInfo> links;
    for (nl_object* object = nl_cache_get_first(cache.get()); object != nullptr; object = nl_cache_get_next(object)) {
        links.push_back(to_info(reinterpret_cast<rtnl_link*>(object), false));
    }
    return links;
}

std::vector<plan::LinkInfo> NetlinkLinks::list_ports(int master_index)
{
    const std::string operation = "listing the ports of link " + std::to_string(master_index);
    std::vector<plan::LinkInfo> ports;
    // IFLA_MASTER in the dump request: the kernel (since 4.x, strict socket or not) sends only the master's ports, so
    // one bridge's ports do not cost a dump of every link on the host. Replies are still checked below, so a kernel
    // that ignores the filter only costs time.
    const NlResult result = dump_objects(
        socket_,
        [&] {
            ifinfomsg header{};
            header.ifi_family = AF_UNSPEC;
            NlMsgPtr msg = new_request(RTM_GETLINK, NLM_F_DUMP, &header, sizeof(header));
            if (nla_put_u32(msg.get(), IFLA_MASTER, static_cast<std::uint32_t>(master_index)) < 0) {
                throw Error(ErrorKind::Kernel, "netlink: building the port dump request failed");
            }
            return msg;
        },
        RTM_NEWLINK, operation, [&] { ports.clear(); },
        [&](nl_object* object) {
            auto* link = reinterpret_cast<rtnl_link*>(object);
            if (rtnl_link_get_master(link) == master_index) {
                ports.push_back(to_info(link, false));
            }
        });
    if (!result.ok()) {
        fail_result(operation, result);
    }
    return ports;
}

std::optional<plan::LinkInfo> NetlinkLinks::find_link(const std::string& name)
{
    LinkPtr link = get_link(socket_, name);
    if (!link) {
        return std::nullopt;
    }
    return to_info(link.get(), true);
}

namespace {

// One change of an existing link: `set` fills a change request, which the
// kernel applies to `name` (libnl sends only the attributes `set` touched).
void modify_link(nl_sock* socket, const std::string& name, const std::string& operation,
                 const std::function<void(rtnl_link*)>& set)
{
    LinkPtr orig = require_link(socket, name, operation);
    LinkPtr changes(rtnl_link_alloc());
    if (!changes) {
        fail(operation, -NLE_NOMEM);
    }
    set(changes.get());
    change_link(socket, orig.get(), changes.get(), operation);
}

}  // namespace

void NetlinkLinks::set_alias(const std::string& name, const std::string& alias)
{
    const std::string operation = "setting alias \"" + alias + "\" on " + name;
    modify_link(socket_, name, operation, [&](rtnl_link* changes) { rtnl_link_set_ifalias(changes, alias.c_str()); });
}

void NetlinkLinks::rename_link(const std::string& name, const std::string& new_name)
{
    const std::string operation = "renaming " + name + " to " + new_name;
    modify_link(socket_, name, operation, [&](rtnl_link* changes) { rtnl_link_set_name(changes, new_name.c_str()); });
}

void NetlinkLinks::set_mtu(const std::string& name, std::uint32_t mtu)
{
    const std::string operation = "setting MTU " + std::to_string(mtu) + " on " + name;
    modify_link(socket_, name, operation, [&](rtnl_link* changes) { rtnl_link_set_mtu(changes, mtu); });
}

void NetlinkLinks::set_up(const std::string& name, bool up)
{
    const std::string operation = std::string("setting ") + name + (up ? " up" : " down");
    modify_link(socket_, name, operation, [&](rtnl_link* changes) {
        // Flags travel as value + change mask, so only IFF_UP is touched.
        if (up) {
            rtnl_link_set_flags(changes, IFF_UP);
        } else {
            rtnl_link_unset_flags(changes, IFF_UP);
        }
    });
}

void NetlinkLinks::set_mac(const std::string& name, const model::Mac& mac)
{
    const std::string operation = "setting MAC " + mac.str() + " on " + name;
    const model::Mac* bytes = &mac;
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
        fail_result(operation, result);
    }
}

void NetlinkLinks::delete_link(const std::string& name)
{
    const std::string operation = "deleting link " + name;
    if (!valid_ifname(name)) {
        throw Error(ErrorKind::NotFound, "netlink: " + operation + " failed: no such interface " + name);
    }
    LinkPtr link(rtnl_link_alloc());
    if (!link) {
        fail(operation, -NLE_NOMEM);
    }
    rtnl_link_set_name(link.get(), name.c_str());
    const int err = rtnl_link_delete(socket_, link.get());
    if (err == -NLE_OBJ_NOTFOUND || err == -NLE_NODEV) {
        throw Error(ErrorKind::NotFound, "netlink: " + operation + " failed: no such interface " + name);
    }
    if (err < 0) {
        fail_mapped(operation, err);
    }
}

}  // namespace kvmnet::kernel
