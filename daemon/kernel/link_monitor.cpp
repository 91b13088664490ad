// RTNLGRP_LINK, RTNLGRP_NEIGH, address-, netconf- and route-group subscriber on libnl-3.
#include "kernel/link_monitor.hpp"

#include "kernel/netlink_util.hpp"

#include "model/error.hpp"
#include "model/mac.hpp"

#include <cstdio>
#include <linux/if.h>
#include <linux/neighbour.h>
#include <linux/netconf.h>
#include <linux/rtnetlink.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/socket.h>
#include <sys/socket.h>

namespace kvmnet::kernel {

LinkMonitor::LinkMonitor(int receive_buffer)
{
    socket_ = nl_socket_alloc();
    if (!socket_) throw Error(ErrorKind::Kernel, "netlink: cannot allocate a monitor socket");
    // Notifications carry no sequence numbers of ours.
    nl_socket_disable_seq_check(socket_);
    nl_socket_modify_cb(
        socket_, NL_CB_VALID, NL_CB_CUSTOM,
        [](nl_msg* msg, void* arg) -> int {
            auto* self = static_cast<LinkMonitor*>(arg);
            nlmsghdr* header = nlmsg_hdr(msg);
            if (header->nlmsg_type == RTM_NEWADDR || header->nlmsg_type == RTM_DELADDR) {
                if (!self->on_address_ || header->nlmsg_len < NLMSG_LENGTH(sizeof(ifaddrmsg))) return NL_OK;
                const auto* address = static_cast<const ifaddrmsg*>(nlmsg_data(header));
                self->on_address_(static_cast<int>(address->ifa_index));
                return NL_OK;
            }
            if (header->nlmsg_type == RTM_DELROUTE || header->nlmsg_type == RTM_NEWROUTE) {
                // Each names its output link; the manager decides what an added one means.
                if (!self->on_route_ || header->nlmsg_len < NLMSG_LENGTH(sizeof(rtmsg))) return NL_OK;
                nlattr* attrs[RTA_MAX + 1] = {};
                if (nlmsg_parse(header, sizeof(rtmsg), attrs, RTA_MAX, nullptr) < 0 || !attrs[RTA_OIF] ||
                    nla_len(attrs[RTA_OIF]) < 4)
                    return NL_OK;
                self->on_route_(static_cast<int>(nla_get_u32(attrs[RTA_OIF])), header->nlmsg_type == RTM_NEWROUTE);
                return NL_OK;
            }
            if (header->nlmsg_type == RTM_NEWNETCONF) {
                if (!self->on_netconf_) return NL_OK;
                // Every new link sends one: without its index each start
                // would have every running network's sysctls re-read.
                nlattr* attrs[NETCONFA_MAX + 1] = {};
                int index = 0;
                if (nlmsg_parse(header, sizeof(netconfmsg), attrs, NETCONFA_MAX, nullptr) >= 0 &&
                    attrs[NETCONFA_IFINDEX] && nla_len(attrs[NETCONFA_IFINDEX]) >= 4)
                    index = static_cast<int>(nla_get_s32(attrs[NETCONFA_IFINDEX]));
                self->on_netconf_(index);
                return NL_OK;
            }
            if (header->nlmsg_type == RTM_NEWNEIGH) {
                if (!self->on_fdb_) return NL_OK;
                auto* neighbour = static_cast<ndmsg*>(nlmsg_data(header));
                // Learnt bridge entries only: the ports' own addresses are permanent.
                if (neighbour->ndm_family != AF_BRIDGE || (neighbour->ndm_state & NUD_PERMANENT)) return NL_OK;
                nlattr* attrs[NDA_MAX + 1] = {};
                if (nlmsg_parse(header, sizeof(ndmsg), attrs, NDA_MAX, nullptr) < 0) return NL_OK;
                if (!attrs[NDA_LLADDR] || nla_len(attrs[NDA_LLADDR]) != 6 || !attrs[NDA_MASTER]) return NL_OK;
                FdbEvent event;
                event.bridge_index = static_cast<int>(nla_get_u32(attrs[NDA_MASTER]));
                event.port_index = neighbour->ndm_ifindex;
                event.mac = model::Mac::from_bytes(nla_data(attrs[NDA_LLADDR]));
                (*self->on_fdb_)(event);
                return NL_OK;
            }
            if (!self->on_link_ || (header->nlmsg_type != RTM_NEWLINK && header->nlmsg_type != RTM_DELLINK))
                return NL_OK;
            auto* info = static_cast<ifinfomsg*>(nlmsg_data(header));
            nlattr* attrs[IFLA_MAX + 1] = {};
            if (nlmsg_parse(header, sizeof(ifinfomsg), attrs, IFLA_MAX, nullptr) < 0) return NL_OK;
            LinkEvent event;
            event.removed = header->nlmsg_type == RTM_DELLINK && info->ifi_family != AF_BRIDGE;
            event.index = info->ifi_index;
            event.up = (info->ifi_flags & IFF_UP) != 0;
            if (attrs[IFLA_IFNAME]) event.name = nla_get_string(attrs[IFLA_IFNAME]);
            (*self->on_link_)(event);
            return NL_OK;
        },
        this);
    // An overrun stays survivable (take_overrun: the caller re-checks
    // everything once), just rare.
    const int r =
        subscribe_notifications(socket_,
                                {RTNLGRP_LINK, RTNLGRP_NEIGH, RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV6_IFADDR,
                                 RTNLGRP_IPV4_NETCONF, RTNLGRP_IPV6_NETCONF, RTNLGRP_IPV4_ROUTE, RTNLGRP_IPV6_ROUTE},
                                receive_buffer);
    if (r < 0) {
        nl_socket_free(socket_);
        throw Error(ErrorKind::Kernel, std::string("netlink: cannot subscribe to link changes: ") + nl_geterror(r));
    }
}

LinkMonitor::~LinkMonitor() { nl_socket_free(socket_); }

int LinkMonitor::fd() const { return nl_socket_get_fd(socket_); }

void LinkMonitor::dispatch(const std::function<void(const LinkEvent&)>& on_link,
                           const std::function<void(const FdbEvent&)>& on_fdb)
{
    on_link_ = &on_link;
    on_fdb_ = &on_fdb;
    // An overrun loses events: remembered for take_overrun().
    read_notifications(socket_, overrun_);
    on_link_ = nullptr;
    on_fdb_ = nullptr;
}

}  // namespace kvmnet::kernel
