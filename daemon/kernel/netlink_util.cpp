// Shared rtnetlink plumbing for the hand-built requests of the kernel adapters (see netlink_util.hpp). libnl's own
// nl_wait_for_ack reduces a kernel error to a libnl code and drops the extended ack, and the request-with-reply case
// (RTM_GETLINK by name answers with a message and then an ACK) needs care so the ACK is not left on the socket for
// the next exchange to trip over; transact() handles both.
#include "kernel/netlink_util.hpp"

#include <arpa/inet.h>
#include <linux/if.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <netlink/attr.h>
#include <netlink/errno.h>
#include <netlink/handlers.h>
#include <netlink/socket.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <exception>

namespace kvmnet::kernel {

namespace {

struct CbPut {
    void operator()(nl_cb* cb) const { nl_cb_put(cb); }
};
using CbPtr = std::unique_ptr<nl_cb, CbPut>;

struct Exchange {
    const std::function<void(const nlmsghdr*)>* on_reply = nullptr;
    NlResult result;
    bool done = false;
    std::exception_ptr failure;
};

std::string attribute_string(const nlattr* attr)
{
    const auto* data = static_cast<const char*>(nla_data(attr));
    return std::string(data, strnlen(data, static_cast<std::size_t>(nla_len(attr))));
}

// The TLVs follow the nlmsgerr, after the echoed request unless the kernel capped it (NLM_F_CAPPED).
std::string extended_ack_message(const nlmsgerr* err)
{
    const auto* hdr = reinterpret_cast<const nlmsghdr*>(reinterpret_cast<const char*>(err) - NLMSG_HDRLEN);
    if ((hdr->nlmsg_flags & NLM_F_ACK_TLVS) == 0) {
        return {};
    }
    std::size_t offset = sizeof(nlmsgerr);
    if ((hdr->nlmsg_flags & NLM_F_CAPPED) == 0 && err->msg.nlmsg_len >= sizeof(nlmsghdr)) {
        offset += err->msg.nlmsg_len - sizeof(nlmsghdr);
    }
    const char* p = reinterpret_cast<const char*>(err) + NLMSG_ALIGN(offset);
    const char* end = reinterpret_cast<const char*>(hdr) + hdr->nlmsg_len;
    while (end - p >= static_cast<std::ptrdiff_t>(NLA_HDRLEN)) {
        const auto* attr = reinterpret_cast<const nlattr*>(p);
        if (attr->nla_len < NLA_HDRLEN || attr->nla_len > end - p) {
            break;
        }
        if ((attr->nla_type & NLA_TYPE_MASK) == NLMSGERR_ATTR_MSG) {
            return attribute_string(attr);
        }
        p += NLA_ALIGN(attr->nla_len);
    }
    return {};
}

int on_valid(nl_msg* msg, void* arg)
{
    auto* exchange = static_cast<Exchange*>(arg);
    // Exceptions must not cross libnl's C frames; keep the first and go on reading to the end of the exchange.
    if (exchange->on_reply != nullptr && *exchange->on_reply && !exchange->failure) {
        try {
            (*exchange->on_reply)(nlmsg_hdr(msg));
        } catch (...) {
            exchange->failure = std::current_exception();
        }
    }
    return NL_OK;
}

int on_done(nl_msg* /*msg*/, void* arg)
{
    static_cast<Exchange*>(arg)->done = true;
    return NL_STOP;
}

int on_error(sockaddr_nl* /*peer*/, nlmsgerr* err, void* arg)
{
    auto* exchange = static_cast<Exchange*>(arg);
    exchange->result.error = err->error;
    exchange->result.extack = extended_ack_message(err);
    exchange->done = true;
    return NL_STOP;
}

}  // namespace

NlMsgPtr new_request(int type, int flags, const void* header, std::size_t header_size)
{
    NlMsgPtr msg(nlmsg_alloc_simple(type, flags));
    if (!msg || nlmsg_append(msg.get(), const_cast<void*>(header), header_size, NLMSG_ALIGNTO) < 0) {
        throw Error(ErrorKind::Kernel, "netlink: allocating a request failed");
    }
    return msg;
}

NlResult transact(nl_sock* socket, nl_msg* msg, const std::function<void(const nlmsghdr*)>& on_reply, bool dump)
{
    Exchange exchange;
    exchange.on_reply = &on_reply;

    nl_cb* base = nl_socket_get_cb(socket);
    CbPtr cb(nl_cb_clone(base));
    nl_cb_put(base);
    if (!cb) {
        exchange.result.error = -ENOMEM;
        exchange.result.detail = "allocating netlink callbacks";
        return exchange.result;
    }
    nl_cb_set(cb.get(), NL_CB_VALID, NL_CB_CUSTOM, on_valid, &exchange);
    nl_cb_set(cb.get(), NL_CB_FINISH, NL_CB_CUSTOM, on_done, &exchange);
    nl_cb_set(cb.get(), NL_CB_ACK, NL_CB_CUSTOM, on_done, &exchange);
    nl_cb_err(cb.get(), NL_CB_CUSTOM, on_error, &exchange);

    // A dump ends with NLMSG_DONE and no ACK; anything else must be ACKed whatever the socket's auto-ack setting,
    // or the loop below would wait forever.
    nl_complete_msg(socket, msg);
    if (dump) {
        nlmsg_hdr(msg)->nlmsg_flags &= ~NLM_F_ACK;
    } else {
        nlmsg_hdr(msg)->nlmsg_flags |= NLM_F_ACK;
    }
    int err = nl_send(socket, msg);
    if (err < 0) {
        exchange.result.error = -EIO;
        exchange.result.detail = std::string("sending: ") + nl_geterror(err);
        return exchange.result;
    }
    bool interrupted = false;
    while (!exchange.done) {
        err = nl_recvmsgs(socket, cb.get());
        if (err == -NLE_DUMP_INTR) {
            // Reported after the whole dump was read: the data may be inconsistent, the caller should retry.
            interrupted = true;
            continue;
        }
        if (err < 0) {
            if (exchange.result.error == 0) {
                exchange.result.error = -EIO;
                exchange.result.detail = std::string("receiving: ") + nl_geterror(err);
            }
            break;
        }
    }
    if (interrupted && exchange.result.error == 0) {
        exchange.result.error = -EINTR;
        exchange.result.detail = "dump interrupted by a concurrent change";
    }
    if (exchange.failure) {
        std::rethrow_exception(exchange.failure);
    }
    return exchange.result;
}

NlResult dump_objects(nl_sock* socket, const std::function<NlMsgPtr()>& make_request, int reply_type,
                      const std::string& operation, const std::function<void()>& reset,
                      const std::function<void(nl_object*)>& on_object)
{
    NlResult result;
    for (int attempt = 0; attempt < 3; ++attempt) {
        reset();
        NlMsgPtr msg = make_request();
        result = transact(
            socket, msg.get(),
            [&](const nlmsghdr* hdr) {
                if (hdr->nlmsg_type != reply_type) {
                    return;
                }
                NlMsgPtr copy(nlmsg_convert(const_cast<nlmsghdr*>(hdr)));
                if (!copy) {
                    throw Error(ErrorKind::Kernel, "netlink: " + operation + " failed: out of memory");
                }
                nlmsg_set_proto(copy.get(), NETLINK_ROUTE);
                nl_msg_parse(
                    copy.get(),
                    [](nl_object* object, void* arg) {
                        (*static_cast<const std::function<void(nl_object*)>*>(arg))(object);
                    },
                    const_cast<std::function<void(nl_object*)>*>(&on_object));
            },
            true);
        if (result.error != -EINTR) {
            break;
        }
    }
    return result;
}

bool enable_extended_ack(nl_sock* socket)
{
    const int on = 1;
    return setsockopt(nl_socket_get_fd(socket), SOL_NETLINK, NETLINK_EXT_ACK, &on, sizeof(on)) == 0;
}

std::string describe(const NlResult& result)
{
    std::string text = result.detail.empty() ? std::strerror(-result.error) : result.detail;
    if (!result.extack.empty()) {
        text += " (kernel: " + result.extack + ")";
    }
    return text;
}

void throw_result(ErrorKind kind, const std::string& operation, const NlResult& result)
{
    throw Error(kind, "netlink: " + operation + " failed: " + describe(result));
}

bool valid_ifname(const std::string& name)
{
    if (name.empty() || name.size() >= IFNAMSIZ || name == "." || name == "..") {
        return false;
    }
    for (char c : name) {
        if (c == '/' || c == ':' || c == '\0' || c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' ||
            c == '\f') {
            return false;
        }
    }
    return true;
}

std::optional<LinkRecord> find_link_record(nl_sock* socket, const std::string& name,
                                           const std::function<void(const nlmsghdr*)>& on_reply)
{
    if (!valid_ifname(name)) {
        return std::nullopt;
    }
    ifinfomsg header{};
    header.ifi_family = AF_UNSPEC;
    NlMsgPtr msg = new_request(RTM_GETLINK, 0, &header, sizeof(header));
    // Skip the statistics: they are most of the reply and nobody here reads them.
    if (nla_put_string(msg.get(), IFLA_IFNAME, name.c_str()) < 0 ||
        nla_put_u32(msg.get(), IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS) < 0) {
        throw Error(ErrorKind::Kernel, "netlink: building a lookup of " + name + " failed");
    }
    std::optional<LinkRecord> record;
    const NlResult result = transact(socket, msg.get(), [&](const nlmsghdr* hdr) {
        if (hdr->nlmsg_type != RTM_NEWLINK) {
            return;
        }
        LinkRecord found;
        found.index = static_cast<const ifinfomsg*>(nlmsg_data(hdr))->ifi_index;
        nlattr* tb[IFLA_MAX + 1] = {};
        if (nlmsg_parse(const_cast<nlmsghdr*>(hdr), sizeof(ifinfomsg), tb, IFLA_MAX, nullptr) < 0) {
            return;
        }
        if (tb[IFLA_MASTER] != nullptr) {
            found.master_index = static_cast<int>(nla_get_u32(tb[IFLA_MASTER]));
        }
        nlattr* info[IFLA_INFO_MAX + 1] = {};
        if (tb[IFLA_LINKINFO] != nullptr && nla_parse_nested(info, IFLA_INFO_MAX, tb[IFLA_LINKINFO], nullptr) >= 0) {
            if (info[IFLA_INFO_KIND] != nullptr) {
                found.kind = attribute_string(info[IFLA_INFO_KIND]);
            }
            if (info[IFLA_INFO_SLAVE_KIND] != nullptr) {
                found.slave_kind = attribute_string(info[IFLA_INFO_SLAVE_KIND]);
            }
        }
        record = found;
        if (on_reply) {
            on_reply(hdr);
        }
    });
    if (result.error == -ENODEV) {
        return std::nullopt;
    }
    if (!result.ok()) {
        throw_result(ErrorKind::Kernel, "looking up " + name, result);
    }
    return record;
}

LinkRecord require_link_record(nl_sock* socket, const std::string& name, const std::string& operation,
                               const std::function<void(const nlmsghdr*)>& on_reply)
{
    std::optional<LinkRecord> record = find_link_record(socket, name, on_reply);
    if (!record) {
        throw Error(ErrorKind::NotFound, "netlink: " + operation + " failed: no such interface " + name);
    }
    return *record;
}

// ---- libnl-route objects and the errors of both request paths ------------------------------------------------

// libnl error codes are negative; nl_geterror wants the magnitude but tolerates either sign.
void fail(const std::string& operation, int nl_error, ErrorKind kind)
{
    throw Error(kind, "netlink: " + operation + " failed: " + nl_geterror(nl_error));
}

ErrorKind kind_for(int nl_error)
{
    // libnl folds errno into codes of its own; these are the ones kind_for_errno tells apart.
    switch (nl_error < 0 ? -nl_error : nl_error) {
    case NLE_OBJ_NOTFOUND:  // ENODEV: the link vanished between lookup and change
    case NLE_NODEV: return kind_for_errno(ENODEV);
    case NLE_EXIST: return kind_for_errno(EEXIST);
    case NLE_BUSY: return kind_for_errno(EBUSY);
    case NLE_OPNOTSUPP: return kind_for_errno(EOPNOTSUPP);
    default: return ErrorKind::Kernel;
    }
}

void fail_mapped(const std::string& operation, int nl_error) { fail(operation, nl_error, kind_for(nl_error)); }

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
    struct Kind {
        int error;
        ErrorKind kind;
    };
    static constexpr Kind kinds[] = {
        {ENODEV, ErrorKind::NotFound},  // no such link, or it vanished between lookup and change
        {EEXIST, ErrorKind::AlreadyExists},
        // Held by something else for now (a driver that cannot change its MAC while up, a port
        // enslaved elsewhere): the caller can act and retry, unlike a Kernel error.
        {EBUSY, ErrorKind::Busy},
        {EOPNOTSUPP, ErrorKind::Unsupported},
    };
    const int positive = error < 0 ? -error : error;
    for (const Kind& k : kinds)
        if (k.error == positive) return k.kind;
    return ErrorKind::Kernel;
}

