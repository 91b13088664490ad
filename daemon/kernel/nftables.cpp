// nftables adapter: turns a plan::Table into libnftnl objects and commits it
// over NETLINK_NETFILTER in one nfnetlink batch, so the kernel applies the
// whole table atomically or not at all. The expressions mirror what nft(8)
// generates for the syntax plan::render() produces, so `nft list` shows the
// committed table exactly as the golden files spell it.
#include "kernel/nftables.hpp"

#include "model/error.hpp"

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/table.h>
#include <libnftnl/udata.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>
#include <net/if.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <limits>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <system_error>
#include <utility>
#include <variant>
#include <vector>

namespace kvmnet::kernel {
namespace {

std::string errno_text(int error) { return std::error_code(error, std::generic_category()).message(); }

Error kernel_error(const std::string& what, int error)
{
    return Error(ErrorKind::Kernel, "nftables: " + what + ": " + errno_text(error));
}

// Plan defects found before anything is sent; replace_table() adds the context.
Error invalid_plan(const std::string& what) { return Error(ErrorKind::InvalidArgument, what); }

// ---- RAII for the C objects -----------------------------------------------------------------------------------------

struct TableFree {
    void operator()(nftnl_table* t) const { nftnl_table_free(t); }
};
struct ChainFree {
    void operator()(nftnl_chain* c) const { nftnl_chain_free(c); }
};
struct RuleFree {
    void operator()(nftnl_rule* r) const { nftnl_rule_free(r); }
};
struct ExprFree {
    void operator()(nftnl_expr* e) const { nftnl_expr_free(e); }
};
struct UdataFree {
    void operator()(nftnl_udata_buf* b) const { nftnl_udata_buf_free(b); }
};
struct BatchStop {
    void operator()(mnl_nlmsg_batch* b) const { mnl_nlmsg_batch_stop(b); }
};

using TablePtr = std::unique_ptr<nftnl_table, TableFree>;
using ChainPtr = std::unique_ptr<nftnl_chain, ChainFree>;
using RulePtr = std::unique_ptr<nftnl_rule, RuleFree>;
using ExprPtr = std::unique_ptr<nftnl_expr, ExprFree>;
using UdataPtr = std::unique_ptr<nftnl_udata_buf, UdataFree>;
using BatchPtr = std::unique_ptr<mnl_nlmsg_batch, BatchStop>;

template <typename T>
T* checked(T* p)
{
    if (p == nullptr) throw std::bad_alloc();
    return p;
}

// nftnl serialises without bounds checks, so every message gets a reserved
// worst case. Each expression is well under 128 bytes on the wire; names and
// the comment are counted separately.
constexpr std::size_t message_overhead = 512;
constexpr std::size_t bytes_per_expression = 256;

// Netlink drops acks that do not fit the receive buffer (ENOBUFS), and one
// queued ack costs far more than its payload in skb overhead.
constexpr int receive_bytes_per_ack = 2048;

// ---- plan -> libnftnl -----------------------------------------------------------------------------------------------

std::optional<std::uint32_t> hook_number(const std::string& hook)
{
    if (hook == "prerouting") return NF_INET_PRE_ROUTING;
    if (hook == "input") return NF_INET_LOCAL_IN;
    if (hook == "forward") return NF_INET_FORWARD;
    if (hook == "output") return NF_INET_LOCAL_OUT;
    if (hook == "postrouting") return NF_INET_POST_ROUTING;
    return std::nullopt;
}

void check_name(const std::string& kind, const std::string& name)
{
    if (name.empty() || name.size() >= NFT_NAME_MAXLEN) {
        throw invalid_plan(kind + " name \"" + name + "\" must be 1 to " + std::to_string(NFT_NAME_MAXLEN - 1) +
                           " bytes");
    }
}

class RuleBuilder {
public:
    explicit RuleBuilder(nftnl_rule* rule) : rule_(rule) {}

