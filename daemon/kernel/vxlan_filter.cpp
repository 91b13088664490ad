// The overlay's bridge filter (plan::Vxlans::set_vxlan_filter): a table "bridge kvmnet-<device>" whose two chains
// keep the anycast gateway local to each host and DHCP local to each host's dnsmasq. Bridge-family nftables sees
// frames per bridge port, which the inet table cannot (there br_netfilter shows only the bridge). Built with
// libnftnl and committed in one batch (add table; delete table; add table, chains, rules), like the inet table.
#include <arpa/inet.h>

#include <libmnl/libmnl.h>
#include <libnftnl/common.h>
#include <linux/if.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter_bridge.h>
#include <linux/netlink.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "kernel/netlink_links.hpp"
#include "kernel/nft_batch.hpp"
#include "kernel/nft_common.hpp"
#include "model/ipv4.hpp"
#include "model/ipv6.hpp"
#include "model/mac.hpp"

namespace kvmnet::kernel {
namespace {

using namespace nft;

std::string table_name(const std::string& device) { return "kvmnet-" + device; }

TablePtr bridge_table(const std::string& name)
{
    TablePtr t(checked(nftnl_table_alloc()));
    nftnl_table_set_u32(t.get(), NFTNL_TABLE_FAMILY, NFPROTO_BRIDGE);
    if (nftnl_table_set_str(t.get(), NFTNL_TABLE_NAME, name.c_str()) < 0) throw std::bad_alloc();
    return t;
}

ChainPtr bridge_chain(const std::string& table, const std::string& name, std::uint32_t hook, std::int32_t priority = 0)
{
    ChainPtr c(checked(nftnl_chain_alloc()));
    nftnl_chain_set_u32(c.get(), NFTNL_CHAIN_FAMILY, NFPROTO_BRIDGE);
    if (nftnl_chain_set_str(c.get(), NFTNL_CHAIN_TABLE, table.c_str()) < 0 ||
        nftnl_chain_set_str(c.get(), NFTNL_CHAIN_NAME, name.c_str()) < 0 ||
        nftnl_chain_set_str(c.get(), NFTNL_CHAIN_TYPE, "filter") < 0)
        throw std::bad_alloc();
    nftnl_chain_set_u32(c.get(), NFTNL_CHAIN_HOOKNUM, hook);
    nftnl_chain_set_s32(c.get(), NFTNL_CHAIN_PRIO, priority);
    nftnl_chain_set_u32(c.get(), NFTNL_CHAIN_POLICY, NF_ACCEPT);
    return c;
}

// One rule under construction: conditions as load-and-compare pairs, then drop.
class RuleBuilder {
public:
    RuleBuilder(const std::string& table, const std::string& chain) : rule_(checked(nftnl_rule_alloc()))
    {
        nftnl_rule_set_u32(rule_.get(), NFTNL_RULE_FAMILY, NFPROTO_BRIDGE);
        if (nftnl_rule_set_str(rule_.get(), NFTNL_RULE_TABLE, table.c_str()) < 0 ||
            nftnl_rule_set_str(rule_.get(), NFTNL_RULE_CHAIN, chain.c_str()) < 0)
            throw std::bad_alloc();
    }

    RuleBuilder& ifname(bool input, const std::string& name)
    {
        nftnl_expr* meta = checked(nftnl_expr_alloc("meta"));
        nftnl_expr_set_u32(meta, NFTNL_EXPR_META_KEY, input ? NFT_META_IIFNAME : NFT_META_OIFNAME);
        nftnl_expr_set_u32(meta, NFTNL_EXPR_META_DREG, NFT_REG_1);
        add(meta);
        std::array<char, IFNAMSIZ> padded{};
        std::memcpy(padded.data(), name.data(), std::min(name.size(), padded.size() - 1));
        return equal(padded.data(), padded.size());
    }

    RuleBuilder& payload(std::uint32_t base, std::uint32_t offset, const void* value, std::uint32_t length)
    {
        nftnl_expr* load = checked(nftnl_expr_alloc("payload"));
        nftnl_expr_set_u32(load, NFTNL_EXPR_PAYLOAD_BASE, base);
        nftnl_expr_set_u32(load, NFTNL_EXPR_PAYLOAD_OFFSET, offset);
        nftnl_expr_set_u32(load, NFTNL_EXPR_PAYLOAD_LEN, length);
        nftnl_expr_set_u32(load, NFTNL_EXPR_PAYLOAD_DREG, NFT_REG_1);
        add(load);
        return equal(value, length);
    }

    RuleBuilder& ether_type(std::uint16_t type)
    {
        const std::uint16_t be = htons(type);
        return payload(NFT_PAYLOAD_LL_HEADER, 12, &be, 2);
    }

