// Traffic control for guest ports (libvirt's <bandwidth>), built by hand on rtnetlink because libnl-route 3.7 has
// no police action and its htb class builder computes buffers in `int` with a rate/HZ guess.
//
// What is installed on the host-side port, the same shapes libvirt uses so that a guest behaves alike under both:
//   inbound (to the guest = egress of the port):
//     root qdisc htb 1: default 1, one class 1:1 rate=average ceil=peak (or average) burst=burst
//     (htb rather than tbf: tbf needs a peak bucket size and MTU of its own to express peak, and htb's ceil is
//     what libvirt maps peak onto). libvirt also hangs an sfq under 1:1 and an fw filter; the class is the
//     default one anyway, and sfq is often not built (it is not on our test kernels), so neither is added.
//   outbound (from the guest = ingress of the port):
//     ingress qdisc ffff:, one u32 match-all filter (pref 1, protocol all) with a police action
//     rate=average burst=burst (default: one second of average; libvirt: "average" kB) mtu 64k, drop on exceed.
//     (u32 rather than matchall: matchall arrived in 4.8 and is missing from some trimmed kernels; u32 is the
//     classifier libvirt uses.) Peak has no meaning for a policer and is ignored, as in libvirt.
// Units follow what libvirt hands to tc(8): rates "kbps" = 1000 bytes/s, bursts "kb" = 1024 bytes.
//
// Replacing: a root htb 1: is kept and only its class changed; anything else at the root is replaced. The ingress
// qdisc is kept and the pref-1 filter is deleted and added again. Removing deletes the root htb 1: (never another
// root qdisc) and the ingress qdisc.
#include "kernel/tc.hpp"

#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/pkt_cls.h>
#include <linux/pkt_sched.h>
#include <linux/rtnetlink.h>
#include <netlink/attr.h>
#include <netlink/msg.h>
#include <netlink/socket.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <vector>

#include "kernel/netlink_links.hpp"
#include "kernel/netlink_util.hpp"
#include "model/error.hpp"

