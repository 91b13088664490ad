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
#include <libnftnl/gen.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <libnftnl/udata.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_nat.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <limits>
#include <map>
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
struct SetFree {
    void operator()(nftnl_set* s) const { nftnl_set_free(s); }
};
struct SetElemFree {
    void operator()(nftnl_set_elem* e) const { nftnl_set_elem_free(e); }
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
using SetPtr = std::unique_ptr<nftnl_set, SetFree>;
using SetElemPtr = std::unique_ptr<nftnl_set_elem, SetElemFree>;
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

// ---- set types and element values -----------------------------------------------------------------------------------

// nft's datatype numbers (src/datatype.h: TYPE_IPADDR, ...); a concatenation
// is the types shifted in 6 bits at a time, first type highest.
constexpr unsigned concat_type_bits = 6;

std::uint32_t type_id(plan::SetType t)
{
    switch (t) {
    case plan::SetType::ipv4_addr: return 7;
    case plan::SetType::ipv6_addr: return 8;
    case plan::SetType::ether_addr: return 9;
    case plan::SetType::inet_proto: return 12;
    case plan::SetType::inet_service: return 13;
    case plan::SetType::ifname: return 41;
    }
    throw invalid_plan("unknown set type");
}

// Bytes of one value of the type, before any concatenation padding.
std::uint32_t type_length(plan::SetType t)
{
    switch (t) {
    case plan::SetType::ipv4_addr: return 4;
    case plan::SetType::ipv6_addr: return 16;
    case plan::SetType::ether_addr: return 6;
    case plan::SetType::inet_proto: return 1;
    case plan::SetType::inet_service: return 2;
    case plan::SetType::ifname: return IFNAMSIZ;
    }
    throw invalid_plan("unknown set type");
}

// nft's byte order of the type (enum byteorder: 0 invalid, 1 host, 2 big
// endian), kept in the set's userdata; nft reads it back when listing.
std::uint32_t type_byteorder(plan::SetType t)
{
    switch (t) {
    case plan::SetType::inet_proto: return 0;
    case plan::SetType::ifname: return 1;
    default: return 2;
    }
}

constexpr std::uint32_t round4(std::uint32_t n) { return (n + 3) / 4 * 4; }

// Key or data layout: a single type uses its own length; in a concatenation
// each part starts on a 32-bit register boundary.
struct Layout {
    std::uint32_t id = 0;
    std::uint32_t length = 0;
    std::vector<std::uint32_t> offsets;
};

Layout layout(const std::vector<plan::SetType>& types, const std::string& what)
{
    if (types.empty()) throw invalid_plan(what + " has no type");
    if (types.size() > 1 && types.size() * concat_type_bits > 32)
        throw invalid_plan(what + " concatenates too many types");
    Layout l;
    for (plan::SetType t : types) {
        l.id = (l.id << concat_type_bits) | type_id(t);
        l.offsets.push_back(l.length);
        l.length += types.size() == 1 ? type_length(t) : round4(type_length(t));
    }
    if (l.length > NFT_DATA_VALUE_MAXLEN) {
        throw invalid_plan(what + " is " + std::to_string(l.length) + " bytes, more than " +
                           std::to_string(NFT_DATA_VALUE_MAXLEN));
    }
    return l;
}

struct Protocol {
    std::uint8_t number;
    const char* name;
};
constexpr Protocol protocols[] = {{1, "icmp"},       {6, "tcp"},    {17, "udp"},     {33, "dccp"},
                                  {58, "ipv6-icmp"}, {132, "sctp"}, {136, "udplite"}};

std::optional<unsigned long> parse_number(const std::string& text, unsigned long max)
{
    if (text.empty() || text.size() > 10 || text.find_first_not_of("0123456789") != std::string::npos) return {};
    const unsigned long n = std::stoul(text);
    if (n > max) return {};
    return n;
}

// Writes the value `text` of type `t` at `out` (type_length(t) bytes, zeroed).
void encode_value(plan::SetType t, const std::string& text, unsigned char* out)
{
    const auto bad = [&](const std::string& why) {
        return invalid_plan("\"" + text + "\" is not a valid " + plan::set_type_text(t) + why);
    };
    switch (t) {
    case plan::SetType::ipv4_addr:
        if (inet_pton(AF_INET, text.c_str(), out) != 1) throw bad("");
        return;
    case plan::SetType::ipv6_addr:
        if (inet_pton(AF_INET6, text.c_str(), out) != 1) throw bad("");
        return;
    case plan::SetType::ether_addr: {
        unsigned b[6];
        char end = 0;
        if (text.size() != 17 || std::sscanf(text.c_str(), "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3],
                                             &b[4], &b[5], &end) != 6) {
            throw bad(" (six hex bytes separated by colons)");
        }
        for (int i = 0; i < 6; ++i)
            out[i] = static_cast<unsigned char>(b[i]);
        return;
    }
    case plan::SetType::inet_proto: {
        for (const Protocol& p : protocols) {
            if (text == p.name) {
                out[0] = p.number;
                return;
            }
        }
        const auto n = parse_number(text, 255);
        if (!n) throw bad(" (a protocol name or 0 to 255)");
        out[0] = static_cast<unsigned char>(*n);
        return;
    }
    case plan::SetType::inet_service: {
        const auto n = parse_number(text, 65535);
        if (!n) throw bad(" (0 to 65535)");
        const std::uint16_t port = htons(static_cast<std::uint16_t>(*n));
        std::memcpy(out, &port, sizeof port);
        return;
    }
    case plan::SetType::ifname:
        if (text.empty() || text.size() >= IFNAMSIZ || text.find('\0') != std::string::npos) {
            throw bad(" (1 to " + std::to_string(IFNAMSIZ - 1) + " bytes)");
        }
        std::memcpy(out, text.data(), text.size());
        return;
    }
    throw bad("");
}

std::string decode_value(plan::SetType t, const unsigned char* in)
{
    char buffer[INET6_ADDRSTRLEN] = {};
    switch (t) {
    case plan::SetType::ipv4_addr: return inet_ntop(AF_INET, in, buffer, sizeof buffer);
    case plan::SetType::ipv6_addr: return inet_ntop(AF_INET6, in, buffer, sizeof buffer);
    case plan::SetType::ether_addr:
        std::snprintf(buffer, sizeof buffer, "%02x:%02x:%02x:%02x:%02x:%02x", in[0], in[1], in[2], in[3], in[4], in[5]);
        return buffer;
    case plan::SetType::inet_proto:
        for (const Protocol& p : protocols) {
            if (p.number == in[0]) return p.name;
        }
        return std::to_string(in[0]);
    case plan::SetType::inet_service: {
        std::uint16_t port = 0;
        std::memcpy(&port, in, sizeof port);
        return std::to_string(ntohs(port));
    }
    case plan::SetType::ifname:
        return std::string(reinterpret_cast<const char*>(in), strnlen(reinterpret_cast<const char*>(in), IFNAMSIZ));
    }
    return {};
}

std::vector<unsigned char> encode(const std::vector<plan::SetType>& types, const Layout& l,
                                  const std::vector<std::string>& values, const std::string& what)
{
    if (values.size() != types.size()) {
        throw invalid_plan(what + " has " + std::to_string(values.size()) + " values for " +
                           std::to_string(types.size()) + " types");
    }
    std::vector<unsigned char> bytes(l.length, 0);
    for (std::size_t i = 0; i < types.size(); ++i)
        encode_value(types[i], values[i], bytes.data() + l.offsets[i]);
    return bytes;
}

std::vector<std::string> decode(const std::vector<plan::SetType>& types, const Layout& l, const void* data,
                                std::uint32_t length)
{
    std::vector<std::string> values;
    if (data == nullptr || length != l.length) return values;
    for (std::size_t i = 0; i < types.size(); ++i)
        values.push_back(decode_value(types[i], static_cast<const unsigned char*>(data) + l.offsets[i]));
    return values;
}

std::string element_text(const plan::SetElement& e)
{
    std::string text;
    for (const std::string& v : e.key)
        text += (text.empty() ? "" : " . ") + v;
    return text;
}

// A declared set with what rules need to refer to it in the same batch.
struct SetInfo {
    const plan::Set* set;
    std::uint32_t id;  // NFTA_SET_ID: names a set added earlier in the same transaction
};
using SetIndex = std::map<std::string, SetInfo, std::less<>>;

// The netlink register number of 32-bit register `index` (0 = the first byte
// of NFT_REG_1): nft uses the old 128-bit numbers where a value starts on one.
std::uint32_t register_number(std::uint32_t index)
{
    return index % 4 == 0 ? NFT_REG_1 + index / 4 : NFT_REG32_00 + index;
}

std::string keys_text(const std::vector<plan::Field>& keys)
{
    std::string text;
    for (plan::Field f : keys)
        text += (text.empty() ? "" : " . ") + std::string(plan::field_text(f));
    return text;
}

std::vector<plan::SetType> key_types(const std::vector<plan::Field>& keys)
{
    std::vector<plan::SetType> types;
    for (plan::Field f : keys)
        types.push_back(plan::field_type(f));
    return types;
}

// "limit rate N/second burst B packets" (not inverted: true while under the rate).
ExprPtr make_limit(std::uint64_t per_second, std::uint32_t burst)
{
    ExprPtr e(checked(nftnl_expr_alloc("limit")));
    nftnl_expr_set_u64(e.get(), NFTNL_EXPR_LIMIT_RATE, per_second);
    nftnl_expr_set_u64(e.get(), NFTNL_EXPR_LIMIT_UNIT, 1);  // seconds
    nftnl_expr_set_u32(e.get(), NFTNL_EXPR_LIMIT_BURST, burst);
    nftnl_expr_set_u32(e.get(), NFTNL_EXPR_LIMIT_TYPE, NFT_LIMIT_PKTS);
    nftnl_expr_set_u32(e.get(), NFTNL_EXPR_LIMIT_FLAGS, 0);
    return e;
}

class RuleBuilder {
public:
    RuleBuilder(nftnl_rule* rule, const SetIndex& sets) : rule_(rule), sets_(sets) {}

