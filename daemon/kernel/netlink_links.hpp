// The kernel side of plan::LinkAdapter: one rtnetlink socket (libnl-route-3 and hand-built requests through
// kernel/netlink_util.hpp) behind every per-object interface, each in its own file, as systemd-networkd and
// libvirt's virnetdev*.c divide them.
#pragma once

#include "plan/kernel_view.hpp"

struct nl_sock;

namespace kvmnet::kernel {

class NetlinkLinks final : public plan::LinkAdapter {
public:
    NetlinkLinks();
    ~NetlinkLinks() override;
    NetlinkLinks(const NetlinkLinks&) = delete;
    NetlinkLinks& operator=(const NetlinkLinks&) = delete;

    // links.cpp
    std::vector<plan::LinkInfo> list_links() override;
    std::optional<plan::LinkInfo> find_link(const std::string& name) override;
    std::vector<plan::LinkInfo> list_ports(int master_index) override;
    void set_alias(const std::string& name, const std::string& alias) override;
    void rename_link(const std::string& name, const std::string& new_name) override;
    void set_mtu(const std::string& name, std::uint32_t mtu) override;
    void set_up(const std::string& name, bool up) override;
    void set_mac(const std::string& name, const model::Mac& mac) override;
    void delete_link(const std::string& name) override;
    // bridges.cpp
    void create_bridge(const std::string& name, const plan::BridgeOptions& options) override;
    void set_bridge_options(const std::string& name, const plan::BridgeOptions& options) override;

    // addresses.cpp
    std::vector<plan::AddressInfo> list_addresses() override;
    std::vector<plan::AddressInfo> list_addresses_of(int link_index) override;
    void add_address(const std::string& name, const model::IpAddress& address, std::uint8_t prefix_length) override;
    void add_address_info(const std::string& name, const plan::AddressInfo& info) override;
    void delete_address(const std::string& name, const model::IpAddress& address, std::uint8_t prefix_length) override;

    // routes.cpp
    std::vector<plan::RouteInfo> list_routes() override;
    void add_route(const std::string& name, const plan::RouteInfo& route) override;
    void replace_route(const std::string& name, const plan::RouteInfo& route) override;
    void delete_route(const plan::RouteInfo& route) override;

    // bridge_ports.cpp
    void set_master(const std::string& name, const std::string& master) override;
    void set_port_isolated(const std::string& name, bool isolated) override;
    void set_port_hairpin(const std::string& name, bool hairpin) override;
    std::optional<PortFlags> port_flags(const std::string& name) override;
    std::vector<plan::FdbEntry> list_fdb(const std::string& bridge) override;
    bool vlan_filtering_supported() override;
    void set_port_vlans(const std::string& bridge, const std::string& port, std::uint16_t pvid,
                        const std::vector<std::uint16_t>& tagged) override;

    // taps.cpp
    void create_tap(const std::string& name, std::uint32_t owner, std::uint32_t group, bool multi_queue) override;
    std::optional<TapInfo> tap_info(const std::string& name) override;

    // tc.cpp
    void set_bandwidth(const std::string& name, const plan::PortBandwidth& bandwidth) override;

    // vxlans.cpp
    void create_vxlan(const std::string& name, const plan::VxlanOptions& options) override;
    std::optional<plan::VxlanOptions> vxlan_options(const std::string& name) override;
    std::vector<model::Ipv4> list_flood(const std::string& name) override;
    void add_flood(const std::string& name, model::Ipv4 remote) override;
    void delete_flood(const std::string& name, model::Ipv4 remote) override;
    std::vector<VxlanFdbEntry> vxlan_fdb(const std::string& name) override;
    std::string neighbour_state(const std::string& address) override;
    std::optional<VxlanPortFlags> vxlan_port_flags(const std::string& name) override;
    void set_vxlan_port_flags(const std::string& name, const VxlanPortFlags& flags) override;
    // vxlan_filter.cpp
    void set_vxlan_filter(const std::string& name, const model::Mac& gateway_mac, model::Ipv4 gateway_ip,
                          const std::vector<model::Ipv6>& gateway_ipv6) override;
    void delete_vxlan_filter(const std::string& name) override;
    bool has_vxlan_filter(const std::string& name) override;
    void set_host_rewrite(const std::string& name, const model::Mac& gateway_mac, model::Ipv4 host_ip,
                          const model::Mac& host_mac) override;
    void delete_host_rewrite(const std::string& name) override;
    bool has_host_rewrite(const std::string& name) override;

    // host_facts.cpp
    std::optional<std::string> read_sysctl(const std::string& key) override;
    void write_sysctl(const std::string& key, const std::string& value) override;
    std::vector<plan::Listener> list_listeners() override;

private:
    // One boolean IFLA_PROTINFO attribute of a bridge port, set and read back.
    void set_port_flag(const std::string& name, int attribute, bool on, const std::string& what,
                       const std::string& feature);
    struct nl_sock* socket_ = nullptr;
    std::optional<bool> vlan_filtering_;  // probe result, cached
};

}  // namespace kvmnet::kernel
