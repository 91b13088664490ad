// rtnetlink implementation of plan::LinkAdapter on libnl-route-3 (3.7): observes links and addresses with fresh
// dumps on every call (the reconciler wants the kernel's truth, not a cache that may have drifted) and performs the
// small verbs the planner emits. Bridge creation is hand-built because libnl 3.7 has no setters for the bridge
// kind's IFLA_INFO_DATA (STP state, forward delay).
//
// Error kinds: a missing link (or, for delete_address, a missing address) is NotFound, a name or address that is
// already there is AlreadyExists, a kernel without the bridge driver is Unsupported, everything else is Kernel.
// Messages name the operation and the link and carry libnl's text for the errno.
#include <arpa/inet.h>
#include <sys/socket.h>

#include <array>
#include <cstddef>
#include <cstdio>
#include <memory>
#include <utility>

#include <linux/if.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <netlink/addr.h>
#include <netlink/attr.h>
#include <netlink/cache.h>
#include <netlink/errno.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/socket.h>

// After libnl on purpose: the header names `struct nl_sock` inside kvmnet::kernel with no global forward
// declaration, so unless ::nl_sock is already declared it would mean a distinct kvmnet::kernel::nl_sock.
#include "kernel/netlink_links.hpp"
#include "model/error.hpp"