    std::size_t expressions() const { return count_; }

    void operator()(const plan::MatchIfname& m)
    {
        if (m.name.size() >= IFNAMSIZ) throw invalid_plan("interface name \"" + m.name + "\" is too long");
        // nft compares the whole zero-padded IFNAMSIZ buffer for an exact name.
        std::array<char, IFNAMSIZ> padded{};
        std::memcpy(padded.data(), m.name.data(), m.name.size());
        meta(m.input ? NFT_META_IIFNAME : NFT_META_OIFNAME);
        cmp(m.op, padded.data(), padded.size());
    }

    void operator()(const plan::MatchIpv4& m)
    {
        const unsigned length = m.prefix.length;
        if (length > 32) throw invalid_plan("IPv4 prefix length " + std::to_string(length) + " is out of range");
        // Like nft, state the protocol dependency once per rule, not per match.
        if (!ipv4_checked_) {
            const std::uint8_t nfproto = NFPROTO_IPV4;
            meta(NFT_META_NFPROTO);
            cmp(plan::Cmp::eq, &nfproto, sizeof nfproto);
            ipv4_checked_ = true;
        }

        const std::uint32_t host_mask = length == 0 ? 0 : ~std::uint32_t{0} << (32 - length);
        const std::uint32_t address = htonl(m.prefix.address & host_mask);
        const std::uint32_t mask = htonl(host_mask);
        const std::uint32_t offset = m.source ? 12 : 16;
        // Same shape as nft: whole-byte prefixes load only the significant
        // bytes; others (including /0, so "!= 0.0.0.0/0" keeps its meaning)
        // load all four and mask them.
        if (length != 0 && length % 8 == 0) {
            payload(NFT_PAYLOAD_NETWORK_HEADER, offset, length / 8);
            cmp(m.op, &address, length / 8);
        } else {
            payload(NFT_PAYLOAD_NETWORK_HEADER, offset, 4);
            bitwise(&mask, 4);
            cmp(m.op, &address, 4);
        }
    }

    void operator()(const plan::MatchL4Dport& m)
    {
        // plan::render spells anything but TCP as udp, so only these two round-trip.
        if (m.protocol != IPPROTO_TCP && m.protocol != IPPROTO_UDP) {
            throw invalid_plan("layer 4 protocol " + std::to_string(m.protocol) + " is not tcp or udp");
        }
        const std::uint16_t port = htons(m.port);
        if (l4_checked_ != m.protocol) {
            meta(NFT_META_L4PROTO);
            cmp(plan::Cmp::eq, &m.protocol, sizeof m.protocol);
            l4_checked_ = m.protocol;
        }
        payload(NFT_PAYLOAD_TRANSPORT_HEADER, 2, sizeof port);
        cmp(plan::Cmp::eq, &port, sizeof port);
    }

    void operator()(const plan::MatchCtState& m)
    {
        if (m.mask == 0) throw invalid_plan("ct state match with no states");
        const std::uint32_t zero = 0;
        ExprPtr e(checked(nftnl_expr_alloc("ct")));
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_CT_KEY, NFT_CT_STATE);
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_CT_DREG, NFT_REG_1);
        add(std::move(e));
        // ct state is a host-order bitmask register, unlike packet fields.
        bitwise(&m.mask, sizeof m.mask);
        cmp(plan::Cmp::neq, &zero, sizeof zero);
    }

    void counter() { add(ExprPtr(checked(nftnl_expr_alloc("counter")))); }

    void verdict(plan::Verdict v)
    {
        switch (v) {
        case plan::Verdict::none: return;
        case plan::Verdict::accept: immediate(NF_ACCEPT); return;
        case plan::Verdict::drop: immediate(NF_DROP); return;
        case plan::Verdict::return_: immediate(NFT_RETURN); return;
        case plan::Verdict::masquerade: add(ExprPtr(checked(nftnl_expr_alloc("masq")))); return;
        }
        throw invalid_plan("unknown verdict");
    }

private:
    void add(ExprPtr e)
    {
        nftnl_rule_add_expr(rule_, e.release());  // the rule owns it from here on
        ++count_;
    }

