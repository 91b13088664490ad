// RTNLGRP_LINK subscriber on libnl-3.
#include "kernel/link_monitor.hpp"

#include "model/error.hpp"

#include <linux/if.h>
#include <linux/rtnetlink.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/socket.h>

namespace kvmnet::kernel {

LinkMonitor::LinkMonitor()
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
            if (!self->handler_ || (header->nlmsg_type != RTM_NEWLINK && header->nlmsg_type != RTM_DELLINK))
                return NL_OK;
            auto* info = static_cast<ifinfomsg*>(nlmsg_data(header));
            nlattr* attrs[IFLA_MAX + 1] = {};
            if (nlmsg_parse(header, sizeof(ifinfomsg), attrs, IFLA_MAX, nullptr) < 0) return NL_OK;
            LinkEvent event;
            event.removed = header->nlmsg_type == RTM_DELLINK;
            event.index = info->ifi_index;
            event.up = (info->ifi_flags & IFF_UP) != 0;
            if (attrs[IFLA_IFNAME]) event.name = nla_get_string(attrs[IFLA_IFNAME]);
            (*self->handler_)(event);
            return NL_OK;
        },
        this);
    int r = nl_connect(socket_, NETLINK_ROUTE);
    if (r >= 0) r = nl_socket_add_memberships(socket_, RTNLGRP_LINK, 0);
    if (r >= 0) r = nl_socket_set_nonblocking(socket_);
    if (r < 0) {
        nl_socket_free(socket_);
        throw Error(ErrorKind::Kernel, std::string("netlink: cannot subscribe to link changes: ") + nl_geterror(r));
    }
}

LinkMonitor::~LinkMonitor() { nl_socket_free(socket_); }

int LinkMonitor::fd() const { return nl_socket_get_fd(socket_); }

void LinkMonitor::dispatch(const std::function<void(const LinkEvent&)>& on_event)
{
    handler_ = &on_event;
    // Non-blocking: returns -NLE_AGAIN once the socket is drained. An overrun
    // (-NLE_NOMEM / ENOBUFS) loses events, which the caller cannot replay; it
    // is logged by the caller's next full reconcile, so stop reading here.
    while (nl_recvmsgs_default(socket_) >= 0) {
    }
    handler_ = nullptr;
}

}  // namespace kvmnet::kernel
