// Small rtnetlink helpers shared by the kernel adapters that build their own messages (libnl 3.7 has no API for
// bridge port attributes, FDB dumps by bridge, or tc police actions): one request/response exchange that keeps the
// kernel's errno and extended-ack text, link lookups by name, and uniform error messages.
#pragma once

#include <netlink/msg.h>
#include <netlink/netlink.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "model/error.hpp"

namespace kvmnet::kernel {

struct NlMsgFree {
    void operator()(nl_msg* msg) const { nlmsg_free(msg); }
};
using NlMsgPtr = std::unique_ptr<nl_msg, NlMsgFree>;

// Allocates a request of `type` with `flags` carrying a copy of `header`; throws Kernel on allocation failure.
NlMsgPtr new_request(int type, int flags, const void* header, std::size_t header_size);

// The outcome of one request. `error` is 0 or a negative errno as the kernel sent it (or -EIO for a transport
// failure, with `detail` saying what libnl reported); `extack` is the kernel's extended-ack message, if it sent one
// (only on sockets with NETLINK_EXT_ACK enabled).
struct NlResult {
    int error = 0;
    std::string extack;
    std::string detail;
    bool ok() const { return error == 0; }
};

// Sends `msg` on `socket` and reads until the request is finished: the ACK (or error) of a plain request, or
// NLMSG_DONE of a dump (pass dump = true; the request must carry NLM_F_DUMP). Each data message is handed to
// `on_reply`; an exception thrown there is rethrown after the exchange has been read to its end, so the socket
// never keeps stale replies for the next caller. An interrupted dump (NLM_F_DUMP_INTR) is reported as -EINTR.
NlResult transact(nl_sock* socket, nl_msg* msg, const std::function<void(const nlmsghdr*)>& on_reply = {},
                  bool dump = false);

// Turns NETLINK_EXT_ACK on for `socket` so that NlResult::extack is filled; false if the kernel refuses.
bool enable_extended_ack(nl_sock* socket);

// "No such device" etc., plus " (kernel: <extack>)" when the kernel explained itself.
std::string describe(const NlResult& result);

// Throws Error(kind, "netlink: <operation> failed: <describe(result)>").
[[noreturn]] void throw_result(ErrorKind kind, const std::string& operation, const NlResult& result);

// Mirrors the kernel's dev_valid_name, so a name the kernel would reject with a bare EINVAL is caught early.
bool valid_ifname(const std::string& name);

// What the port verbs need to know about a link, from one RTM_GETLINK.
struct LinkRecord {
    int index = 0;
    int master_index = 0;
    std::string kind;        // IFLA_INFO_KIND, "" for physical links
    std::string slave_kind;  // IFLA_INFO_SLAVE_KIND: "bridge" when the link is a bridge port
};

// Looks up `name` (RTM_GETLINK by IFLA_IFNAME). Absent or unnameable links are nullopt; other failures throw Kernel.
// When `on_reply` is given it also sees the raw reply, for callers that need more attributes.
std::optional<LinkRecord> find_link_record(nl_sock* socket, const std::string& name,
                                           const std::function<void(const nlmsghdr*)>& on_reply = {});

// As find_link_record, but an absent link throws NotFound "netlink: <operation> failed: no such interface <name>".
LinkRecord require_link_record(nl_sock* socket, const std::string& name, const std::string& operation,
                               const std::function<void(const nlmsghdr*)>& on_reply = {});

}  // namespace kvmnet::kernel