    void meta(std::uint32_t key)
    {
        ExprPtr e(checked(nftnl_expr_alloc("meta")));
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_META_KEY, key);
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_META_DREG, NFT_REG_1);
        add(std::move(e));
    }

    void payload(std::uint32_t base, std::uint32_t offset, std::uint32_t length)
    {
        ExprPtr e(checked(nftnl_expr_alloc("payload")));
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_PAYLOAD_BASE, base);
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_PAYLOAD_OFFSET, offset);
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_PAYLOAD_LEN, length);
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_PAYLOAD_DREG, NFT_REG_1);
        add(std::move(e));
    }

    void cmp(plan::Cmp op, const void* data, std::uint32_t length)
    {
        ExprPtr e(checked(nftnl_expr_alloc("cmp")));
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_CMP_SREG, NFT_REG_1);
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_CMP_OP, op == plan::Cmp::eq ? NFT_CMP_EQ : NFT_CMP_NEQ);
        nftnl_expr_set(e.get(), NFTNL_EXPR_CMP_DATA, data, length);
        add(std::move(e));
    }

    // reg 1 = (reg 1 & mask) ^ 0
    void bitwise(const void* mask, std::uint32_t length)
    {
        const std::uint32_t zero = 0;
        ExprPtr e(checked(nftnl_expr_alloc("bitwise")));
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_BITWISE_SREG, NFT_REG_1);
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_BITWISE_DREG, NFT_REG_1);
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_BITWISE_LEN, length);
        nftnl_expr_set(e.get(), NFTNL_EXPR_BITWISE_MASK, mask, length);
        nftnl_expr_set(e.get(), NFTNL_EXPR_BITWISE_XOR, &zero, length);
        add(std::move(e));
    }

    void immediate(int verdict)
    {
        ExprPtr e(checked(nftnl_expr_alloc("immediate")));
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_IMM_VERDICT, static_cast<std::uint32_t>(verdict));
        add(std::move(e));
    }

    nftnl_rule* rule_;
    std::size_t count_ = 0;
    bool ipv4_checked_ = false;
    std::optional<std::uint8_t> l4_checked_;
};

TablePtr make_table(const std::string& name)
{
    TablePtr t(checked(nftnl_table_alloc()));
    nftnl_table_set_u32(t.get(), NFTNL_TABLE_FAMILY, NFPROTO_INET);
    if (nftnl_table_set_str(t.get(), NFTNL_TABLE_NAME, name.c_str()) < 0) throw std::bad_alloc();
    return t;
}

ChainPtr make_chain(const std::string& table, const plan::Chain& chain)
{
    check_name("chain", chain.name);
    const auto hook = hook_number(chain.hook);
    if (!hook) throw invalid_plan("chain " + chain.name + ": unknown hook \"" + chain.hook + "\"");
    if (chain.type != "filter" && chain.type != "nat" && chain.type != "route") {
        throw invalid_plan("chain " + chain.name + ": unknown type \"" + chain.type + "\"");
    }
    ChainPtr c(checked(nftnl_chain_alloc()));
    nftnl_chain_set_u32(c.get(), NFTNL_CHAIN_FAMILY, NFPROTO_INET);
    if (nftnl_chain_set_str(c.get(), NFTNL_CHAIN_TABLE, table.c_str()) < 0 ||
        nftnl_chain_set_str(c.get(), NFTNL_CHAIN_NAME, chain.name.c_str()) < 0 ||
        nftnl_chain_set_str(c.get(), NFTNL_CHAIN_TYPE, chain.type.c_str()) < 0) {
        throw std::bad_alloc();
    }
    nftnl_chain_set_u32(c.get(), NFTNL_CHAIN_HOOKNUM, *hook);
    nftnl_chain_set_s32(c.get(), NFTNL_CHAIN_PRIO, chain.priority);
    nftnl_chain_set_u32(c.get(), NFTNL_CHAIN_POLICY, chain.policy_accept ? NF_ACCEPT : NF_DROP);
    return c;
}