void fail_result(const std::string& operation, const NlResult& result)
{
    throw_result(kind_for_errno(result.error), operation, result);
}

void invalid(const std::string& operation, const std::string& what)
{
    throw Error(ErrorKind::InvalidArgument, "netlink: " + operation + " failed: " + what);
}

// ---- Addresses ----------------------------------------------------------------------------------------------------

std::size_t family_length(int family) { return family == AF_INET ? 4 : 16; }

std::optional<model::IpAddress> ip_value(int family, const void* bytes)
{
    if (family == AF_INET) {
        std::uint32_t value = 0;
        std::memcpy(&value, bytes, sizeof value);
        return model::IpAddress(model::Ipv4{ntohl(value)});
    }
    if (family == AF_INET6) {
        model::Ipv6 ip;
        std::memcpy(ip.bytes.data(), bytes, ip.bytes.size());
        return model::IpAddress(ip);
    }
    return std::nullopt;
}

std::optional<model::IpAddress> ip_value(nl_addr* addr)
{
    if (addr == nullptr) {
        return std::nullopt;
    }
    const int family = nl_addr_get_family(addr);
    if ((family != AF_INET && family != AF_INET6) || nl_addr_get_len(addr) != family_length(family)) {
        return std::nullopt;
    }
    return ip_value(family, nl_addr_get_binary_addr(addr));
}