namespace kvmnet::kernel {

namespace {

struct CacheFree {
    void operator()(nl_cache* cache) const { nl_cache_free(cache); }
};
struct LinkPut {
    void operator()(rtnl_link* link) const { rtnl_link_put(link); }
};
struct AddrPut {
    void operator()(rtnl_addr* addr) const { rtnl_addr_put(addr); }
};
struct NlAddrPut {
    void operator()(nl_addr* addr) const { nl_addr_put(addr); }
};
struct MsgFree {
    void operator()(nl_msg* msg) const { nlmsg_free(msg); }
};

using CachePtr = std::unique_ptr<nl_cache, CacheFree>;
using LinkPtr = std::unique_ptr<rtnl_link, LinkPut>;
using AddrPtr = std::unique_ptr<rtnl_addr, AddrPut>;
using NlAddrPtr = std::unique_ptr<nl_addr, NlAddrPut>;
using MsgPtr = std::unique_ptr<nl_msg, MsgFree>;

// libnl error codes are negative; nl_geterror wants the magnitude but tolerates either sign.
[[noreturn]] void fail(const std::string& operation, int nl_error, ErrorKind kind = ErrorKind::Kernel)
{
    throw Error(kind, "netlink: " + operation + " failed: " + nl_geterror(nl_error));
}

ErrorKind kind_for(int nl_error)
{
    switch (nl_error < 0 ? -nl_error : nl_error) {
    case NLE_OBJ_NOTFOUND:  // ENODEV: the link vanished between lookup and change
    case NLE_NODEV: return ErrorKind::NotFound;
    case NLE_EXIST: return ErrorKind::AlreadyExists;
    case NLE_OPNOTSUPP: return ErrorKind::Unsupported;
    default: return ErrorKind::Kernel;
    }
}

[[noreturn]] void fail_mapped(const std::string& operation, int nl_error)
{
    fail(operation, nl_error, kind_for(nl_error));
}

// Mirrors the kernel's dev_valid_name, so a name the kernel would reject with a bare EINVAL gets a clear message,
// and a lookup of such a name can answer "absent" without a round trip.
bool valid_ifname(const std::string& name)
{
    if (name.empty() || name.size() >= IFNAMSIZ || name == "." || name == "..") {
        return false;
    }
    for (char c : name) {
        if (c == '/' || c == ':' || c == '\0' || c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' ||
            c == '\f') {
            return false;
        }
    }
    return true;
}

std::string format_mac(nl_addr* addr)
{
    if (addr == nullptr || nl_addr_get_len(addr) != 6) {
        return {};
    }
    const auto* bytes = static_cast<const unsigned char*>(nl_addr_get_binary_addr(addr));
    std::array<char, 18> text{};
    std::snprintf(text.data(), text.size(), "%02x:%02x:%02x:%02x:%02x:%02x", bytes[0], bytes[1], bytes[2], bytes[3],
                  bytes[4], bytes[5]);
    return text.data();
}

// nl_addr2str would append "/prefix" for some addresses and abbreviate others; inet_ntop is the canonical form that
// `ip` prints and the planner compares against.
std::string format_ip(nl_addr* addr)
{
    if (addr == nullptr) {
        return {};
    }
    const int family = nl_addr_get_family(addr);
    const unsigned int length = nl_addr_get_len(addr);
    if ((family == AF_INET && length != 4) || (family == AF_INET6 && length != 16)) {
        return {};
    }
    std::array<char, INET6_ADDRSTRLEN> text{};
    if (inet_ntop(family, nl_addr_get_binary_addr(addr), text.data(), text.size()) == nullptr) {
        return {};
    }
    return text.data();
}

plan::LinkInfo to_info(rtnl_link* link)
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
    info.master_index = rtnl_link_get_master(link);
    info.mac = format_mac(rtnl_link_get_addr(link));
    return info;
}

// Absent and unnameable links come back empty; only real transport or kernel failures throw.
LinkPtr get_link(nl_sock* socket, const std::string& name)
{
    if (!valid_ifname(name)) {
        return nullptr;
    }
    rtnl_link* raw = nullptr;
    const int err = rtnl_link_get_kernel(socket, 0, name.c_str(), &raw);
    LinkPtr link(raw);
    if (err == -NLE_OBJ_NOTFOUND || err == -NLE_NODEV) {
        return nullptr;
    }
    if (err < 0) {
        fail("looking up " + name, err);
    }
    return link;
}

LinkPtr require_link(nl_sock* socket, const std::string& name, const std::string& operation)
{
    LinkPtr link = get_link(socket, name);
    if (!link) {
        throw Error(ErrorKind::NotFound, "netlink: " + operation + " failed: no such interface " + name);
    }
    return link;
}

void change_link(nl_sock* socket, rtnl_link* orig, rtnl_link* changes, const std::string& operation)
{
    // rtnl_link_change sends RTM_NEWLINK on the existing ifindex and falls back to RTM_SETLINK on EOPNOTSUPP.
    const int err = rtnl_link_change(socket, orig, changes, 0);
    if (err < 0) {
        fail_mapped(operation, err);
    }
}

// Builds an RTM_NEWLINK for a bridge carrying its kind data. With ifindex 0 and NLM_F_CREATE|NLM_F_EXCL it creates
// `name`; with an existing ifindex and no flags it changes that bridge in place, which is how STP and forward delay
// can be adjusted later without recreating the bridge.
//
// Kernel rules (seen on 6.x): IFLA_BR_FORWARD_DELAY is applied before IFLA_BR_STP_STATE whatever the attribute
// order. While STP is on, a delay outside 200..3000 cs is refused with ERANGE; with STP off anything goes. Turning
// STP on clamps the delay into that range silently (0 becomes 200). So a later change that turns STP off and lowers
// the delay must be two messages, STP first: in one message the delay fails and STP stays on.
MsgPtr bridge_request(int ifindex, const std::string& name, const plan::BridgeOptions& options, int flags)
{
    MsgPtr msg(nlmsg_alloc_simple(RTM_NEWLINK, flags));
    if (!msg) {
        return nullptr;
    }
    ifinfomsg header{};
    header.ifi_family = AF_UNSPEC;
    header.ifi_index = ifindex;
    if (nlmsg_append(msg.get(), &header, sizeof(header), NLMSG_ALIGNTO) < 0) {
        return nullptr;
    }
    if (!name.empty() && nla_put_string(msg.get(), IFLA_IFNAME, name.c_str()) < 0) {
        return nullptr;
    }
    if (options.mtu != 0 && nla_put_u32(msg.get(), IFLA_MTU, options.mtu) < 0) {
        return nullptr;
    }
    nlattr* linkinfo = nla_nest_start(msg.get(), IFLA_LINKINFO);
    if (linkinfo == nullptr || nla_put_string(msg.get(), IFLA_INFO_KIND, "bridge") < 0) {
        return nullptr;
    }
    nlattr* data = nla_nest_start(msg.get(), IFLA_INFO_DATA);
    if (data == nullptr) {
        return nullptr;
    }
    // Units are clock_t (USER_HZ = 100), i.e. centiseconds, which is also what `ip -d link` prints.
    if (nla_put_u32(msg.get(), IFLA_BR_FORWARD_DELAY, options.forward_delay_cs) < 0 ||
        nla_put_u32(msg.get(), IFLA_BR_STP_STATE, options.stp ? 1 : 0) < 0) {
        return nullptr;
    }
    nla_nest_end(msg.get(), data);
    nla_nest_end(msg.get(), linkinfo);
    return msg;
}

int set_mtu_by_index(nl_sock* socket, int ifindex, std::uint32_t mtu)
{
    MsgPtr msg(nlmsg_alloc_simple(RTM_NEWLINK, 0));
    ifinfomsg header{};
    header.ifi_family = AF_UNSPEC;
    header.ifi_index = ifindex;
    if (!msg || nlmsg_append(msg.get(), &header, sizeof(header), NLMSG_ALIGNTO) < 0 ||
        nla_put_u32(msg.get(), IFLA_MTU, mtu) < 0) {
        return -NLE_NOMEM;
    }
    const int err = nl_send_auto(socket, msg.get());
    return err < 0 ? err : nl_wait_for_ack(socket);
}

struct ParsedAddress {
    NlAddrPtr local;
    NlAddrPtr broadcast;  // IPv4 only, and only where `ip addr add ... brd +` would set one
};

ParsedAddress parse_address(int family, const std::string& address, std::uint8_t prefix_length,
                            const std::string& operation)
{
    if (family != AF_INET && family != AF_INET6) {
        throw Error(ErrorKind::InvalidArgument,
                    "netlink: " + operation + " failed: address family " + std::to_string(family) + " unsupported");
    }
    const unsigned int max_prefix = family == AF_INET ? 32 : 128;
    if (prefix_length > max_prefix) {
        throw Error(ErrorKind::InvalidArgument, "netlink: " + operation + " failed: prefix length out of range");
    }
    // inet_pton is stricter than nl_addr_parse, which also accepts "default", "any" and bare hex.
    std::array<unsigned char, 16> bytes{};
    if (inet_pton(family, address.c_str(), bytes.data()) != 1) {
        throw Error(ErrorKind::InvalidArgument, "netlink: " + operation + " failed: not an " +
                                                    (family == AF_INET ? "IPv4" : "IPv6") + " address: " + address);
    }
    const unsigned int length = family == AF_INET ? 4 : 16;
    ParsedAddress parsed;
    parsed.local.reset(nl_addr_build(family, bytes.data(), length));
    if (!parsed.local) {
        fail(operation, -NLE_NOMEM);
    }
    nl_addr_set_prefixlen(parsed.local.get(), prefix_length);
    // Like iproute2, no broadcast for /31 and /32, where there is no host part to fill.
    if (family == AF_INET && prefix_length <= 30) {
        for (unsigned int bit = prefix_length; bit < 32; ++bit) {
            bytes[bit / 8] |= static_cast<unsigned char>(0x80u >> (bit % 8));
        }
        parsed.broadcast.reset(nl_addr_build(AF_INET, bytes.data(), 4));
        if (!parsed.broadcast) {
            fail(operation, -NLE_NOMEM);
        }
    }
    return parsed;
}

AddrPtr address_object(int ifindex, int family, ParsedAddress& parsed, const std::string& operation)
{
    AddrPtr addr(rtnl_addr_alloc());
    if (!addr) {
        fail(operation, -NLE_NOMEM);
    }
    rtnl_addr_set_ifindex(addr.get(), ifindex);
    rtnl_addr_set_family(addr.get(), family);
    int err = rtnl_addr_set_local(addr.get(), parsed.local.get());
    if (err >= 0 && parsed.broadcast) {
        err = rtnl_addr_set_broadcast(addr.get(), parsed.broadcast.get());
    }
    if (err < 0) {
        fail(operation, err);
    }
    // set_local copies the prefix from the address; repeat it so intent does not depend on that detail.
    rtnl_addr_set_prefixlen(addr.get(), nl_addr_get_prefixlen(parsed.local.get()));
    return addr;
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
        links.push_back(to_info(reinterpret_cast<rtnl_link*>(object)));
    }
    return links;
}

