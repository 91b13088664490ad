// The kernel checks of a network's names and subnets, at create, update
// and start: what the kernel already has that the network would collide with.
#pragma once

#include "model/network.hpp"
#include "plan/kernel_view.hpp"

#include <functional>
#include <set>
#include <tuple>
#include <vector>

namespace kvmnet::core {

// The host's IPv4 and IPv6 addresses as rtnetlink's address notifications
// tell them (kernel::AddressWatch in kvmnetd), so that the conflict check of
// a start need not dump every address of the host (one per running network
// and more): it asks the view which links may hold an overlapping address
// and confirms each with a dump of that link's addresses, since the view may
// still hold an address deleted a moment ago. The notifications are read
// when the view is asked, not as they come: nothing wakes for them.
class AddressView {
public:
    // Called for every address added (true) or removed (false).
    using Change = std::function<void(bool added, const plan::AddressInfo& address)>;
    // Calls `changed` for each notification since the last call, oldest
    // first; false when some were lost (the view then lists them all again).
    using Read = std::function<bool(const Change& changed)>;
    using List = std::function<std::vector<plan::AddressInfo>()>;
    // `read` must be subscribed already: the view lists every address once
    // now, and the notifications read later bring it up to date (one that
    // the list already has changes nothing).
    AddressView(Read read, List list);

    // The links that hold, by the notifications read now, an address that
    // overlaps the network's IPv4 subnet or IPv6 prefix; ascending.
    std::vector<int> links_overlapping(const model::Network& n);
    std::size_t size() const { return addresses_.size(); }

private:
    void relist();
    Read read_;
    List list_;
    // link index, address, prefix length
    std::set<std::tuple<int, model::IpAddress, std::uint8_t>> addresses_;
};

// Conflict when the bridge name is another program's interface or a subnet
// overlaps one on an interface kvmnet does not manage; Unsupported for IPv6
// without kernel support. With `view`, only the links it names are asked
// for their addresses; without, every address of the host is dumped.
void check_kernel_conflicts(plan::LinkAdapter& kernel, const model::Network& n, AddressView* view = nullptr);
// The IPv6 part of it.
void check_ipv6_kernel(plan::LinkAdapter& kernel, const model::Network& n);

}  // namespace kvmnet::core