    std::size_t expressions() const { return count_; }

    // Expressions used that the kernel provides in optional modules, by
    // kernel module name ("nft_fib_inet (fib)"), for Unsupported errors.
    const std::vector<std::string>& modules() const { return modules_; }

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
        dependency(plan::Field::ip_saddr);

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

    void operator()(const plan::MatchNfproto& m)
    {
        const std::uint8_t nfproto = m.ipv6 ? NFPROTO_IPV6 : NFPROTO_IPV4;
        meta(NFT_META_NFPROTO);
        cmp(plan::Cmp::eq, &nfproto, sizeof nfproto);
    }

    void operator()(const plan::MatchIpv6& m)
    {
        const unsigned length = m.prefix.length;
        if (length > 128) throw invalid_plan("IPv6 prefix length " + std::to_string(length) + " is out of range");
        dependency(plan::Field::ip6_saddr);
        std::array<std::uint8_t, 16> address{}, mask{};
        for (unsigned i = 0; i < 16; ++i) {
            const unsigned bits = length > i * 8 ? std::min(8u, length - i * 8) : 0;
            mask[i] = static_cast<std::uint8_t>(bits == 0 ? 0 : 0xff << (8 - bits));
            address[i] = m.prefix.address[i] & mask[i];
        }
        const std::uint32_t offset = m.source ? 8 : 24;
        // The same shape as nft and as the IPv4 match: whole-byte prefixes
        // load only the significant bytes, others (and /0) load all 16 and mask.
        if (length != 0 && length % 8 == 0) {
            payload(NFT_PAYLOAD_NETWORK_HEADER, offset, length / 8);
            cmp(m.op, address.data(), length / 8);
        } else {
            payload(NFT_PAYLOAD_NETWORK_HEADER, offset, 16);
            bitwise(mask.data(), 16);
            cmp(m.op, address.data(), 16);
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

    void operator()(const plan::MatchSetLookup& m)
    {
        const SetInfo& info = find_set(m.set, "lookup");
        if (!info.set->data.empty()) throw invalid_plan("lookup in @" + m.set + ", which is a map");
        load_keys(m.keys, *info.set, "lookup");
        ExprPtr e(checked(nftnl_expr_alloc("lookup")));
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_LOOKUP_SREG, NFT_REG_1);
        set_name(e.get(), NFTNL_EXPR_LOOKUP_SET, m.set);
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_LOOKUP_SET_ID, info.id);
        if (m.negate) nftnl_expr_set_u32(e.get(), NFTNL_EXPR_LOOKUP_FLAGS, NFT_LOOKUP_F_INV);
        add(std::move(e));
    }