std::optional<plan::LinkInfo> NetlinkLinks::find_link(const std::string& name)
{
    LinkPtr link = get_link(socket_, name);
    if (!link) {
        return std::nullopt;
    }
    return to_info(link.get());
}

std::vector<plan::AddressInfo> NetlinkLinks::list_addresses()
{
    nl_cache* raw = nullptr;
    const int err = rtnl_addr_alloc_cache(socket_, &raw);
    CachePtr cache(raw);
    if (err < 0) {
        fail("listing addresses", err);
    }
    std::vector<plan::AddressInfo> addresses;
    for (nl_object* object = nl_cache_get_first(cache.get()); object != nullptr; object = nl_cache_get_next(object)) {
        auto* addr = reinterpret_cast<rtnl_addr*>(object);
        const int family = rtnl_addr_get_family(addr);
        if (family != AF_INET && family != AF_INET6) {
            continue;
        }
        plan::AddressInfo info;
        info.link_index = rtnl_addr_get_ifindex(addr);
        info.family = family;
        info.address = format_ip(rtnl_addr_get_local(addr));
        info.prefix_length = static_cast<std::uint8_t>(rtnl_addr_get_prefixlen(addr));
        if (!info.address.empty()) {
            addresses.push_back(std::move(info));
        }
    }
    return addresses;
}

