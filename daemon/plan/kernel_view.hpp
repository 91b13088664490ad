// What the daemon can observe of, and ask of, the kernel's links and
// addresses, as plain data and a small verb-shaped interface. The real
// implementation is kernel/netlink_links.cpp (libnl-route-3); unit tests of
// the reconciler use a fake. No netlink headers here.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace kvmnet::plan {

struct LinkInfo {
    int index = 0;
    std::string name;
    std::string kind;   // rtnetlink IFLA_INFO_KIND: "bridge", "veth", "tun", "" for physical
    std::string alias;  // IFLA_IFALIAS; ours carry "kvmnet:<network>"
    std::uint32_t mtu = 0;
    bool up = false;       // administratively up (IFF_UP)
    int master_index = 0;  // 0 when not enslaved
    std::string mac;       // "aa:bb:cc:dd:ee:ff", lower case; empty when none
};

struct AddressInfo {
    int link_index = 0;
    int family = 0;       // AF_INET or AF_INET6
    std::string address;  // textual, without prefix
    std::uint8_t prefix_length = 0;
};

struct BridgeOptions {
    bool stp = false;
    std::uint32_t forward_delay_cs = 0;  // centiseconds, as the kernel counts
    std::uint32_t mtu = 0;               // 0: kernel default
};

class LinkAdapter {
public:
    virtual ~LinkAdapter() = default;

    virtual std::vector<LinkInfo> list_links() = 0;
    virtual std::optional<LinkInfo> find_link(const std::string& name) = 0;
    virtual std::vector<AddressInfo> list_addresses() = 0;

    // Verbs. Each throws kvmnet::Error (kind Kernel, or Unsupported where the
    // kernel lacks the feature) with a message naming the link and the errno.
    virtual void create_bridge(const std::string& name, const BridgeOptions& options) = 0;
    virtual void set_alias(const std::string& name, const std::string& alias) = 0;
    virtual void set_mtu(const std::string& name, std::uint32_t mtu) = 0;
    virtual void set_up(const std::string& name, bool up) = 0;
    virtual void add_address(const std::string& name, int family, const std::string& address,
                             std::uint8_t prefix_length) = 0;
    virtual void delete_address(const std::string& name, int family, const std::string& address,
                                std::uint8_t prefix_length) = 0;
    virtual void delete_link(const std::string& name) = 0;
};

}  // namespace kvmnet::plan

namespace kvmnet::plan {

struct Table;

// The firewall as the reconciler needs it; kernel/nftables.cpp implements it.
class FirewallAdapter {
public:
    virtual ~FirewallAdapter() = default;
    // Atomically replaces our table with exactly `table`.
    virtual void replace_table(const Table& table) = 0;
    // Removes our table; absent is fine.
    virtual void delete_table(const std::string& name) = 0;
};

}  // namespace kvmnet::plan