    void operator()(const plan::MatchFibDaddrLocal& m)
    {
        ExprPtr e(checked(nftnl_expr_alloc("fib")));
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_FIB_DREG, NFT_REG_1);
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_FIB_RESULT, NFT_FIB_RESULT_ADDRTYPE);
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_FIB_FLAGS, NFTA_FIB_F_DADDR);
        add(std::move(e));
        const std::uint32_t local = RTN_LOCAL;  // host order, like the ct bitmasks
        cmp(m.op, &local, sizeof local);
    }

    void operator()(const plan::MatchCtStatus& m)
    {
        if (m.mask == 0) throw invalid_plan("ct status match with no status bits");
        const std::uint32_t zero = 0;
        ExprPtr e(checked(nftnl_expr_alloc("ct")));
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_CT_KEY, NFT_CT_STATUS);
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_CT_DREG, NFT_REG_1);
        add(std::move(e));
        bitwise(&m.mask, sizeof m.mask);
        cmp(plan::Cmp::neq, &zero, sizeof zero);
    }

    void operator()(const plan::MatchLimit& m)
    {
        if (m.per_second == 0) throw invalid_plan("limit of 0 per second");
        if (m.burst == 0) throw invalid_plan("limit with a burst of 0 packets");
        ExprPtr e = make_limit(m.per_second, m.burst);
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_LIMIT_FLAGS, m.over ? NFT_LIMIT_F_INV : 0);
        add(std::move(e));
    }

    // Like nft: the key goes to the set through a dynset "add", which runs the
    // connlimit expression on the element; connlimit breaks the rule unless
    // the count is over (or, without `over`, within) the limit.
    void operator()(const plan::MatchConnLimit& m)
    {
        const SetInfo& info = find_set(m.set, "ct count");
        if (!info.set->dynamic || !info.set->data.empty()) {
            throw invalid_plan("ct count meter @" + m.set + " must be a dynamic set, not a map");
        }
        load_keys(m.keys, *info.set, "ct count");
        ExprPtr limit(checked(nftnl_expr_alloc("connlimit")));
        nftnl_expr_set_u32(limit.get(), NFTNL_EXPR_CONNLIMIT_COUNT, m.count);
        nftnl_expr_set_u32(limit.get(), NFTNL_EXPR_CONNLIMIT_FLAGS, m.over ? NFT_CONNLIMIT_F_INV : 0);
        ExprPtr e(checked(nftnl_expr_alloc("dynset")));
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_DYNSET_SREG_KEY, NFT_REG_1);
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_DYNSET_OP, NFT_DYNSET_OP_ADD);
        set_name(e.get(), NFTNL_EXPR_DYNSET_SET_NAME, m.set);
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_DYNSET_SET_ID, info.id);
        nftnl_expr_add_expr(e.get(), NFTNL_EXPR_DYNSET_EXPRESSIONS, limit.release());  // dynset owns it
        add(std::move(e));
    }

    // Loads the keys, looks them up in the map (the data lands in register 1
    // on), and translates to the address and, when the map has one, the port.
    void operator()(const plan::DnatMap& m)
    {
        const SetInfo& info = find_set(m.map, "dnat");
        const plan::SetType address = m.ipv6 ? plan::SetType::ipv6_addr : plan::SetType::ipv4_addr;
        const auto& data = info.set->data;
        const bool with_port = data.size() == 2 && data[1] == plan::SetType::inet_service;
        if (data.empty() || data[0] != address || (data.size() == 2 && !with_port) || data.size() > 2) {
            throw invalid_plan(std::string("dnat ") + (m.ipv6 ? "ip6" : "ip") + " map @" + m.map + " must map to " +
                               plan::set_type_text(address) + " or " + plan::set_type_text(address) +
                               " . inet_service");
        }
        load_keys(m.keys, *info.set, "dnat");
        ExprPtr lookup(checked(nftnl_expr_alloc("lookup")));
        nftnl_expr_set_u32(lookup.get(), NFTNL_EXPR_LOOKUP_SREG, NFT_REG_1);
        nftnl_expr_set_u32(lookup.get(), NFTNL_EXPR_LOOKUP_DREG, NFT_REG_1);
        set_name(lookup.get(), NFTNL_EXPR_LOOKUP_SET, m.map);
        nftnl_expr_set_u32(lookup.get(), NFTNL_EXPR_LOOKUP_SET_ID, info.id);
        add(std::move(lookup));

        ExprPtr e(checked(nftnl_expr_alloc("nat")));
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_NAT_TYPE, NFT_NAT_DNAT);
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_NAT_FAMILY, m.ipv6 ? NFPROTO_IPV6 : NFPROTO_IPV4);
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_NAT_REG_ADDR_MIN, NFT_REG_1);
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_NAT_REG_ADDR_MAX, NFT_REG_1);
        std::uint32_t flags = NF_NAT_RANGE_MAP_IPS;
        if (with_port) {
            const std::uint32_t port_register = register_number(type_length(address) / 4);
            nftnl_expr_set_u32(e.get(), NFTNL_EXPR_NAT_REG_PROTO_MIN, port_register);
            nftnl_expr_set_u32(e.get(), NFTNL_EXPR_NAT_REG_PROTO_MAX, port_register);
            flags |= NF_NAT_RANGE_PROTO_SPECIFIED;
        }
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_NAT_FLAGS, flags);
        add(std::move(e));
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
        static const std::pair<const char*, const char*> optional[] = {
            {"fib", "nft_fib_inet"}, {"connlimit", "nft_connlimit"},
            {"limit", "nft_limit"},  {"nat", "nft_nat"},
            {"ct", "nft_ct"},        {"masq", "nft_masq"}};
        const char* name = nftnl_expr_get_str(e.get(), NFTNL_EXPR_NAME);
        for (const auto& [expr, module] : optional) {
            const std::string text = std::string(module) + " (" + expr + ")";
            if (std::strcmp(name, expr) == 0 && std::find(modules_.begin(), modules_.end(), text) == modules_.end()) {
                modules_.push_back(text);
            }
        }
        nftnl_rule_add_expr(rule_, e.release());  // the rule owns it from here on
        ++count_;
    }

    void meta(std::uint32_t key, std::uint32_t dreg = NFT_REG_1)
    {
        ExprPtr e(checked(nftnl_expr_alloc("meta")));
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_META_KEY, key);
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_META_DREG, dreg);
        add(std::move(e));
    }

    void payload(std::uint32_t base, std::uint32_t offset, std::uint32_t length, std::uint32_t dreg = NFT_REG_1)
    {
        ExprPtr e(checked(nftnl_expr_alloc("payload")));
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_PAYLOAD_BASE, base);
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_PAYLOAD_OFFSET, offset);
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_PAYLOAD_LEN, length);
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_PAYLOAD_DREG, dreg);
        add(std::move(e));
    }

    static void set_name(nftnl_expr* e, std::uint16_t attribute, const std::string& name)
    {
        if (nftnl_expr_set_str(e, attribute, name.c_str()) < 0) throw std::bad_alloc();
    }

    const SetInfo& find_set(const std::string& name, const std::string& use)
    {
        const auto it = sets_.find(name);
        if (it == sets_.end()) throw invalid_plan(use + " refers to @" + name + ", which the table does not declare");
        return it->second;
    }

    // Protocol dependencies as nft states them, once per rule, before the
    // first load: meta nfproto for ip/ip6 fields, meta iiftype for ether.
    void dependency(plan::Field f)
    {
        switch (f) {
        case plan::Field::ip_saddr:
        case plan::Field::ip_daddr:
            if (!ipv4_checked_) {
                const std::uint8_t nfproto = NFPROTO_IPV4;
                meta(NFT_META_NFPROTO);
                cmp(plan::Cmp::eq, &nfproto, sizeof nfproto);
                ipv4_checked_ = true;
            }
            return;
        case plan::Field::ip6_saddr:
        case plan::Field::ip6_daddr:
            if (!ipv6_checked_) {
                const std::uint8_t nfproto = NFPROTO_IPV6;
                meta(NFT_META_NFPROTO);
                cmp(plan::Cmp::eq, &nfproto, sizeof nfproto);
                ipv6_checked_ = true;
            }
            return;
        case plan::Field::ether_saddr:
            if (!ether_checked_) {
                const std::uint16_t iiftype = ARPHRD_ETHER;
                meta(NFT_META_IIFTYPE);
                cmp(plan::Cmp::eq, &iiftype, sizeof iiftype);
                ether_checked_ = true;
            }
            return;
        default: return;
        }
    }

    void load(plan::Field f, std::uint32_t dreg)
    {
        switch (f) {
        case plan::Field::ip_saddr: payload(NFT_PAYLOAD_NETWORK_HEADER, 12, 4, dreg); return;
        case plan::Field::ip_daddr: payload(NFT_PAYLOAD_NETWORK_HEADER, 16, 4, dreg); return;
        case plan::Field::ip6_saddr: payload(NFT_PAYLOAD_NETWORK_HEADER, 8, 16, dreg); return;
        case plan::Field::ip6_daddr: payload(NFT_PAYLOAD_NETWORK_HEADER, 24, 16, dreg); return;
        case plan::Field::meta_l4proto: meta(NFT_META_L4PROTO, dreg); return;
        case plan::Field::th_sport: payload(NFT_PAYLOAD_TRANSPORT_HEADER, 0, 2, dreg); return;
        case plan::Field::th_dport: payload(NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, dreg); return;
        case plan::Field::iifname: meta(NFT_META_IIFNAME, dreg); return;
        case plan::Field::oifname: meta(NFT_META_OIFNAME, dreg); return;
        case plan::Field::ether_saddr: payload(NFT_PAYLOAD_LL_HEADER, 6, 6, dreg); return;
        }
        throw invalid_plan("unknown field");
    }

    // The concatenation of `keys` into registers from NFT_REG_1 on, laid out
    // as the set's key; the key types must be the set's.
    void load_keys(const std::vector<plan::Field>& keys, const plan::Set& set, const std::string& use)
    {
        if (key_types(keys) != set.key) {
            throw invalid_plan(use + " key \"" + keys_text(keys) + "\" does not have the types of @" + set.name +
                               "'s key");
        }
        const Layout l = layout(set.key, "key of @" + set.name);
        for (plan::Field f : keys)
            dependency(f);
        for (std::size_t i = 0; i < keys.size(); ++i)
            load(keys[i], register_number(l.offsets[i] / 4));
    }

    void cmp(plan::Cmp op, const void* data, std::uint32_t length)
    {
        ExprPtr e(checked(nftnl_expr_alloc("cmp")));
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_CMP_SREG, NFT_REG_1);
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_CMP_OP, op == plan::Cmp::eq ? NFT_CMP_EQ : NFT_CMP_NEQ);
        nftnl_expr_set(e.get(), NFTNL_EXPR_CMP_DATA, data, length);
        add(std::move(e));
    }

    // reg 1 = (reg 1 & mask) ^ 0; at most 16 bytes
    void bitwise(const void* mask, std::uint32_t length)
    {
        const std::array<std::uint8_t, 16> zero{};
        if (length > zero.size()) throw invalid_plan("bitwise mask longer than 16 bytes");
        ExprPtr e(checked(nftnl_expr_alloc("bitwise")));
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_BITWISE_SREG, NFT_REG_1);
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_BITWISE_DREG, NFT_REG_1);
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_BITWISE_LEN, length);
        nftnl_expr_set(e.get(), NFTNL_EXPR_BITWISE_MASK, mask, length);
        nftnl_expr_set(e.get(), NFTNL_EXPR_BITWISE_XOR, zero.data(), length);
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
    const SetIndex& sets_;
    std::vector<std::string> modules_;
    std::size_t count_ = 0;
    bool ipv4_checked_ = false;
    bool ipv6_checked_ = false;
    bool ether_checked_ = false;
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