RulePtr make_rule(const std::string& table, const std::string& chain, const plan::Rule& rule, std::size_t& expressions)
{
    RulePtr r(checked(nftnl_rule_alloc()));
    nftnl_rule_set_u32(r.get(), NFTNL_RULE_FAMILY, NFPROTO_INET);
    if (nftnl_rule_set_str(r.get(), NFTNL_RULE_TABLE, table.c_str()) < 0 ||
        nftnl_rule_set_str(r.get(), NFTNL_RULE_CHAIN, chain.c_str()) < 0) {
        throw std::bad_alloc();
    }
    RuleBuilder builder(r.get());
    for (const plan::Match& m : rule.matches)
        std::visit(builder, m);
    if (rule.counter) builder.counter();
    builder.verdict(rule.verdict);
    expressions = builder.expressions();

    if (!rule.comment.empty()) {
        // nft(8) refuses longer comments, so `nft list` could not show them.
        if (rule.comment.size() > NFTNL_UDATA_COMMENT_MAXLEN) {
            throw invalid_plan("chain " + chain + ": rule comment longer than " +
                               std::to_string(NFTNL_UDATA_COMMENT_MAXLEN) + " bytes");
        }
        UdataPtr udata(checked(nftnl_udata_buf_alloc(NFT_USERDATA_MAXLEN)));
        if (!nftnl_udata_put_strz(udata.get(), NFTNL_UDATA_RULE_COMMENT, rule.comment.c_str())) {
            throw invalid_plan("chain " + chain + ": rule comment does not fit the rule userdata");
        }
        if (nftnl_rule_set_data(r.get(), NFTNL_RULE_USERDATA, nftnl_udata_buf_data(udata.get()),
                                nftnl_udata_buf_len(udata.get())) < 0) {
            throw std::bad_alloc();
        }
    }
    return r;
}

// ---- batch ----------------------------------------------------------------------------------------------------------

// One nfnetlink transaction: BATCH_BEGIN, the messages, BATCH_END, in a
// buffer sized up front from per-message bounds.
class Batch {
public:
    // Each entry: worst-case size and what the message does (for errors).
    struct Step {
        std::size_t bound;
        std::string what;
    };

    Batch(std::uint32_t first_seq, const std::vector<Step>& steps) : first_seq_(first_seq)
    {
        std::size_t total = 2 * message_overhead;  // begin + end
        for (const Step& s : steps) {
            total += s.bound;
            what_.push_back(s.what);
        }
        buffer_.assign(total, 0);
        batch_.reset(checked(mnl_nlmsg_batch_start(buffer_.data(), buffer_.size())));
        nftnl_batch_begin(current(), first_seq_);
        next();
    }

    char* current() { return static_cast<char*>(mnl_nlmsg_batch_current(batch_.get())); }

    // Sequence number of message i (0-based, after BATCH_BEGIN).
    std::uint32_t seq(std::size_t i) const { return first_seq_ + 1 + static_cast<std::uint32_t>(i); }
    std::uint32_t end_seq() const { return seq(what_.size()); }
    const std::string& what(std::uint32_t seq) const
    {
        static const std::string begin = "starting the transaction", end = "ending the transaction";
        const std::size_t i = seq - first_seq_;
        if (i == 0) return begin;
        return i > what_.size() ? end : what_[i - 1];
    }
    std::uint32_t first_seq() const { return first_seq_; }

    void next()
    {
        // The bounds make this unreachable; if it ever fires the bound is wrong.
        if (!mnl_nlmsg_batch_next(batch_.get())) throw Error(ErrorKind::Kernel, "nftables: batch buffer overflow");
    }

