// nftables adapter: commits a plan::Table to the kernel through libnftnl and
// libmnl, in one atomic batch, never by running nft(8).
#pragma once

#include "kernel/feature_probe.hpp"
#include "kernel/nft_batch.hpp"
#include "plan/kernel_view.hpp"
#include "plan/ruleset.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace kvmnet::kernel {

class Nftables final : public plan::FirewallAdapter {
public:
    Nftables();
    ~Nftables() override;
    Nftables(const Nftables&) = delete;
    Nftables& operator=(const Nftables&) = delete;

    // Replaces table "inet <table.name>" with exactly `table` in one
    // transaction (add table; delete table; add table, chains, rules), so
    // there is no moment without the table. Throws kvmnet::Error (Kernel)
    // with the kernel's error text; on failure nothing changes.
    void replace_table(const plan::Table& table) override;

    // The changes of `diff` (plan::diff_tables of the table the kernel has
    // and `table`) in one transaction: element deletions, chain flushes, set
    // deletions, chain deletions, then new sets with their elements, new
    // chains, new verdict maps' elements, element additions and the rules of
    // new and changed chains. Throws like replace_table; on failure nothing
    // changes.
    void update_table(const plan::Table& table, const plan::TableDiff& diff) override;

    // Deletes table "inet <name>" if it exists (one transaction). No-op when absent.
    void delete_table(const std::string& name) override;

    // The netlink port id of the adapter's socket: the nlmsg_pid of the
    // notifications of its transactions (NftMonitor recognises them by it).
    unsigned port_id() const { return transport_.port_id(); }

    // NFT_MSG_GETGEN: the namespace's ruleset generation id.
    std::optional<std::uint32_t> generation() override;

    // The O(1) change path for sets and maps: adds (or deletes) exactly the
    // given elements, every change in one batch and so atomically, without
    // touching chains, rules or other elements. Each change's `set` is the
    // declaration (its key and data types encode the values, `limit` adds
    // each element's own rate); its own `elements` are ignored. Adding an
    // element whose key is already there, or deleting one that is not, fails
    // the whole batch (kvmnet::Error Kernel) and changes nothing. Deleting
    // looks only at the keys.
    void change_elements(const std::string& table, const std::vector<plan::ElementChange>& changes) override;

    // Every element of the set as the kernel has it, with its counter when
    // the set has "counter" (forward statistics). Values are spelled as
    // plan::SetElement documents (protocols by name: tcp, udp, ...); an
    // element's limit is not read back. Throws kvmnet::Error NotFound when
    // the set does not exist.
    using ElementCounters = plan::ElementCounters;
    std::vector<ElementCounters> list_elements(const std::string& table, const plan::Set& set) override;

    // The counters of the table's rules that have both a counter and a
    // comment; an absent table gives none.
    std::vector<plan::RuleCounter> rule_counters(const std::string& table) override;

    // Every chain of every table, all families (one NFT_MSG_GETCHAIN dump).
    std::vector<plan::ChainInfo> list_chains() override;

    // kernel/nft_fastpath.cpp.
    std::string flowtables_missing() override;
    void sync_fast_path(const std::vector<FastPathLink>& links) override;

private:
    nft::Transport transport_;
    FeatureProbe flowtables_{"nftables flowtables (nf_flow_table_inet, nft_flow_offload: CONFIG_NF_FLOW_TABLE_INET, "
                             "CONFIG_NFT_FLOW_OFFLOAD)"};
    std::optional<std::vector<FastPathLink>> fast_committed_;  // what sync_fast_path last committed
};

}  // namespace kvmnet::kernel
