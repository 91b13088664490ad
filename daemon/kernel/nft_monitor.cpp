// NFNLGRP_NFTABLES subscriber on libmnl.
#include "kernel/nft_monitor.hpp"

#include "model/error.hpp"

#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <sys/socket.h>
#include <vector>

namespace kvmnet::kernel {
namespace {

// mnl_attr_for_each, without its C-only void* conversions.
const nlattr* first_attribute(const nlmsghdr* header)
{
    return static_cast<const nlattr*>(mnl_nlmsg_get_payload_offset(header, sizeof(nfgenmsg)));
}
int remaining(const nlmsghdr* header, const nlattr* attr)
{
    return static_cast<int>(reinterpret_cast<const char*>(mnl_nlmsg_get_payload_tail(header)) -
                            reinterpret_cast<const char*>(attr));
}

}  // namespace

NftMonitor::NftMonitor(std::string table, pid_t own_pid, std::uint32_t own_port, int receive_buffer)
    : filter_(std::move(table), own_pid, own_port)
{
    socket_ = mnl_socket_open2(NETLINK_NETFILTER, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (!socket_)
        throw Error(ErrorKind::Kernel, std::string("nftables: cannot open a monitor socket: ") + std::strerror(errno));
    if (mnl_socket_bind(socket_, 0, MNL_SOCKET_AUTOPID) < 0) {
        const int saved = errno;
        mnl_socket_close(socket_);
        throw Error(ErrorKind::Kernel,
                    std::string("nftables: cannot bind the monitor socket: ") + std::strerror(saved));
    }
    int group = NFNLGRP_NFTABLES;
    if (mnl_socket_setsockopt(socket_, NETLINK_ADD_MEMBERSHIP, &group, sizeof group) < 0) {
        const int saved = errno;
        mnl_socket_close(socket_);
        throw Error(ErrorKind::Kernel,
                    std::string("nftables: cannot subscribe to ruleset changes: ") + std::strerror(saved));
    }
    // Our own table replacement notifies every element; room for a large
    // one (the kernel coalesces notifications into big buffers). An overrun
    // is survivable (the manager compares the generation with its commit
    // record, core/committed_table.hpp), just not wanted.
    const int fd = mnl_socket_get_fd(socket_);
    int wanted = receive_buffer;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &wanted, sizeof wanted) != 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &wanted, sizeof wanted);
}

NftMonitor::~NftMonitor() { mnl_socket_close(socket_); }

void NftMonitor::pause()
{
    int group = NFNLGRP_NFTABLES;
    if (mnl_socket_setsockopt(socket_, NETLINK_DROP_MEMBERSHIP, &group, sizeof group) < 0)
        throw Error(ErrorKind::Kernel, std::string("nftables: cannot pause the monitor: ") + std::strerror(errno));
}

void NftMonitor::resume()
{
    int group = NFNLGRP_NFTABLES;
    if (mnl_socket_setsockopt(socket_, NETLINK_ADD_MEMBERSHIP, &group, sizeof group) < 0)
        throw Error(ErrorKind::Kernel,
                    std::string("nftables: cannot subscribe to ruleset changes again: ") + std::strerror(errno));
}

int NftMonitor::fd() const { return mnl_socket_get_fd(socket_); }

void NftMonitor::handle(const nlmsghdr* header, NftMonitorResult& result)
{
    if ((header->nlmsg_type >> 8) != NFNL_SUBSYS_NFTABLES) return;
    const int type = header->nlmsg_type & 0xff;
    if (header->nlmsg_len < NLMSG_HDRLEN + sizeof(nfgenmsg)) return;
    const auto* generic = static_cast<const nfgenmsg*>(mnl_nlmsg_get_payload(header));
    if (type == NFT_MSG_NEWGEN) {
        pid_t pid = 0;
        std::string name;
        for (const nlattr* attr = first_attribute(header); mnl_attr_ok(attr, remaining(header, attr));
             attr = mnl_attr_next(attr)) {
            if (mnl_attr_get_type(attr) == NFTA_GEN_PROC_PID && mnl_attr_get_payload_len(attr) == 4)
                pid = static_cast<pid_t>(ntohl(mnl_attr_get_u32(attr)));
            else if (mnl_attr_get_type(attr) == NFTA_GEN_PROC_NAME && mnl_attr_validate(attr, MNL_TYPE_NUL_STRING) == 0)
                name = mnl_attr_get_str(attr);
        }
        if (filter_.end_of_transaction(pid, name, header->nlmsg_pid)) {
            result.changed = true;
            result.who = filter_.who();
        }
        if (filter_.take_foreign_changed()) result.foreign_changed = true;
        return;
    }
    // Every object notification (table, chain, rule, set, element, object,
    // flowtable, and the DESTROY variants of newer kernels) carries its
    // table's name as attribute 1 (NFTA_TABLE_NAME, NFTA_CHAIN_TABLE, ...).
    for (const nlattr* attr = first_attribute(header); mnl_attr_ok(attr, remaining(header, attr));
         attr = mnl_attr_next(attr)) {
        if (mnl_attr_get_type(attr) != 1) continue;
        if (mnl_attr_validate(attr, MNL_TYPE_NUL_STRING) == 0)
            filter_.object(generic->nfgen_family, mnl_attr_get_str(attr));
        break;
    }
}

NftMonitorResult NftMonitor::dispatch()
{
    NftMonitorResult result;
    std::vector<char> buffer(MNL_SOCKET_BUFFER_SIZE * 4);
    for (int overruns = 0;;) {
        const ssize_t n = mnl_socket_recvfrom(socket_, buffer.data(), buffer.size());
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == ENOBUFS && ++overruns < 16) {
                // Lost notifications: which transactions they belonged to is unknown.
                result.overrun = true;
                filter_.reset();
                continue;
            }
            break;  // EAGAIN: drained
        }
        int left = static_cast<int>(n);
        for (const nlmsghdr* header = reinterpret_cast<const nlmsghdr*>(buffer.data()); mnl_nlmsg_ok(header, left);
             header = mnl_nlmsg_next(header, &left))
            handle(header, result);
    }
    return result;
}

}  // namespace kvmnet::kernel
