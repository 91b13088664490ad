// nftables adapter: commits a plan::Table to the kernel through libnftnl and
// libmnl, in one atomic batch, never by running nft(8).
#pragma once

#include "plan/kernel_view.hpp"
#include "plan/ruleset.hpp"

#include <string>

// libmnl's socket type; declared here at global scope because an elaborated
// "struct mnl_socket" inside the namespace would name a different type.
struct mnl_socket;

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

    // Deletes table "inet <name>" if it exists (one transaction). No-op when absent.
    void delete_table(const std::string& name) override;

    // True when table "inet <name>" exists.
    bool table_exists(const std::string& name);

private:
    struct mnl_socket* socket_ = nullptr;
    unsigned port_id_ = 0;
    unsigned sequence_ = 0;
};

}  // namespace kvmnet::kernel