    // IPv4 or IPv6 UDP to `port` (the next header right after IPv6's fixed header).
    RuleBuilder& udp_dport(bool ipv6, std::uint16_t port)
    {
        ether_type(ipv6 ? 0x86dd : 0x0800);
        const std::uint8_t udp = 17;
        payload(NFT_PAYLOAD_NETWORK_HEADER, ipv6 ? 6 : 9, &udp, 1);
        const std::uint16_t be = htons(port);
        return payload(NFT_PAYLOAD_TRANSPORT_HEADER, 2, &be, 2);
    }

    // ICMPv6 of this type right after IPv6's fixed header (neighbour
    // discovery carries no extension headers).
    RuleBuilder& icmpv6_type(std::uint8_t type)
    {
        ether_type(0x86dd);
        const std::uint8_t icmpv6 = 58;
        payload(NFT_PAYLOAD_NETWORK_HEADER, 6, &icmpv6, 1);
        return payload(NFT_PAYLOAD_TRANSPORT_HEADER, 0, &type, 1);
    }

    // Overwrites `length` bytes at `offset` of header `base` (no checksum to fix: link and ARP headers).
    RuleBuilder& write(std::uint32_t base, std::uint32_t offset, const void* value, std::uint32_t length)
    {
        load_immediate(value, length);
        nftnl_expr* store = checked(nftnl_expr_alloc("payload"));
        nftnl_expr_set_u32(store, NFTNL_EXPR_PAYLOAD_SREG, NFT_REG_1);
        nftnl_expr_set_u32(store, NFTNL_EXPR_PAYLOAD_BASE, base);
        nftnl_expr_set_u32(store, NFTNL_EXPR_PAYLOAD_OFFSET, offset);
        nftnl_expr_set_u32(store, NFTNL_EXPR_PAYLOAD_LEN, length);
        nftnl_expr_set_u32(store, NFTNL_EXPR_PAYLOAD_CSUM_TYPE, NFT_PAYLOAD_CSUM_NONE);
        add(store);
        return *this;
    }

    // `meta pkttype set host`: a frame for another MAC, rewritten to the
    // bridge's own, is taken up by the bridge's IP stack.
    RuleBuilder& pkttype_host()
    {
        const std::uint8_t host = 0;  // PACKET_HOST
        load_immediate(&host, 1);
        nftnl_expr* meta = checked(nftnl_expr_alloc("meta"));
        nftnl_expr_set_u32(meta, NFTNL_EXPR_META_KEY, NFT_META_PKTTYPE);
        nftnl_expr_set_u32(meta, NFTNL_EXPR_META_SREG, NFT_REG_1);
        add(meta);
        return *this;
    }

    // The rule as built, without a verdict (the frame goes on).
    RulePtr done() { return std::move(rule_); }