namespace kvmnet::kernel::tc {

namespace {

constexpr std::uint32_t root_handle = 0x00010000U;     // 1:
constexpr std::uint32_t class_handle = 0x00010001U;    // 1:1
constexpr std::uint32_t ingress_handle = 0xFFFF0000U;  // ffff:
constexpr std::uint32_t filter_pref = 1;
constexpr std::uint32_t htb_mtu = 1600;      // tc's htb default, for the rate table and default bursts
constexpr std::uint32_t police_mtu = 65536;  // libvirt's "mtu 64kb"
constexpr std::uint64_t rate_unit = 1000;    // libvirt kB/s -> tc "kbps"
constexpr std::uint64_t burst_unit = 1024;   // libvirt kB -> tc "kb"

using SockPtr = CPtr<nl_sock, nl_socket_free>;

// The packet scheduler clock as tc(8) reads it: ticks per microsecond, and the "HZ" used for default bursts.
struct Psched {
    double ticks_per_usec = 15.625;  // 64 ns ticks, what every kernel since 3.x reports
    double hz = 1e9;
};

Psched read_psched()
{
    Psched clock;
    FILE* file = std::fopen("/proc/net/psched", "re");
    if (file == nullptr) {
        return clock;
    }
    unsigned t2us = 0, us2t = 0, clock_res = 0, hz = 0;
    const int n = std::fscanf(file, "%08x%08x%08x%08x", &t2us, &us2t, &clock_res, &hz);
    std::fclose(file);
    if (n < 3 || us2t == 0) {
        return clock;
    }
    if (clock_res == 1000000000U) {  // tc's compatibility rule for nanosecond clocks
        t2us = us2t;
    }
    clock.ticks_per_usec = static_cast<double>(t2us) / us2t * (static_cast<double>(clock_res) / 1e6);
    if (n == 4 && clock_res == 1000000U && hz != 0) {
        clock.hz = hz;
    }
    return clock;
}

const Psched& psched()
{
    static const Psched clock = read_psched();
    return clock;
}

// Scheduler ticks it takes to send `size` bytes at `rate` bytes/s. Same arithmetic as tc's tc_calc_xmittime
// (whole microseconds first, then ticks), so the kernel gets byte-for-byte what `tc` would send, except that the
// result is not silently truncated to 32 bits: callers check.
std::uint64_t xmit_ticks(std::uint64_t rate, std::uint64_t size)
{
    const double usec = std::floor(1e6 * (static_cast<double>(size) / static_cast<double>(rate)));
    return static_cast<std::uint64_t>(usec * psched().ticks_per_usec);
}

// A ratespec plus the legacy rate table (time to send 1..256 cells), which htb on old kernels and police on all
// kernels insist on.
struct Rate {
    tc_ratespec spec{};
    std::array<std::uint32_t, 256> table{};
    std::uint64_t rate64 = 0;
};

Rate make_rate(std::uint64_t bytes_per_second, std::uint32_t mtu)
{
    Rate rate;
    rate.rate64 = bytes_per_second;
    const std::uint32_t rate32 = static_cast<std::uint32_t>(
        std::min<std::uint64_t>(bytes_per_second, std::numeric_limits<std::uint32_t>::max()));
    unsigned cell_log = 0;
    while ((mtu >> cell_log) > 255) {
        ++cell_log;
    }
    // Computed from the full 64-bit rate, as tc(8) does (tc_calc_rtable_64).
    for (unsigned i = 0; i < rate.table.size(); ++i) {
        rate.table[i] = static_cast<std::uint32_t>(
            std::min<std::uint64_t>(xmit_ticks(bytes_per_second, static_cast<std::uint64_t>(i + 1) << cell_log),
                                    std::numeric_limits<std::uint32_t>::max()));
    }
    rate.spec.cell_log = static_cast<unsigned char>(cell_log);
    rate.spec.linklayer = TC_LINKLAYER_ETHERNET;
    rate.spec.cell_align = -1;
    // Rates beyond 32 bits travel in a separate *_RATE64 attribute; the spec then carries all ones.
    rate.spec.rate = rate32;
    return rate;
}

bool is_zero(const plan::Rate& rate) { return rate == plan::Rate{}; }

// Burst in bytes as ticks at `rate`; validate() has made sure it fits.
std::uint32_t burst_ticks(std::uint64_t rate, std::uint64_t burst_bytes)
{
    return static_cast<std::uint32_t>(xmit_ticks(rate, burst_bytes));
}

std::uint64_t inbound_burst_bytes(const plan::Rate& rate)
{
    return rate.burst_kB != 0 ? rate.burst_kB * burst_unit
                              : static_cast<std::uint64_t>(rate.average_kBps * rate_unit / psched().hz) + htb_mtu;
}

std::uint64_t inbound_cburst_bytes(const plan::Rate& rate)
{
    const std::uint64_t ceil = (rate.peak_kBps != 0 ? rate.peak_kBps : rate.average_kBps) * rate_unit;
    return static_cast<std::uint64_t>(ceil / psched().hz) + htb_mtu;
}

// A policer needs a bucket; without one given, one second of the average rate (libvirt uses "average" kB).
std::uint64_t outbound_burst_bytes(const plan::Rate& rate)
{
    return rate.burst_kB != 0 ? rate.burst_kB * burst_unit : rate.average_kBps * rate_unit;
}

void validate_rate(const std::string& name, const std::string& direction, const plan::Rate& rate, bool outbound)
{
    const auto invalid = [&](const std::string& what) {
        throw Error(ErrorKind::InvalidArgument, "tc: bandwidth on " + name + ": " + direction + " " + what);
    };
    if (is_zero(rate)) {
        return;
    }
    if (rate.average_kBps == 0) {
        invalid("needs an average rate when peak or burst is set");
    }
    if (rate.peak_kBps != 0 && rate.peak_kBps < rate.average_kBps) {
        invalid("peak " + std::to_string(rate.peak_kBps) + " kB/s is below the average " +
                std::to_string(rate.average_kBps) + " kB/s");
    }
    const std::uint64_t max_rate = std::numeric_limits<std::uint64_t>::max() / rate_unit;
    if (rate.average_kBps > max_rate || rate.peak_kBps > max_rate) {
        invalid("rate is too large");
    }
    if (rate.burst_kB > std::numeric_limits<std::uint32_t>::max() / burst_unit) {
        invalid("burst " + std::to_string(rate.burst_kB) + " kB is larger than 4 GiB");
    }
    // The kernel keeps a bucket as a 32-bit count of 64 ns ticks: a big burst at a low rate does not fit.
    const std::uint64_t burst = outbound ? outbound_burst_bytes(rate) : inbound_burst_bytes(rate);
    if (xmit_ticks(rate.average_kBps * rate_unit, burst) > std::numeric_limits<std::uint32_t>::max()) {
        invalid("burst " + std::to_string(burst / burst_unit) + " kB at " + std::to_string(rate.average_kBps) +
                " kB/s is beyond what the kernel can hold (about 270 seconds of traffic)");
    }
}

struct Qdisc {
    std::uint32_t handle = 0;
    std::uint32_t parent = 0;
    std::string kind;
};

class Session {
public:
    Session(int ifindex, std::string name) : ifindex_(ifindex), name_(std::move(name))
    {
        socket_.reset(nl_socket_alloc());
        if (!socket_) {
            throw Error(ErrorKind::Kernel, "tc: allocating a netlink socket failed");
        }
        const int err = nl_connect(socket_.get(), NETLINK_ROUTE);
        if (err < 0) {
            throw Error(ErrorKind::Kernel, std::string("tc: connecting to NETLINK_ROUTE failed: ") + nl_geterror(err));
        }
        // Without the kernel's own words an unknown qdisc kind and a vanished parent are both ENOENT.
        enable_extended_ack(socket_.get());
    }