std::optional<model::IpAddress> attr_ip(const nlattr* attr, int family)
{
    if (attr == nullptr || (family != AF_INET && family != AF_INET6) ||
        static_cast<std::size_t>(nla_len(attr)) != family_length(family)) {
        return std::nullopt;
    }
    return ip_value(family, nla_data(attr));
}

IpBytes ip_bytes(const model::IpAddress& ip)
{
    IpBytes bytes{};
    if (const model::Ipv4* v4 = ip.v4()) {
        const std::uint32_t value = htonl(v4->value);
        std::memcpy(bytes.data(), &value, sizeof value);
    } else {
        std::memcpy(bytes.data(), ip.v6()->bytes.data(), 16);
    }
    return bytes;
}

std::uint32_t attr_u32(const nlattr* attr, std::uint32_t fallback)
{
    if (attr == nullptr || nla_len(attr) < static_cast<int>(sizeof(std::uint32_t))) {
        return fallback;
    }
    return nla_get_u32(const_cast<nlattr*>(attr));
}

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

// RTM_SETLINK on an existing link, with whatever attributes `fill` adds; false from `fill` = out of message space.
NlResult set_link(nl_sock* socket, int family, int ifindex, const std::function<bool(nl_msg*)>& fill)
{
    ifinfomsg header{};
    header.ifi_family = static_cast<unsigned char>(family);
    header.ifi_index = ifindex;
    NlMsgPtr msg = new_request(RTM_SETLINK, 0, &header, sizeof(header));
    if (!fill(msg.get())) {
        throw Error(ErrorKind::Kernel, "netlink: building a link change request failed");
    }
    return transact(socket, msg.get());
}