    void finish()
    {
        nftnl_batch_end(current(), end_seq());
        next();
    }

    const void* data() { return mnl_nlmsg_batch_head(batch_.get()); }
    std::size_t size() { return mnl_nlmsg_batch_size(batch_.get()); }

private:
    std::uint32_t first_seq_;
    std::vector<std::string> what_;
    std::vector<char> buffer_;
    BatchPtr batch_;
};

// Collects the kernel's acks for sequence numbers [first, last].
struct AckTracker {
    std::uint32_t first = 0;
    std::uint32_t last = 0;
    std::size_t expected = 0;
    std::size_t received = 0;
    int error = 0;  // positive errno of the earliest failing message
    std::uint32_t error_seq = 0;

    bool in_range(std::uint32_t seq) const { return seq - first <= last - first; }
    bool done() const { return received >= expected; }
};

int on_error_message(const nlmsghdr* nlh, void* data)
{
    auto* acks = static_cast<AckTracker*>(data);
    if (nlh->nlmsg_len < mnl_nlmsg_size(sizeof(nlmsgerr))) {
        errno = EBADMSG;
        return MNL_CB_ERROR;
    }
    // Replies to an earlier, abandoned request may still be queued.
    if (!acks->in_range(nlh->nlmsg_seq)) return MNL_CB_OK;
    const auto* err = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
    ++acks->received;
    if (err->error != 0 && (acks->error == 0 || nlh->nlmsg_seq - acks->first < acks->error_seq - acks->first)) {
        acks->error = -err->error;
        acks->error_seq = nlh->nlmsg_seq;
    }
    return MNL_CB_OK;
}

int on_data_message(const nlmsghdr*, void*) { return MNL_CB_OK; }

void raise_buffer(int fd, int option, int force_option, int wanted)
{
    int current = 0;
    socklen_t length = sizeof current;
    // The kernel reports (and enforces) twice what was set.
    if (getsockopt(fd, SOL_SOCKET, option, &current, &length) == 0 && current / 2 >= wanted) return;
    if (setsockopt(fd, SOL_SOCKET, force_option, &wanted, sizeof wanted) != 0) {
        setsockopt(fd, SOL_SOCKET, option, &wanted, sizeof wanted);  // capped by rmem_max/wmem_max
    }
}

// Sends one request (a batch or a single message) and collects the acks.
// Returns the earliest error and its sequence number; error 0 if none.
std::pair<int, std::uint32_t> talk(mnl_socket* socket, unsigned port_id, const void* data, std::size_t size,
                                   AckTracker acks, const std::string& doing)
{
    const int fd = mnl_socket_get_fd(socket);
    const std::size_t max_int = static_cast<std::size_t>(std::numeric_limits<int>::max()) / 4;
    raise_buffer(fd, SO_SNDBUF, SO_SNDBUFFORCE, static_cast<int>(std::min(size + 4096, max_int)));
    raise_buffer(fd, SO_RCVBUF, SO_RCVBUFFORCE,
                 static_cast<int>(std::min((acks.expected + 1) * receive_bytes_per_ack, max_int)));

    if (mnl_socket_sendto(socket, data, size) < 0) throw kernel_error(doing + " failed: sending", errno);

    std::array<mnl_cb_t, NLMSG_MIN_TYPE> control{};
    control[NLMSG_ERROR] = on_error_message;
    std::vector<char> buffer(1 << 16);
    while (!acks.done()) {
        // nfnetlink processes the request inside sendto(), so the replies are
        // normally queued already; the wait only guards against surprises.
        const ssize_t n = recv(fd, buffer.data(), buffer.size(), MSG_DONTWAIT | MSG_TRUNC);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == ENOBUFS) {
                throw kernel_error(doing + ": acknowledgements lost, the outcome is unknown", errno);
            }
            if (errno != EAGAIN && errno != EWOULDBLOCK) throw kernel_error(doing + " failed: receiving", errno);
            // After an error the kernel may skip acks of the messages it aborted.
            if (acks.error != 0) break;
            pollfd p{fd, POLLIN, 0};
            const int ready = poll(&p, 1, 5000);
            if (ready < 0 && errno != EINTR) throw kernel_error(doing + " failed: waiting for reply", errno);
            if (ready == 0) throw kernel_error(doing + " failed: no reply from the kernel", ETIMEDOUT);
            continue;
        }
        if (static_cast<std::size_t>(n) > buffer.size()) {
            throw kernel_error(doing + " failed: reply truncated", EMSGSIZE);
        }
        if (mnl_cb_run2(buffer.data(), static_cast<std::size_t>(n), 0, port_id, on_data_message, &acks, control.data(),
                        control.size()) < 0) {
            throw kernel_error(doing + " failed: parsing reply", errno);
        }
    }
    return {acks.error, acks.error_seq};
}

}  // namespace

