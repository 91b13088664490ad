// Each check below is both a line of Diagnose and, when it degrades the
// network, its state reason: the wording of each view stays as users and
// programs know it (docs/dbus-api.md lists the codes).
#include "plan/drift.hpp"

#include "plan/planner.hpp"
#include "plan/route_text.hpp"

#include <algorithm>
#include <set>

namespace kvmnet::plan {
namespace {

// The state's urgency of each code: what cuts guests off first. A deferred
// repair (waiting) is no cause of its own: it is added to the cause.
enum class Rank : int {
    waiting = 0,
    bridge_deleted,
    uplink_missing,
    uplink_released,
    bridge_down,
    route_deleted,
    firewall,
    foreign_firewall,
    firewalld,
    ip_forward_off,
    dnsmasq_restarting,
    mac_conflict,
    document,
    evpn_session,
};

struct Findings {
    Drift drift;
    void check(std::string check, Status status, std::string detail, std::string code = {}, std::string reason = {},
               Rank rank = Rank::waiting)
    {
        drift.findings.push_back(
            {std::move(check), status, std::move(detail), std::move(code), std::move(reason), static_cast<int>(rank)});
    }
    void pass(std::string name, std::string detail) { check(std::move(name), Status::pass, std::move(detail)); }
    void warn(std::string name, std::string detail) { check(std::move(name), Status::warn, std::move(detail)); }
    void fail(std::string name, std::string detail) { check(std::move(name), Status::fail, std::move(detail)); }
    // Known to the daemon, not a check of its own.
    void state_only(std::string code, std::string reason, Rank rank)
    {
        check({}, Status::fail, {}, std::move(code), std::move(reason), rank);
    }
};

bool has_address(const std::vector<AddressInfo>& addresses, int link_index, const model::IpAddress& address,
                 unsigned prefix)
{
    return std::any_of(addresses.begin(), addresses.end(), [&](const AddressInfo& a) {
        return a.link_index == link_index && a.address == address && a.prefix_length == prefix;
    });
}

bool listens(const std::vector<Listener>& listeners, bool tcp, std::uint16_t port)
{
    return std::any_of(listeners.begin(), listeners.end(),
                       [&](const Listener& l) { return l.tcp == tcp && l.port == port; });
}

bool is_one(const std::optional<std::string>& value) { return value && value->rfind('1', 0) == 0; }

void stopped_network(const model::Network& n, const Observed& o, Findings& f)
{
    if (!o.bridge)
        f.pass("bridge", "the network is not running and " + n.bridge + " does not exist");
    else if (o.bridge->alias == owner_alias(n.name))
        f.warn("bridge", n.bridge + " is left over although the network is not running (start or delete it)");
    else
        f.fail("bridge", "another program's link " + n.bridge + " has the bridge name of this network");
}

void links(const model::Network& n, const Observed& o, Findings& f)
{
    const auto& bridge = o.bridge;
    if (!bridge) {
        f.check("bridge", Status::fail, n.bridge + " does not exist", "bridge-deleted",
                "bridge " + n.bridge + " was deleted outside kvmnet", Rank::bridge_deleted);
    } else {
        if (bridge->up)
            f.pass("bridge", n.bridge + " exists and is up");
        else
            f.check("bridge", Status::fail, n.bridge + " is down", "bridge-down",
                    "bridge " + n.bridge + " was set down outside kvmnet", Rank::bridge_down);
        if (n.mode != model::Mode::bridge && bridge->alias != owner_alias(n.name))
            f.warn("bridge-owner", n.bridge + " is not marked as this network's (ifalias \"" + bridge->alias +
                                       "\"): a daemon restart will not adopt it");
    }
    if (n.mode != model::Mode::bridge) return;
    const auto& uplink = o.uplink;
    if (!uplink)
        f.check("uplink", Status::fail, "uplink " + n.uplink + " does not exist", "uplink-missing",
                "uplink " + n.uplink + " has disappeared", Rank::uplink_missing);
    else if (!bridge)
        f.fail("uplink", "uplink " + n.uplink + " is not a port of " + n.bridge);
    else if (uplink->master_index != bridge->index)
        f.check("uplink", Status::fail, "uplink " + n.uplink + " is not a port of " + n.bridge, "uplink-released",
                "uplink " + n.uplink + " was released from " + n.bridge + " outside kvmnet", Rank::uplink_released);
    else if (!uplink->carrier)
        f.warn("uplink", "uplink " + n.uplink + " has no carrier (cable or link partner down)");
    else
        f.pass("uplink", "uplink " + n.uplink + " is a port of " + n.bridge + " with carrier");
}

void gateway_addresses(const model::Network& n, const Observed& o, Findings& f)
{
    if (!o.bridge || !o.addresses || n.mode == model::Mode::bridge) return;
    const auto gateway = [&](const std::string& check, const auto& a) {
        if (has_address(*o.addresses, o.bridge->index, a.address, a.prefix))
            f.pass(check, a.str() + " is on " + n.bridge);
        else
            f.fail(check, a.str() + " is missing from " + n.bridge);
    };
    if (n.ipv4) gateway("ipv4-address", n.ipv4->address);
    if (n.ipv6) gateway("ipv6-address", n.ipv6->address);
}

// Deleted, a gateway's prefix route cuts the guests off although its
// address is there; without the address (or with the bridge down) the
// kernel has no route to keep, and the address check says why.
void routes(const model::Network& n, const Observed& o, Findings& f)
{
    if (!o.bridge || !o.routes || !o.bridge->up) return;
    const auto missing = missing_routes(n, *o.bridge, *o.routes);
    const auto same = [](const RouteInfo& a, const RouteInfo& b) {
        return a.link_index == b.link_index && a.family == b.family && a.table == b.table &&
               a.destination == b.destination && a.prefix_length == b.prefix_length;
    };
    for (const RouteInfo& want : network_routes(n, o.bridge->index)) {
        const std::string check = want.destination && want.destination->is_v4() ? "ipv4-route" : "ipv6-route";
        const std::string route = destination_text(want);
        if (std::any_of(missing.begin(), missing.end(), [&](const RouteInfo& r) { return same(r, want); }))
            f.check(check, Status::fail, route + " is not routed through " + n.bridge + " (its route was deleted)",
                    "route-deleted",
                    "route " + route + " through " + n.bridge + " was deleted outside kvmnet" +
                        (o.route_problem.empty() ? "" : "; " + o.route_problem),
                    Rank::route_deleted);
        else if (std::any_of(o.routes->routes.begin(), o.routes->routes.end(),
                             [&](const RouteInfo& r) { return same(r, want); }))
            f.pass(check, route + " is routed through " + n.bridge);
    }
}

void ports(const model::Network& n, const Observed& o, Findings& f)
{
    if (o.ports)
        for (const model::Port& p : n.ports) {
            const auto seen = o.ports->find(p.name);
            const std::optional<LinkInfo> link = seen == o.ports->end() ? std::nullopt : seen->second;
            const auto problem = o.port_problems.find(p.name);
            if (problem != o.port_problems.end())
                f.fail("port " + p.name, problem->second);
            else if (!link)
                f.warn("port " + p.name, p.name + " does not exist (the guest is not running?)");
            else if (!o.bridge || link->master_index != o.bridge->index)
                f.fail("port " + p.name, p.name + " is not a port of " + n.bridge);
            else
                f.pass("port " + p.name, p.name + " is a port of " + n.bridge + (link->up ? "" : " (down)"));
        }
    if (!o.mac_conflict.empty())
        f.check("mac-conflict", Status::fail, o.mac_conflict, "mac-conflict", o.mac_conflict, Rank::mac_conflict);
}

void forwarding(const model::Network& n, const Observed& o, Findings& f)
{
    if (!needs_forwarding(n)) return;
    if (!o.forwarding_problem.empty()) f.state_only("ip-forward-off", o.forwarding_problem, Rank::ip_forward_off);
    if (o.ip_forward) {
        if (is_one(o.ip_forward))
            f.pass("ip-forward", "net.ipv4.ip_forward is 1");
        else
            f.fail("ip-forward",
                   "net.ipv4.ip_forward is " +
                       (o.ip_forward->empty() ? "unreadable" : o.ip_forward->substr(0, o.ip_forward->find('\n'))) +
                       ": guests cannot reach other networks");
    }
    if (n.ipv6 && o.ipv6_forward) {
        if (is_one(o.ipv6_forward))
            f.pass("ipv6-forward", "net.ipv6.conf.all.forwarding is 1");
        else
            f.fail("ipv6-forward", "net.ipv6.conf.all.forwarding is not 1: guests' IPv6 is not routed");
    }
}

void dnsmasq(const model::Network& n, const Observed& o, Findings& f)
{
    if (!o.dnsmasq_problem.empty()) f.state_only("dnsmasq-restarting", o.dnsmasq_problem, Rank::dnsmasq_restarting);
    if (n.mode == model::Mode::bridge || !n.ipv4 || !o.listeners) return;
    if (o.dnsmasq_state != "running") {
        f.fail("dnsmasq",
               "dnsmasq is " + o.dnsmasq_state + (o.dnsmasq_problem.empty() ? "" : ": " + o.dnsmasq_problem));
        return;
    }
    std::vector<std::string> missing;
    if (!listens(*o.listeners, false, 53)) missing.push_back("DNS (udp 53)");
    if (n.ipv4->dhcp && !listens(*o.listeners, false, 67)) missing.push_back("DHCP (udp 67)");
    if (missing.empty())
        f.pass("dnsmasq", "dnsmasq is running (pid " + std::to_string(o.dnsmasq_pid) + ") and serving DNS" +
                              (n.ipv4->dhcp ? " and DHCP" : ""));
    else
        f.fail("dnsmasq", "dnsmasq runs but nothing listens for " + missing.front());
}

std::string joined(const std::vector<std::string>& parts, const std::string& last_separator)
{
    std::string out;
    for (std::size_t i = 0; i < parts.size(); ++i)
        out.append(i == 0 ? "" : i + 1 == parts.size() ? last_separator : ", ").append(parts[i]);
    return out;
}

void firewall(const model::Network& n, const Observed& o, Findings& f)
{
    if (!o.firewall_problem.empty()) f.state_only(o.firewall_problem_code, o.firewall_problem, Rank::firewall);
    if (!o.firewalld_problem.empty()) f.state_only("firewalld", o.firewalld_problem, Rank::firewalld);
    std::vector<ChainJudgement> judged;
    if (o.foreign_rules) judged = judge_foreign_chains(*o.foreign_rules, n, table_name);
    const auto judgement = [&](const std::string& family, const std::string& table,
                               const std::string& name) -> const ChainJudgement* {
        for (const auto& j : judged)
            if (j.family == family && j.table == table && j.name == name) return &j;
        return nullptr;
    };
    // While another program's chain drops what the guests send or are sent,
    // the network is degraded: the first such chain is the reason.
    for (const auto& j : judged)
        if (j.cuts_off()) {
            f.state_only("foreign-firewall",
                         "chain " + j.family + " " + j.table + " " + j.name + " (hook " + j.hook + ", policy " +
                             j.policy + ") of another program drops the guests' " + joined(j.cut, " and ") +
                             "; kvmnetctl diagnose " + n.name + " says what to type",
                         Rank::foreign_firewall);
            break;
        }
    if (!o.firewall) return;
    const FirewallView& fw = *o.firewall;
    if (!fw.error.empty()) f.fail("firewall", "cannot list nftables chains: " + fw.error);
    std::set<std::string> ours;
    for (const auto& c : fw.chains)
        if (c.family == "inet" && c.table == fw.table) ours.insert(c.name);
    const auto missing = std::find_if(fw.planned_chains.begin(), fw.planned_chains.end(),
                                      [&](const std::string& c) { return !ours.count(c); });
    if (ours.empty())
        f.fail("firewall", "table inet " + fw.table + " is missing");
    else if (missing != fw.planned_chains.end())
        f.fail("firewall", "table inet " + fw.table + " lacks chain " + *missing);
    else
        f.pass("firewall",
               "table inet " + fw.table + " has its " + std::to_string(fw.planned_chains.size()) + " chains");

    // Other programs' base chains on the forward and input hooks that drop
    // by default (Docker's iptables FORWARD DROP, ufw's default deny, a
    // firewall's default-deny) drop guests' routed traffic (forward) or
    // their DHCP and DNS (input), unless they accept it themselves: an
    // accept in our chain does not override a drop in theirs. So does a
    // chain whose drop rule certainly applies to them. Each warning says
    // what to type (docs/firewalls.md) and, when the rules were read, what
    // drops (the rule, or the policy and the rule that counted the drops).
    const auto has_chain = [&](const std::string& family, const std::string& table, const std::string& name) {
        return std::any_of(fw.chains.begin(), fw.chains.end(), [&](const plan::ChainInfo& c) {
            return c.family == family && c.table == table && c.name == name;
        });
    };
    for (const auto& c : fw.chains) {
        if (!c.base || (c.hook != "forward" && c.hook != "input")) continue;
        if (c.family == "inet" && c.table == fw.table) continue;
        if (c.family != "ip" && c.family != "ip6" && c.family != "inet" && c.family != "bridge") continue;
        if (c.family == "ip6" && !n.ipv6) continue;
        if (n.mode == model::Mode::bridge) continue;  // the host's own firewall governs its bridge
        const ChainJudgement* j = judgement(c.family, c.table, c.name);
        const bool cuts = j && j->cuts_off();
        if (c.policy != "drop" && !cuts) continue;
        const std::string detail = j ? j->drop_detail() : std::string();
        const std::string where =
            "chain " + c.family + " " + c.table + " " + c.name + " (hook " + c.hook + ", policy " + c.policy + ")";
        if (c.policy != "drop") {
            const std::string family_table = c.family + " " + c.table + " " + c.name;
            f.warn("foreign-firewall",
                   where + " drops guests' " + joined(j->cut, " and ") + detail +
                       "; let them through with: nft insert rule " + family_table + " iifname " + n.bridge +
                       (c.hook == "forward"
                            ? " accept; nft insert rule " + family_table + " oifname " + n.bridge + " accept"
                            : " udp dport { 53, 67 } accept; nft insert rule " + family_table + " iifname " + n.bridge +
                                  " tcp dport 53 accept"));
            continue;
        }
        const bool ufw =
            has_chain(c.family, c.table, "ufw-before-forward") || has_chain(c.family, c.table, "ufw6-before-forward");
        const bool docker = c.hook == "forward" && c.table == "filter" && has_chain(c.family, "filter", "DOCKER-USER");
        // Read and judged: the chain lets all of the guests' traffic
        // through (its owner's rules for the bridge are there).
        const bool lets_through = j && j->judged && !cuts;
        if (docker) {
            const std::string tool = c.family == "ip6" ? "ip6tables" : "iptables";
            if (fw.docker_user_rules && n.firewall_integration && fw.docker_user_rules->count(c.family) &&
                fw.docker_user_rules->at(c.family) == 2)
                f.pass("foreign-firewall",
                       where + " is Docker's; kvmnet's accept rules for " + n.bridge + " are in its DOCKER-USER chain");
            else if (lets_through)
                f.pass("foreign-firewall", where + " is Docker's and lets the guests' traffic on " + n.bridge +
                                               " through (rules in its DOCKER-USER chain)");
            else
                f.warn("foreign-firewall",
                       where + " is Docker's and drops guests' forwarded traffic" +
                           (fw.docker_user_rules && n.firewall_integration ? "" : " (firewall integration is off)") +
                           "; let them through with: " + tool + " -I DOCKER-USER -i " + n.bridge + " -j ACCEPT; " +
                           tool + " -I DOCKER-USER -o " + n.bridge + " -j ACCEPT" + detail);
        } else if (lets_through) {
            f.pass("foreign-firewall", where + (ufw ? " is ufw's and" : "") + " lets the guests' traffic on " +
                                           n.bridge + " through (its own rules accept it)");
        } else if (ufw) {
            // ufw's input rules are for both families: its ip6 chain needs
            // DNS, and DHCPv6 when the network serves it.
            const bool dhcp6 = n.ipv6 && !n.ipv6->ranges.empty();
            const std::string input =
                c.family == "ip6" ? std::string(dhcp6 ? "DNS and DHCPv6" : "DNS") +
                                        "; let them through with: ufw allow in on " + n.bridge + " to any port 53" +
                                        (dhcp6 ? "; ufw allow in on " + n.bridge + " to any port 547 proto udp" : "")
                                  : "DHCP and DNS; let them through with: ufw allow in on " + n.bridge +
                                        " to any port 67 proto udp; ufw allow in on " + n.bridge + " to any port 53";
            f.warn("foreign-firewall",
                   where + " is ufw's and drops guests' " +
                       (c.hook == "forward" ? "forwarded traffic; let them through with: ufw route allow in on " +
                                                  n.bridge + "; ufw route allow out on " + n.bridge
                                            : input) +
                       detail);
        } else if ((c.family == "ip" || c.family == "ip6") && c.table == "filter" &&
                   (c.name == "FORWARD" || c.name == "INPUT")) {
            // iptables' own table (iptables-nft): its tool, not nft, is the
            // one to write it with. Docker 20.10 with --ip6tables has a
            // FORWARD drop in ip6 filter but no DOCKER-USER there.
            const std::string tool = c.family == "ip6" ? "ip6tables" : "iptables";
            const bool docker_chain = has_chain(c.family, c.table, "DOCKER");
            f.warn("foreign-firewall",
                   where + (docker_chain ? " is Docker's (it has no DOCKER-USER chain there)" : "") +
                       " and drops guests' " +
                       (c.hook == "forward"
                            ? "forwarded traffic; let them through with: " + tool + " -I " + c.name + " -i " +
                                  n.bridge + " -j ACCEPT; " + tool + " -I " + c.name + " -o " + n.bridge + " -j ACCEPT"
                            : "DHCP and DNS; let them through with: " + tool + " -I " + c.name + " -i " + n.bridge +
                                  " -p udp -m multiport --dports 53,67" + " -j ACCEPT; " + tool + " -I " + c.name +
                                  " -i " + n.bridge + " -p tcp --dport 53 -j ACCEPT") +
                       detail);
        } else {
            const std::string family_table = c.family + " " + c.table + " " + c.name;
            f.warn("foreign-firewall",
                   where + " drops guests' " +
                       (c.hook == "forward"
                            ? "forwarded traffic unless it accepts " + n.bridge +
                                  " itself; let them through with: nft insert rule " + family_table + " iifname " +
                                  n.bridge + " accept; nft insert rule " + family_table + " oifname " + n.bridge +
                                  " accept"
                            : "DHCP and DNS unless it accepts them on " + n.bridge +
                                  "; let them through with: nft insert rule " + family_table + " iifname " + n.bridge +
                                  " udp dport { 53, 67 } accept; nft insert rule " + family_table + " iifname " +
                                  n.bridge + " tcp dport 53 accept") +
                       detail);
        }
    }
}

}  // namespace

bool needs_forwarding(const model::Network& n) { return n.mode == model::Mode::nat || n.mode == model::Mode::routed; }

const char* status_name(Status status)
{
    switch (status) {
    case Status::pass: return "pass";
    case Status::warn: return "warn";
    case Status::fail: return "fail";
    }
    return "fail";
}

// BGP EVPN through FRR: with no session established the network is
// degraded (evpn-session): its guests on this host work, but it is cut off
// from the other hosts' guests (FRR installs no remote MACs and withdraws
// none). One session of several down is "partial": the check fails, the
// state stays active (EvpnState says it).
void evpn(const Observed& o, Findings& f)
{
    if (!o.evpn) return;
    const EvpnView& v = *o.evpn;
    const bool none_up = !v.sessions.empty() && std::none_of(v.sessions.begin(), v.sessions.end(),
                                                             [](const auto& s) { return s.second == "Established"; });
    const auto report = [&](std::string detail) {
        if (none_up)
            f.check("evpn", Status::fail, detail, "evpn-session", detail, Rank::evpn_session);
        else
            f.fail("evpn", std::move(detail));
    };
    if (!v.problem.empty()) {
        report("kvmnet's part of FRR's configuration is not applied: " + v.problem);
        return;
    }
    if (v.state == "frr-unreachable") {
        // v.error already says that FRR does not answer, and why.
        report("BGP EVPN not established: " + v.error + "; FRR runs outside kvmnet, see docs/overlay.md");
        return;
    }
    std::string up;
    std::string down;
    for (const auto& [neighbor, state] : v.sessions) {
        const bool established = state == "Established";
        std::string& list = established ? up : down;
        if (!list.empty()) list.append(", ");
        list.append(neighbor);
        if (!established) list.append(" (").append(state).append(")");
    }
    if (down.empty())
        f.pass("evpn", v.sessions.empty() ? "BGP EVPN: no neighbours to peer with" : "BGP EVPN established with " + up);
    else
        report("BGP EVPN not established with " + down + (up.empty() ? "" : "; established with " + up));
}

Drift drift(const model::Network& n, const Observed& o)
{
    Findings f;
    if (!o.running) {
        stopped_network(n, o, f);
        return std::move(f.drift);
    }
    links(n, o, f);
    gateway_addresses(n, o, f);
    routes(n, o, f);
    ports(n, o, f);
    forwarding(n, o, f);
    dnsmasq(n, o, f);
    firewall(n, o, f);
    evpn(o, f);
    if (!o.stored_problem.empty())
        f.state_only(o.without_document ? "document-lost" : "document-unparsable", o.stored_problem, Rank::document);
    // A repair deferred by the budget says so (and what it repairs);
    // its code says the daemon has stopped repairing for now.
    if (!o.repair_wait.empty()) f.state_only("repair-budget", o.repair_wait, Rank::waiting);
    return std::move(f.drift);
}

Drift::Reason Drift::state() const
{
    const Finding* worst = nullptr;
    const Finding* waiting = nullptr;
    for (const Finding& finding : findings) {
        if (finding.code.empty()) continue;
        if (finding.rank == static_cast<int>(Rank::waiting))
            waiting = &finding;
        else if (!worst || finding.rank < worst->rank)
            worst = &finding;
    }
    Reason r;
    if (worst) r = {worst->code, worst->reason};
    if (waiting) {
        r.reason.append(r.reason.empty() ? "" : "; ").append(waiting->reason);
        r.code = "repair-budget";
    }
    return r;
}

Status Drift::verdict() const
{
    Status worst = Status::pass;
    for (const Finding& finding : findings) {
        if (finding.check.empty()) continue;
        if (finding.status == Status::fail) return Status::fail;
        if (finding.status == Status::warn) worst = Status::warn;
    }
    return worst;
}

}  // namespace kvmnet::plan
