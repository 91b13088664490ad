// A link as a bridge port (plan::BridgePorts) of kernel::NetlinkLinks: enslaving, isolation and hairpin, the FDB,
// the VLAN filtering probe and per-port VLANs.
//
// The rtnetlink requests are built by hand (kernel/netlink_util.hpp) because libnl 3.7 cannot express them: no
// bridge port attributes (IFLA_PROTINFO of AF_BRIDGE), no FDB dump by bridge, no bridge kind data. Where a kernel
// may silently ignore an attribute it does not know (port isolation, VLAN filtering) the verb reads the link back
// rather than trusting the ACK.
//
// Errors: an absent link is NotFound ("no such interface X"), a bad argument InvalidArgument, a missing kernel
// feature Unsupported (naming the feature and its config option), the rest Kernel; messages carry the operation,
// the link and the errno text, plus the kernel's extended-ack text when it gives one.
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
        fail_result(operation, result);
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
        fail_result(operation, result);
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

std::optional<plan::BridgePorts::PortFlags> NetlinkLinks::port_flags(const std::string& name)
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
                entry.mac = model::Mac::from_bytes(nla_data(tb[NDA_LLADDR]));
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
            fail_result(operation + ": turning VLAN filtering on for " + bridge, result);
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
            fail_result(std::string(type == RTM_SETLINK ? "adding" : "removing") + " VLANs while " + operation, result);
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

}  // namespace kvmnet::kernel
