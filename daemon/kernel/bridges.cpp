// Bridges as a link kind (plan::Links::create_bridge, set_bridge_options): hand-built RTM_NEWLINK messages,
// because libnl 3.7 has no setters for the bridge kind's IFLA_INFO_DATA, and a read-back of every change.
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

namespace kvmnet::kernel {

namespace {

// The bridge's IFLA_INFO_DATA as the kernel reports it, for the values this adapter sets.
struct BridgeState {
    std::optional<std::uint32_t> forward_delay, hello_time, max_age, stp_state;
    std::optional<std::uint16_t> priority;
    std::optional<std::uint8_t> multicast_snooping;
};

BridgeState read_bridge(nl_sock* socket, int ifindex, const std::string& operation)
{
    ifinfomsg request{};
    request.ifi_family = AF_UNSPEC;
    request.ifi_index = ifindex;
    MsgPtr msg = new_request(RTM_GETLINK, 0, &request, sizeof(request));
    BridgeState state;
    const NlResult result = transact(socket, msg.get(), [&state](const nlmsghdr* header) {
        std::array<nlattr*, IFLA_MAX + 1> tb{};
        std::array<nlattr*, IFLA_INFO_MAX + 1> info{};
        std::array<nlattr*, IFLA_BR_MAX + 1> data{};
        if (header->nlmsg_type != RTM_NEWLINK ||
            nlmsg_parse(const_cast<nlmsghdr*>(header), sizeof(ifinfomsg), tb.data(), IFLA_MAX, nullptr) < 0 ||
            tb[IFLA_LINKINFO] == nullptr ||
            nla_parse_nested(info.data(), IFLA_INFO_MAX, tb[IFLA_LINKINFO], nullptr) < 0 ||
            info[IFLA_INFO_DATA] == nullptr ||
            nla_parse_nested(data.data(), IFLA_BR_MAX, info[IFLA_INFO_DATA], nullptr) < 0) {
            return;
        }
        auto u32 = [&data](int type) -> std::optional<std::uint32_t> {
            if (data[type] == nullptr || nla_len(data[type]) < 4) {
                return std::nullopt;
            }
            return nla_get_u32(data[type]);
        };
        state.forward_delay = u32(IFLA_BR_FORWARD_DELAY);
        state.hello_time = u32(IFLA_BR_HELLO_TIME);
        state.max_age = u32(IFLA_BR_MAX_AGE);
        state.stp_state = u32(IFLA_BR_STP_STATE);
        if (data[IFLA_BR_PRIORITY] != nullptr && nla_len(data[IFLA_BR_PRIORITY]) >= 2) {
            state.priority = nla_get_u16(data[IFLA_BR_PRIORITY]);
        }
        if (data[IFLA_BR_MCAST_SNOOPING] != nullptr && nla_len(data[IFLA_BR_MCAST_SNOOPING]) >= 1) {
            state.multicast_snooping = nla_get_u8(data[IFLA_BR_MCAST_SNOOPING]);
        }
    });
    if (!result.ok()) {
        fail_result(operation, result);
    }
    return state;
}

// Ranges the kernel enforces (net/bridge/br_stp.c, identical with STP on and off except the forward delay): hello
// time 1..10 s and max age 6..40 s always; forward delay 2..30 s only while STP is on, but switching STP on clamps a
// delay outside that range silently. Refusing here keeps the kernel from storing something other than what was
// asked for, which the reconciler would then see as endless drift.
void check_bridge_options(const plan::BridgeOptions& options, const std::string& operation)
{
    if (options.stp && (options.forward_delay_cs < 200 || options.forward_delay_cs > 3000)) {
        invalid(operation, "forward delay " + std::to_string(options.forward_delay_cs) +
                               " cs is outside 200..3000, the range the kernel allows with STP on");
    }
    if (options.hello_time_cs != 0 && (options.hello_time_cs < 100 || options.hello_time_cs > 1000)) {
        invalid(operation, "hello time " + std::to_string(options.hello_time_cs) +
                               " cs is outside 100..1000, the range the kernel allows");
    }
    if (options.max_age_cs != 0 && (options.max_age_cs < 600 || options.max_age_cs > 4000)) {
        invalid(operation, "max age " + std::to_string(options.max_age_cs) +
                               " cs is outside 600..4000, the range the kernel allows");
    }
}

// What a bridge message carries.
enum class BridgeParts {
    StpStateOnly,  // just IFLA_BR_STP_STATE (the first of two messages that turn STP off, see bridge_request)
    All,
};

// Differences between what was asked for and what the kernel kept, or empty. The kernel stores bridge timers in
// jiffies: with HZ=250 a centisecond is 2.5 jiffies, so an odd value comes back one lower (1501 cs reads 1500).
// That cannot be predicted from user space (HZ is not exported), hence the read-back.
struct Mismatch {
    ErrorKind kind = ErrorKind::InvalidArgument;
    std::string what;
};

Mismatch bridge_mismatch(const BridgeState& state, const plan::BridgeOptions& options)
{
    Mismatch mismatch;
    auto timer = [&mismatch](const char* name, std::uint32_t wanted, const std::optional<std::uint32_t>& got) {
        if (got && *got != wanted && mismatch.what.empty()) {
            mismatch.what = std::string(name) + " " + std::to_string(wanted) + " cs is stored by the kernel as " +
                            std::to_string(*got) + " cs (its timers count in jiffies; use an even value)";
        }
    };
    timer("forward delay", options.forward_delay_cs, state.forward_delay);
    if (options.hello_time_cs != 0) {
        timer("hello time", options.hello_time_cs, state.hello_time);
    }
    if (options.max_age_cs != 0) {
        timer("max age", options.max_age_cs, state.max_age);
    }
    if (mismatch.what.empty() && state.stp_state && (*state.stp_state != 0) != options.stp) {
        mismatch = {ErrorKind::Kernel, std::string("STP is ") + (*state.stp_state != 0 ? "on" : "off") +
                                           " after asking for it " + (options.stp ? "on" : "off")};
    }
    if (mismatch.what.empty() && options.multicast_snooping && !state.multicast_snooping) {
        // Without CONFIG_BRIDGE_IGMP_SNOOPING the kernel ignores the attribute rather than refusing it.
        mismatch = {ErrorKind::Unsupported, "this kernel's bridge has no multicast snooping"};
    }
    return mismatch;
}

// Builds an RTM_NEWLINK for a bridge carrying its kind data. With ifindex 0 and NLM_F_CREATE|NLM_F_EXCL it creates
// `name` (with options.mtu and options.mac, which only creation sends); with an existing ifindex and no flags it
// changes that bridge in place, which is how STP and its timers can be adjusted without recreating the bridge.
//
// Kernel rules (seen on 6.x; br_changelink applies attributes in a fixed order, not the message's, and stops at the
// first error without undoing the earlier ones): forward delay, hello time and max age come before STP state, then
// priority, then multicast snooping. While STP is on, a delay outside 200..3000 cs is refused with ERANGE; with STP
// off anything goes. Turning STP on clamps the delay into that range silently (0 becomes 200). So a change that
// turns STP off and lowers the delay must be two messages, STP first: in one message the delay fails and STP stays
// on. Turning STP on needs only one: the delay lands while STP is still off, and check_bridge_options has made sure
// it is in range, so nothing is clamped.
MsgPtr bridge_request(int ifindex, const std::string& name, const plan::BridgeOptions& options, int flags,
                      BridgeParts parts, const std::string& operation)
{
    const bool creating = ifindex == 0;
    MsgPtr msg(nlmsg_alloc_simple(RTM_NEWLINK, flags));
    if (!msg) {
        return nullptr;
    }
    ifinfomsg header{};
    header.ifi_family = AF_UNSPEC;
    header.ifi_index = ifindex;
    if (nlmsg_append(msg.get(), &header, sizeof(header), NLMSG_ALIGNTO) < 0) {
        return nullptr;
    }
    if (creating && nla_put_string(msg.get(), IFLA_IFNAME, name.c_str()) < 0) {
        return nullptr;
    }
    if (creating && options.mtu != 0 && nla_put_u32(msg.get(), IFLA_MTU, options.mtu) < 0) {
        return nullptr;
    }
    // A MAC given at creation is recorded as set by the user (NET_ADDR_SET), so the bridge keeps it instead of
    // adopting the lowest port address as ports come and go; bridge mode relies on that to keep the uplink's MAC.
    if (creating && options.mac) {
        const model::Mac& mac = *options.mac;
        // The kernel's is_valid_ether_addr: a bridge with such an address would refuse to come up.
        if (!mac.unicast()) {
            invalid(operation, "MAC address " + mac.str() + " is all zero or multicast");
        }
        if (nla_put(msg.get(), IFLA_ADDRESS, static_cast<int>(mac.bytes.size()), mac.bytes.data()) < 0) {
            return nullptr;
        }
    }
    nlattr* linkinfo = nla_nest_start(msg.get(), IFLA_LINKINFO);
    if (linkinfo == nullptr || nla_put_string(msg.get(), IFLA_INFO_KIND, "bridge") < 0) {
        return nullptr;
    }
    nlattr* data = nla_nest_start(msg.get(), IFLA_INFO_DATA);
    if (data == nullptr) {
        return nullptr;
    }
    // Units are clock_t (USER_HZ = 100), i.e. centiseconds, which is also what `ip -d link` prints.
    bool ok = nla_put_u32(msg.get(), IFLA_BR_STP_STATE, options.stp ? 1 : 0) >= 0;
    if (parts == BridgeParts::All) {
        ok = ok && nla_put_u32(msg.get(), IFLA_BR_FORWARD_DELAY, options.forward_delay_cs) >= 0;
        if (options.hello_time_cs != 0) {
            ok = ok && nla_put_u32(msg.get(), IFLA_BR_HELLO_TIME, options.hello_time_cs) >= 0;
        }
        if (options.max_age_cs != 0) {
            ok = ok && nla_put_u32(msg.get(), IFLA_BR_MAX_AGE, options.max_age_cs) >= 0;
        }
        if (options.priority) {
            ok = ok && nla_put_u16(msg.get(), IFLA_BR_PRIORITY, *options.priority) >= 0;
        }
        if (options.multicast_snooping) {
            ok = ok && nla_put_u8(msg.get(), IFLA_BR_MCAST_SNOOPING, *options.multicast_snooping ? 1 : 0) >= 0;
        }
    }
    if (!ok) {
        return nullptr;
    }
    nla_nest_end(msg.get(), data);
    nla_nest_end(msg.get(), linkinfo);
    return msg;
}

int set_mtu_by_index(nl_sock* socket, int ifindex, std::uint32_t mtu)
{
    MsgPtr msg(nlmsg_alloc_simple(RTM_NEWLINK, 0));
    ifinfomsg header{};
    header.ifi_family = AF_UNSPEC;
    header.ifi_index = ifindex;
    if (!msg || nlmsg_append(msg.get(), &header, sizeof(header), NLMSG_ALIGNTO) < 0 ||
        nla_put_u32(msg.get(), IFLA_MTU, mtu) < 0) {
        return -NLE_NOMEM;
    }
    const int err = nl_send_auto(socket, msg.get());
    return err < 0 ? err : nl_wait_for_ack(socket);
}

}  // namespace

void NetlinkLinks::create_bridge(const std::string& name, const plan::BridgeOptions& options)
{
    const std::string operation = "creating bridge " + name;
    if (!valid_ifname(name)) {
        throw Error(ErrorKind::InvalidArgument, "netlink: " + operation + " failed: invalid interface name");
    }
    check_bridge_options(options, operation);
    MsgPtr msg = bridge_request(0, name, options, NLM_F_CREATE | NLM_F_EXCL, BridgeParts::All, operation);
    if (!msg) {
        fail(operation, -NLE_NOMEM);
    }
    const NlResult result = transact(socket_, msg.get());
    if (result.error == -EEXIST) {
        throw Error(ErrorKind::AlreadyExists,
                    "netlink: " + operation + " failed: " + name + " already exists (" + describe(result) + ")");
    }
    if (!result.ok()) {
        fail_result(operation, result);
    }
    try {
        LinkPtr link = get_link(socket_, name);
        if (!link) {
            throw Error(ErrorKind::Kernel, "netlink: " + operation + " failed: " + name + " vanished after creation");
        }
        const int ifindex = rtnl_link_get_ifindex(link.get());
        if (options.mtu != 0) {
            // An MTU given at creation is stored without going through the bridge's ndo_change_mtu, so the kernel
            // does not mark it as user-set and resets it to the smallest port MTU when the first port joins.
            // Changing it afterwards does mark it, but only if the value really changes, hence the detour through a
            // neighbouring value. 68 (ETH_MIN_MTU) is the bridge's lower bound, so step up from there and down from
            // anything else.
            const std::string pin = "pinning MTU " + std::to_string(options.mtu) + " on new bridge " + name;
            int err = set_mtu_by_index(socket_, ifindex, options.mtu > 68 ? options.mtu - 1 : options.mtu + 1);
            if (err >= 0) {
                err = set_mtu_by_index(socket_, ifindex, options.mtu);
            }
            if (err < 0) {
                fail_mapped(pin, err);
            }
        }
        const Mismatch mismatch = bridge_mismatch(read_bridge(socket_, ifindex, operation), options);
        if (!mismatch.what.empty()) {
            throw Error(mismatch.kind, "netlink: " + operation + " failed: " + mismatch.what);
        }
    } catch (...) {
        // Half-configured is worse than absent: the caller will retry the whole creation.
        LinkPtr doomed(rtnl_link_alloc());
        if (doomed) {
            rtnl_link_set_name(doomed.get(), name.c_str());
            rtnl_link_delete(socket_, doomed.get());
        }
        throw;
    }
}

void NetlinkLinks::set_bridge_options(const std::string& name, const plan::BridgeOptions& options)
{
    const std::string operation = "changing bridge options of " + name;
    check_bridge_options(options, operation);
    LinkPtr link = require_link(socket_, name, operation);
    const char* type = rtnl_link_get_type(link.get());
    if (type == nullptr || std::string(type) != "bridge") {
        invalid(operation, name + " is not a bridge");
    }
    const int ifindex = rtnl_link_get_ifindex(link.get());
    // STP off goes first on its own, so that a lower delay in the second message meets STP already off (see
    // bridge_request). When STP is already off this is a no-op for the kernel.
    const BridgeParts steps[] = {BridgeParts::StpStateOnly, BridgeParts::All};
    for (const BridgeParts parts : steps) {
        if (parts == BridgeParts::StpStateOnly && options.stp) {
            continue;
        }
        MsgPtr msg = bridge_request(ifindex, {}, options, 0, parts, operation);
        if (!msg) {
            fail(operation, -NLE_NOMEM);
        }
        const NlResult result = transact(socket_, msg.get());
        if (!result.ok()) {
            fail_result(operation, result);
        }
    }
    const Mismatch mismatch = bridge_mismatch(read_bridge(socket_, ifindex, operation), options);
    if (!mismatch.what.empty()) {
        throw Error(mismatch.kind, "netlink: " + operation + " failed: " + mismatch.what);
    }
}

}  // namespace kvmnet::kernel
