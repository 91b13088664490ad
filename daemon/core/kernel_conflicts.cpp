#include "core/kernel_conflicts.hpp"

#include "model/error.hpp"
#include "plan/planner.hpp"

#include <algorithm>
#include <sys/socket.h>

namespace kvmnet::core {

void check_ipv6_kernel(plan::LinkAdapter& kernel, const model::Network& n)
{
    if (!n.ipv6) return;
    if (!kernel.read_sysctl("net/ipv6/conf/all/forwarding"))
        throw Error(ErrorKind::Unsupported, "ipv6: IPv6 is not available in this kernel (CONFIG_IPV6, or booted "
                                            "with ipv6.disable=1)");
    const auto links = kernel.list_links();
    for (const auto& a : kernel.list_addresses()) {
        if (a.family != AF_INET6) continue;
        const auto link =
            std::find_if(links.begin(), links.end(), [&](const auto& l) { return l.index == a.link_index; });
        if (link != links.end() && link->alias.rfind(plan::alias_prefix, 0) == 0) continue;
        const auto ip = model::Ipv6::parse(a.address);
        if (!ip) continue;
        const model::Ipv6Interface theirs{*ip, a.prefix_length};
        if (theirs.overlaps(n.ipv6->address))
            throw Error(ErrorKind::Conflict, "ipv6.address: " + n.ipv6->address.network_str() + " overlaps " +
                                                 theirs.str() + " on interface " +
                                                 (link != links.end() ? link->name : "?") +
                                                 ", which kvmnet does not manage; choose another prefix");
    }
}

void check_kernel_conflicts(plan::LinkAdapter& kernel, const model::Network& n)
{
    const auto links = kernel.list_links();
    const auto alias_of = [&](int index) -> const plan::LinkInfo* {
        for (const auto& l : links)
            if (l.index == index) return &l;
        return nullptr;
    };
    if (auto existing = std::find_if(links.begin(), links.end(), [&](const auto& l) { return l.name == n.bridge; });
        existing != links.end() && existing->alias != plan::owner_alias(n.name))
        throw Error(ErrorKind::Conflict, "bridge: interface " + n.bridge +
                                             " already exists and is not managed by this network; choose another name");
    check_ipv6_kernel(kernel, n);
    if (!n.ipv4) return;
    for (const auto& a : kernel.list_addresses()) {
        if (a.family != AF_INET) continue;
        const plan::LinkInfo* link = alias_of(a.link_index);
        if (link && link->alias.rfind(plan::alias_prefix, 0) == 0) continue;
        auto ip = model::Ipv4::parse(a.address);
        if (!ip) continue;
        model::Ipv4Interface theirs{*ip, a.prefix_length};
        if (theirs.overlaps(n.ipv4->address))
            throw Error(ErrorKind::Conflict, "ipv4.address: " + n.ipv4->address.network_str() + " overlaps " +
                                                 theirs.str() + " on interface " + (link ? link->name : "?") +
                                                 ", which kvmnet does not manage; choose another subnet");
    }
}

}  // namespace kvmnet::core