// ---- Nftables -------------------------------------------------------------------------------------------------------

Nftables::Nftables()
{
    socket_ = mnl_socket_open(NETLINK_NETFILTER);
    if (socket_ == nullptr) throw kernel_error("opening netfilter netlink socket", errno);
    if (mnl_socket_bind(socket_, 0, MNL_SOCKET_AUTOPID) < 0) {
        const int error = errno;
        mnl_socket_close(socket_);
        socket_ = nullptr;
        throw kernel_error("binding netfilter netlink socket", error);
    }
    port_id_ = mnl_socket_get_portid(socket_);
    // Error acks then carry only the header we need, not a copy of the request.
    int one = 1;
    mnl_socket_setsockopt(socket_, NETLINK_CAP_ACK, &one, sizeof one);
    sequence_ = static_cast<unsigned>(std::time(nullptr));
}

Nftables::~Nftables()
{
    if (socket_ != nullptr) mnl_socket_close(socket_);
}

void Nftables::replace_table(const plan::Table& table)
{
    const std::string doing = "committing table inet " + table.name;

    // Build and validate everything before the first byte goes to the kernel.
    TablePtr t;
    std::vector<ChainPtr> chains;
    std::vector<RulePtr> rules;
    std::vector<Batch::Step> steps;
    try {
        check_name("table", table.name);
        t = make_table(table.name);
        const std::size_t table_bound = message_overhead + table.name.size();
        steps.push_back({table_bound, "adding table"});
        steps.push_back({table_bound, "deleting table"});
        steps.push_back({table_bound, "adding table"});
        for (const plan::Chain& chain : table.chains) {
            chains.push_back(make_chain(table.name, chain));
            steps.push_back({message_overhead + table.name.size() + chain.name.size() + chain.type.size(),
                             "adding chain " + chain.name});
        }
        for (const plan::Chain& chain : table.chains) {
            std::size_t index = 0;
            for (const plan::Rule& rule : chain.rules) {
                std::size_t expressions = 0;
                rules.push_back(make_rule(table.name, chain.name, rule, expressions));
                steps.push_back({message_overhead + table.name.size() + chain.name.size() + rule.comment.size() +
                                     expressions * bytes_per_expression,
                                 "adding rule " + std::to_string(++index) + " to chain " + chain.name});
            }
        }
    } catch (const Error& e) {
        throw Error(e.kind(), "nftables: " + doing + " failed: " + e.what());
    }

    Batch batch(++sequence_, steps);
    std::size_t i = 0;
    auto table_message = [&](std::uint16_t type, std::uint16_t flags) {
        nlmsghdr* nlh =
            nftnl_table_nlmsg_build_hdr(batch.current(), type, NFPROTO_INET, flags | NLM_F_ACK, batch.seq(i++));
        nftnl_table_nlmsg_build_payload(nlh, t.get());
        batch.next();
    };
    // Adding first makes the delete succeed whether or not the table exists.
    table_message(NFT_MSG_NEWTABLE, NLM_F_CREATE);
    table_message(NFT_MSG_DELTABLE, 0);
    table_message(NFT_MSG_NEWTABLE, NLM_F_CREATE);
    for (const ChainPtr& c : chains) {
        nlmsghdr* nlh = nftnl_chain_nlmsg_build_hdr(batch.current(), NFT_MSG_NEWCHAIN, NFPROTO_INET,
                                                    NLM_F_CREATE | NLM_F_ACK, batch.seq(i++));
        nftnl_chain_nlmsg_build_payload(nlh, c.get());
        batch.next();
    }
    for (const RulePtr& r : rules) {
        nlmsghdr* nlh = nftnl_rule_nlmsg_build_hdr(batch.current(), NFT_MSG_NEWRULE, NFPROTO_INET,
                                                   NLM_F_APPEND | NLM_F_CREATE | NLM_F_ACK, batch.seq(i++));
        nftnl_rule_nlmsg_build_payload(nlh, r.get());
        batch.next();
    }
    batch.finish();
    sequence_ = batch.end_seq();

    AckTracker acks{batch.first_seq(), batch.end_seq(), steps.size()};
    const auto [error, seq] = talk(socket_, port_id_, batch.data(), batch.size(), acks, doing);
    if (error != 0) {
        throw Error(ErrorKind::Kernel,
                    "nftables: " + doing + " failed: " + errno_text(error) + " (" + batch.what(seq) + ")");
    }
}