void NetlinkLinks::create_bridge(const std::string& name, const plan::BridgeOptions& options)
{
    const std::string operation = "creating bridge " + name;
    if (!valid_ifname(name)) {
        throw Error(ErrorKind::InvalidArgument, "netlink: " + operation + " failed: invalid interface name");
    }
    // The kernel would clamp silently (see bridge_request), and the reconciler would then see endless drift.
    if (options.stp && (options.forward_delay_cs < 200 || options.forward_delay_cs > 3000)) {
        throw Error(ErrorKind::InvalidArgument,
                    "netlink: " + operation + " failed: forward delay " + std::to_string(options.forward_delay_cs) +
                        " cs is outside 200..3000, the range the kernel allows with STP on");
    }
    MsgPtr msg = bridge_request(0, name, options, NLM_F_CREATE | NLM_F_EXCL);
    if (!msg) {
        fail(operation, -NLE_NOMEM);
    }
    int err = nl_send_auto(socket_, msg.get());
    if (err >= 0) {
        err = nl_wait_for_ack(socket_);
    }
    if (err == -NLE_EXIST) {
        throw Error(ErrorKind::AlreadyExists,
                    "netlink: " + operation + " failed: " + name + " already exists (" + nl_geterror(err) + ")");
    }
    if (err < 0) {
        fail_mapped(operation, err);
    }
    if (options.mtu == 0) {
        return;
    }
    // An MTU given at creation is stored without going through the bridge's ndo_change_mtu, so the kernel does not
    // mark it as user-set and resets it to the smallest port MTU when the first port joins. Changing it afterwards
    // does mark it, but only if the value really changes, hence the detour through a neighbouring value.
    const std::string pin = "pinning MTU " + std::to_string(options.mtu) + " on new bridge " + name;
    LinkPtr link = get_link(socket_, name);
    err = link ? 0 : -NLE_OBJ_NOTFOUND;
    if (err == 0) {
        const int ifindex = rtnl_link_get_ifindex(link.get());
        // 68 (ETH_MIN_MTU) is the bridge's lower bound, so step up from there and down from anything else.
        err = set_mtu_by_index(socket_, ifindex, options.mtu > 68 ? options.mtu - 1 : options.mtu + 1);
        if (err >= 0) {
            err = set_mtu_by_index(socket_, ifindex, options.mtu);
        }
    }
    if (err < 0) {
        // Half-configured is worse than absent: the caller will retry the whole creation.
        LinkPtr doomed(rtnl_link_alloc());
        if (doomed) {
            rtnl_link_set_name(doomed.get(), name.c_str());
            rtnl_link_delete(socket_, doomed.get());
        }
        fail_mapped(pin, err);
    }
}

