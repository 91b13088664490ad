// See nft_rules.hpp. RuleBuilder emits each plan::Match as nft's expression
// sequence (payload/meta loads, bitwise masks, cmp), stating protocol
// dependencies once per rule the way nft does.
#include "kernel/nft_rules.hpp"

#include "kernel/nft_codec.hpp"

#include <arpa/inet.h>
#include <libnftnl/common.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_nat.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <net/if_arp.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <utility>
#include <variant>

namespace kvmnet::kernel::nft {
namespace {

std::optional<std::uint32_t> hook_number(const std::string& hook)
{
    if (hook == "prerouting") return NF_INET_PRE_ROUTING;
    if (hook == "input") return NF_INET_LOCAL_IN;
    if (hook == "forward") return NF_INET_FORWARD;
    if (hook == "output") return NF_INET_LOCAL_OUT;
    if (hook == "postrouting") return NF_INET_POST_ROUTING;
    return std::nullopt;
}

// The netlink register number of 32-bit register `index` (0 = the first byte
// of NFT_REG_1): nft uses the old 128-bit numbers where a value starts on one.
std::uint32_t register_number(std::uint32_t index)
{
    return index % 4 == 0 ? NFT_REG_1 + index / 4 : NFT_REG32_00 + index;
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
        const std::array<std::uint8_t, 16> mask = plan::ipv6_mask(length);
        std::array<std::uint8_t, 16> address{};
        for (unsigned i = 0; i < 16; ++i)
            address[i] = m.prefix.address[i] & mask[i];
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
        load_keys(m.keys, *info.set, "lookup", m.prefix);
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

    // Loads the keys and looks them up with the verdict register as the
    // destination: the element's verdict (a jump) is the rule's.
    void operator()(const plan::VerdictMap& m)
    {
        const SetInfo& info = find_set(m.map, "vmap");
        if (info.set->data != std::vector<plan::SetType>{plan::SetType::verdict})
            throw invalid_plan("vmap @" + m.map + " must map to verdict");
        load_keys(m.keys, *info.set, "vmap");
        ExprPtr lookup(checked(nftnl_expr_alloc("lookup")));
        nftnl_expr_set_u32(lookup.get(), NFTNL_EXPR_LOOKUP_SREG, NFT_REG_1);
        nftnl_expr_set_u32(lookup.get(), NFTNL_EXPR_LOOKUP_DREG, NFT_REG_VERDICT);
        set_name(lookup.get(), NFTNL_EXPR_LOOKUP_SET, m.map);
        nftnl_expr_set_u32(lookup.get(), NFTNL_EXPR_LOOKUP_SET_ID, info.id);
        add(std::move(lookup));
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
    // as the set's key; the key types must be the set's. With `prefix`,
    // each address is masked to it in its register right after its load
    // (as nft does for "iifname . ip saddr & 255.255.255.0").
    void load_keys(const std::vector<plan::Field>& keys, const plan::Set& set, const std::string& use,
                   std::uint8_t prefix = 0)
    {
        if (key_types(keys) != set.key) {
            throw invalid_plan(use + " key \"" + keys_text(keys) + "\" does not have the types of @" + set.name +
                               "'s key");
        }
        const Layout l = layout(set.key, "key of @" + set.name);
        bool masked = false;
        for (plan::Field f : keys)
            dependency(f);
        for (std::size_t i = 0; i < keys.size(); ++i) {
            const std::uint32_t reg = register_number(l.offsets[i] / 4);
            load(keys[i], reg);
            if (prefix == 0) continue;
            const plan::SetType type = plan::field_type(keys[i]);
            if (type == plan::SetType::ipv4_addr && prefix < 32) {
                const std::uint32_t mask = htonl(plan::ipv4_mask(prefix));
                bitwise(&mask, sizeof mask, reg);
                masked = true;
            } else if (type == plan::SetType::ipv6_addr && prefix < 128) {
                const std::array<std::uint8_t, 16> mask = plan::ipv6_mask(prefix);
                bitwise(mask.data(), mask.size(), reg);
                masked = true;
            }
        }
        if (prefix != 0 && !masked) {
            throw invalid_plan(use + " of @" + set.name + ": prefix /" + std::to_string(prefix) + " for \"" +
                               keys_text(keys) + "\", which has no address shorter than it");
        }
    }

    void cmp(plan::Cmp op, const void* data, std::uint32_t length)
    {
        ExprPtr e(checked(nftnl_expr_alloc("cmp")));
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_CMP_SREG, NFT_REG_1);
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_CMP_OP, op == plan::Cmp::eq ? NFT_CMP_EQ : NFT_CMP_NEQ);
        nftnl_expr_set(e.get(), NFTNL_EXPR_CMP_DATA, data, length);
        add(std::move(e));
    }

