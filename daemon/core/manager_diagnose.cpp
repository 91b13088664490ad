// Diagnose: what a person asks when a guest has no network. Each check
// looks at the kernel as it is now (links, addresses, sysctls, sockets, the
// nftables chains of every table) against what the network should have, and
// says "pass", "warn" or "fail" with a sentence naming what is wrong. It
// only reads; nothing is repaired here.
#include "core/manager.hpp"

#include "core/foreign_firewall.hpp"

#include "plan/planner.hpp"

#include <algorithm>
#include <set>
#include <sys/socket.h>

namespace kvmnet::core {
namespace {

struct Report {
    nlohmann::json checks = nlohmann::json::array();
    void add(const std::string& check, const std::string& status, const std::string& detail)
    {
        checks.push_back({{"check", check}, {"status", status}, {"detail", detail}});
    }
    void pass(const std::string& check, const std::string& detail) { add(check, "pass", detail); }
    void warn(const std::string& check, const std::string& detail) { add(check, "warn", detail); }
    void fail(const std::string& check, const std::string& detail) { add(check, "fail", detail); }
    std::string verdict() const
    {
        std::string worst = "pass";
        for (const auto& c : checks) {
            if (c["status"] == "fail") return "fail";
            if (c["status"] == "warn") worst = "warn";
        }
        return worst;
    }
};

bool has_address(const std::vector<plan::AddressInfo>& addresses, int link_index, int family,
                 const std::string& address, unsigned prefix)
{
    return std::any_of(addresses.begin(), addresses.end(), [&](const plan::AddressInfo& a) {
        return a.link_index == link_index && a.family == family && a.address == address && a.prefix_length == prefix;
    });
}

bool listens(const std::vector<plan::Listener>& listeners, bool tcp, std::uint16_t port)
{
    return std::any_of(listeners.begin(), listeners.end(),
                       [&](const plan::Listener& l) { return l.tcp == tcp && l.port == port; });
}

}  // namespace

nlohmann::json Manager::diagnose(const std::string& name) const
{
    const Entry& e = entry(name);
    const model::Network& n = e.spec;
    Report report;
    const auto bridge = links_.find_link(n.bridge);
    const bool running = is_running(e.state);

    if (!running) {
        if (!bridge)
            report.pass("bridge", "the network is not running and " + n.bridge + " does not exist");
        else if (bridge->alias == "kvmnet:" + n.name)
            report.warn("bridge", n.bridge + " is left over although the network is not running (start or delete it)");
        else
            report.fail("bridge", "another program's link " + n.bridge + " has the bridge name of this network");
        return {{"network", n.name},
                {"state", state_name(e.state)},
                {"state_reason", e.reason},
                {"verdict", report.verdict()},
                {"checks", report.checks}};
    }

    // Links.
    if (!bridge) {
        report.fail("bridge", n.bridge + " does not exist");
    } else {
        if (bridge->up)
            report.pass("bridge", n.bridge + " exists and is up");
        else
            report.fail("bridge", n.bridge + " is down");
        if (n.mode != model::Mode::bridge && bridge->alias != "kvmnet:" + n.name)
            report.warn("bridge-owner", n.bridge + " is not marked as this network's (ifalias \"" + bridge->alias +
                                            "\"): a daemon restart will not adopt it");
    }
    if (n.mode == model::Mode::bridge) {
        const auto uplink = links_.find_link(n.uplink);
        if (!uplink)
            report.fail("uplink", "uplink " + n.uplink + " does not exist");
        else if (!bridge || uplink->master_index != bridge->index)
            report.fail("uplink", "uplink " + n.uplink + " is not a port of " + n.bridge);
        else if (!uplink->carrier)
            report.warn("uplink", "uplink " + n.uplink + " has no carrier (cable or link partner down)");
        else
            report.pass("uplink", "uplink " + n.uplink + " is a port of " + n.bridge + " with carrier");
    }

    // Gateway addresses.
    if (bridge && n.mode != model::Mode::bridge) {
        const auto addresses = links_.list_addresses();
        if (n.ipv4) {
            const auto& a = n.ipv4->address;
            if (has_address(addresses, bridge->index, AF_INET, a.address.str(), a.prefix))
                report.pass("ipv4-address", a.str() + " is on " + n.bridge);
            else
                report.fail("ipv4-address", a.str() + " is missing from " + n.bridge);
        }
        if (n.ipv6) {
            const auto& a = n.ipv6->address;
            if (has_address(addresses, bridge->index, AF_INET6, a.address.str(), a.prefix))
                report.pass("ipv6-address", a.str() + " is on " + n.bridge);
            else
                report.fail("ipv6-address", a.str() + " is missing from " + n.bridge);
        }
    }

    // Guest ports.
    for (const model::Port& p : n.ports) {
        const auto link = links_.find_link(p.name);
        const auto problem = e.port_problems.find(p.name);
        if (problem != e.port_problems.end())
            report.fail("port " + p.name, problem->second);
        else if (!link)
            report.warn("port " + p.name, p.name + " does not exist (the guest is not running?)");
        else if (!bridge || link->master_index != bridge->index)
            report.fail("port " + p.name, p.name + " is not a port of " + n.bridge);
        else
            report.pass("port " + p.name, p.name + " is a port of " + n.bridge + (link->up ? "" : " (down)"));
    }
    if (!e.mac_conflict.empty()) report.fail("mac-conflict", e.mac_conflict);

    // Forwarding sysctls: NAT and routed networks route between the bridge and the rest.
    if (n.mode == model::Mode::nat || n.mode == model::Mode::routed) {
        const auto v4 = links_.read_sysctl("net/ipv4/ip_forward");
        if (v4 && v4->rfind('1', 0) == 0)
            report.pass("ip-forward", "net.ipv4.ip_forward is 1");
        else
            report.fail("ip-forward", "net.ipv4.ip_forward is " + (v4 ? v4->substr(0, v4->find('\n')) : "unreadable") +
                                          ": guests cannot reach other networks");
        if (n.ipv6) {
            const auto v6 = links_.read_sysctl("net/ipv6/conf/all/forwarding");
            if (v6 && v6->rfind('1', 0) == 0)
                report.pass("ipv6-forward", "net.ipv6.conf.all.forwarding is 1");
            else
                report.fail("ipv6-forward", "net.ipv6.conf.all.forwarding is not 1: guests' IPv6 is not routed");
        }
    }

    // dnsmasq: running, and bound to DHCP and DNS.
    if (n.mode != model::Mode::bridge && n.ipv4) {
        const std::string_view dnsmasq = dnsmasq_state(name);
        if (dnsmasq != "running") {
            report.fail("dnsmasq", "dnsmasq is " + std::string(dnsmasq) +
                                       (!e.dnsmasq || e.dnsmasq->problem().empty() ? "" : ": " + e.dnsmasq->problem()));
        } else {
            const auto listeners = links_.list_listeners();
            std::vector<std::string> missing;
            if (!listens(listeners, false, 53)) missing.push_back("DNS (udp 53)");
            if (n.ipv4->dhcp && !listens(listeners, false, 67)) missing.push_back("DHCP (udp 67)");
            if (missing.empty())
                report.pass("dnsmasq", "dnsmasq is running (pid " + std::to_string(e.dnsmasq->pid()) +
                                           ") and serving DNS" + (n.ipv4->dhcp ? " and DHCP" : ""));
            else
                report.fail("dnsmasq", "dnsmasq runs but nothing listens for " + missing.front());
        }
    }

    // Our nftables table: every chain the plan has is there.
    const plan::Table planned = plan::build_ruleset(active_specs());
    std::vector<plan::ChainInfo> chains;
    try {
        chains = firewall_.list_chains();
    } catch (const std::exception& err) {
        report.fail("firewall", std::string("cannot list nftables chains: ") + err.what());
    }
    std::set<std::string> ours;
    for (const auto& c : chains)
        if (c.family == "inet" && c.table == planned.name) ours.insert(c.name);
    std::vector<std::string> missing;
    for (const plan::Chain& c : planned.chains)
        if (!ours.count(c.name)) missing.push_back(c.name);
    if (ours.empty())
        report.fail("firewall", "table inet " + planned.name + " is missing");
    else if (!missing.empty())
        report.fail("firewall", "table inet " + planned.name + " lacks chain " + missing.front());
    else
        report.pass("firewall",
                    "table inet " + planned.name + " has its " + std::to_string(planned.chains.size()) + " chains");

    // Other programs' base chains on the forward and input hooks that drop
    // by default (Docker's iptables FORWARD DROP, ufw's default deny, a
    // firewall's default-deny) drop guests' routed traffic (forward) or
    // their DHCP and DNS (input), unless they accept it themselves: an
    // accept in our chain does not override a drop in theirs. Each warning
    // says what to type (docs/firewalls.md).
    const auto has_chain = [&](const std::string& family, const std::string& table, const std::string& name) {
        return std::any_of(chains.begin(), chains.end(), [&](const plan::ChainInfo& c) {
            return c.family == family && c.table == table && c.name == name;
        });
    };
    for (const auto& c : chains) {
        if (!c.base || (c.hook != "forward" && c.hook != "input") || c.policy != "drop") continue;
        if (c.family == "inet" && c.table == planned.name) continue;
        if (c.family != "ip" && c.family != "ip6" && c.family != "inet" && c.family != "bridge") continue;
        if (c.family == "ip6" && !n.ipv6) continue;
        if (n.mode == model::Mode::bridge) continue;  // the host's own firewall governs its bridge
        const std::string where =
            "chain " + c.family + " " + c.table + " " + c.name + " (hook " + c.hook + ", policy drop)";
        const bool ufw =
            has_chain(c.family, c.table, "ufw-before-forward") || has_chain(c.family, c.table, "ufw6-before-forward");
        const bool docker = c.hook == "forward" && c.table == "filter" && has_chain(c.family, "filter", "DOCKER-USER");
        if (docker) {
            const std::string tool = c.family == "ip6" ? "ip6tables" : "iptables";
            if (docker_user_ && n.firewall_integration && docker_user_->rules_of(c.family, n.name) == 2)
                report.pass("foreign-firewall", where + " is Docker's; kvmnet's accept rules for " + n.bridge +
                                                    " are in its DOCKER-USER chain");
            else
                report.warn("foreign-firewall",
                            where + " is Docker's and drops guests' forwarded traffic" +
                                (docker_user_ && n.firewall_integration ? "" : " (firewall integration is off)") +
                                "; let them through with: " + tool + " -I DOCKER-USER -i " + n.bridge + " -j ACCEPT; " +
                                tool + " -I DOCKER-USER -o " + n.bridge + " -j ACCEPT");
        } else if (ufw) {
            report.warn("foreign-firewall",
                        where + " is ufw's and drops guests' " +
                            (c.hook == "forward"
                                 ? "forwarded traffic; let them through with: ufw route allow in on " + n.bridge +
                                       "; ufw route allow out on " + n.bridge
                                 : "DHCP and DNS; let them through with: ufw allow in on " + n.bridge +
                                       " to any port 67 proto udp; ufw allow in on " + n.bridge + " to any port 53"));
        } else if ((c.family == "ip" || c.family == "ip6") && c.table == "filter" &&
                   (c.name == "FORWARD" || c.name == "INPUT")) {
            // iptables' own table (iptables-nft): its tool, not nft, is the
            // one to write it with. Docker 20.10 with --ip6tables has a
            // FORWARD drop in ip6 filter but no DOCKER-USER there.
            const std::string tool = c.family == "ip6" ? "ip6tables" : "iptables";
            const bool docker_chain = has_chain(c.family, c.table, "DOCKER");
            report.warn("foreign-firewall",
                        where + (docker_chain ? " is Docker's (it has no DOCKER-USER chain there)" : "") +
                            " and drops guests' " +
                            (c.hook == "forward"
                                 ? "forwarded traffic; let them through with: " + tool + " -I " + c.name + " -i " +
                                       n.bridge + " -j ACCEPT; " + tool + " -I " + c.name + " -o " + n.bridge +
                                       " -j ACCEPT"
                                 : "DHCP and DNS; let them through with: " + tool + " -I " + c.name + " -i " +
                                       n.bridge + " -p udp -m multiport --dports 53,67" + " -j ACCEPT; " + tool +
                                       " -I " + c.name + " -i " + n.bridge + " -p tcp --dport 53 -j ACCEPT"));
        } else {
            const std::string family_table = c.family + " " + c.table + " " + c.name;
            report.warn("foreign-firewall",
                        where + " drops guests' " +
                            (c.hook == "forward"
                                 ? "forwarded traffic unless it accepts " + n.bridge +
                                       " itself; let them through with: nft insert rule " + family_table + " iifname " +
                                       n.bridge + " accept; nft insert rule " + family_table + " oifname " + n.bridge +
                                       " accept"
                                 : "DHCP and DNS unless it accepts them on " + n.bridge +
                                       "; let them through with: nft insert rule " + family_table + " iifname " +
                                       n.bridge + " udp dport { 53, 67 } accept; nft insert rule " + family_table +
                                       " iifname " + n.bridge + " tcp dport 53 accept"));
        }
    }

    return {{"network", n.name},
            {"state", state_name(e.state)},
            {"state_reason", e.reason},
            {"verdict", report.verdict()},
            {"checks", report.checks}};
}

}  // namespace kvmnet::core
