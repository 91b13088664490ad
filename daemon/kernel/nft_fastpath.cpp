// The opt-in flowtable fast path (network "fast_path"): a table of its own,
// inet kvmnet_fast, with one flowtable over the fast-path networks' bridges
// and uplinks and, in a forward chain after kvmnet's guest_forward (which
// still decides what may pass), one rule per network that adds its
// established flows to the flowtable. Kept apart from inet kvmnet so that a
// vanished uplink (the kernel drops it from the flowtable, and a flowtable
// naming a missing device cannot be committed) can only ever break the fast
// path, never the networks' own rules.
#include "kernel/nft_common.hpp"
#include "kernel/nft_rules.hpp"
#include "kernel/nftables.hpp"
#include "plan/planner.hpp"

#include <libnftnl/chain.h>
#include <libnftnl/expr.h>
#include <libnftnl/flowtable.h>
#include <libnftnl/rule.h>
#include <libnftnl/table.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netlink.h>

#include <set>
#include <string>
#include <vector>

namespace kvmnet::kernel {

using namespace nft;

namespace {

using FlowtablePtr = CPtr<nftnl_flowtable, nftnl_flowtable_free>;

constexpr const char* flowtable_name = "fast";
constexpr const char* chain_name = "fast_forward";

FlowtablePtr make_flowtable(const std::string& table, const std::vector<std::string>& devices)
{
    FlowtablePtr f(nftnl_flowtable_alloc());
    if (!f) throw Error(ErrorKind::Kernel, "nftables: out of memory");
    nftnl_flowtable_set_str(f.get(), NFTNL_FLOWTABLE_TABLE, table.c_str());
    nftnl_flowtable_set_str(f.get(), NFTNL_FLOWTABLE_NAME, flowtable_name);
    nftnl_flowtable_set_u32(f.get(), NFTNL_FLOWTABLE_FAMILY, NFPROTO_INET);
    nftnl_flowtable_set_u32(f.get(), NFTNL_FLOWTABLE_HOOKNUM, NF_NETDEV_INGRESS);
    nftnl_flowtable_set_s32(f.get(), NFTNL_FLOWTABLE_PRIO, 0);
    if (!devices.empty()) {
        std::vector<const char*> names;
        for (const std::string& d : devices)
            names.push_back(d.c_str());
        names.push_back(nullptr);
        if (nftnl_flowtable_set_array(f.get(), NFTNL_FLOWTABLE_DEVICES, names.data()) < 0)
            throw Error(ErrorKind::Kernel, "nftables: out of memory");
    }
    return f;
}

// "[iifname BR oifname UPLINK] ct state established flow add @fast".
RulePtr make_offload_rule(const std::string& table, const plan::FirewallAdapter::FastPathLink* link)
{
    plan::Rule rule;
    if (link) {
        rule.matches.push_back(plan::MatchIfname{true, plan::Cmp::eq, link->bridge});
        rule.matches.push_back(plan::MatchIfname{false, plan::Cmp::eq, link->uplink});
    }
    rule.matches.push_back(plan::MatchCtState{plan::ct::established});
    std::size_t expressions = 0;
    std::vector<std::string> modules;
    RulePtr r = make_rule(table, chain_name, rule, {}, expressions, modules);
    nftnl_expr* offload = nftnl_expr_alloc("flow_offload");
    if (!offload) throw Error(ErrorKind::Kernel, "nftables: out of memory");
    nftnl_expr_set_str(offload, NFTNL_EXPR_FLOW_TABLE_NAME, flowtable_name);
    nftnl_rule_add_expr(r.get(), offload);  // the rule owns it now
    return r;
}

void put_flowtable(Batch& batch, std::uint32_t seq, const FlowtablePtr& flowtable)
{
    nlmsghdr* nlh = nftnl_flowtable_nlmsg_build_hdr(batch.current(), NFT_MSG_NEWFLOWTABLE, NFPROTO_INET,
                                                    NLM_F_CREATE | NLM_F_ACK, seq);
    nftnl_flowtable_nlmsg_build_payload(nlh, flowtable.get());
    batch.next();
}

plan::Chain offload_chain()
{
    // After guest_forward (priority 0): only what kvmnet's own rules let
    // through reaches the flowtable.
    return plan::Chain{chain_name, "filter", "forward", 10, true, {}};
}

}  // namespace

std::string Nftables::flowtables_missing()
{
    return flowtables_.missing([&] {
        const std::string table = "kvmnet_probe";
        TablePtr t = make_table(table);
        FlowtablePtr f = make_flowtable(table, {});
        ChainPtr c = make_chain(table, offload_chain());
        RulePtr r = make_offload_rule(table, nullptr);
        const std::size_t bound = message_overhead + 4 * bytes_per_expression;
        Batch batch(transport_.next_seq(), {{bound, "adding table"},
                                            {bound, "adding a flowtable"},
                                            {bound, "adding a forward chain"},
                                            {bound, "adding a rule with 'flow add'"},
                                            {bound, "deleting table"}});
        put_table(batch, NFT_MSG_NEWTABLE, NLM_F_CREATE, batch.seq(0), t);
        put_flowtable(batch, batch.seq(1), f);
        put_chain(batch, batch.seq(2), c);
        put_rule(batch, batch.seq(3), r);
        put_table(batch, NFT_MSG_DELTABLE, 0, batch.seq(4), t);
        const auto [error, seq] = transport_.commit(batch, "probing for nftables flowtables");
        return FeatureProbe::Result{error, error == 0 ? "" : batch.what(seq) + " in a scratch table"};
    });
}

void Nftables::sync_fast_path(const std::vector<FastPathLink>& links)
{
    // Nothing asked, nothing committed: no dump on every commit of the
    // networks' rules (the first call looks once, for a table left over).
    if (links.empty() && fast_committed_ && fast_committed_->empty()) return;
    const std::string table = plan::fast_path_table;
    bool present = false;
    for (const plan::ChainInfo& c : list_chains())
        if (c.family == "inet" && c.table == table) present = true;
    if (links.empty()) {
        if (present) delete_table(table);
        fast_committed_ = links;
        return;
    }
    if (present && fast_committed_ == links) return;

    const std::string doing = "committing table inet " + table + " (the flowtable fast path)";
    std::set<std::string> unique;
    for (const FastPathLink& l : links) {
        unique.insert(l.bridge);
        unique.insert(l.uplink);
    }
    const std::vector<std::string> devices(unique.begin(), unique.end());
    TablePtr t;
    FlowtablePtr f;
    ChainPtr c;
    std::vector<RulePtr> rules;
    try {
        check_name("table", table);
        t = make_table(table);
        f = make_flowtable(table, devices);
        c = make_chain(table, offload_chain());
        for (const FastPathLink& l : links)
            rules.push_back(make_offload_rule(table, &l));
    } catch (const Error& e) {
        throw Error(e.kind(), "nftables: " + doing + " failed: " + e.what());
    }
    const std::size_t bound = message_overhead + 8 * bytes_per_expression + devices.size() * 32;
    std::vector<Batch::Step> steps{{bound, "adding table"},
                                   {bound, "deleting table"},
                                   {bound, "adding table"},
                                   {bound, "adding flowtable " + std::string(flowtable_name)},
                                   {bound, "adding chain " + std::string(chain_name)}};
    for (const FastPathLink& l : links)
        steps.push_back({bound, "adding the rule for " + l.bridge + " and " + l.uplink});
    Batch batch(transport_.next_seq(), steps);
    std::size_t i = 0;
    put_replacing_table(batch, i, t);
    put_flowtable(batch, batch.seq(i++), f);
    put_chain(batch, batch.seq(i++), c);
    for (const RulePtr& r : rules)
        put_rule(batch, batch.seq(i++), r);
    const auto [error, seq] = transport_.commit(batch, doing);
    if (error != 0)
        throw Error(ErrorKind::Kernel,
                    "nftables: " + doing + " failed: " + errno_text(error) + " (" + batch.what(seq) + ")");
    fast_committed_ = links;
}

}  // namespace kvmnet::kernel
