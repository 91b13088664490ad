// Address notifications read on demand (kernel/address_watch.hpp), on libnl-3.
#include <linux/if_addr.h>
#include <linux/rtnetlink.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/socket.h>
#include <sys/socket.h>

// After libnl: see kernel/addresses.cpp.
#include "kernel/address_watch.hpp"
#include "kernel/netlink_util.hpp"
#include "model/error.hpp"

#include <string>

namespace kvmnet::kernel {

AddressWatch::AddressWatch(int receive_buffer)
{
    socket_ = nl_socket_alloc();
    if (!socket_) throw Error(ErrorKind::Kernel, "netlink: cannot allocate an address watch socket");
    nl_socket_disable_seq_check(socket_);
    nl_socket_modify_cb(
        socket_, NL_CB_VALID, NL_CB_CUSTOM,
        [](nl_msg* msg, void* arg) -> int {
            auto* self = static_cast<AddressWatch*>(arg);
            nlmsghdr* header = nlmsg_hdr(msg);
            if ((header->nlmsg_type != RTM_NEWADDR && header->nlmsg_type != RTM_DELADDR) || !self->changed_ ||
                header->nlmsg_len < NLMSG_LENGTH(sizeof(ifaddrmsg)))
                return NL_OK;
            const auto* ifa = static_cast<const ifaddrmsg*>(nlmsg_data(header));
            if (ifa->ifa_family != AF_INET && ifa->ifa_family != AF_INET6) return NL_OK;
            nlattr* attrs[IFA_MAX + 1] = {};
            if (nlmsg_parse(header, sizeof(ifaddrmsg), attrs, IFA_MAX, nullptr) < 0) return NL_OK;
            // The interface's own address, as a dump reads it (libnl's
            // local address): IFA_LOCAL, else IFA_ADDRESS (IPv6).
            const nlattr* local = attrs[IFA_LOCAL] ? attrs[IFA_LOCAL] : attrs[IFA_ADDRESS];
            const auto ip = local ? attr_ip(local, ifa->ifa_family) : std::nullopt;
            if (!ip) return NL_OK;
            plan::AddressInfo info;
            info.link_index = static_cast<int>(ifa->ifa_index);
            info.address = *ip;
            info.prefix_length = ifa->ifa_prefixlen;
            (*self->changed_)(header->nlmsg_type == RTM_NEWADDR, info);
            return NL_OK;
        },
        this);
    const int r = subscribe_notifications(socket_, {RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV6_IFADDR}, receive_buffer);
    if (r < 0) {
        nl_socket_free(socket_);
        throw Error(ErrorKind::Kernel, std::string("netlink: cannot subscribe to address changes: ") + nl_geterror(r));
    }
}

AddressWatch::~AddressWatch() { nl_socket_free(socket_); }

bool AddressWatch::read(const std::function<void(bool, const plan::AddressInfo&)>& changed)
{
    changed_ = &changed;
    bool overrun = false;
    // Anything but a drained socket: what is left is not known either.
    const bool drained = read_notifications(socket_, overrun);
    changed_ = nullptr;
    return drained && !overrun;
}

}  // namespace kvmnet::kernel