    std::vector<Qdisc> qdiscs()
    {
        std::vector<Qdisc> found;
        NlResult result;
        for (int attempt = 0; attempt < 3; ++attempt) {
            found.clear();
            tcmsg header = base_header(0, 0);
            NlMsgPtr msg = new_request(RTM_GETQDISC, NLM_F_DUMP, &header, sizeof(header));
            result = transact(
                socket_.get(), msg.get(),
                [&](const nlmsghdr* hdr) {
                    if (hdr->nlmsg_type != RTM_NEWQDISC) {
                        return;
                    }
                    const auto* tcm = static_cast<const tcmsg*>(nlmsg_data(hdr));
                    if (tcm->tcm_ifindex != ifindex_) {
                        return;
                    }
                    nlattr* tb[TCA_MAX + 1] = {};
                    if (nlmsg_parse(const_cast<nlmsghdr*>(hdr), sizeof(tcmsg), tb, TCA_MAX, nullptr) < 0) {
                        return;
                    }
                    Qdisc q;
                    q.handle = tcm->tcm_handle;
                    q.parent = tcm->tcm_parent;
                    if (tb[TCA_KIND] != nullptr) {
                        const auto* kind = static_cast<const char*>(nla_data(tb[TCA_KIND]));
                        q.kind.assign(kind, strnlen(kind, static_cast<std::size_t>(nla_len(tb[TCA_KIND]))));
                    }
                    found.push_back(q);
                },
                true);
            if (result.error != -EINTR) {
                break;
            }
        }
        if (!result.ok()) {
            throw_result(ErrorKind::Kernel, "listing qdiscs of " + name_, result);
        }
        return found;
    }

