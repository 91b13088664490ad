// Change notifications from rtnetlink, read from a non-blocking socket that
// the event loop watches: links (RTNLGRP_LINK), so the manager notices a
// bridge deleted or downed behind its back and guest interfaces coming back;
// and bridge forwarding-database entries (RTNLGRP_NEIGH, AF_BRIDGE), so a MAC
// moving between ports is seen at every move rather than at poll times; and
// addresses (RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV6_IFADDR), so a gateway address
// removed from a bridge is put back; and per-link settings (RTNLGRP_IPV4_NETCONF,
// RTNLGRP_IPV6_NETCONF), so forwarding turned off is turned on again at once;
// and routes (RTNLGRP_IPV4_ROUTE, RTNLGRP_IPV6_ROUTE; only deletions are
// passed on), so a NAT or routed network's subnet route comes back.
#pragma once

#include "model/mac.hpp"

#include <functional>
#include <string>
#include <utility>

struct nl_sock;

namespace kvmnet::kernel {

struct LinkEvent {
    // The link itself is gone (RTM_DELLINK of family AF_UNSPEC); a port
    // leaving its bridge is an AF_BRIDGE RTM_DELLINK of a link that stays.
    bool removed = false;
    int index = 0;
    std::string name;
    bool up = false;  // IFF_UP
};

struct FdbEvent {
    int bridge_index = 0;  // NDA_MASTER
    int port_index = 0;    // ndm_ifindex
    model::Mac mac;
};

class LinkMonitor {
public:
    // `receive_buffer`: the socket's receive buffer in bytes (the kernel
    // doubles it). libnl's default (32 kB) overflows (ENOBUFS) when a busy
    // loop meets a burst: with hundreds of networks, each start's bridge,
    // address, netconf and dnsmasq notifications. Tests shrink it to force
    // an overrun.
    explicit LinkMonitor(int receive_buffer = default_receive_buffer);
    static constexpr int default_receive_buffer = 8 << 20;
    ~LinkMonitor();
    LinkMonitor(const LinkMonitor&) = delete;
    LinkMonitor& operator=(const LinkMonitor&) = delete;

    int fd() const;
    // True (once) when notifications were lost since the last call: the
    // caller must re-check what it watches.
    bool take_overrun() { return std::exchange(overrun_, false); }
    // Called with the link index of every address added or removed.
    void set_address_handler(std::function<void(int link_index)> on_address) { on_address_ = std::move(on_address); }
    // Called for every RTM_NEWNETCONF (forwarding and a few other per-link
    // sysctls changed; one per link for a change of "all") with the link's
    // index, or a value ≤ 0 for "all", "default" or a message without one.
    void set_netconf_handler(std::function<void(int link_index)> on_netconf) { on_netconf_ = std::move(on_netconf); }
    // Called with the output link's index of every route added (`added`) or deleted.
    void set_route_handler(std::function<void(int link_index, bool added)> on_route)
    {
        on_route_ = std::move(on_route);
    }
    // Reads every pending notification and calls the matching handler.
    void dispatch(const std::function<void(const LinkEvent&)>& on_link,
                  const std::function<void(const FdbEvent&)>& on_fdb);

private:
    struct nl_sock* socket_ = nullptr;
    const std::function<void(const LinkEvent&)>* on_link_ = nullptr;
    const std::function<void(const FdbEvent&)>* on_fdb_ = nullptr;
    std::function<void(int)> on_address_;
    std::function<void(int)> on_netconf_;
    std::function<void(int, bool)> on_route_;
    bool overrun_ = false;
};

}  // namespace kvmnet::kernel
