// IPv6 on the host side of NAT and routed networks:
// net.ipv6.conf.all.forwarding, saved and restored like ip_forward (the
// kernel checks of an IPv6 subnet are in core/kernel_conflicts.cpp).
#include "core/manager.hpp"

#include "core/log.hpp"
#include "plan/planner.hpp"
#include "store/files.hpp"

#include <algorithm>
#include <filesystem>
#include <sys/socket.h>

namespace kvmnet::core {
namespace {

constexpr std::uint8_t rtprot_ra = 9;

std::string trimmed(std::string s)
{
    while (!s.empty() && (s.back() == '\n' || s.back() == ' '))
        s.pop_back();
    return s;
}

}  // namespace

void Manager::update_ipv6_forward(const Running& active)
{
    const bool want =
        std::any_of(active.begin(), active.end(), [](const model::Network* n) { return needs_ipv6_forwarding(*n); });
    ipv6_forward_hold_.want(want, [this](const std::string& current) {
        if (current == "1") return;
        // With forwarding on, an interface with accept_ra=1 ignores router
        // advertisements, and the routes it learnt from them expire: the
        // host would lose its IPv6 uplink. accept_ra=2 keeps them.
        const auto links = links_.list_links();
        for (const auto& r : links_.list_routes()) {
            if (r.family != AF_INET6 || r.protocol != rtprot_ra) continue;
            const auto link =
                std::find_if(links.begin(), links.end(), [&](const auto& l) { return l.index == r.link_index; });
            if (link == links.end()) continue;
            if (trimmed(links_.read_sysctl("net/ipv6/conf/" + link->name + "/accept_ra").value_or("")) == "1")
                throw Error(ErrorKind::Conflict, "ipv6: enabling IPv6 forwarding would make the kernel ignore router "
                                                 "advertisements on " +
                                                     link->name + ", which has routes from them; set net.ipv6.conf." +
                                                     link->name + ".accept_ra=2 first");
        }
    });
}

}  // namespace kvmnet::core