    void set_inbound(const plan::Rate& rate, const std::vector<Qdisc>& current)
    {
        const Qdisc* root = find(current, TC_H_ROOT);
        const bool ours = root != nullptr && root->kind == "htb" && root->handle == root_handle;
        if (is_zero(rate)) {
            if (ours) {
                delete_qdisc(root_handle, TC_H_ROOT, "removing inbound shaping (root htb qdisc)");
            }
            return;
        }
        bool created = false;
        if (!ours) {
            tc_htb_glob glob{};
            glob.version = 3;  // TC_HTB_PROTOVER, which the kernel insists on
            glob.rate2quantum = 10;
            glob.defcls = TC_H_MIN(class_handle);
            tcmsg header = base_header(root_handle, TC_H_ROOT);
            NlMsgPtr msg = new_request(RTM_NEWQDISC, NLM_F_CREATE | NLM_F_REPLACE, &header, sizeof(header));
            nlattr* options = nullptr;
            if (nla_put_string(msg.get(), TCA_KIND, "htb") < 0 ||
                (options = nla_nest_start(msg.get(), TCA_OPTIONS)) == nullptr ||
                nla_put(msg.get(), TCA_HTB_INIT, sizeof(glob), &glob) < 0) {
                throw Error(ErrorKind::Kernel, "tc: building the htb qdisc request failed");
            }
            nla_nest_end(msg.get(), options);
            const NlResult result = transact(socket_.get(), msg.get());
            if (!result.ok()) {
                fail_kind(result, "adding root htb qdisc", "the htb qdisc", "CONFIG_NET_SCH_HTB");
            }
            created = true;
        }

        const std::uint64_t rate_bytes = rate.average_kBps * rate_unit;
        const std::uint64_t ceil_bytes = (rate.peak_kBps != 0 ? rate.peak_kBps : rate.average_kBps) * rate_unit;
        const Rate average = make_rate(rate_bytes, htb_mtu);
        const Rate ceil = make_rate(ceil_bytes, htb_mtu);
        tc_htb_opt opt{};
        opt.rate = average.spec;
        opt.ceil = ceil.spec;
        opt.buffer = burst_ticks(rate_bytes, inbound_burst_bytes(rate));
        opt.cbuffer = burst_ticks(ceil_bytes, inbound_cburst_bytes(rate));
        // What the kernel would derive from r2q 10, clamped to its sane range itself: otherwise every slow or fast
        // port logs "quantum of class 10001 is small/big" to the kernel log.
        opt.quantum = static_cast<std::uint32_t>(std::clamp<std::uint64_t>(rate_bytes / 10, 1000, 200000));
        tcmsg header = base_header(class_handle, root_handle);
        // CREATE without EXCL: a class that is there is changed in place, so traffic keeps flowing.
        NlMsgPtr msg = new_request(RTM_NEWTCLASS, NLM_F_CREATE, &header, sizeof(header));
        nlattr* options = nullptr;
        bool built = nla_put_string(msg.get(), TCA_KIND, "htb") >= 0 &&
                     (options = nla_nest_start(msg.get(), TCA_OPTIONS)) != nullptr &&
                     nla_put(msg.get(), TCA_HTB_PARMS, sizeof(opt), &opt) >= 0;
        if (built && rate_bytes > std::numeric_limits<std::uint32_t>::max()) {
            built = nla_put_u64(msg.get(), TCA_HTB_RATE64, rate_bytes) >= 0;
        }
        if (built && ceil_bytes > std::numeric_limits<std::uint32_t>::max()) {
            built = nla_put_u64(msg.get(), TCA_HTB_CEIL64, ceil_bytes) >= 0;
        }
        built = built && nla_put(msg.get(), TCA_HTB_RTAB, sizeof(average.table), average.table.data()) >= 0 &&
                nla_put(msg.get(), TCA_HTB_CTAB, sizeof(ceil.table), ceil.table.data()) >= 0;
        if (!built) {
            throw Error(ErrorKind::Kernel, "tc: building the htb class request failed");
        }
        nla_nest_end(msg.get(), options);
        const NlResult result = transact(socket_.get(), msg.get());
        if (!result.ok()) {
            // A root qdisc without its class would hold every packet in the direct queue unshaped; take it away.
            if (created) {
                delete_qdisc_quietly(root_handle, TC_H_ROOT);
            }
            throw_result(ErrorKind::Kernel, "setting inbound bandwidth on " + name_ + " (htb class 1:1)", result);
        }
    }

