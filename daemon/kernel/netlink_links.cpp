// rtnetlink implementation of plan::LinkAdapter on libnl-route-3 (3.7): observes links, addresses and routes with
// fresh dumps on every call (the reconciler wants the kernel's truth, not a cache that may have drifted) and performs
// the small verbs the planner emits. Bridge messages, full addresses and routes are hand-built because libnl 3.7
// has no setters for the bridge kind's IFLA_INFO_DATA, and because its route and address objects hide details a
// bridge takeover must reproduce exactly (IFA_FLAGS, lifetimes, RTA_VIA, the table of a dumped route).
//
// Error kinds: a missing link (or, for delete_address and delete_route, a missing address or route) is NotFound, a
// name, address or route that is already there is AlreadyExists, input the kernel would refuse or silently alter is
// InvalidArgument, a kernel without the feature is Unsupported, everything else is Kernel. Messages name the
// operation and the link or route and carry the errno's text, plus the kernel's extended-ack text where it gave one.
#include <arpa/inet.h>
#include <sys/socket.h>

#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <system_error>
#include <utility>

#include <linux/if.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
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

using CachePtr = std::unique_ptr<nl_cache, CacheFree>;
using LinkPtr = std::unique_ptr<rtnl_link, LinkPut>;
using AddrPtr = std::unique_ptr<rtnl_addr, AddrPut>;
using NlAddrPtr = std::unique_ptr<nl_addr, NlAddrPut>;
using MsgPtr = NlMsgPtr;

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