void Nftables::delete_table(const std::string& name)
{
    const std::string doing = "deleting table inet " + name;
    TablePtr t = make_table(name);
    const std::size_t bound = message_overhead + name.size();
    Batch batch(++sequence_, {{bound, "adding table"}, {bound, "deleting table"}});
    nlmsghdr* nlh = nftnl_table_nlmsg_build_hdr(batch.current(), NFT_MSG_NEWTABLE, NFPROTO_INET,
                                                NLM_F_CREATE | NLM_F_ACK, batch.seq(0));
    nftnl_table_nlmsg_build_payload(nlh, t.get());
    batch.next();
    nlh = nftnl_table_nlmsg_build_hdr(batch.current(), NFT_MSG_DELTABLE, NFPROTO_INET, NLM_F_ACK, batch.seq(1));
    nftnl_table_nlmsg_build_payload(nlh, t.get());
    batch.next();
    batch.finish();
    sequence_ = batch.end_seq();

    AckTracker acks{batch.first_seq(), batch.end_seq(), 2};
    const auto [error, seq] = talk(socket_, port_id_, batch.data(), batch.size(), acks, doing);
    if (error != 0) {
        throw Error(ErrorKind::Kernel,
                    "nftables: " + doing + " failed: " + errno_text(error) + " (" + batch.what(seq) + ")");
    }
}

bool Nftables::table_exists(const std::string& name)
{
    const std::string doing = "looking up table inet " + name;
    TablePtr t = make_table(name);
    std::vector<char> buffer(message_overhead + name.size(), 0);
    const std::uint32_t seq = ++sequence_;
    nlmsghdr* nlh = nftnl_table_nlmsg_build_hdr(buffer.data(), NFT_MSG_GETTABLE, NFPROTO_INET, NLM_F_ACK, seq);
    nftnl_table_nlmsg_build_payload(nlh, t.get());

    // The NEWTABLE reply is not needed: the ack alone says found or ENOENT.
    AckTracker acks{seq, seq, 1};
    const int error = talk(socket_, port_id_, nlh, nlh->nlmsg_len, acks, doing).first;
    if (error == ENOENT) return false;
    if (error != 0) throw kernel_error(doing + " failed", error);
    return true;
}

}  // namespace kvmnet::kernel
