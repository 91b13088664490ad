// Addresses (plan::Addresses) of kernel::NetlinkLinks. add_address_info hand-builds RTM_NEWADDR because libnl's
// address object hides details a bridge takeover must reproduce exactly (IFA_FLAGS, lifetimes, labels).
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
#include <optional>
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

// IFA_F_* that describe state the kernel derives (from lifetimes, DAD, the order of addresses in a subnet) rather
// than a request; add_address_info leaves them out. IFA_F_SECONDARY shares its bit with IPv6's IFA_F_TEMPORARY, a
// privacy address the kernel generates itself.
constexpr std::uint32_t derived_address_flags =
    IFA_F_SECONDARY | IFA_F_PERMANENT | IFA_F_DEPRECATED | IFA_F_TENTATIVE | IFA_F_DADFAILED;

// IPv4 labels must start with the link's name (iproute2 insists; the kernel keeps whatever it is given, and tools
// that group aliases by label would then misplace the address). A label from the old link, "old" or "old:suffix",
// becomes "new" or "new:suffix".
std::string label_for(const std::string& link, const std::string& label, const std::string& operation)
{
    if (label.empty() || label == link || label.rfind(link + ":", 0) == 0) {
        return label.empty() ? link : label;
    }
    const std::size_t colon = label.find(':');
    std::string rewritten = colon == std::string::npos ? link : link + label.substr(colon);
    if (rewritten.size() >= IFNAMSIZ) {
        invalid(operation, "label \"" + rewritten + "\" (from \"" + label + "\") is longer than " +
                               std::to_string(IFNAMSIZ - 1) + " characters");
    }
    return rewritten;
}

struct ParsedAddress {
    NlAddrPtr local;
    NlAddrPtr broadcast;  // IPv4 only, and only where `ip addr add ... brd +` would set one
};

ParsedAddress parse_address(const model::IpAddress& address, std::uint8_t prefix_length, const std::string& operation)
{
    const int family = address.family();
    const unsigned int max_prefix = family == AF_INET ? 32 : 128;
    if (prefix_length > max_prefix) {
        throw Error(ErrorKind::InvalidArgument, "netlink: " + operation + " failed: prefix length out of range");
    }
    IpBytes bytes = ip_bytes(address);
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

namespace {

// An IPv4 or IPv6 address as plan::AddressInfo; nullopt for other families or one without a local address.
std::optional<plan::AddressInfo> address_info(rtnl_addr* addr)
{
    const int family = rtnl_addr_get_family(addr);
    if (family != AF_INET && family != AF_INET6) {
        return std::nullopt;
    }
    // The kernel layer has no log to write to: an address the model cannot hold (a length that does not fit its
    // family) is left out here, so nothing above ever meets it half-parsed.
    const auto local = ip_value(rtnl_addr_get_local(addr));
    if (!local || local->family() != family) {
        return std::nullopt;
    }
    plan::AddressInfo info;
    info.link_index = rtnl_addr_get_ifindex(addr);
    info.address = *local;
    info.prefix_length = static_cast<std::uint8_t>(rtnl_addr_get_prefixlen(addr));
    if (const auto broadcast = ip_value(rtnl_addr_get_broadcast(addr)); broadcast && broadcast->v4()) {
        info.broadcast = *broadcast->v4();
    }
    if (const char* label = rtnl_addr_get_label(addr)) {
        info.label = label;
    }
    info.scope = static_cast<std::uint8_t>(rtnl_addr_get_scope(addr));
    // libnl takes IFA_FLAGS (all 32 bits: noprefixroute, managetempaddr, ...) over the 8-bit ifa_flags.
    info.flags = rtnl_addr_get_flags(addr);
    // From IFA_CACHEINFO: seconds left, 0xffffffff for forever, as the kernel counts them at dump time.
    info.valid_lifetime = rtnl_addr_get_valid_lifetime(addr);
    info.preferred_lifetime = rtnl_addr_get_preferred_lifetime(addr);
    return info;
}

// Strict checking (NETLINK_GET_STRICT_CHK, Linux 4.20) for one request: only then does the kernel filter an address
// dump by ifa_index. Off again afterwards, since the other requests on this socket are spelt for lax checking.
class StrictChecking {
public:
    explicit StrictChecking(nl_sock* socket) : fd_(nl_socket_get_fd(socket)) { set(1); }
    ~StrictChecking() { set(0); }
    StrictChecking(const StrictChecking&) = delete;
    StrictChecking& operator=(const StrictChecking&) = delete;

private:
    void set(int on) const
    {
        // Kernels without the option send every address; the caller filters anyway.
        (void)setsockopt(fd_, SOL_NETLINK, NETLINK_GET_STRICT_CHK, &on, sizeof on);
    }
    int fd_;
};

}  // namespace

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
        if (auto info = address_info(reinterpret_cast<rtnl_addr*>(object))) {
            addresses.push_back(std::move(*info));
        }
    }
    return addresses;
}

