// Small rtnetlink helpers shared by the kernel adapters that build their own messages (libnl 3.7 has no API for
// bridge port attributes, FDB dumps by bridge, or tc police actions): one request/response exchange that keeps the
// kernel's errno and extended-ack text, link lookups by name, and uniform error messages.
#pragma once

#include <netlink/addr.h>
#include <netlink/cache.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>

#include <array>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>

#include "kernel/c_ptr.hpp"
#include "model/error.hpp"
#include "model/ip.hpp"

namespace kvmnet::kernel {

using NlMsgPtr = CPtr<nl_msg, nlmsg_free>;

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

// A dump of libnl-route objects: `make_request` builds the NLM_F_DUMP request, each reply of `reply_type` is parsed
// by libnl and handed to `on_object`. A dump that races a change is flagged by the kernel: up to three attempts,
// `reset` before each, make a consistent snapshot. The result of the last attempt.
NlResult dump_objects(nl_sock* socket, const std::function<CPtr<nl_msg, nlmsg_free>()>& make_request, int reply_type,
                      const std::string& operation, const std::function<void()>& reset,
                      const std::function<void(nl_object*)>& on_object);

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

// ---- libnl-route objects ------------------------------------------------------------------------------------------
// libnl's own request path (rtnl_link_change, rtnl_addr_add, caches) for what it expresses well; its error codes are
// libnl's NLE_*, not errnos.

using CachePtr = CPtr<nl_cache, nl_cache_free>;
using LinkPtr = CPtr<rtnl_link, rtnl_link_put>;
using AddrPtr = CPtr<rtnl_addr, rtnl_addr_put>;
using NlAddrPtr = CPtr<nl_addr, nl_addr_put>;
using MsgPtr = NlMsgPtr;

// Throws Error(kind, "netlink: <operation> failed: <libnl's text>"); libnl codes are negative.
[[noreturn]] void fail(const std::string& operation, int nl_error, ErrorKind kind = ErrorKind::Kernel);
// kind_for_errno's kind for a libnl error code.
ErrorKind kind_for(int nl_error);
[[noreturn]] void fail_mapped(const std::string& operation, int nl_error);

// Absent and unnameable links come back empty; only real transport or kernel failures throw.
LinkPtr get_link(nl_sock* socket, const std::string& name);
// As get_link, but absent is NotFound "no such interface <name>".
LinkPtr require_link(nl_sock* socket, const std::string& name, const std::string& operation);
// RTM_NEWLINK on the existing ifindex (RTM_SETLINK where that is refused) with `changes`.
void change_link(nl_sock* socket, rtnl_link* orig, rtnl_link* changes, const std::string& operation);

// ---- Errors of hand-built requests --------------------------------------------------------------------------------

// The one errno-to-kind mapping of the kernel layer, for creating requests and changes alike (either sign):
// ENODEV NotFound, EEXIST AlreadyExists, EBUSY Busy, EOPNOTSUPP Unsupported, anything else Kernel.
ErrorKind kind_for_errno(int error);
// Throws with kind_for_errno(result.error).
[[noreturn]] void fail_result(const std::string& operation, const NlResult& result);
[[noreturn]] void invalid(const std::string& operation, const std::string& what);

// ---- Addresses ----------------------------------------------------------------------------------------------------

// Where observed addresses become model values, once: nothing above the kernel layer parses an address the kernel
// reported. nullopt for what the model cannot represent (another family, a wrong length).
std::size_t family_length(int family);
std::optional<model::IpAddress> ip_value(int family, const void* bytes);
std::optional<model::IpAddress> ip_value(nl_addr* addr);
// The address in `attr`, if it has the length of `family`.
std::optional<model::IpAddress> attr_ip(const nlattr* attr, int family);
std::uint32_t attr_u32(const nlattr* attr, std::uint32_t fallback = 0);
using IpBytes = std::array<unsigned char, 16>;
// The address in network byte order (the first 4 bytes for IPv4), as requests carry it.
IpBytes ip_bytes(const model::IpAddress& ip);
// InvalidArgument naming `what` unless `text` is an address of `family`.
IpBytes parse_ip(int family, const std::string& text, const std::string& what, const std::string& operation);
void check_family(int family, const std::string& operation);

// ---- Link requests ------------------------------------------------------------------------------------------------

// RTM_SETLINK on an existing link, with whatever attributes `fill` adds; false from `fill` = out of message space.
NlResult set_link(nl_sock* socket, int family, int ifindex, const std::function<bool(nl_msg*)>& fill);
NlResult delete_link_named(nl_sock* socket, const std::string& name);
// Finds attribute `type` inside IFLA_LINKINFO / `info_member` (IFLA_INFO_DATA or IFLA_INFO_SLAVE_DATA) of a
// RTM_NEWLINK reply; nullptr when any level is missing.
const nlattr* linkinfo_attribute(const nlmsghdr* hdr, int info_member, int type, int max_type);

// ---- Notification sockets ------------------------------------------------------------------------------------------

// Connects `socket` to rtnetlink, joins `groups`, makes it non-blocking and gives it a receive buffer of
// `receive_buffer` bytes (beyond rmem_max as root, SO_RCVBUFFORCE; capped at rmem_max otherwise). A libnl error
// (< 0) when a step fails.
int subscribe_notifications(nl_sock* socket, std::initializer_list<int> groups, int receive_buffer);
// Reads every queued notification through the socket's callbacks. True when it ended drained (-NLE_AGAIN), false
// on another error; `overrun` set when some were lost on the way (ENOBUFS, which libnl reports as NLE_NOMEM:
// reading goes on, at most 16 times, since a real ENOMEM would repeat).
bool read_notifications(nl_sock* socket, bool& overrun);

}  // namespace kvmnet::kernel
