// Routes (plan::Routes) of kernel::NetlinkLinks: every table, both families, hand-built RTM_*ROUTE messages because
// libnl's route object hides RTA_VIA and the table of a dumped route.
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
#include "plan/route_text.hpp"

namespace kvmnet::kernel {

namespace {

// RouteInfo has one oif and one gateway, so a route with several next hops cannot be represented or reproduced. Such
// routes are listed with `unreproducible` set, link_index 0 and no gateway (everything else -- family, destination,
// table, metric, protocol -- filled in), so that a bridge takeover can see them and refuse, rather than the route
// silently losing hops. The same covers the other routes add_route could not recreate: those that use a nexthop
// object (RTA_NH_ID, `ip route add ... nhid N`) and IPv6 source-specific routes (`from PREFIX`), because their next
// hop or key lives outside RouteInfo.

// Route flags a caller may ask for. The others in the low byte (dead, linkdown, offload, trap, ...) are state the
// kernel reports; it refuses RTNH_F_DEAD and RTNH_F_LINKDOWN in a request outright.
constexpr std::uint32_t settable_route_flags = RTNH_F_ONLINK;

std::string route_text(const plan::RouteInfo& route)
{
    std::string text = route.family == AF_INET6 ? "IPv6 route " : "IPv4 route ";
    text += plan::destination_text(route);
    if (route.gateway) {
        text.append(" via ").append(route.gateway->str());
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
    if (!route.gateway && tb[RTA_VIA] != nullptr && nla_len(tb[RTA_VIA]) >= 2) {
        // RTA_VIA: an IPv4 route through an IPv6 next hop (struct rtvia: family, then the address).
        const auto* via = static_cast<const unsigned char*>(nla_data(tb[RTA_VIA]));
        sa_family_t via_family = 0;
        std::memcpy(&via_family, via, sizeof(via_family));
        const std::size_t length = static_cast<std::size_t>(nla_len(tb[RTA_VIA])) - sizeof(via_family);
        if ((via_family == AF_INET || via_family == AF_INET6) && length == family_length(via_family)) {
            route.gateway = ip_value(via_family, via + sizeof(via_family));
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
        route.gateway.reset();
        route.unreproducible = true;
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
    if (!route.destination) {
        if (route.prefix_length != 0) {
            invalid(operation, "a prefix length without a destination");
        }
        return {};
    }
    if (route.destination->family() != route.family) {
        invalid(operation, "destination " + route.destination->str() + " is not of the route's family");
    }
    IpBytes bytes = ip_bytes(*route.destination);
    for (unsigned int bit = route.prefix_length; bit < max_prefix; ++bit) {
        if ((bytes[bit / 8] & (0x80u >> (bit % 8))) != 0) {
            invalid(operation, "destination " + route.destination->str() + " has host bits set beyond /" +
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
    if (route.unreproducible) {
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
    if (ok && route.destination) {
        ok = nla_put(m, RTA_DST, static_cast<int>(length), destination.data()) >= 0;
    }
    if (ok && route.gateway) {
        const IpBytes gateway = ip_bytes(*route.gateway);
        if (route.gateway->family() == route.family) {
            ok = nla_put(m, RTA_GATEWAY, static_cast<int>(length), gateway.data()) >= 0;
        } else if (route.family == AF_INET) {
            // An IPv4 route through an IPv6 next hop (`ip route add ... via inet6 ADDR`).
            std::array<unsigned char, sizeof(sa_family_t) + 16> via{};
            const sa_family_t via_family = AF_INET6;
            std::memcpy(via.data(), &via_family, sizeof(via_family));
            std::memcpy(via.data() + sizeof(via_family), gateway.data(), 16);
            ok = nla_put(m, RTA_VIA, static_cast<int>(via.size()), via.data()) >= 0;
        } else {
            invalid(operation, "gateway " + route.gateway->str() + " is an IPv4 address on an IPv6 route");
        }
    }
    if (ok && route.preferred_source) {
        if (route.preferred_source->family() != route.family) {
            invalid(operation, "preferred source " + route.preferred_source->str() + " is not of the route's family");
        }
        const IpBytes source = ip_bytes(*route.preferred_source);
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

// An RTM_NEWROUTE of `route` through link `name` with `flags`; `verb` names it in errors ("adding").
void new_route(nl_sock* socket, const std::string& name, const plan::RouteInfo& route, int flags,
               const std::string& verb)
{
    const std::string operation = verb + " " + route_text(route) + " on " + name;
    LinkPtr link = require_link(socket, name, operation);
    MsgPtr msg = route_request(RTM_NEWROUTE, flags, route, rtnl_link_get_ifindex(link.get()), operation);
    const NlResult result = transact(socket, msg.get());
    if (!result.ok()) {
        fail_result(operation, result);
    }
}

}  // namespace

std::vector<plan::RouteInfo> NetlinkLinks::list_routes() { return dump_routes(socket_); }

void NetlinkLinks::add_route(const std::string& name, const plan::RouteInfo& route)
{
    // EXCL: the kernel refuses a second route with the same table, destination and metric (and, for IPv4, TOS)
    // even on another link, rather than appending an alternative the caller did not ask for.
    new_route(socket_, name, route, NLM_F_CREATE | NLM_F_EXCL, "adding");
}

void NetlinkLinks::replace_route(const std::string& name, const plan::RouteInfo& route)
{
    new_route(socket_, name, route, NLM_F_CREATE | NLM_F_REPLACE, "replacing");
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
            operation.append("#").append(std::to_string(route.link_index));
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

}  // namespace kvmnet::kernel