    // reg = (reg & mask) ^ 0; at most 16 bytes
    void bitwise(const void* mask, std::uint32_t length, std::uint32_t reg = NFT_REG_1)
    {
        const std::array<std::uint8_t, 16> zero{};
        if (length > zero.size()) throw invalid_plan("bitwise mask longer than 16 bytes");
        ExprPtr e(checked(nftnl_expr_alloc("bitwise")));
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_BITWISE_SREG, reg);
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_BITWISE_DREG, reg);
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

// Elements go in messages of at most this many (worst-case) bytes: the
// element list is one netlink attribute, whose length field has 16 bits.
constexpr std::size_t element_chunk_bytes = 32 * 1024;

std::size_t element_bound(const EncodedElement& e)
{
    const std::size_t expressions = e.limit_per_second != 0 ? 160 : 0;  // limit + counter, generously
    return 96 + e.key.size() + e.key_end.size() + e.data.size() + e.comment.size() + e.chain.size() + expressions;
}

}  // namespace

void check_name(const std::string& kind, const std::string& name)
{
    if (name.empty() || name.size() >= NFT_NAME_MAXLEN) {
        throw invalid_plan(kind + " name \"" + name + "\" must be 1 to " + std::to_string(NFT_NAME_MAXLEN - 1) +
                           " bytes");
    }
}
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
    if (!chain.base()) {
        if (!chain.type.empty()) throw invalid_plan("chain " + chain.name + ": a type without a hook");
        ChainPtr c(checked(nftnl_chain_alloc()));
        nftnl_chain_set_u32(c.get(), NFTNL_CHAIN_FAMILY, NFPROTO_INET);
        if (nftnl_chain_set_str(c.get(), NFTNL_CHAIN_TABLE, table.c_str()) < 0 ||
            nftnl_chain_set_str(c.get(), NFTNL_CHAIN_NAME, chain.name.c_str()) < 0) {
            throw std::bad_alloc();
        }
        return c;
    }
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
    const plan::Match* statement = nullptr;
    for (const plan::Match& m : rule.matches) {
        // Like plan::render: the one statement goes after the counter.
        if (std::holds_alternative<plan::DnatMap>(m) || std::holds_alternative<plan::VerdictMap>(m)) {
            if (statement != nullptr)
                throw invalid_plan("chain " + chain + ": a rule with two dnat or vmap statements");
            statement = &m;
            continue;
        }
        std::visit(builder, m);
    }
    if (rule.counter) builder.counter();
    if (statement != nullptr) {
        if (rule.verdict != plan::Verdict::none) throw invalid_plan("chain " + chain + ": dnat or vmap with a verdict");
        std::visit(builder, *statement);
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
    std::uint32_t flags = (map ? NFT_SET_MAP : 0) | (set.dynamic ? NFT_SET_EVAL : 0);
    if (set.interval) {
        // A single-field interval set is the kernel's rbtree, whose ranges
        // are pairs of elements: not what encode_elements makes.
        if (set.dynamic || set.key.size() < 2)
            throw invalid_plan("set @" + set.name + ": intervals only in a concatenated, not dynamic, set here");
        flags |= NFT_SET_INTERVAL | (set.key.size() > 1 ? NFT_SET_CONCAT : 0);
    }
    nftnl_set_set_u32(s.get(), NFTNL_SET_FLAGS, flags);
    nftnl_set_set_u32(s.get(), NFTNL_SET_KEY_TYPE, key.id);
    nftnl_set_set_u32(s.get(), NFTNL_SET_KEY_LEN, key.length);
    if (set.interval && set.key.size() > 1) {
        // As nft describes a concatenation of ranges: each field's length
        // in bytes, unpadded; the kernel then picks its pipapo set.
        std::array<std::uint8_t, NFT_REG32_COUNT> lengths{};
        for (std::size_t i = 0; i < set.key.size(); ++i)
            lengths[i] = static_cast<std::uint8_t>(type_length(set.key[i]));
        if (nftnl_set_set_data(s.get(), NFTNL_SET_DESC_CONCAT, lengths.data(),
                               static_cast<std::uint32_t>(set.key.size())) < 0)
            throw std::bad_alloc();
    }
    if (map) {
        if (set.dynamic) throw invalid_plan("map @" + set.name + " cannot be dynamic here");
        const Layout data = layout(set.data, "data of @" + set.name);
        nftnl_set_set_u32(s.get(), NFTNL_SET_DATA_TYPE, data.id);
        // A verdict's length is the kernel's business (struct nft_verdict).
        if (data.id != NFT_DATA_VERDICT) nftnl_set_set_u32(s.get(), NFTNL_SET_DATA_LEN, data.length);
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
        if (set.interval) {
            Range range = encode_range(set.key, key, e.key, what + " key");
            encoded.key = std::move(range.first);
            encoded.key_end = std::move(range.last);
        } else {
            encoded.key = encode(set.key, key, e.key, what + " key");
        }
        if (with_data) {
            if (map && data.id == NFT_DATA_VERDICT) {
                // "jump CHAIN" / "goto CHAIN": the only verdicts the planner maps to.
                const std::string text = e.data.size() == 1 ? e.data[0] : std::string();
                const auto space = text.find(' ');
                const std::string verb = text.substr(0, space);
                if (space == std::string::npos || (verb != "jump" && verb != "goto"))
                    throw invalid_plan(what + " data must be \"jump CHAIN\" or \"goto CHAIN\"");
                encoded.verdict = verb == "jump" ? NFT_JUMP : NFT_GOTO;
                encoded.chain = text.substr(space + 1);
                check_name("chain", encoded.chain);
            } else if (map) {
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

void put_table(Batch& batch, std::uint16_t type, std::uint16_t flags, std::uint32_t seq, const TablePtr& table)
{
    nlmsghdr* nlh = nftnl_table_nlmsg_build_hdr(batch.current(), type, NFPROTO_INET, flags | NLM_F_ACK, seq);
    nftnl_table_nlmsg_build_payload(nlh, table.get());
    batch.next();
}

void put_replacing_table(Batch& batch, std::size_t& i, const TablePtr& table)
{
    put_table(batch, NFT_MSG_NEWTABLE, NLM_F_CREATE, batch.seq(i++), table);
    put_table(batch, NFT_MSG_DELTABLE, 0, batch.seq(i++), table);
    put_table(batch, NFT_MSG_NEWTABLE, NLM_F_CREATE, batch.seq(i++), table);
}

void put_chain(Batch& batch, std::uint32_t seq, const ChainPtr& chain)
{
    nlmsghdr* nlh =
        nftnl_chain_nlmsg_build_hdr(batch.current(), NFT_MSG_NEWCHAIN, NFPROTO_INET, NLM_F_CREATE | NLM_F_ACK, seq);
    nftnl_chain_nlmsg_build_payload(nlh, chain.get());
    batch.next();
}

void put_rule(Batch& batch, std::uint32_t seq, const RulePtr& rule)
{
    nlmsghdr* nlh = nftnl_rule_nlmsg_build_hdr(batch.current(), NFT_MSG_NEWRULE, NFPROTO_INET,
                                               NLM_F_APPEND | NLM_F_CREATE | NLM_F_ACK, seq);
    nftnl_rule_nlmsg_build_payload(nlh, rule.get());
    batch.next();
}

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
        if (!e.key_end.empty() && nftnl_set_elem_set(elem.get(), NFTNL_SET_ELEM_KEY_END, e.key_end.data(),
                                                     static_cast<std::uint32_t>(e.key_end.size())) < 0) {
            throw std::bad_alloc();
        }
        if (e.verdict) {
            nftnl_set_elem_set_u32(elem.get(), NFTNL_SET_ELEM_VERDICT, static_cast<std::uint32_t>(*e.verdict));
            if (nftnl_set_elem_set_str(elem.get(), NFTNL_SET_ELEM_CHAIN, e.chain.c_str()) < 0) throw std::bad_alloc();
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

}  // namespace kvmnet::kernel::nft