NlResult delete_link_named(nl_sock* socket, const std::string& name)
{
    ifinfomsg header{};
    header.ifi_family = AF_UNSPEC;
    NlMsgPtr msg = new_request(RTM_DELLINK, 0, &header, sizeof(header));
    if (nla_put_string(msg.get(), IFLA_IFNAME, name.c_str()) < 0) {
        throw Error(ErrorKind::Kernel, "netlink: building a link deletion request failed");
    }
    return transact(socket, msg.get());
}

// Finds attribute `type` inside IFLA_LINKINFO / `info_member` (IFLA_INFO_DATA or IFLA_INFO_SLAVE_DATA) of a
// RTM_NEWLINK reply; nullptr when any level is missing.
const nlattr* linkinfo_attribute(const nlmsghdr* hdr, int info_member, int type, int max_type)
{
    nlattr* tb[IFLA_MAX + 1] = {};
    if (hdr->nlmsg_type != RTM_NEWLINK ||
        nlmsg_parse(const_cast<nlmsghdr*>(hdr), sizeof(ifinfomsg), tb, IFLA_MAX, nullptr) < 0 ||
        tb[IFLA_LINKINFO] == nullptr) {
        return nullptr;
    }
    nlattr* info[IFLA_INFO_MAX + 1] = {};
    if (nla_parse_nested(info, IFLA_INFO_MAX, tb[IFLA_LINKINFO], nullptr) < 0 || info[info_member] == nullptr) {
        return nullptr;
    }
    std::vector<nlattr*> data(static_cast<std::size_t>(max_type) + 1, nullptr);
    if (nla_parse_nested(data.data(), max_type, info[info_member], nullptr) < 0) {
        return nullptr;
    }
    return data[static_cast<std::size_t>(type)];
}

int subscribe_notifications(nl_sock* socket, std::initializer_list<int> groups, int receive_buffer)
{
    int r = nl_connect(socket, NETLINK_ROUTE);
    for (const int group : groups)
        if (r >= 0) r = nl_socket_add_membership(socket, group);
    if (r >= 0) r = nl_socket_set_nonblocking(socket);
    if (r >= 0) {
        const int fd = nl_socket_get_fd(socket);
        int wanted = receive_buffer;
        if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &wanted, sizeof wanted) != 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &wanted, sizeof wanted);
    }
    return r;
}

bool read_notifications(nl_sock* socket, bool& overrun)
{
    for (int overruns = 0;;) {
        const int r = nl_recvmsgs_default(socket);
        if (r >= 0) continue;
        if (r == -NLE_NOMEM && ++overruns < 16) {
            overrun = true;
            continue;
        }
        return r == -NLE_AGAIN;
    }
}

}  // namespace kvmnet::kernel