std::string format_mac(nl_addr* addr)
{
    if (addr == nullptr || nl_addr_get_len(addr) != 6) {
        return {};
    }
    return model::Mac::from_bytes(nl_addr_get_binary_addr(addr)).str();
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
    info.carrier = (rtnl_link_get_flags(link) & IFF_LOWER_UP) != 0;
    info.master_index = rtnl_link_get_master(link);
    info.mac = format_mac(rtnl_link_get_addr(link));
    // Wireless NICs cannot be bridge-mode uplinks (an access point drops frames from foreign MACs), and rtnetlink
    // has no flag for them. Inside `ip netns exec`, /sys is remounted for the namespace, so the name resolves to
    // this namespace's link. Errors count as "no".
    if (!info.name.empty()) {
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

// ---- Raw requests -------------------------------------------------------------------------------------------------
//
// The verbs added for bridge takeover go through netlink_util's transact(), not libnl's nl_wait_for_ack, which folds
// errno into its own codes (ENETUNREACH and many others become "Unspecific failure") and drops the kernel's extended
// ack, often the only clue to why a route was refused.

ErrorKind kind_for_errno(int error)
{
    switch (-error) {
    case ENODEV: return ErrorKind::NotFound;
    case EEXIST: return ErrorKind::AlreadyExists;
    case EOPNOTSUPP: return ErrorKind::Unsupported;
    default: return ErrorKind::Kernel;
    }
}

[[noreturn]] void fail_result(const std::string& operation, const NlResult& result)
{
    throw_result(kind_for_errno(result.error), operation, result);
}

[[noreturn]] void invalid(const std::string& operation, const std::string& what)
{
    throw Error(ErrorKind::InvalidArgument, "netlink: " + operation + " failed: " + what);
}

// ---- Address text -------------------------------------------------------------------------------------------------

std::size_t family_length(int family) { return family == AF_INET ? 4 : 16; }

std::string ip_text(int family, const void* bytes)
{
    std::array<char, INET6_ADDRSTRLEN> text{};
    if (inet_ntop(family, bytes, text.data(), text.size()) == nullptr) {
        return {};
    }
    return text.data();
}

// The address in `attr` as text, if it has the length of `family`.
std::string attr_ip(const nlattr* attr, int family)
{
    if (attr == nullptr || static_cast<std::size_t>(nla_len(attr)) != family_length(family)) {
        return {};
    }
    return ip_text(family, nla_data(attr));
}

std::uint32_t attr_u32(const nlattr* attr, std::uint32_t fallback = 0)
{
    if (attr == nullptr || nla_len(attr) < static_cast<int>(sizeof(std::uint32_t))) {
        return fallback;
    }
    return nla_get_u32(const_cast<nlattr*>(attr));
}

using IpBytes = std::array<unsigned char, 16>;

IpBytes parse_ip(int family, const std::string& text, const std::string& what, const std::string& operation)
{
    IpBytes bytes{};
    if (inet_pton(family, text.c_str(), bytes.data()) != 1) {
        invalid(operation, what + " is not an " + (family == AF_INET ? "IPv4" : "IPv6") + " address: \"" + text + "\"");
    }
    return bytes;
}

void check_family(int family, const std::string& operation)
{
    if (family != AF_INET && family != AF_INET6) {
        invalid(operation, "address family " + std::to_string(family) + " unsupported");
    }
}

// ---- Routes -------------------------------------------------------------------------------------------------------

// RouteInfo has one oif and one gateway, so a route with several next hops cannot be represented or reproduced. The
// interface contract for such routes: they are listed with link_index 0 and gateway "multipath" (everything else --
// family, destination, table, metric, protocol -- filled in), so that a bridge takeover can see them and refuse,
// rather than the route silently losing hops. The same marker covers the other routes add_route could not recreate:
// those that use a nexthop object (RTA_NH_ID, `ip route add ... nhid N`) and IPv6 source-specific routes
// (`from PREFIX`), because their next hop or key lives outside RouteInfo.
constexpr const char* unreproducible_gateway = "multipath";

// Route flags a caller may ask for. The others in the low byte (dead, linkdown, offload, trap, ...) are state the
// kernel reports; it refuses RTNH_F_DEAD and RTNH_F_LINKDOWN in a request outright.
constexpr std::uint32_t settable_route_flags = RTNH_F_ONLINK;

std::string route_text(const plan::RouteInfo& route)
{
    std::string text = route.family == AF_INET6 ? "IPv6 route " : "IPv4 route ";
    text += route.destination.empty() ? std::string("default")
                                      : route.destination + "/" + std::to_string(route.prefix_length);
    if (!route.gateway.empty()) {
        text += " via " + route.gateway;
    }
    return text + " table " + std::to_string(route.table) + " metric " + std::to_string(route.metric);
}

// One RTM_NEWROUTE of a dump as RouteInfo; false for what list_routes leaves out.
bool parse_route(const nlmsghdr* header, plan::RouteInfo& route)
{
    if (header->nlmsg_type != RTM_NEWROUTE || header->nlmsg_len < NLMSG_LENGTH(sizeof(rtmsg))) {
        return false;
    }
    const auto* rtm = static_cast<const rtmsg*>(nlmsg_data(header));
    if ((rtm->rtm_family != AF_INET && rtm->rtm_family != AF_INET6) || rtm->rtm_type != RTN_UNICAST ||
        (rtm->rtm_flags & RTM_F_CLONED) != 0) {
        return false;
    }
    std::array<nlattr*, RTA_MAX + 1> tb{};
    if (nlmsg_parse(const_cast<nlmsghdr*>(header), sizeof(rtmsg), tb.data(), RTA_MAX, nullptr) < 0) {
        return false;
    }
    // rtm_table is 8 bits; tables above 255 show as RT_TABLE_COMPAT there and only RTA_TABLE has the truth.
    route.table = attr_u32(tb[RTA_TABLE], rtm->rtm_table);
    if (route.table == RT_TABLE_LOCAL) {
        return false;
    }
    route.family = rtm->rtm_family;
    route.prefix_length = rtm->rtm_dst_len;
    route.destination = attr_ip(tb[RTA_DST], route.family);
    route.gateway = attr_ip(tb[RTA_GATEWAY], route.family);
    if (route.gateway.empty() && tb[RTA_VIA] != nullptr && nla_len(tb[RTA_VIA]) >= 2) {
        // RTA_VIA: an IPv4 route through an IPv6 next hop (struct rtvia: family, then the address).
        const auto* via = static_cast<const unsigned char*>(nla_data(tb[RTA_VIA]));
        sa_family_t via_family = 0;
        std::memcpy(&via_family, via, sizeof(via_family));
        const std::size_t length = static_cast<std::size_t>(nla_len(tb[RTA_VIA])) - sizeof(via_family);
        if ((via_family == AF_INET || via_family == AF_INET6) && length == family_length(via_family)) {
            route.gateway = ip_text(via_family, via + sizeof(via_family));
        }
    }
    route.preferred_source = attr_ip(tb[RTA_PREFSRC], route.family);
    route.link_index = static_cast<int>(attr_u32(tb[RTA_OIF]));
    route.metric = attr_u32(tb[RTA_PRIORITY]);
    route.protocol = rtm->rtm_protocol;
    route.scope = rtm->rtm_scope;
    route.type = rtm->rtm_type;
    route.flags = rtm->rtm_flags & 0xffu;  // RTNH_F_*; the RTM_F_* bits above are about the message
    if (tb[RTA_MULTIPATH] != nullptr || tb[RTA_NH_ID] != nullptr || rtm->rtm_src_len != 0) {
        route.link_index = 0;
        route.gateway = unreproducible_gateway;
    }
    return true;
}

std::vector<plan::RouteInfo> dump_routes(nl_sock* socket)
{
    std::vector<plan::RouteInfo> routes;
    const std::function<void(const nlmsghdr*)> collect = [&routes](const nlmsghdr* header) {
        plan::RouteInfo route;
        if (parse_route(header, route)) {
            routes.push_back(std::move(route));
        }
    };
    // One dump per family: an AF_UNSPEC dump would also walk MPLS and multicast routing tables for nothing. Without
    // strict checking the kernel ignores a table in the request and dumps them all, which is what we want.
    for (const int family : {AF_INET, AF_INET6}) {
        rtmsg request{};
        request.rtm_family = static_cast<unsigned char>(family);
        // A dump that raced with a change (NLM_F_DUMP_INTR) may hold half of it; start that family over.
        for (int attempt = 1;; ++attempt) {
            const std::size_t kept = routes.size();
            MsgPtr msg = new_request(RTM_GETROUTE, NLM_F_DUMP, &request, sizeof(request));
            const NlResult result = transact(socket, msg.get(), collect, true);
            if (result.ok()) {
                break;
            }
            routes.resize(kept);
            if (result.error != -EINTR || attempt == 3) {
                fail_result("listing routes", result);
            }
        }
    }
    return routes;
}

// Both the destination's syntax and that its host bits are clear: IPv4 refuses set host bits, but IPv6 masks them
// away silently, which would leave a route that no longer matches what the caller asked for.
IpBytes parse_destination(const plan::RouteInfo& route, const std::string& operation)
{
    const unsigned int max_prefix = route.family == AF_INET ? 32 : 128;
    if (route.prefix_length > max_prefix) {
        invalid(operation, "prefix length " + std::to_string(route.prefix_length) + " out of range");
    }
    if (route.destination.empty()) {
        if (route.prefix_length != 0) {
            invalid(operation, "a prefix length without a destination");
        }
        return {};
    }
    IpBytes bytes = parse_ip(route.family, route.destination, "destination", operation);
    for (unsigned int bit = route.prefix_length; bit < max_prefix; ++bit) {
        if ((bytes[bit / 8] & (0x80u >> (bit % 8))) != 0) {
            invalid(operation, "destination " + route.destination + " has host bits set beyond /" +
                                   std::to_string(route.prefix_length));
        }
    }
    return bytes;
}

// The route attributes shared by add and delete. Delete sends them too so the kernel matches exactly this route:
// an absent gateway or oif (and, for IPv4, metric 0) would otherwise act as a wildcard.
MsgPtr route_request(int type, int flags, const plan::RouteInfo& route, int ifindex, const std::string& operation)
{
    check_family(route.family, operation);
    if (route.gateway == unreproducible_gateway) {
        invalid(operation, "multipath, nexthop-object and source-specific routes are not supported");
    }
    if (route.table == RT_TABLE_UNSPEC) {
        invalid(operation, "table 0 is not a routing table");
    }
    const IpBytes destination = parse_destination(route, operation);
    rtmsg header{};
    header.rtm_family = static_cast<unsigned char>(route.family);
    header.rtm_dst_len = route.prefix_length;
    header.rtm_table = static_cast<unsigned char>(route.table < 256 ? route.table : RT_TABLE_UNSPEC);
    header.rtm_protocol = route.protocol;
    // RT_SCOPE_NOWHERE is the kernel's "any scope" for a delete; `ip route del` sends the same.
    header.rtm_scope = type == RTM_DELROUTE ? static_cast<unsigned char>(RT_SCOPE_NOWHERE) : route.scope;
    header.rtm_type = route.type;
    header.rtm_flags = route.flags & settable_route_flags;
    MsgPtr msg = new_request(type, flags, &header, sizeof(header));
    nl_msg* m = msg.get();
    const std::size_t length = family_length(route.family);
    bool ok = nla_put_u32(m, RTA_TABLE, route.table) >= 0 && nla_put_u32(m, RTA_PRIORITY, route.metric) >= 0 &&
              nla_put_u32(m, RTA_OIF, static_cast<std::uint32_t>(ifindex)) >= 0;
    if (ok && !route.destination.empty()) {
        ok = nla_put(m, RTA_DST, static_cast<int>(length), destination.data()) >= 0;
    }
    if (ok && !route.gateway.empty()) {
        IpBytes gateway{};
        if (inet_pton(route.family, route.gateway.c_str(), gateway.data()) == 1) {
            ok = nla_put(m, RTA_GATEWAY, static_cast<int>(length), gateway.data()) >= 0;
        } else if (route.family == AF_INET && inet_pton(AF_INET6, route.gateway.c_str(), gateway.data()) == 1) {
            // An IPv4 route through an IPv6 next hop (`ip route add ... via inet6 ADDR`).
            std::array<unsigned char, sizeof(sa_family_t) + 16> via{};
            const sa_family_t via_family = AF_INET6;
            std::memcpy(via.data(), &via_family, sizeof(via_family));
            std::memcpy(via.data() + sizeof(via_family), gateway.data(), 16);
            ok = nla_put(m, RTA_VIA, static_cast<int>(via.size()), via.data()) >= 0;
        } else {
            invalid(operation, "gateway is not an address: \"" + route.gateway + "\"");
        }
    }
    if (ok && !route.preferred_source.empty()) {
        const IpBytes source = parse_ip(route.family, route.preferred_source, "preferred source", operation);
        ok = nla_put(m, RTA_PREFSRC, static_cast<int>(length), source.data()) >= 0;
    }
    if (!ok) {
        fail(operation, -NLE_NOMEM);
    }
    return msg;
}

bool same_route(const plan::RouteInfo& a, const plan::RouteInfo& b)
{
    return a.family == b.family && a.table == b.table && a.destination == b.destination &&
           a.prefix_length == b.prefix_length && a.metric == b.metric && a.link_index == b.link_index &&
           a.gateway == b.gateway && (b.protocol == 0 || a.protocol == b.protocol);
}

// ---- Addresses ----------------------------------------------------------------------------------------------------

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

// ---- Bridges ------------------------------------------------------------------------------------------------------

// The bridge's IFLA_INFO_DATA as the kernel reports it, for the values this adapter sets.
struct BridgeState {
    std::optional<std::uint32_t> forward_delay, hello_time, max_age, stp_state;
    std::optional<std::uint16_t> priority;
    std::optional<std::uint8_t> multicast_snooping;
};

BridgeState read_bridge(nl_sock* socket, int ifindex, const std::string& operation)
{
    ifinfomsg request{};
    request.ifi_family = AF_UNSPEC;
    request.ifi_index = ifindex;
    MsgPtr msg = new_request(RTM_GETLINK, 0, &request, sizeof(request));
    BridgeState state;
    const NlResult result = transact(socket, msg.get(), [&state](const nlmsghdr* header) {
        std::array<nlattr*, IFLA_MAX + 1> tb{};
        std::array<nlattr*, IFLA_INFO_MAX + 1> info{};
        std::array<nlattr*, IFLA_BR_MAX + 1> data{};
        if (header->nlmsg_type != RTM_NEWLINK ||
            nlmsg_parse(const_cast<nlmsghdr*>(header), sizeof(ifinfomsg), tb.data(), IFLA_MAX, nullptr) < 0 ||
            tb[IFLA_LINKINFO] == nullptr ||
            nla_parse_nested(info.data(), IFLA_INFO_MAX, tb[IFLA_LINKINFO], nullptr) < 0 ||
            info[IFLA_INFO_DATA] == nullptr ||
            nla_parse_nested(data.data(), IFLA_BR_MAX, info[IFLA_INFO_DATA], nullptr) < 0) {
            return;
        }
        auto u32 = [&data](int type) -> std::optional<std::uint32_t> {
            if (data[type] == nullptr || nla_len(data[type]) < 4) {
                return std::nullopt;
            }
            return nla_get_u32(data[type]);
        };
        state.forward_delay = u32(IFLA_BR_FORWARD_DELAY);
        state.hello_time = u32(IFLA_BR_HELLO_TIME);
        state.max_age = u32(IFLA_BR_MAX_AGE);
        state.stp_state = u32(IFLA_BR_STP_STATE);
        if (data[IFLA_BR_PRIORITY] != nullptr && nla_len(data[IFLA_BR_PRIORITY]) >= 2) {
            state.priority = nla_get_u16(data[IFLA_BR_PRIORITY]);
        }
        if (data[IFLA_BR_MCAST_SNOOPING] != nullptr && nla_len(data[IFLA_BR_MCAST_SNOOPING]) >= 1) {
            state.multicast_snooping = nla_get_u8(data[IFLA_BR_MCAST_SNOOPING]);
        }
    });
    if (!result.ok()) {
        fail_result(operation, result);
    }
    return state;
}

// Ranges the kernel enforces (net/bridge/br_stp.c, identical with STP on and off except the forward delay): hello
// time 1..10 s and max age 6..40 s always; forward delay 2..30 s only while STP is on, but switching STP on clamps a
// delay outside that range silently. Refusing here keeps the kernel from storing something other than what was
// asked for, which the reconciler would then see as endless drift.
void check_bridge_options(const plan::BridgeOptions& options, const std::string& operation)
{
    if (options.stp && (options.forward_delay_cs < 200 || options.forward_delay_cs > 3000)) {
        invalid(operation, "forward delay " + std::to_string(options.forward_delay_cs) +
                               " cs is outside 200..3000, the range the kernel allows with STP on");
    }
    if (options.hello_time_cs != 0 && (options.hello_time_cs < 100 || options.hello_time_cs > 1000)) {
        invalid(operation, "hello time " + std::to_string(options.hello_time_cs) +
                               " cs is outside 100..1000, the range the kernel allows");
    }
    if (options.max_age_cs != 0 && (options.max_age_cs < 600 || options.max_age_cs > 4000)) {
        invalid(operation, "max age " + std::to_string(options.max_age_cs) +
                               " cs is outside 600..4000, the range the kernel allows");
    }
}

model::Mac parse_mac(const std::string& text, const std::string& operation)
{
    const auto mac = model::Mac::parse(text);
    if (!mac) {
        invalid(operation, "not a MAC address: \"" + text + "\"");
    }
    // The kernel's is_valid_ether_addr: a bridge with such an address would refuse to come up.
    if (!mac->unicast()) {
        invalid(operation, "MAC address " + text + " is all zero or multicast");
    }
    return *mac;
}

// What a bridge message carries.
enum class BridgeParts {
    StpStateOnly,  // just IFLA_BR_STP_STATE (the first of two messages that turn STP off, see bridge_request)
    All,
};

// Differences between what was asked for and what the kernel kept, or empty. The kernel stores bridge timers in
// jiffies: with HZ=250 a centisecond is 2.5 jiffies, so an odd value comes back one lower (1501 cs reads 1500).
// That cannot be predicted from user space (HZ is not exported), hence the read-back.
struct Mismatch {
    ErrorKind kind = ErrorKind::InvalidArgument;
    std::string what;
};

Mismatch bridge_mismatch(const BridgeState& state, const plan::BridgeOptions& options)
{
    Mismatch mismatch;
    auto timer = [&mismatch](const char* name, std::uint32_t wanted, const std::optional<std::uint32_t>& got) {
        if (got && *got != wanted && mismatch.what.empty()) {
            mismatch.what = std::string(name) + " " + std::to_string(wanted) + " cs is stored by the kernel as " +
                            std::to_string(*got) + " cs (its timers count in jiffies; use an even value)";
        }
    };
    timer("forward delay", options.forward_delay_cs, state.forward_delay);
    if (options.hello_time_cs != 0) {
        timer("hello time", options.hello_time_cs, state.hello_time);
    }
    if (options.max_age_cs != 0) {
        timer("max age", options.max_age_cs, state.max_age);
    }
    if (mismatch.what.empty() && state.stp_state && (*state.stp_state != 0) != options.stp) {
        mismatch = {ErrorKind::Kernel, std::string("STP is ") + (*state.stp_state != 0 ? "on" : "off") +
                                           " after asking for it " + (options.stp ? "on" : "off")};
    }
    if (mismatch.what.empty() && options.multicast_snooping && !state.multicast_snooping) {
        // Without CONFIG_BRIDGE_IGMP_SNOOPING the kernel ignores the attribute rather than refusing it.
        mismatch = {ErrorKind::Unsupported, "this kernel's bridge has no multicast snooping"};
    }
    return mismatch;
}

// Builds an RTM_NEWLINK for a bridge carrying its kind data. With ifindex 0 and NLM_F_CREATE|NLM_F_EXCL it creates
// `name` (with options.mtu and options.mac, which only creation sends); with an existing ifindex and no flags it
// changes that bridge in place, which is how STP and its timers can be adjusted without recreating the bridge.
//
// Kernel rules (seen on 6.x; br_changelink applies attributes in a fixed order, not the message's, and stops at the
// first error without undoing the earlier ones): forward delay, hello time and max age come before STP state, then
// priority, then multicast snooping. While STP is on, a delay outside 200..3000 cs is refused with ERANGE; with STP
// off anything goes. Turning STP on clamps the delay into that range silently (0 becomes 200). So a change that
// turns STP off and lowers the delay must be two messages, STP first: in one message the delay fails and STP stays
// on. Turning STP on needs only one: the delay lands while STP is still off, and check_bridge_options has made sure
// it is in range, so nothing is clamped.
MsgPtr bridge_request(int ifindex, const std::string& name, const plan::BridgeOptions& options, int flags,
                      BridgeParts parts, const std::string& operation)
{
    const bool creating = ifindex == 0;
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
    if (creating && nla_put_string(msg.get(), IFLA_IFNAME, name.c_str()) < 0) {
        return nullptr;
    }
    if (creating && options.mtu != 0 && nla_put_u32(msg.get(), IFLA_MTU, options.mtu) < 0) {
        return nullptr;
    }
    // A MAC given at creation is recorded as set by the user (NET_ADDR_SET), so the bridge keeps it instead of
    // adopting the lowest port address as ports come and go; bridge mode relies on that to keep the uplink's MAC.
    if (creating && !options.mac.empty()) {
        const auto mac = parse_mac(options.mac, operation);
        if (nla_put(msg.get(), IFLA_ADDRESS, static_cast<int>(mac.bytes.size()), mac.bytes.data()) < 0) {
            return nullptr;
        }
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
    bool ok = nla_put_u32(msg.get(), IFLA_BR_STP_STATE, options.stp ? 1 : 0) >= 0;
    if (parts == BridgeParts::All) {
        ok = ok && nla_put_u32(msg.get(), IFLA_BR_FORWARD_DELAY, options.forward_delay_cs) >= 0;
        if (options.hello_time_cs != 0) {
            ok = ok && nla_put_u32(msg.get(), IFLA_BR_HELLO_TIME, options.hello_time_cs) >= 0;
        }
        if (options.max_age_cs != 0) {
            ok = ok && nla_put_u32(msg.get(), IFLA_BR_MAX_AGE, options.max_age_cs) >= 0;
        }
        if (options.priority) {
            ok = ok && nla_put_u16(msg.get(), IFLA_BR_PRIORITY, *options.priority) >= 0;
        }
        if (options.multicast_snooping) {
            ok = ok && nla_put_u8(msg.get(), IFLA_BR_MCAST_SNOOPING, *options.multicast_snooping ? 1 : 0) >= 0;
        }
    }
    if (!ok) {
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
        info.broadcast = format_ip(rtnl_addr_get_broadcast(addr));
        if (const char* label = rtnl_addr_get_label(addr)) {
            info.label = label;
        }
        info.scope = static_cast<std::uint8_t>(rtnl_addr_get_scope(addr));
        // libnl takes IFA_FLAGS (all 32 bits: noprefixroute, managetempaddr, ...) over the 8-bit ifa_flags.
        info.flags = rtnl_addr_get_flags(addr);
        // From IFA_CACHEINFO: seconds left, 0xffffffff for forever, as the kernel counts them at dump time.
        info.valid_lifetime = rtnl_addr_get_valid_lifetime(addr);
        info.preferred_lifetime = rtnl_addr_get_preferred_lifetime(addr);
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
    check_bridge_options(options, operation);
    MsgPtr msg = bridge_request(0, name, options, NLM_F_CREATE | NLM_F_EXCL, BridgeParts::All, operation);
    if (!msg) {
        fail(operation, -NLE_NOMEM);
    }
    const NlResult result = transact(socket_, msg.get());
    if (result.error == -EEXIST) {
        throw Error(ErrorKind::AlreadyExists,
                    "netlink: " + operation + " failed: " + name + " already exists (" + describe(result) + ")");
    }
    if (!result.ok()) {
        fail_result(operation, result);
    }
    try {
        LinkPtr link = get_link(socket_, name);
        if (!link) {
            throw Error(ErrorKind::Kernel, "netlink: " + operation + " failed: " + name + " vanished after creation");
        }
        const int ifindex = rtnl_link_get_ifindex(link.get());
        if (options.mtu != 0) {
            // An MTU given at creation is stored without going through the bridge's ndo_change_mtu, so the kernel
            // does not mark it as user-set and resets it to the smallest port MTU when the first port joins.
            // Changing it afterwards does mark it, but only if the value really changes, hence the detour through a
            // neighbouring value. 68 (ETH_MIN_MTU) is the bridge's lower bound, so step up from there and down from
            // anything else.
            const std::string pin = "pinning MTU " + std::to_string(options.mtu) + " on new bridge " + name;
            int err = set_mtu_by_index(socket_, ifindex, options.mtu > 68 ? options.mtu - 1 : options.mtu + 1);
            if (err >= 0) {
                err = set_mtu_by_index(socket_, ifindex, options.mtu);
            }
            if (err < 0) {
                fail_mapped(pin, err);
            }
        }
        const Mismatch mismatch = bridge_mismatch(read_bridge(socket_, ifindex, operation), options);
        if (!mismatch.what.empty()) {
            throw Error(mismatch.kind, "netlink: " + operation + " failed: " + mismatch.what);
        }
    } catch (...) {
        // Half-configured is worse than absent: the caller will retry the whole creation.
        LinkPtr doomed(rtnl_link_alloc());
        if (doomed) {
            rtnl_link_set_name(doomed.get(), name.c_str());
            rtnl_link_delete(socket_, doomed.get());
        }
        throw;
    }
}

void NetlinkLinks::set_bridge_options(const std::string& name, const plan::BridgeOptions& options)
{
    const std::string operation = "changing bridge options of " + name;
    check_bridge_options(options, operation);
    LinkPtr link = require_link(socket_, name, operation);
    const char* type = rtnl_link_get_type(link.get());
    if (type == nullptr || std::string(type) != "bridge") {
        invalid(operation, name + " is not a bridge");
    }
    const int ifindex = rtnl_link_get_ifindex(link.get());
    // STP off goes first on its own, so that a lower delay in the second message meets STP already off (see
    // bridge_request). When STP is already off this is a no-op for the kernel.
    const BridgeParts steps[] = {BridgeParts::StpStateOnly, BridgeParts::All};
    for (const BridgeParts parts : steps) {
        if (parts == BridgeParts::StpStateOnly && options.stp) {
            continue;
        }
        MsgPtr msg = bridge_request(ifindex, {}, options, 0, parts, operation);
        if (!msg) {
            fail(operation, -NLE_NOMEM);
        }
        const NlResult result = transact(socket_, msg.get());
        if (!result.ok()) {
            fail_result(operation, result);
        }
    }
    const Mismatch mismatch = bridge_mismatch(read_bridge(socket_, ifindex, operation), options);
    if (!mismatch.what.empty()) {
        throw Error(mismatch.kind, "netlink: " + operation + " failed: " + mismatch.what);
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

void NetlinkLinks::rename_link(const std::string& name, const std::string& new_name)
{
    const std::string operation = "renaming " + name + " to " + new_name;
    LinkPtr orig = require_link(socket_, name, operation);
    LinkPtr changes(rtnl_link_alloc());
    if (!changes) {
        fail(operation, -NLE_NOMEM);
    }
    rtnl_link_set_name(changes.get(), new_name.c_str());
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

void NetlinkLinks::add_address_info(const std::string& name, const plan::AddressInfo& info)
{
    const std::string operation =
        "adding address " + info.address + "/" + std::to_string(info.prefix_length) + " to " + name;
    check_family(info.family, operation);
    if (info.prefix_length > (info.family == AF_INET ? 32 : 128)) {
        invalid(operation, "prefix length out of range");
    }
    const IpBytes local = parse_ip(info.family, info.address, "address", operation);
    IpBytes broadcast{};
    if (!info.broadcast.empty()) {
        if (info.family != AF_INET) {
            invalid(operation, "only IPv4 addresses have a broadcast address");
        }
        broadcast = parse_ip(AF_INET, info.broadcast, "broadcast", operation);
    }
    if (!info.label.empty() && info.family != AF_INET) {
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
    const std::string label = info.family == AF_INET ? label_for(name, info.label, operation) : std::string();

    const std::uint32_t flags = info.flags & ~derived_address_flags;
    ifaddrmsg header{};
    header.ifa_family = static_cast<unsigned char>(info.family);
    header.ifa_prefixlen = info.prefix_length;
    header.ifa_flags = static_cast<unsigned char>(flags & 0xffu);
    header.ifa_scope = info.scope;
    header.ifa_index = static_cast<std::uint32_t>(rtnl_link_get_ifindex(link.get()));
    // EXCL so a duplicate is reported rather than silently merged (and its lifetimes and flags overwritten).
    MsgPtr msg = new_request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, &header, sizeof(header));
    nl_msg* m = msg.get();
    const int length = static_cast<int>(family_length(info.family));
    // Local and address alike, as `ip addr add` sends them: without a peer both are the address itself.
    bool ok = nla_put(m, IFA_LOCAL, length, local.data()) >= 0 && nla_put(m, IFA_ADDRESS, length, local.data()) >= 0;
    if (ok && !info.broadcast.empty()) {
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

std::vector<plan::RouteInfo> NetlinkLinks::list_routes() { return dump_routes(socket_); }

void NetlinkLinks::add_route(const std::string& name, const plan::RouteInfo& route)
{
    const std::string operation = "adding " + route_text(route) + " on " + name;
    LinkPtr link = require_link(socket_, name, operation);
    // EXCL: the kernel refuses a second route with the same table, destination and metric (and, for IPv4, TOS)
    // even on another link, rather than appending an alternative the caller did not ask for.
    MsgPtr msg =
        route_request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, route, rtnl_link_get_ifindex(link.get()), operation);
    const NlResult result = transact(socket_, msg.get());
    if (!result.ok()) {
        fail_result(operation, result);
    }
}

void NetlinkLinks::delete_route(const plan::RouteInfo& route)
{
    std::string operation = "deleting " + route_text(route) + " dev ";
    if (route.link_index > 0) {
        rtnl_link* raw = nullptr;
        if (rtnl_link_get_kernel(socket_, route.link_index, nullptr, &raw) >= 0 && raw != nullptr) {
            const LinkPtr link(raw);
            operation += rtnl_link_get_name(raw);
        } else {
            operation += "#" + std::to_string(route.link_index);
        }
    } else {
        operation += "(none)";
    }
    // Validates before the dump below.
    MsgPtr msg = route_request(RTM_DELROUTE, 0, route, route.link_index, operation);
    // The kernel deletes the first route that matches what the request names and treats the rest as wildcards (an
    // IPv4 metric of 0 means "any metric"), so without this check a request for an absent route could remove a
    // neighbour. What remains possible: two routes equal in every listed field except those RouteInfo lacks (TOS,
    // metrics), which only NLM_F_APPEND can create.
    bool present = false;
    for (const auto& existing : dump_routes(socket_)) {
        present = present || same_route(existing, route);
    }
    if (!present) {
        throw Error(ErrorKind::NotFound, "netlink: " + operation + " failed: no such route");
    }
    const NlResult result = transact(socket_, msg.get());
    if (result.error == -ESRCH) {
        throw Error(ErrorKind::NotFound, "netlink: " + operation + " failed: no such route (" + describe(result) + ")");
    }
    if (!result.ok()) {
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