RulePtr make_rule(const std::string& table, const std::string& chain, const plan::Rule& rule, const SetIndex& sets,
                  std::size_t& expressions, std::vector<std::string>& modules)
{
    RulePtr r(checked(nftnl_rule_alloc()));
    nftnl_rule_set_u32(r.get(), NFTNL_RULE_FAMILY, NFPROTO_INET);
    if (nftnl_rule_set_str(r.get(), NFTNL_RULE_TABLE, table.c_str()) < 0 ||
        nftnl_rule_set_str(r.get(), NFTNL_RULE_CHAIN, chain.c_str()) < 0) {
        throw std::bad_alloc();
    }
    RuleBuilder builder(r.get(), sets);
    const plan::DnatMap* dnat = nullptr;
    for (const plan::Match& m : rule.matches) {
        // Like plan::render: the one statement goes after the counter.
        if (const auto* d = std::get_if<plan::DnatMap>(&m)) {
            if (dnat != nullptr) throw invalid_plan("chain " + chain + ": a rule with two dnat statements");
            dnat = d;
            continue;
        }
        std::visit(builder, m);
    }
    if (rule.counter) builder.counter();
    if (dnat != nullptr) {
        if (rule.verdict != plan::Verdict::none) throw invalid_plan("chain " + chain + ": dnat with a verdict");
        builder(*dnat);
    }
    builder.verdict(rule.verdict);
    expressions = builder.expressions();
    modules = builder.modules();

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

// nft's userdata for a set declared with "type": the byte orders nft lists
// values with, and for concatenations an (empty) typeof concatenation.
UdataPtr set_userdata(const plan::Set& set)
{
    UdataPtr udata(checked(nftnl_udata_buf_alloc(NFT_USERDATA_MAXLEN)));
    nftnl_udata_buf* b = udata.get();
    const auto byteorder = [](const std::vector<plan::SetType>& types) {
        return types.size() == 1 ? type_byteorder(types[0]) : 0;
    };
    const auto typeof_concat = [b](std::uint8_t type) {
        // 13: the expression type nft 1.0.6 records for "type a . b".
        nftnl_udata* outer = checked(nftnl_udata_nest_start(b, type));
        if (!nftnl_udata_put_u32(b, NFTNL_UDATA_SET_TYPEOF_EXPR, 13)) throw std::bad_alloc();
        nftnl_udata* inner = checked(nftnl_udata_nest_start(b, NFTNL_UDATA_SET_TYPEOF_DATA));
        nftnl_udata_nest_end(b, inner);
        nftnl_udata_nest_end(b, outer);
    };
    const bool map = !set.data.empty();
    bool ok = nftnl_udata_put_u32(b, NFTNL_UDATA_SET_KEYBYTEORDER, byteorder(set.key));
    if (map) ok = ok && nftnl_udata_put_u32(b, NFTNL_UDATA_SET_DATABYTEORDER, byteorder(set.data));
    if (!ok) throw std::bad_alloc();
    if (set.key.size() > 1) typeof_concat(NFTNL_UDATA_SET_KEY_TYPEOF);
    if (map) {
        if (set.data.size() > 1) typeof_concat(NFTNL_UDATA_SET_DATA_TYPEOF);
        if (!nftnl_udata_put_u32(b, NFTNL_UDATA_SET_DATA_INTERVAL, 0)) throw std::bad_alloc();
    }
    return udata;
}

SetPtr make_set(const std::string& table, const plan::Set& set, std::uint32_t id)
{
    check_name("set", set.name);
    const Layout key = layout(set.key, "key of @" + set.name);
    const bool map = !set.data.empty();
    SetPtr s(checked(nftnl_set_alloc()));
    nftnl_set_set_u32(s.get(), NFTNL_SET_FAMILY, NFPROTO_INET);
    if (nftnl_set_set_str(s.get(), NFTNL_SET_TABLE, table.c_str()) < 0 ||
        nftnl_set_set_str(s.get(), NFTNL_SET_NAME, set.name.c_str()) < 0) {
        throw std::bad_alloc();
    }
    nftnl_set_set_u32(s.get(), NFTNL_SET_FLAGS, (map ? NFT_SET_MAP : 0) | (set.dynamic ? NFT_SET_EVAL : 0));
    nftnl_set_set_u32(s.get(), NFTNL_SET_KEY_TYPE, key.id);
    nftnl_set_set_u32(s.get(), NFTNL_SET_KEY_LEN, key.length);
    if (map) {
        if (set.dynamic) throw invalid_plan("map @" + set.name + " cannot be dynamic here");
        const Layout data = layout(set.data, "data of @" + set.name);
        nftnl_set_set_u32(s.get(), NFTNL_SET_DATA_TYPE, data.id);
        nftnl_set_set_u32(s.get(), NFTNL_SET_DATA_LEN, data.length);
    }
    nftnl_set_set_u32(s.get(), NFTNL_SET_ID, id);
    if (set.size != 0) nftnl_set_set_u32(s.get(), NFTNL_SET_DESC_SIZE, set.size);
    const UdataPtr udata = set_userdata(set);
    if (nftnl_set_set_data(s.get(), NFTNL_SET_USERDATA, nftnl_udata_buf_data(udata.get()),
                           nftnl_udata_buf_len(udata.get())) < 0) {
        throw std::bad_alloc();
    }
    // The set's expression: the kernel gives every element its own copy.
    // With `limit`, a limit template first: the kernel wants every element
    // to carry the same kinds of expressions, in order, as the set declares.
    if (set.limit) {
        if (!set.counter) throw invalid_plan("@" + set.name + ": a limit set needs counter");
        nftnl_set_set_u32(s.get(), NFTNL_SET_FLAGS, nftnl_set_get_u32(s.get(), NFTNL_SET_FLAGS) | NFT_SET_EXPR);
        nftnl_set_add_expr(s.get(), make_limit(1, 5).release());
    }
    if (set.counter) nftnl_set_add_expr(s.get(), checked(nftnl_expr_alloc("counter")));
    return s;
}

// An element in wire form.
struct EncodedElement {
    std::vector<unsigned char> key;
    std::vector<unsigned char> data;
    std::string comment;
    std::uint64_t limit_per_second = 0;  // non-zero: the element's own limit, then a counter
    std::uint32_t limit_burst = 0;
};

std::vector<EncodedElement> encode_elements(const plan::Set& set, const std::vector<plan::SetElement>& elements,
                                            bool with_data)
{
    const Layout key = layout(set.key, "key of @" + set.name);
    const bool map = !set.data.empty();
    const Layout data = map ? layout(set.data, "data of @" + set.name) : Layout{};
    std::vector<EncodedElement> out;
    out.reserve(elements.size());
    for (const plan::SetElement& e : elements) {
        const std::string what = "element " + element_text(e) + " of @" + set.name;
        EncodedElement encoded;
        encoded.key = encode(set.key, key, e.key, what + " key");
        if (with_data) {
            if (map) {
                encoded.data = encode(set.data, data, e.data, what + " data");
            } else if (!e.data.empty()) {
                throw invalid_plan(what + " has data, but @" + set.name + " is a set, not a map");
            }
            if (e.comment.size() > NFTNL_UDATA_COMMENT_MAXLEN) {
                throw invalid_plan(what + ": comment longer than " + std::to_string(NFTNL_UDATA_COMMENT_MAXLEN) +
                                   " bytes");
            }
            encoded.comment = e.comment;
            if (set.limit) {
                if (e.limit_per_second == 0 || e.limit_burst == 0)
                    throw invalid_plan(what + ": a limit set's element needs a rate and a burst");
                encoded.limit_per_second = e.limit_per_second;
                encoded.limit_burst = e.limit_burst;
            }
        }
        out.push_back(std::move(encoded));
    }
    return out;
}

// Elements go in messages of at most this many (worst-case) bytes: the
// element list is one netlink attribute, whose length field has 16 bits.
constexpr std::size_t element_chunk_bytes = 32 * 1024;

std::size_t element_bound(const EncodedElement& e)
{
    const std::size_t expressions = e.limit_per_second != 0 ? 160 : 0;  // limit + counter, generously
    return 96 + e.key.size() + e.data.size() + e.comment.size() + expressions;
}

struct ElementChunk {
    std::size_t begin;
    std::size_t end;
    std::size_t bound;  // of the whole message
};

std::vector<ElementChunk> chunk_elements(const std::vector<EncodedElement>& elements, const std::string& table,
                                         const std::string& set)
{
    std::vector<ElementChunk> chunks;
    const std::size_t header = message_overhead + table.size() + set.size();
    for (std::size_t i = 0; i < elements.size(); ++i) {
        const std::size_t bound = element_bound(elements[i]);
        if (chunks.empty() || chunks.back().bound + bound > header + element_chunk_bytes) {
            chunks.push_back({i, i, header});
        }
        chunks.back().end = i + 1;
        chunks.back().bound += bound;
    }
    return chunks;
}

std::string chunk_text(const ElementChunk& c, std::size_t total, const std::string& verb, const std::string& set)
{
    std::string text = verb + " " + std::to_string(c.end - c.begin) + " element(s)";
    if (c.end - c.begin != total) text += " (" + std::to_string(c.begin + 1) + " to " + std::to_string(c.end) + ")";
    return text + (verb == "adding" ? " to @" : " from @") + set;
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

// One NEWSETELEM / DELSETELEM message with elements [chunk.begin, chunk.end).
void put_elements(Batch& batch, std::uint16_t type, std::uint16_t flags, std::uint32_t seq, const std::string& table,
                  const std::string& set, std::optional<std::uint32_t> set_id,
                  const std::vector<EncodedElement>& elements, const ElementChunk& chunk)
{
    SetPtr s(checked(nftnl_set_alloc()));
    nftnl_set_set_u32(s.get(), NFTNL_SET_FAMILY, NFPROTO_INET);
    if (nftnl_set_set_str(s.get(), NFTNL_SET_TABLE, table.c_str()) < 0 ||
        nftnl_set_set_str(s.get(), NFTNL_SET_NAME, set.c_str()) < 0) {
        throw std::bad_alloc();
    }
    if (set_id) nftnl_set_set_u32(s.get(), NFTNL_SET_ID, *set_id);
    for (std::size_t i = chunk.begin; i < chunk.end; ++i) {
        const EncodedElement& e = elements[i];
        SetElemPtr elem(checked(nftnl_set_elem_alloc()));
        if (nftnl_set_elem_set(elem.get(), NFTNL_SET_ELEM_KEY, e.key.data(), static_cast<std::uint32_t>(e.key.size())) <
            0) {
            throw std::bad_alloc();
        }
        if (!e.data.empty() && nftnl_set_elem_set(elem.get(), NFTNL_SET_ELEM_DATA, e.data.data(),
                                                  static_cast<std::uint32_t>(e.data.size())) < 0) {
            throw std::bad_alloc();
        }
        if (!e.comment.empty()) {
            UdataPtr udata(checked(nftnl_udata_buf_alloc(NFT_USERDATA_MAXLEN)));
            if (!nftnl_udata_put_strz(udata.get(), NFTNL_UDATA_SET_ELEM_COMMENT, e.comment.c_str()) ||
                nftnl_set_elem_set(elem.get(), NFTNL_SET_ELEM_USERDATA, nftnl_udata_buf_data(udata.get()),
                                   nftnl_udata_buf_len(udata.get())) < 0) {
                throw std::bad_alloc();
            }
        }
        if (e.limit_per_second != 0) {
            nftnl_set_elem_add_expr(elem.get(), make_limit(e.limit_per_second, e.limit_burst).release());
            nftnl_set_elem_add_expr(elem.get(), checked(nftnl_expr_alloc("counter")));
        }
        nftnl_set_elem_add(s.get(), elem.release());  // the set owns it from here on
    }
    nlmsghdr* nlh = nftnl_nlmsg_build_hdr(batch.current(), type, NFPROTO_INET, flags | NLM_F_ACK, seq);
    nftnl_set_elems_nlmsg_build_payload(nlh, s.get());
    batch.next();
}

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
    std::vector<SetPtr> sets;
    struct SetElements {
        std::uint32_t set_id;
        const plan::Set* set;
        std::vector<EncodedElement> elements;
        std::vector<ElementChunk> chunks;
    };
    std::vector<SetElements> elements;
    SetIndex set_index;
    std::vector<ChainPtr> chains;
    std::vector<RulePtr> rules;
    std::vector<Batch::Step> steps;
    std::map<std::size_t, std::vector<std::string>> step_modules;  // step index -> optional modules it uses
    try {
        check_name("table", table.name);
        t = make_table(table.name);
        const std::size_t table_bound = message_overhead + table.name.size();
        steps.push_back({table_bound, "adding table"});
        steps.push_back({table_bound, "deleting table"});
        steps.push_back({table_bound, "adding table"});
        for (const plan::Set& set : table.sets) {
            const auto id = static_cast<std::uint32_t>(sets.size() + 1);
            if (!set_index.emplace(set.name, SetInfo{&set, id}).second) {
                throw invalid_plan("set @" + set.name + " declared twice");
            }
            sets.push_back(make_set(table.name, set, id));
            steps.push_back({message_overhead + table.name.size() + set.name.size() + NFT_USERDATA_MAXLEN,
                             "adding set " + set.name});
            if (set.elements.empty()) continue;
            SetElements e{id, &set, encode_elements(set, set.elements, true), {}};
            e.chunks = chunk_elements(e.elements, table.name, set.name);
            for (const ElementChunk& c : e.chunks)
                steps.push_back({c.bound, chunk_text(c, e.elements.size(), "adding", set.name)});
            elements.push_back(std::move(e));
        }
        for (const plan::Chain& chain : table.chains) {
            chains.push_back(make_chain(table.name, chain));
            steps.push_back({message_overhead + table.name.size() + chain.name.size() + chain.type.size(),
                             "adding chain " + chain.name});
        }
        for (const plan::Chain& chain : table.chains) {
            std::size_t index = 0;
            for (const plan::Rule& rule : chain.rules) {
                std::size_t expressions = 0;
                std::vector<std::string> modules;
                rules.push_back(make_rule(table.name, chain.name, rule, set_index, expressions, modules));
                if (!modules.empty()) step_modules[steps.size()] = std::move(modules);
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
    std::size_t element_set = 0;
    for (const SetPtr& set : sets) {
        nlmsghdr* nlh = nftnl_nlmsg_build_hdr(batch.current(), NFT_MSG_NEWSET, NFPROTO_INET, NLM_F_CREATE | NLM_F_ACK,
                                              batch.seq(i++));
        nftnl_set_nlmsg_build_payload(nlh, set.get());
        batch.next();
        // Elements right after their set, as nft sends them; EXCL makes a
        // duplicate in the plan an error instead of a silent merge.
        if (element_set < elements.size() &&
            elements[element_set].set_id == nftnl_set_get_u32(set.get(), NFTNL_SET_ID)) {
            const SetElements& e = elements[element_set++];
            for (const ElementChunk& c : e.chunks) {
                put_elements(batch, NFT_MSG_NEWSETELEM, NLM_F_CREATE | NLM_F_EXCL, batch.seq(i++), table.name,
                             e.set->name, e.set_id, e.elements, c);
            }
        }
    }
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
        // Every set and chain a rule names is in this batch (checked above),
        // so ENOENT for a rule means the kernel does not know one of its
        // expression types: a kernel built without that nftables module.
        const auto used = step_modules.find(seq - batch.first_seq() - 1);
        if (error == ENOENT && used != step_modules.end()) {
            std::string modules;
            for (const std::string& m : used->second)
                modules += (modules.empty() ? "" : ", ") + m;
            throw Error(ErrorKind::Unsupported, "nftables: " + doing + " failed: the kernel lacks an nftables " +
                                                    "expression " + batch.what(seq) + " needs (it uses " + modules +
                                                    "): " + errno_text(error));
        }
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

void Nftables::change_elements(const std::string& table, const std::vector<plan::ElementChange>& changes)
{
    struct Encoded {
        const plan::ElementChange* change;
        std::vector<EncodedElement> elements;
        std::vector<ElementChunk> chunks;
    };
    std::vector<Encoded> encoded;
    std::vector<Batch::Step> steps;
    std::size_t total = 0;
    for (const plan::ElementChange& c : changes)
        total += c.elements.size();
    std::string doing = "changing " + std::to_string(total) + " element(s) of table inet " + table;
    if (changes.size() == 1 && changes[0].set != nullptr) {
        const bool add = changes[0].add;
        doing = std::string(add ? "adding " : "deleting ") + std::to_string(total) + " element(s) " +
                (add ? "to" : "from") + " set inet " + table + " " + changes[0].set->name;
    }
    if (total == 0) return;
    try {
        check_name("table", table);
        for (const plan::ElementChange& c : changes) {
            if (c.set == nullptr) throw invalid_plan("an element change without a set");
            if (c.elements.empty()) continue;
            check_name("set", c.set->name);
            Encoded e{&c, encode_elements(*c.set, c.elements, c.add), {}};
            e.chunks = chunk_elements(e.elements, table, c.set->name);
            for (const ElementChunk& chunk : e.chunks)
                steps.push_back(
                    {chunk.bound, chunk_text(chunk, e.elements.size(), c.add ? "adding" : "deleting", c.set->name)});
            encoded.push_back(std::move(e));
        }
    } catch (const Error& e) {
        throw Error(e.kind(), "nftables: " + doing + " failed: " + e.what());
    }

    Batch batch(++sequence_, steps);
    std::size_t i = 0;
    for (const Encoded& e : encoded) {
        const bool add = e.change->add;
        for (const ElementChunk& chunk : e.chunks) {
            // Adding is "create": an element already there fails the whole batch.
            put_elements(batch, add ? NFT_MSG_NEWSETELEM : NFT_MSG_DELSETELEM, add ? NLM_F_CREATE | NLM_F_EXCL : 0,
                         batch.seq(i++), table, e.change->set->name, std::nullopt, e.elements, chunk);
        }
    }
    batch.finish();
    sequence_ = batch.end_seq();

    AckTracker acks{batch.first_seq(), batch.end_seq(), steps.size()};
    const auto [error, seq] = talk(socket_, port_id_, batch.data(), batch.size(), acks, doing);
    if (error != 0) {
        const std::string& step = batch.what(seq);
        std::string why = errno_text(error);
        if (error == EEXIST && step.rfind("adding", 0) == 0) why = "an element is already in the set";
        if (error == ENOENT && step.rfind("deleting", 0) == 0) why = "an element (or the set) does not exist";
        throw Error(ErrorKind::Kernel, "nftables: " + doing + " failed: " + why + " (" + step + ")");
    }
}

void Nftables::add_elements(const std::string& table, const plan::Set& set,
                            const std::vector<plan::SetElement>& elements)
{
    change_elements(table, {{&set, elements, true}});
}

void Nftables::delete_elements(const std::string& table, const plan::Set& set,
                               const std::vector<plan::SetElement>& elements)
{
    change_elements(table, {{&set, elements, false}});
}

namespace {

// The comment in a userdata blob: TLVs (type, length, value), the comment a
// NUL-terminated string of type `type`.
std::string udata_comment(const void* udata, std::uint32_t length, unsigned type)
{
    const auto* p = static_cast<const unsigned char*>(udata);
    for (std::uint32_t at = 0; at + 2 <= length && at + 2 + p[at + 1] <= length; at += 2 + p[at + 1]) {
        if (p[at] == type && p[at + 1] > 0)
            return {reinterpret_cast<const char*>(p + at + 2),
                    strnlen(reinterpret_cast<const char*>(p + at + 2), p[at + 1])};
    }
    return {};
}

struct ElementDump {
    const plan::Set* set;
    Layout key;
    Layout data;
    std::vector<Nftables::ElementCounters>* out;
    bool failed = false;
};

int on_counter_expr(nftnl_expr* e, void* data)
{
    auto* counters = static_cast<Nftables::ElementCounters*>(data);
    if (std::strcmp(nftnl_expr_get_str(e, NFTNL_EXPR_NAME), "counter") == 0) {
        counters->packets = nftnl_expr_get_u64(e, NFTNL_EXPR_CTR_PACKETS);
        counters->bytes = nftnl_expr_get_u64(e, NFTNL_EXPR_CTR_BYTES);
        counters->has_counter = true;
    }
    return 0;
}

int on_element(nftnl_set_elem* elem, void* data)
{
    auto* dump = static_cast<ElementDump*>(data);
    Nftables::ElementCounters c;
    std::uint32_t length = 0;
    const void* key = nftnl_set_elem_get(elem, NFTNL_SET_ELEM_KEY, &length);
    c.element.key = decode(dump->set->key, dump->key, key, length);
    if (c.element.key.empty()) {
        dump->failed = true;
        return -1;
    }
    if (!dump->set->data.empty()) {
        const void* value = nftnl_set_elem_get(elem, NFTNL_SET_ELEM_DATA, &length);
        c.element.data = decode(dump->set->data, dump->data, value, length);
    }
    if (const void* udata = nftnl_set_elem_get(elem, NFTNL_SET_ELEM_USERDATA, &length); udata != nullptr)
        c.element.comment = udata_comment(udata, length, NFTNL_UDATA_SET_ELEM_COMMENT);
    nftnl_set_elem_expr_foreach(elem, on_counter_expr, &c);
    dump->out->push_back(std::move(c));
    return 0;
}

int on_element_message(const nlmsghdr* nlh, void* data)
{
    auto* dump = static_cast<ElementDump*>(data);
    SetPtr s(checked(nftnl_set_alloc()));
    if (nftnl_set_elems_nlmsg_parse(nlh, s.get()) < 0) {
        dump->failed = true;
        return MNL_CB_ERROR;
    }
    nftnl_set_elem_foreach(s.get(), on_element, dump);
    return dump->failed ? MNL_CB_ERROR : MNL_CB_OK;
}

}  // namespace

std::vector<Nftables::ElementCounters> Nftables::list_elements(const std::string& table, const plan::Set& set)
{
    const std::string doing = "listing set inet " + table + " " + set.name;
    std::vector<ElementCounters> out;
    ElementDump dump{&set, {}, {}, &out};
    try {
        check_name("table", table);
        check_name("set", set.name);
        dump.key = layout(set.key, "key of @" + set.name);
        if (!set.data.empty()) dump.data = layout(set.data, "data of @" + set.name);
    } catch (const Error& e) {
        throw Error(e.kind(), "nftables: " + doing + " failed: " + e.what());
    }

    SetPtr s(checked(nftnl_set_alloc()));
    nftnl_set_set_u32(s.get(), NFTNL_SET_FAMILY, NFPROTO_INET);
    if (nftnl_set_set_str(s.get(), NFTNL_SET_TABLE, table.c_str()) < 0 ||
        nftnl_set_set_str(s.get(), NFTNL_SET_NAME, set.name.c_str()) < 0) {
        throw std::bad_alloc();
    }
    std::vector<char> request(message_overhead + table.size() + set.name.size(), 0);
    const std::uint32_t seq = ++sequence_;
    nlmsghdr* nlh =
        nftnl_nlmsg_build_hdr(request.data(), NFT_MSG_GETSETELEM, NFPROTO_INET, NLM_F_DUMP | NLM_F_ACK, seq);
    nftnl_set_elems_nlmsg_build_payload(nlh, s.get());
    if (mnl_socket_sendto(socket_, nlh, nlh->nlmsg_len) < 0) throw kernel_error(doing + " failed: sending", errno);

    const int error = receive_dump(seq, on_element_message, &dump, doing);
    if (error == ENOENT) throw Error(ErrorKind::NotFound, "nftables: " + doing + " failed: no such set");
    if (error != 0) throw kernel_error(doing + " failed", dump.failed ? EBADMSG : error);
    return out;
}

int Nftables::receive_dump(std::uint32_t seq, int (*callback)(const nlmsghdr*, void*), void* data,
                           const std::string& doing)
{
    std::vector<char> buffer(1 << 16);
    for (;;) {
        const ssize_t n = mnl_socket_recvfrom(socket_, buffer.data(), buffer.size());
        if (n < 0) {
            if (errno == EINTR) continue;
            throw kernel_error(doing + " failed: receiving", errno);
        }
        // Messages with another sequence number (stale replies) make libmnl fail with ESRCH.
        const int r = mnl_cb_run(buffer.data(), static_cast<std::size_t>(n), seq, port_id_, callback, data);
        if (r == MNL_CB_STOP) return 0;
        if (r < 0) return errno != 0 ? errno : EBADMSG;
    }
}

namespace {

struct RuleDump {
    std::vector<plan::RuleCounter>* out;
    bool failed = false;
};

int on_rule_counter(nftnl_expr* e, void* data)
{
    auto* c = static_cast<std::optional<plan::RuleCounter>*>(data);
    if (std::strcmp(nftnl_expr_get_str(e, NFTNL_EXPR_NAME), "counter") == 0) {
        c->emplace();
        (*c)->packets = nftnl_expr_get_u64(e, NFTNL_EXPR_CTR_PACKETS);
        (*c)->bytes = nftnl_expr_get_u64(e, NFTNL_EXPR_CTR_BYTES);
    }
    return 0;
}

int on_rule_message(const nlmsghdr* nlh, void* data)
{
    auto* dump = static_cast<RuleDump*>(data);
    RulePtr r(checked(nftnl_rule_alloc()));
    if (nftnl_rule_nlmsg_parse(nlh, r.get()) < 0) {
        dump->failed = true;
        return MNL_CB_ERROR;
    }
    std::optional<plan::RuleCounter> counter;
    nftnl_expr_foreach(r.get(), on_rule_counter, &counter);
    std::uint32_t length = 0;
    const void* udata = nftnl_rule_get_data(r.get(), NFTNL_RULE_USERDATA, &length);
    if (!counter || udata == nullptr) return MNL_CB_OK;
    counter->comment = udata_comment(udata, length, NFTNL_UDATA_RULE_COMMENT);
    if (counter->comment.empty()) return MNL_CB_OK;
    if (const char* chain = nftnl_rule_get_str(r.get(), NFTNL_RULE_CHAIN)) counter->chain = chain;
    dump->out->push_back(std::move(*counter));
    return MNL_CB_OK;
}

}  // namespace

std::vector<plan::RuleCounter> Nftables::rule_counters(const std::string& table)
{
    const std::string doing = "reading the rule counters of table inet " + table;
    check_name("table", table);
    std::vector<plan::RuleCounter> out;
    RuleDump dump{&out};
    RulePtr r(checked(nftnl_rule_alloc()));
    nftnl_rule_set_u32(r.get(), NFTNL_RULE_FAMILY, NFPROTO_INET);
    if (nftnl_rule_set_str(r.get(), NFTNL_RULE_TABLE, table.c_str()) < 0) throw std::bad_alloc();
    std::vector<char> request(message_overhead + table.size(), 0);
    const std::uint32_t seq = ++sequence_;
    nlmsghdr* nlh =
        nftnl_rule_nlmsg_build_hdr(request.data(), NFT_MSG_GETRULE, NFPROTO_INET, NLM_F_DUMP | NLM_F_ACK, seq);
    nftnl_rule_nlmsg_build_payload(nlh, r.get());
    if (mnl_socket_sendto(socket_, nlh, nlh->nlmsg_len) < 0) throw kernel_error(doing + " failed: sending", errno);
    const int error = receive_dump(seq, on_rule_message, &dump, doing);
    if (error == ENOENT) return {};
    if (error != 0) throw kernel_error(doing + " failed", dump.failed ? EBADMSG : error);
    return out;
}

namespace {

std::string family_name(std::uint32_t family)
{
    switch (family) {
    case NFPROTO_IPV4: return "ip";
    case NFPROTO_IPV6: return "ip6";
    case NFPROTO_INET: return "inet";
    case NFPROTO_BRIDGE: return "bridge";
    case NFPROTO_ARP: return "arp";
    case NFPROTO_NETDEV: return "netdev";
    default: return std::to_string(family);
    }
}

std::string hook_name(std::uint32_t family, std::uint32_t hook)
{
    if (family == NFPROTO_NETDEV) return hook == NF_NETDEV_INGRESS ? "ingress" : std::to_string(hook);
    if (family == NFPROTO_ARP) return hook == 0 ? "input" : hook == 1 ? "output" : "forward";
    switch (hook) {
    case NF_INET_PRE_ROUTING: return "prerouting";
    case NF_INET_LOCAL_IN: return "input";
    case NF_INET_FORWARD: return "forward";
    case NF_INET_LOCAL_OUT: return "output";
    case NF_INET_POST_ROUTING: return "postrouting";
    case NF_INET_INGRESS: return "ingress";
    default: return std::to_string(hook);
    }
}

struct ChainDump {
    std::vector<plan::ChainInfo>* out;
    bool failed = false;
};

int on_chain_message(const nlmsghdr* nlh, void* data)
{
    auto* dump = static_cast<ChainDump*>(data);
    ChainPtr c(checked(nftnl_chain_alloc()));
    if (nftnl_chain_nlmsg_parse(nlh, c.get()) < 0) {
        dump->failed = true;
        return MNL_CB_ERROR;
    }
    plan::ChainInfo info;
    const std::uint32_t family = nftnl_chain_get_u32(c.get(), NFTNL_CHAIN_FAMILY);
    info.family = family_name(family);
    if (const char* table = nftnl_chain_get_str(c.get(), NFTNL_CHAIN_TABLE)) info.table = table;
    if (const char* name = nftnl_chain_get_str(c.get(), NFTNL_CHAIN_NAME)) info.name = name;
    info.base = nftnl_chain_is_set(c.get(), NFTNL_CHAIN_HOOKNUM);
    if (info.base) {
        info.hook = hook_name(family, nftnl_chain_get_u32(c.get(), NFTNL_CHAIN_HOOKNUM));
        info.priority = nftnl_chain_get_s32(c.get(), NFTNL_CHAIN_PRIO);
        const bool drop = nftnl_chain_is_set(c.get(), NFTNL_CHAIN_POLICY) &&
                          nftnl_chain_get_u32(c.get(), NFTNL_CHAIN_POLICY) == NF_DROP;
        info.policy = drop ? "drop" : "accept";
    }
    dump->out->push_back(std::move(info));
    return MNL_CB_OK;
}

}  // namespace

std::vector<plan::ChainInfo> Nftables::list_chains()
{
    const std::string doing = "listing the nftables chains";
    std::vector<plan::ChainInfo> out;
    ChainDump dump{&out};
    std::vector<char> request(message_overhead, 0);
    const std::uint32_t seq = ++sequence_;
    nftnl_chain_nlmsg_build_hdr(request.data(), NFT_MSG_GETCHAIN, NFPROTO_UNSPEC, NLM_F_DUMP | NLM_F_ACK, seq);
    const auto* nlh = reinterpret_cast<const nlmsghdr*>(request.data());
    if (mnl_socket_sendto(socket_, nlh, nlh->nlmsg_len) < 0) throw kernel_error(doing + " failed: sending", errno);
    const int error = receive_dump(seq, on_chain_message, &dump, doing);
    if (error != 0) throw kernel_error(doing + " failed", dump.failed ? EBADMSG : error);
    return out;
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

namespace {

struct GenerationReply {
    std::optional<std::uint32_t> id;
    bool failed = false;
};

int on_generation_message(const nlmsghdr* nlh, void* data)
{
    auto* reply = static_cast<GenerationReply*>(data);
    std::unique_ptr<nftnl_gen, void (*)(const nftnl_gen*)> gen(checked(nftnl_gen_alloc()), nftnl_gen_free);
    if (nftnl_gen_nlmsg_parse(nlh, gen.get()) < 0 || !nftnl_gen_is_set(gen.get(), NFTNL_GEN_ID)) {
        reply->failed = true;
        return MNL_CB_ERROR;
    }
    reply->id = nftnl_gen_get_u32(gen.get(), NFTNL_GEN_ID);
    return MNL_CB_OK;
}

}  // namespace

std::optional<std::uint32_t> Nftables::generation()
{
    const std::string doing = "reading the nftables generation";
    std::vector<char> buffer(message_overhead, 0);
    const std::uint32_t seq = ++sequence_;
    nlmsghdr* nlh = nftnl_nlmsg_build_hdr(buffer.data(), NFT_MSG_GETGEN, AF_UNSPEC, NLM_F_ACK, seq);
    if (mnl_socket_sendto(socket_, nlh, nlh->nlmsg_len) < 0) throw kernel_error(doing + " failed: sending", errno);
    GenerationReply reply;
    const int error = receive_dump(seq, on_generation_message, &reply, doing);
    if (error != 0) throw kernel_error(doing + " failed", reply.failed ? EBADMSG : error);
    return reply.id;
}

}  // namespace kvmnet::kernel