    void set_outbound(const plan::Rate& rate, const std::vector<Qdisc>& current)
    {
        const Qdisc* ingress = find(current, TC_H_INGRESS);
        if (is_zero(rate)) {
            if (ingress != nullptr) {
                delete_qdisc(ingress->handle, TC_H_INGRESS, "removing outbound policing (ingress qdisc)");
            }
            return;
        }
        bool created = false;
        if (ingress == nullptr) {
            tcmsg header = base_header(ingress_handle, TC_H_INGRESS);
            NlMsgPtr msg = new_request(RTM_NEWQDISC, NLM_F_CREATE | NLM_F_EXCL, &header, sizeof(header));
            if (nla_put_string(msg.get(), TCA_KIND, "ingress") < 0) {
                throw Error(ErrorKind::Kernel, "tc: building the ingress qdisc request failed");
            }
            const NlResult result = transact(socket_.get(), msg.get());
            if (!result.ok()) {
                fail_kind(result, "adding ingress qdisc", "the ingress qdisc", "CONFIG_NET_SCH_INGRESS");
            }
            created = true;
        } else {
            // Replace = drop our filter (absent is fine) and add the new one; u32 cannot change its key in place.
            tcmsg header = base_header(0, ingress_handle);
            header.tcm_info = TC_H_MAKE(filter_pref << 16, htons(ETH_P_ALL));
            NlMsgPtr msg = new_request(RTM_DELTFILTER, 0, &header, sizeof(header));
            const NlResult result = transact(socket_.get(), msg.get());
            if (!result.ok() && result.error != -ENOENT) {
                throw_result(ErrorKind::Kernel, "replacing outbound policing on " + name_ + " (deleting the filter)",
                             result);
            }
        }
        const NlResult result = add_police_filter(rate);
        if (!result.ok()) {
            if (created) {
                delete_qdisc_quietly(ingress_handle, TC_H_INGRESS);
            }
            // ENOENT here is a missing module: the qdisc is there (we just saw or made it).
            std::string feature =
                "the u32 classifier (CONFIG_NET_CLS_U32) or the police action (CONFIG_NET_ACT_POLICE)";
            if (result.extack.find("action") != std::string::npos) {
                feature = "the tc police action (CONFIG_NET_ACT_POLICE)";
            } else if (result.extack.find("classifier") != std::string::npos) {
                feature = "the tc u32 classifier (CONFIG_NET_CLS_U32)";
            }
            if (result.error == -ENOENT || result.error == -EOPNOTSUPP) {
                throw Error(ErrorKind::Unsupported, "tc: limiting outbound bandwidth on " + name_ + ": " + feature +
                                                        " is not available in this kernel (" + describe(result) + ")");
            }
            throw_result(ErrorKind::Kernel, "setting outbound bandwidth on " + name_ + " (u32 police filter)", result);
        }
    }

private:
    tcmsg base_header(std::uint32_t handle, std::uint32_t parent) const
    {
        tcmsg header{};
        header.tcm_family = AF_UNSPEC;
        header.tcm_ifindex = ifindex_;
        header.tcm_handle = handle;
        header.tcm_parent = parent;
        return header;
    }

    static const Qdisc* find(const std::vector<Qdisc>& qdiscs, std::uint32_t parent)
    {
        for (const auto& q : qdiscs) {
            if (q.parent == parent) {
                return &q;
            }
        }
        return nullptr;
    }

    [[noreturn]] void fail_kind(const NlResult& result, const std::string& step, const std::string& what,
                                const std::string& config)
    {
        // Adding a qdisc at the root or ingress slot has no parent to miss, so ENOENT means the kind is unknown.
        if (result.error == -ENOENT || result.error == -EOPNOTSUPP) {
            throw Error(ErrorKind::Unsupported, "tc: shaping " + name_ + ": " + what +
                                                    " is not available in this kernel (" + config + "; " +
                                                    describe(result) + ")");
        }
        throw_result(ErrorKind::Kernel, step + " on " + name_, result);
    }

    NlResult delete_request(std::uint32_t handle, std::uint32_t parent)
    {
        tcmsg header = base_header(handle, parent);
        NlMsgPtr msg = new_request(RTM_DELQDISC, 0, &header, sizeof(header));
        return transact(socket_.get(), msg.get());
    }

    void delete_qdisc(std::uint32_t handle, std::uint32_t parent, const std::string& step)
    {
        const NlResult result = delete_request(handle, parent);
        if (!result.ok()) {
            throw_result(ErrorKind::Kernel, step + " on " + name_, result);
        }
    }

