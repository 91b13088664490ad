#include "core/kernel_conflicts.hpp"

#include "model/error.hpp"
#include "plan/planner.hpp"

#include <algorithm>
#include <optional>
#include <tuple>
#include <utility>
#include <vector>

namespace kvmnet::core {

namespace {

// The links of the addresses that overlap: the (rare) case that needs a
// dump of every link, so a start without a conflict dumps none.
const plan::LinkInfo* link_at(std::optional<std::vector<plan::LinkInfo>>& links, plan::LinkAdapter& kernel, int index)
{
    if (!links) links = kernel.list_links();
    for (const auto& l : *links)
        if (l.index == index) return &l;
    return nullptr;
}

bool ours(const plan::LinkInfo* link) { return link && link->alias.rfind(plan::alias_prefix, 0) == 0; }

void check_ipv6_addresses(plan::LinkAdapter& kernel, const model::Network& n,
                          const std::vector<plan::AddressInfo>& addresses)
{
    std::optional<std::vector<plan::LinkInfo>> links;
    for (const auto& a : addresses) {
        const model::Ipv6* ip = a.address.v6();
        if (!ip) continue;
        const model::Ipv6Interface theirs{*ip, a.prefix_length};
        if (!theirs.overlaps(n.ipv6->address)) continue;
        const plan::LinkInfo* link = link_at(links, kernel, a.link_index);
        if (ours(link)) continue;
        throw Error(ErrorKind::Conflict, "ipv6.address: " + n.ipv6->address.network_str() + " overlaps " +
                                             theirs.str() + " on interface " + (link ? link->name : "?") +
                                             ", which kvmnet does not manage; choose another prefix");
    }
}

// The addresses of the links `view` names, from the kernel (a link gone
// since has none).
std::vector<plan::AddressInfo> addresses_of(plan::LinkAdapter& kernel, const std::vector<int>& links)
{
    std::vector<plan::AddressInfo> addresses;
    for (const int index : links)
        for (plan::AddressInfo& a : kernel.list_addresses_of(index))
            addresses.push_back(std::move(a));
    return addresses;
}

}  // namespace

AddressView::AddressView(Read read, List list) : read_(std::move(read)), list_(std::move(list)) { relist(); }

void AddressView::relist()
{
    addresses_.clear();
    for (const plan::AddressInfo& a : list_())
        addresses_.emplace(a.link_index, a.address, a.prefix_length);
}

std::vector<int> AddressView::links_overlapping(const model::Network& n)
{
    const bool complete = read_([this](bool added, const plan::AddressInfo& a) {
        const auto key = std::make_tuple(a.link_index, a.address, a.prefix_length);
        if (added)
            addresses_.insert(key);
        else
            addresses_.erase(key);
    });
    if (!complete) relist();
    std::vector<int> links;
    for (const auto& [index, address, prefix] : addresses_) {
        bool overlaps = false;
        if (const model::Ipv4* ip = address.v4(); ip && n.ipv4)
            overlaps = model::Ipv4Interface{*ip, prefix}.overlaps(n.ipv4->address);
        else if (const model::Ipv6* ip6 = address.v6(); ip6 && n.ipv6)
            overlaps = model::Ipv6Interface{*ip6, prefix}.overlaps(n.ipv6->address);
        // The set is ordered by link: ascending, each once.
        if (overlaps && (links.empty() || links.back() != index)) links.push_back(index);
    }
    return links;
}

void check_ipv6_kernel(plan::LinkAdapter& kernel, const model::Network& n)
{
    if (!n.ipv6) return;
    if (!kernel.read_sysctl("net/ipv6/conf/all/forwarding"))
        throw Error(ErrorKind::Unsupported, "ipv6: IPv6 is not available in this kernel (CONFIG_IPV6, or booted "
                                            "with ipv6.disable=1)");
    check_ipv6_addresses(kernel, n, kernel.list_addresses());
}

void check_kernel_conflicts(plan::LinkAdapter& kernel, const model::Network& n, AddressView* view)
{
    // One lookup by name, not a dump of every link: a start costs the same
    // with 1,000 networks' bridges on the host.
    if (const auto existing = kernel.find_link(n.bridge); existing && existing->alias != plan::owner_alias(n.name))
        throw Error(ErrorKind::Conflict, "bridge: interface " + n.bridge +
                                             " already exists and is not managed by this network; choose another name");
    if (n.ipv6 && !kernel.read_sysctl("net/ipv6/conf/all/forwarding"))
        throw Error(ErrorKind::Unsupported, "ipv6: IPv6 is not available in this kernel (CONFIG_IPV6, or booted "
                                            "with ipv6.disable=1)");
    if (!n.ipv4 && !n.ipv6) return;
    // With a view, a start costs the same however many addresses the host
    // has: only the links that may overlap are read, and their addresses
    // judged as a full dump's would be.
    const auto addresses = view ? addresses_of(kernel, view->links_overlapping(n)) : kernel.list_addresses();
    if (n.ipv6) check_ipv6_addresses(kernel, n, addresses);
    if (!n.ipv4) return;
    std::optional<std::vector<plan::LinkInfo>> links;
    for (const auto& a : addresses) {
        const model::Ipv4* ip = a.address.v4();
        if (!ip) continue;
        const model::Ipv4Interface theirs{*ip, a.prefix_length};
        if (!theirs.overlaps(n.ipv4->address)) continue;
        const plan::LinkInfo* link = link_at(links, kernel, a.link_index);
        if (ours(link)) continue;
        throw Error(ErrorKind::Conflict, "ipv4.address: " + n.ipv4->address.network_str() + " overlaps " +
                                             theirs.str() + " on interface " + (link ? link->name : "?") +
                                             ", which kvmnet does not manage; choose another subnet");
    }
}

}  // namespace kvmnet::core
