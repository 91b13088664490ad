// VXLAN devices (plan::Vxlans) of kernel::NetlinkLinks: the device through libnl's vxlan link type, its flood list
// (all-zeros FDB entries, one per remote VTEP, as `bridge fdb append 00:00:00:00:00:00 dev D dst IP` makes them)
// through hand-built RTM_NEWNEIGH / RTM_DELNEIGH requests of family AF_BRIDGE on the device itself (NTF_SELF), and
// its bridge port's neighbour suppression and learning flags (IFLA_PROTINFO, as bridge_ports.cpp sets them).
#include <arpa/inet.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <linux/if_bridge.h>
#include <linux/if_link.h>
#include <linux/neighbour.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <netinet/in.h>
#include <netlink/addr.h>
#include <netlink/attr.h>
#include <netlink/errno.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/route/link.h>
#include <netlink/route/link/vxlan.h>
#include <netlink/route/neighbour.h>

// After libnl on purpose (see taps.cpp).
#include "kernel/netlink_links.hpp"
#include "kernel/netlink_util.hpp"
#include "model/error.hpp"
#include "model/mac.hpp"

namespace kvmnet::kernel {

namespace {

// The one flood entry request for `remote` on link `ifindex`.
NlMsgPtr flood_request(int type, int flags, int ifindex, model::Ipv4 remote)
{
    ndmsg header{};
    header.ndm_family = AF_BRIDGE;
    header.ndm_ifindex = ifindex;
    header.ndm_state = NUD_NOARP | NUD_PERMANENT;
    header.ndm_flags = NTF_SELF;
    NlMsgPtr msg = new_request(type, flags, &header, sizeof(header));
    const unsigned char zeros[6] = {};
    const IpBytes dst = ip_bytes(remote);
    if (nla_put(msg.get(), NDA_LLADDR, sizeof(zeros), zeros) < 0 || nla_put(msg.get(), NDA_DST, 4, dst.data()) < 0)
        throw Error(ErrorKind::Kernel, "netlink: building a VXLAN flood entry request failed");
    return msg;
}

// One entry (a guest's MAC or the flood list's all zeros) of a VXLAN device's FDB: the MAC, the ndm flags and the
// remote VTEP.
struct FdbRow {
    model::Mac mac;
    std::uint8_t flags = 0;
    model::Ipv4 dst;
};

// The AF_BRIDGE neighbour dump of `link`: every entry with a MAC and an IPv4 destination, the flood list's
// all-zeros ones included. An interrupted dump is retried (twice) so callers never see a torn table.
std::vector<FdbRow> dump_fdb(nl_sock* socket, const LinkRecord& link, const std::string& operation)
{
    std::vector<FdbRow> rows;
    NlResult result;
    for (int attempt = 0; attempt < 3; ++attempt) {
        rows.clear();
        ndmsg header{};
        header.ndm_family = AF_BRIDGE;
        header.ndm_ifindex = link.index;
        NlMsgPtr msg = new_request(RTM_GETNEIGH, NLM_F_DUMP, &header, sizeof(header));
        result = transact(
            socket, msg.get(),
            [&](const nlmsghdr* hdr) {
                if (hdr->nlmsg_type != RTM_NEWNEIGH) return;
                const auto* ndm = static_cast<const ndmsg*>(nlmsg_data(hdr));
                nlattr* tb[NDA_MAX + 1] = {};
                if (ndm->ndm_family != AF_BRIDGE || ndm->ndm_ifindex != link.index ||
                    nlmsg_parse(const_cast<nlmsghdr*>(hdr), sizeof(ndmsg), tb, NDA_MAX, nullptr) < 0)
                    return;
                if (tb[NDA_LLADDR] == nullptr || nla_len(tb[NDA_LLADDR]) != 6 || tb[NDA_DST] == nullptr) return;
                FdbRow row;
                row.mac = model::Mac::from_bytes(nla_data(tb[NDA_LLADDR]));
                row.flags = ndm->ndm_flags;
                // An IPv6 VTEP is not one this daemon makes (VxlanOptions::local is IPv4): left out.
                const auto dst = attr_ip(tb[NDA_DST], AF_INET);
                if (!dst) return;
                row.dst = *dst->v4();
                rows.push_back(row);
            },
            true);
        if (result.error != -EINTR) break;
    }
    if (!result.ok())
        throw_result(result.error == -ENODEV ? ErrorKind::NotFound : ErrorKind::Kernel, operation, result);
    return rows;
}

}  // namespace

void NetlinkLinks::create_vxlan(const std::string& name, const plan::VxlanOptions& options)
{
    const std::string operation = "creating VXLAN device " + name;
    if (!valid_ifname(name)) invalid(operation, "invalid interface name");
    const IpBytes local = ip_bytes(options.local);
    LinkPtr link(rtnl_link_vxlan_alloc());
    if (!link) fail(operation, -NLE_NOMEM);
    rtnl_link_set_name(link.get(), name.c_str());
    if (options.mtu != 0) rtnl_link_set_mtu(link.get(), options.mtu);
    NlAddrPtr address(nl_addr_build(AF_INET, local.data(), 4));
    if (!address) fail(operation, -NLE_NOMEM);
    int err = rtnl_link_vxlan_set_id(link.get(), options.vni);
    if (err >= 0) err = rtnl_link_vxlan_set_local(link.get(), address.get());
    // libnl stores the port in network byte order itself.
    if (err >= 0) err = rtnl_link_vxlan_set_port(link.get(), options.port);
    if (err >= 0) err = rtnl_link_vxlan_set_learning(link.get(), options.learning ? 1 : 0);
    if (err >= 0 && options.underlay_index != 0)
        err = rtnl_link_vxlan_set_link(link.get(), static_cast<std::uint32_t>(options.underlay_index));
    if (err < 0) fail(operation, err);
    err = rtnl_link_add(socket_, link.get(), NLM_F_CREATE | NLM_F_EXCL);
    if (err < 0) fail_mapped(operation, err);
}

std::optional<plan::VxlanOptions> NetlinkLinks::vxlan_options(const std::string& name)
{
    LinkPtr link = get_link(socket_, name);
    if (!link || !rtnl_link_is_vxlan(link.get())) return std::nullopt;
    plan::VxlanOptions o;
    rtnl_link_vxlan_get_id(link.get(), &o.vni);
    nl_addr* local = nullptr;
    if (rtnl_link_vxlan_get_local(link.get(), &local) >= 0 && local) {
        if (const auto ip = ip_value(local); ip && ip->v4()) o.local = *ip->v4();
        nl_addr_put(local);
    }
    std::uint32_t port = 0;
    if (rtnl_link_vxlan_get_port(link.get(), &port) >= 0) o.port = static_cast<std::uint16_t>(port);
    std::uint32_t underlay = 0;
    if (rtnl_link_vxlan_get_link(link.get(), &underlay) >= 0) o.underlay_index = static_cast<int>(underlay);
    o.mtu = rtnl_link_get_mtu(link.get());
    o.learning = rtnl_link_vxlan_get_learning(link.get()) > 0;
    return o;
}

std::vector<model::Ipv4> NetlinkLinks::list_flood(const std::string& name)
{
    const std::string operation = "listing the flood list of " + name;
    const LinkRecord link = require_link_record(socket_, name, operation);
    std::vector<model::Ipv4> remotes;
    for (const FdbRow& row : dump_fdb(socket_, link, operation))
        if (row.mac.zero()) remotes.push_back(row.dst);
    return remotes;
}

void NetlinkLinks::add_flood(const std::string& name, model::Ipv4 remote)
{
    const std::string operation = "adding VTEP " + remote.str() + " to the flood list of " + name;
    const LinkRecord link = require_link_record(socket_, name, operation);
    // NLM_F_APPEND: one more all-zeros entry beside the others, not a replacement.
    NlMsgPtr msg = flood_request(RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_APPEND, link.index, remote);
    const NlResult result = transact(socket_, msg.get());
    if (result.error == -EEXIST) return;
    if (!result.ok()) fail_result(operation, result);
}

void NetlinkLinks::delete_flood(const std::string& name, model::Ipv4 remote)
{
    const std::string operation = "removing VTEP " + remote.str() + " from the flood list of " + name;
    const LinkRecord link = require_link_record(socket_, name, operation);
    NlMsgPtr msg = flood_request(RTM_DELNEIGH, 0, link.index, remote);
    const NlResult result = transact(socket_, msg.get());
    if (result.error == -ENOENT) return;
    if (!result.ok()) fail_result(operation, result);
}

std::vector<plan::Vxlans::VxlanFdbEntry> NetlinkLinks::vxlan_fdb(const std::string& name)
{
    const std::string operation = "listing the FDB of " + name;
    const LinkRecord link = require_link_record(socket_, name, operation);
    std::vector<VxlanFdbEntry> entries;
    for (const FdbRow& row : dump_fdb(socket_, link, operation)) {
        // Only the device's own table (NTF_SELF): the bridge's entries for the port carry no VTEP.
        if (!(row.flags & NTF_SELF)) continue;
        // The flood list (all zeros) and multicast are not guests.
        if (!row.mac.unicast()) continue;
        entries.push_back({row.mac, row.dst, (row.flags & NTF_EXT_LEARNED) != 0});
    }
    return entries;
}

std::string NetlinkLinks::neighbour_state(const std::string& address)
{
    const std::string operation = "reading the neighbour entry of " + address;
    const IpBytes ip = parse_ip(AF_INET, address, "address", operation);
    std::string state;
    NlResult result;
    for (int attempt = 0; attempt < 3; ++attempt) {
        state.clear();
        ndmsg header{};
        header.ndm_family = AF_INET;
        NlMsgPtr msg = new_request(RTM_GETNEIGH, NLM_F_DUMP, &header, sizeof(header));
        result = transact(
            socket_, msg.get(),
            [&](const nlmsghdr* hdr) {
                if (hdr->nlmsg_type != RTM_NEWNEIGH || !state.empty()) return;
                const auto* ndm = static_cast<const ndmsg*>(nlmsg_data(hdr));
                nlattr* tb[NDA_MAX + 1] = {};
                if (ndm->ndm_family != AF_INET ||
                    nlmsg_parse(const_cast<nlmsghdr*>(hdr), sizeof(ndmsg), tb, NDA_MAX, nullptr) < 0 ||
                    tb[NDA_DST] == nullptr || nla_len(tb[NDA_DST]) != 4 ||
                    std::memcmp(nla_data(tb[NDA_DST]), ip.data(), 4) != 0)
                    return;
                char text[64] = {};
                rtnl_neigh_state2str(ndm->ndm_state, text, sizeof(text));
                state = text;
            },
            true);
        if (result.error != -EINTR) break;
    }
    if (!result.ok()) fail_result(operation, result);
    return state;
}

std::optional<plan::Vxlans::VxlanPortFlags> NetlinkLinks::vxlan_port_flags(const std::string& name)
{
    std::optional<bool> suppress, learning;
    const std::optional<LinkRecord> link = find_link_record(socket_, name, [&](const nlmsghdr* hdr) {
        if (const nlattr* attr =
                linkinfo_attribute(hdr, IFLA_INFO_SLAVE_DATA, IFLA_BRPORT_NEIGH_SUPPRESS, IFLA_BRPORT_MAX))
            suppress = nla_get_u8(const_cast<nlattr*>(attr)) != 0;
        if (const nlattr* attr = linkinfo_attribute(hdr, IFLA_INFO_SLAVE_DATA, IFLA_BRPORT_LEARNING, IFLA_BRPORT_MAX))
            learning = nla_get_u8(const_cast<nlattr*>(attr)) != 0;
    });
    if (!link || link->slave_kind != "bridge" || !suppress || !learning) return std::nullopt;
    return VxlanPortFlags{*suppress, *learning};
}

void NetlinkLinks::set_vxlan_port_flags(const std::string& name, const VxlanPortFlags& flags)
{
    set_port_flag(name, IFLA_BRPORT_NEIGH_SUPPRESS, flags.neigh_suppress, "ARP/ND suppression",
                  "bridge port neighbour suppression (IFLA_BRPORT_NEIGH_SUPPRESS, Linux 4.15)");
    set_port_flag(name, IFLA_BRPORT_LEARNING, flags.learning, "MAC learning",
                  "bridge port learning (IFLA_BRPORT_LEARNING)");
}

}  // namespace kvmnet::kernel
