// rtnetlink implementation of plan::LinkAdapter, on libnl-route-3.
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

    std::vector<plan::LinkInfo> list_links() override;
    std::optional<plan::LinkInfo> find_link(const std::string& name) override;
    std::vector<plan::AddressInfo> list_addresses() override;

    void create_bridge(const std::string& name, const plan::BridgeOptions& options) override;
    void set_alias(const std::string& name, const std::string& alias) override;
    void set_mtu(const std::string& name, std::uint32_t mtu) override;
    void set_up(const std::string& name, bool up) override;
    void add_address(const std::string& name, int family, const std::string& address,
                     std::uint8_t prefix_length) override;
    void delete_address(const std::string& name, int family, const std::string& address,
                        std::uint8_t prefix_length) override;
    void delete_link(const std::string& name) override;

private:
    struct nl_sock* socket_ = nullptr;
};

}  // namespace kvmnet::kernel