    // Best-effort undo on a path that is already failing with a better error.
    void delete_qdisc_quietly(std::uint32_t handle, std::uint32_t parent) noexcept
    {
        try {
            delete_request(handle, parent);
        } catch (...) {
        }
    }

    NlResult add_police_filter(const plan::Rate& rate)
    {
        const std::uint64_t rate_bytes = rate.average_kBps * rate_unit;
        const Rate police_rate = make_rate(rate_bytes, police_mtu);
        tc_police police{};
        police.action = TC_POLICE_SHOT;
        police.mtu = police_mtu;
        police.rate = police_rate.spec;
        police.burst = burst_ticks(rate_bytes, outbound_burst_bytes(rate));

        // One key with mask 0: matches every packet. TERMINAL makes u32 run the actions on a match.
        std::array<unsigned char, sizeof(tc_u32_sel) + sizeof(tc_u32_key)> selector{};
        tc_u32_sel sel{};
        sel.flags = TC_U32_TERMINAL;
        sel.nkeys = 1;
        std::memcpy(selector.data(), &sel, sizeof(sel));

        tcmsg header = base_header(0, ingress_handle);
        header.tcm_info = TC_H_MAKE(filter_pref << 16, htons(ETH_P_ALL));
        NlMsgPtr msg = new_request(RTM_NEWTFILTER, NLM_F_CREATE | NLM_F_EXCL, &header, sizeof(header));
        nl_msg* m = msg.get();
        nlattr* options = nullptr;
        nlattr* actions = nullptr;
        nlattr* first = nullptr;
        nlattr* police_options = nullptr;
        bool built = nla_put_string(m, TCA_KIND, "u32") >= 0 && (options = nla_nest_start(m, TCA_OPTIONS)) != nullptr &&
                     nla_put(m, TCA_U32_SEL, static_cast<int>(selector.size()), selector.data()) >= 0 &&
                     (actions = nla_nest_start(m, TCA_U32_ACT)) != nullptr &&
                     (first = nla_nest_start(m, 1)) != nullptr &&  // actions are nested by their order, from 1
                     nla_put_string(m, TCA_ACT_KIND, "police") >= 0 &&
                     (police_options = nla_nest_start(m, TCA_ACT_OPTIONS)) != nullptr &&
                     nla_put(m, TCA_POLICE_TBF, sizeof(police), &police) >= 0 &&
                     nla_put(m, TCA_POLICE_RATE, sizeof(police_rate.table), police_rate.table.data()) >= 0;
        if (built && rate_bytes > std::numeric_limits<std::uint32_t>::max()) {
            built = nla_put_u64(m, TCA_POLICE_RATE64, rate_bytes) >= 0;
        }
        if (!built) {
            throw Error(ErrorKind::Kernel, "tc: building the police filter request failed");
        }
        nla_nest_end(m, police_options);
        nla_nest_end(m, first);
        nla_nest_end(m, actions);
        nla_nest_end(m, options);
        return transact(socket_.get(), m);
    }

    int ifindex_;
    std::string name_;
    SockPtr socket_;
};

}  // namespace

void validate(const std::string& name, const plan::PortBandwidth& bandwidth)
{
    validate_rate(name, "inbound", bandwidth.inbound, false);
    validate_rate(name, "outbound", bandwidth.outbound, true);
}

void apply_bandwidth(int ifindex, const std::string& name, const plan::PortBandwidth& bandwidth)
{
    validate(name, bandwidth);
    Session session(ifindex, name);
    const std::vector<Qdisc> current = session.qdiscs();
    // Outbound first: it is the direction that needs optional modules (u32, police), so on a kernel without
    // them the call fails before anything else has changed.
    session.set_outbound(bandwidth.outbound, current);
    session.set_inbound(bandwidth.inbound, current);
}

}  // namespace kvmnet::kernel::tc

namespace kvmnet::kernel {

void NetlinkLinks::set_bandwidth(const std::string& name, const plan::PortBandwidth& bandwidth)
{
    tc::validate(name, bandwidth);
    const LinkRecord link = require_link_record(socket_, name, "setting bandwidth on " + name);
    tc::apply_bandwidth(link.index, name, bandwidth);
}

}  // namespace kvmnet::kernel