    RulePtr drop()
    {
        nftnl_expr* verdict = checked(nftnl_expr_alloc("immediate"));
        nftnl_expr_set_u32(verdict, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
        nftnl_expr_set_u32(verdict, NFTNL_EXPR_IMM_VERDICT, NF_DROP);
        add(verdict);
        return std::move(rule_);
    }

private:
    void load_immediate(const void* value, std::uint32_t length)
    {
        nftnl_expr* imm = checked(nftnl_expr_alloc("immediate"));
        nftnl_expr_set_u32(imm, NFTNL_EXPR_IMM_DREG, NFT_REG_1);
        nftnl_expr_set(imm, NFTNL_EXPR_IMM_DATA, value, length);
        add(imm);
    }

    RuleBuilder& equal(const void* value, std::uint32_t length)
    {
        nftnl_expr* cmp = checked(nftnl_expr_alloc("cmp"));
        nftnl_expr_set_u32(cmp, NFTNL_EXPR_CMP_SREG, NFT_REG_1);
        nftnl_expr_set_u32(cmp, NFTNL_EXPR_CMP_OP, NFT_CMP_EQ);
        nftnl_expr_set(cmp, NFTNL_EXPR_CMP_DATA, value, length);
        add(cmp);
        return *this;
    }
    void add(nftnl_expr* e) { nftnl_rule_add_expr(rule_.get(), e); }

    RulePtr rule_;
};

void commit_table(const std::string& table, const std::vector<ChainPtr>& chains, const std::vector<RulePtr>& rules,
                  bool remove_only, const std::string& doing)
{
    Transport transport;
    TablePtr t = bridge_table(table);
    const std::size_t bound = message_overhead + table.size() + 16 * bytes_per_expression;
    std::vector<Batch::Step> steps = {{bound, "adding table"}, {bound, "deleting table"}};
    if (!remove_only) {
        steps.push_back({bound, "adding table"});
        for (std::size_t i = 0; i < chains.size(); ++i)
            steps.push_back({bound, "adding chain"});
        for (std::size_t i = 0; i < rules.size(); ++i)
            steps.push_back({bound, "adding rule " + std::to_string(i + 1)});
    }
    Batch batch(transport.next_seq(), steps);
    std::size_t i = 0;
    auto table_message = [&](std::uint16_t type, std::uint16_t flags) {
        nlmsghdr* nlh =
            nftnl_table_nlmsg_build_hdr(batch.current(), type, NFPROTO_BRIDGE, flags | NLM_F_ACK, batch.seq(i++));
        nftnl_table_nlmsg_build_payload(nlh, t.get());
        batch.next();
    };
    // Adding first makes the delete succeed whether or not the table exists.
    table_message(NFT_MSG_NEWTABLE, NLM_F_CREATE);
    table_message(NFT_MSG_DELTABLE, 0);
    if (!remove_only) {
        table_message(NFT_MSG_NEWTABLE, NLM_F_CREATE);
        for (const ChainPtr& c : chains) {
            nlmsghdr* nlh = nftnl_chain_nlmsg_build_hdr(batch.current(), NFT_MSG_NEWCHAIN, NFPROTO_BRIDGE,
                                                        NLM_F_CREATE | NLM_F_ACK, batch.seq(i++));
            nftnl_chain_nlmsg_build_payload(nlh, c.get());
            batch.next();
        }
        for (const RulePtr& r : rules) {
            nlmsghdr* nlh = nftnl_rule_nlmsg_build_hdr(batch.current(), NFT_MSG_NEWRULE, NFPROTO_BRIDGE,
                                                       NLM_F_APPEND | NLM_F_CREATE | NLM_F_ACK, batch.seq(i++));
            nftnl_rule_nlmsg_build_payload(nlh, r.get());
            batch.next();
        }
    }
    const auto [error, seq] = transport.commit(batch, doing);
    if (error == EAFNOSUPPORT || (error == ENOENT && !remove_only && seq == batch.seq(0)))
        throw Error(ErrorKind::Unsupported, "nftables: " + doing +
                                                " failed: the kernel has no bridge-family "
                                                "nftables (nf_tables_bridge): " +
                                                errno_text(error));
    if (error != 0)
        throw Error(ErrorKind::Kernel,
                    "nftables: " + doing + " failed: " + errno_text(error) + " (" + batch.what(seq) + ")");
}

}  // namespace

void NetlinkLinks::set_vxlan_filter(const std::string& name, const model::Mac& gateway_mac, model::Ipv4 gateway_ip,
                                    const std::vector<model::Ipv6>& gateway_ipv6)
{
    const std::string table = table_name(name);
    const std::string doing = "committing table bridge " + table;
    const model::Mac* mac = &gateway_mac;
    const model::Ipv4* ip = &gateway_ip;
    const std::vector<model::Ipv6>& ipv6 = gateway_ipv6;
    const std::uint32_t ip_be = htonl(ip->value);
    std::vector<ChainPtr> chains;
    chains.push_back(bridge_chain(table, "to_overlay", NF_BR_POST_ROUTING));
    chains.push_back(bridge_chain(table, "from_overlay", NF_BR_PRE_ROUTING));
    std::vector<RulePtr> rules;
    for (const bool out : {true, false}) {
        const std::string chain = out ? "to_overlay" : "from_overlay";
        // Every host's gateway has this MAC: its frames (ARP replies and
        // requests, DHCP answers, routed packets) stay on their own host.
        rules.push_back(RuleBuilder(table, chain)
                            .ifname(!out, name)
                            .payload(NFT_PAYLOAD_LL_HEADER, 6, mac->bytes.data(), 6)
                            .drop());
        // ARP asking for the gateway's address: answered by this host alone.
        rules.push_back(RuleBuilder(table, chain)
                            .ifname(!out, name)
                            .ether_type(0x0806)
                            .payload(NFT_PAYLOAD_NETWORK_HEADER, 24, &ip_be, 4)
                            .drop());
        // Neighbour solicitations for the gateway's IPv6 addresses, as ARP
        // above (its advertisements, and its router advertisements, carry
        // the gateway MAC: the first rule keeps them). A host that saw a
        // remote guest's solicitation would also note the guest's address
        // behind the tunnel.
        for (const model::Ipv6& a : ipv6)
            rules.push_back(RuleBuilder(table, chain)
                                .ifname(!out, name)
                                .icmpv6_type(135)
                                .payload(NFT_PAYLOAD_TRANSPORT_HEADER, 8, a.bytes.data(), 16)
                                .drop());
        // Router solicitations: each host's gateway advertises itself to its own guests.
        if (!ipv6.empty()) rules.push_back(RuleBuilder(table, chain).ifname(!out, name).icmpv6_type(133).drop());
        // DHCP and DHCPv6, both directions: each host's dnsmasq serves its own guests.
        for (const std::uint16_t port : {67, 68})
            rules.push_back(RuleBuilder(table, chain).ifname(!out, name).udp_dport(false, port).drop());
        for (const std::uint16_t port : {546, 547})
            rules.push_back(RuleBuilder(table, chain).ifname(!out, name).udp_dport(true, port).drop());
    }
    commit_table(table, chains, rules, false, doing);
}

void NetlinkLinks::delete_vxlan_filter(const std::string& name)
{
    const std::string table = table_name(name);
    commit_table(table, {}, {}, true, "deleting table bridge " + table);
}

namespace {

bool has_bridge_table(const std::string& table)
{
    Transport transport;
    struct Search {
        std::string table;
        bool found = false;
    } search{table};
    std::array<char, 1024> buffer{};
    nlmsghdr* nlh = nftnl_table_nlmsg_build_hdr(buffer.data(), NFT_MSG_GETTABLE, NFPROTO_BRIDGE, NLM_F_DUMP | NLM_F_ACK,
                                                transport.next_seq());
    const int error = transport.dump(
        nlh,
        [](const nlmsghdr* reply, void* data) {
            auto* s = static_cast<Search*>(data);
            TablePtr t(checked(nftnl_table_alloc()));
            if (nftnl_table_nlmsg_parse(reply, t.get()) == 0 && nftnl_table_get_str(t.get(), NFTNL_TABLE_NAME) &&
                s->table == nftnl_table_get_str(t.get(), NFTNL_TABLE_NAME))
                s->found = true;
            return MNL_CB_OK;
        },
        &search, "listing bridge tables");
    if (error != 0) throw kernel_error("listing bridge tables", error);
    return search.found;
}

std::string host_table_name(const std::string& device) { return "kvmnet-host-" + device; }

}  // namespace

bool NetlinkLinks::has_vxlan_filter(const std::string& name) { return has_bridge_table(table_name(name)); }

void NetlinkLinks::set_host_rewrite(const std::string& name, const model::Mac& gateway_mac, model::Ipv4 host_ip,
                                    const model::Mac& host_mac)
{
    const std::string table = host_table_name(name);
    const std::string doing = "committing table bridge " + table;
    const model::Mac* gateway = &gateway_mac;
    const model::Mac* mac = &host_mac;
    const model::Ipv4* ip = &host_ip;
    const std::uint32_t ip_be = htonl(ip->value);
    // Before the gateway filter (priority 0), which drops every frame from the gateway's MAC: rewritten, the host's
    // own frames pass it.
    std::vector<ChainPtr> chains;
    chains.push_back(bridge_chain(table, "to_overlay", NF_BR_POST_ROUTING, -10));
    chains.push_back(bridge_chain(table, "from_overlay", NF_BR_PRE_ROUTING, -10));
    std::vector<RulePtr> rules;
    // IPv4 from the host address: the remote guest learns (and answers) the host's own MAC.
    rules.push_back(RuleBuilder(table, "to_overlay")
                        .ifname(false, name)
                        .payload(NFT_PAYLOAD_LL_HEADER, 6, gateway->bytes.data(), 6)
                        .ether_type(0x0800)
                        .payload(NFT_PAYLOAD_NETWORK_HEADER, 12, &ip_be, 4)
                        .write(NFT_PAYLOAD_LL_HEADER, 6, mac->bytes.data(), 6)
                        .done());
    // ARP from the host address (its requests for remote guests, its answers to them): sender MAC too.
    rules.push_back(RuleBuilder(table, "to_overlay")
                        .ifname(false, name)
                        .payload(NFT_PAYLOAD_LL_HEADER, 6, gateway->bytes.data(), 6)
                        .ether_type(0x0806)
                        .payload(NFT_PAYLOAD_NETWORK_HEADER, 14, &ip_be, 4)
                        .write(NFT_PAYLOAD_LL_HEADER, 6, mac->bytes.data(), 6)
                        .write(NFT_PAYLOAD_NETWORK_HEADER, 8, mac->bytes.data(), 6)
                        .done());
    // Frames for the host's MAC: to the bridge itself, as if sent to the gateway's MAC.
    rules.push_back(RuleBuilder(table, "from_overlay")
                        .ifname(true, name)
                        .payload(NFT_PAYLOAD_LL_HEADER, 0, mac->bytes.data(), 6)
                        .write(NFT_PAYLOAD_LL_HEADER, 0, gateway->bytes.data(), 6)
                        .pkttype_host()
                        .done());
    commit_table(table, chains, rules, false, doing);
}

void NetlinkLinks::delete_host_rewrite(const std::string& name)
{
    const std::string table = host_table_name(name);
    commit_table(table, {}, {}, true, "deleting table bridge " + table);
}

bool NetlinkLinks::has_host_rewrite(const std::string& name) { return has_bridge_table(host_table_name(name)); }

}  // namespace kvmnet::kernel