void NetlinkLinks::set_alias(const std::string& name, const std::string& alias)
{
    const std::string operation = "setting alias \"" + alias + "\" on " + name;
    LinkPtr orig = require_link(socket_, name, operation);
    LinkPtr changes(rtnl_link_alloc());
    if (!changes) {
        fail(operation, -NLE_NOMEM);
    }
    rtnl_link_set_ifalias(changes.get(), alias.c_str());
    change_link(socket_, orig.get(), changes.get(), operation);
}

void NetlinkLinks::set_mtu(const std::string& name, std::uint32_t mtu)
{
    const std::string operation = "setting MTU " + std::to_string(mtu) + " on " + name;
    LinkPtr orig = require_link(socket_, name, operation);
    LinkPtr changes(rtnl_link_alloc());
    if (!changes) {
        fail(operation, -NLE_NOMEM);
    }
    rtnl_link_set_mtu(changes.get(), mtu);
    change_link(socket_, orig.get(), changes.get(), operation);
}

void NetlinkLinks::set_up(const std::string& name, bool up)
{
    const std::string operation = std::string("setting ") + name + (up ? " up" : " down");
    LinkPtr orig = require_link(socket_, name, operation);
    LinkPtr changes(rtnl_link_alloc());
    if (!changes) {
        fail(operation, -NLE_NOMEM);
    }
    // Flags travel as value + change mask, so only IFF_UP is touched.
    if (up) {
        rtnl_link_set_flags(changes.get(), IFF_UP);
    } else {
        rtnl_link_unset_flags(changes.get(), IFF_UP);
    }
    change_link(socket_, orig.get(), changes.get(), operation);
}

void NetlinkLinks::add_address(const std::string& name, int family, const std::string& address,
                               std::uint8_t prefix_length)
{
    const std::string operation = "adding address " + address + "/" + std::to_string(prefix_length) + " to " + name;
    ParsedAddress parsed = parse_address(family, address, prefix_length, operation);
    LinkPtr link = require_link(socket_, name, operation);
    AddrPtr addr = address_object(rtnl_link_get_ifindex(link.get()), family, parsed, operation);
    // EXCL so a duplicate is reported rather than silently merged.
    const int err = rtnl_addr_add(socket_, addr.get(), NLM_F_EXCL);
    if (err < 0) {
        fail_mapped(operation, err);
    }
}

void NetlinkLinks::delete_address(const std::string& name, int family, const std::string& address,
                                  std::uint8_t prefix_length)
{
    const std::string operation = "deleting address " + address + "/" + std::to_string(prefix_length) + " from " + name;
    ParsedAddress parsed = parse_address(family, address, prefix_length, operation);
    parsed.broadcast.reset();  // a mismatched broadcast must not make the kernel miss the address
    LinkPtr link = require_link(socket_, name, operation);
    AddrPtr addr = address_object(rtnl_link_get_ifindex(link.get()), family, parsed, operation);
    const int err = rtnl_addr_delete(socket_, addr.get(), 0);
    if (err == -NLE_NOADDR) {
        // EADDRNOTAVAIL, which libnl words as "Invalid address for specified address family".
        throw Error(ErrorKind::NotFound,
                    "netlink: " + operation + " failed: address not present (" + nl_geterror(err) + ")");
    }
    if (err < 0) {
        fail_mapped(operation, err);
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