std::vector<plan::AddressInfo> NetlinkLinks::list_addresses_of(int link_index)
{
    const std::string operation = "listing the addresses of link " + std::to_string(link_index);
    std::vector<plan::AddressInfo> addresses;
    const StrictChecking strict(socket_);
    const NlResult result = dump_objects(
        socket_,
        [&] {
            ifaddrmsg header{};
            header.ifa_family = AF_UNSPEC;
            header.ifa_index = static_cast<std::uint32_t>(link_index);
            return new_request(RTM_GETADDR, NLM_F_DUMP, &header, sizeof(header));
        },
        RTM_NEWADDR, operation, [&] { addresses.clear(); },
        [&](nl_object* object) {
            auto info = address_info(reinterpret_cast<rtnl_addr*>(object));
            if (info && info->link_index == link_index) {
                addresses.push_back(std::move(*info));
            }
        });
    // A link that is gone has no addresses (strict dumps by index report ENODEV).
    if (result.error == -ENODEV) {
        return {};
    }
    if (!result.ok()) {
        fail_result(operation, result);
    }
    return addresses;
}

void NetlinkLinks::add_address(const std::string& name, const model::IpAddress& address, std::uint8_t prefix_length)
{
    const std::string operation =
        "adding address " + address.str() + "/" + std::to_string(prefix_length) + " to " + name;
    ParsedAddress parsed = parse_address(address, prefix_length, operation);
    LinkPtr link = require_link(socket_, name, operation);
    AddrPtr addr = address_object(rtnl_link_get_ifindex(link.get()), address.family(), parsed, operation);
    // EXCL so a duplicate is reported rather than silently merged.
    const int err = rtnl_addr_add(socket_, addr.get(), NLM_F_EXCL);
    if (err < 0) {
        fail_mapped(operation, err);
    }
}

void NetlinkLinks::delete_address(const std::string& name, const model::IpAddress& address, std::uint8_t prefix_length)
{
    const std::string operation =
        "deleting address " + address.str() + "/" + std::to_string(prefix_length) + " from " + name;
    ParsedAddress parsed = parse_address(address, prefix_length, operation);
    parsed.broadcast.reset();  // a mismatched broadcast must not make the kernel miss the address
    LinkPtr link = require_link(socket_, name, operation);
    AddrPtr addr = address_object(rtnl_link_get_ifindex(link.get()), address.family(), parsed, operation);
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

void NetlinkLinks::add_address_info(const std::string& name, const plan::AddressInfo& info)
{
    const std::string operation =
        "adding address " + info.address.str() + "/" + std::to_string(info.prefix_length) + " to " + name;
    const int family = info.family();
    if (info.prefix_length > (family == AF_INET ? 32 : 128)) {
        invalid(operation, "prefix length out of range");
    }
    const IpBytes local = ip_bytes(info.address);
    IpBytes broadcast{};
    if (info.broadcast) {
        if (family != AF_INET) {
            invalid(operation, "only IPv4 addresses have a broadcast address");
        }
        broadcast = ip_bytes(*info.broadcast);
    }
    if (!info.label.empty() && family != AF_INET) {
        invalid(operation, "only IPv4 addresses have a label");
    }
    // The kernel refuses both with a bare EINVAL.
    if (info.valid_lifetime == 0) {
        invalid(operation, "valid lifetime 0 (the address would be gone at once)");
    }
    if (info.preferred_lifetime > info.valid_lifetime) {
        invalid(operation, "preferred lifetime " + std::to_string(info.preferred_lifetime) +
                               " s exceeds valid lifetime " + std::to_string(info.valid_lifetime) + " s");
    }
    LinkPtr link = require_link(socket_, name, operation);
    const std::string label = family == AF_INET ? label_for(name, info.label, operation) : std::string();

    const std::uint32_t flags = info.flags & ~derived_address_flags;
    ifaddrmsg header{};
    header.ifa_family = static_cast<unsigned char>(family);
    header.ifa_prefixlen = info.prefix_length;
    header.ifa_flags = static_cast<unsigned char>(flags & 0xffu);
    header.ifa_scope = info.scope;
    header.ifa_index = static_cast<std::uint32_t>(rtnl_link_get_ifindex(link.get()));
    // EXCL so a duplicate is reported rather than silently merged (and its lifetimes and flags overwritten).
    MsgPtr msg = new_request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, &header, sizeof(header));
    nl_msg* m = msg.get();
    const int length = static_cast<int>(family_length(family));
    // Local and address alike, as `ip addr add` sends them: without a peer both are the address itself.
    bool ok = nla_put(m, IFA_LOCAL, length, local.data()) >= 0 && nla_put(m, IFA_ADDRESS, length, local.data()) >= 0;
    if (ok && info.broadcast) {
        ok = nla_put(m, IFA_BROADCAST, 4, broadcast.data()) >= 0;
    }
    if (ok && !label.empty()) {
        ok = nla_put_string(m, IFA_LABEL, label.c_str()) >= 0;
    }
    // The kernel derives "permanent" from an infinite valid lifetime and "deprecated" from a zero preferred one.
    ifa_cacheinfo lifetimes{};
    lifetimes.ifa_valid = info.valid_lifetime;
    lifetimes.ifa_prefered = info.preferred_lifetime;
    ok = ok && nla_put(m, IFA_CACHEINFO, sizeof(lifetimes), &lifetimes) >= 0;
    // ifa_flags holds only the low 8 bits; noprefixroute and the rest live in IFA_FLAGS.
    ok = ok && nla_put_u32(m, IFA_FLAGS, flags) >= 0;
    if (!ok) {
        fail(operation, -NLE_NOMEM);
    }
    const NlResult result = transact(socket_, m);
    if (!result.ok()) {
        fail_result(operation, result);
    }
}

}  // namespace kvmnet::kernel
