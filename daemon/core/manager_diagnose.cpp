// Diagnose: what a person asks when a guest has no network. It observes
// everything plan::drift checks (links, addresses, sysctls, sockets, the
// nftables chains of every table) and lists its findings; the network's
// state is the other view of the same findings (Manager::assess). It only
// reads; nothing is repaired here.
#include "core/manager.hpp"

#include "core/firewalld.hpp"
#include "core/foreign_firewall.hpp"

#include "plan/planner.hpp"

namespace kvmnet::core {

plan::Observed Manager::observe(const Entry& e, bool full) const
{
    const model::Network& n = e.spec;
    plan::Observed o;
    o.running = is_running(e.state);
    o.bridge = links_.find_link(n.bridge);
    if (!o.running) return o;
    if (!n.uplink.empty()) o.uplink = links_.find_link(n.uplink);
    o.dnsmasq_state = dnsmasq_state(n.name);
    o.dnsmasq_pid = e.dnsmasq ? e.dnsmasq->pid() : 0;
    o.dnsmasq_problem = e.dnsmasq ? e.dnsmasq->problem() : std::string();
    o.port_problems = e.port_problems;
    o.mac_conflict = e.mac_watch.conflict();
    o.firewall_problem = e.firewall_problem;
    o.firewall_problem_code = e.firewall_problem_code;
    if (firewalld_ && options_.firewall_integration && Firewalld::wanted(n))
        o.firewalld_problem = firewalld_->problem_of(n.bridge);
    o.forwarding_problem = forwarding_problem_;
    o.stored_problem = e.stored_problem;
    o.without_document = e.without_document;
    o.repair_wait = e.repair_wait;
    o.route_problem = e.route_problem;
    // Diagnose reads them afresh, for the counters as they are now.
    o.foreign_rules = full ? read_foreign_rules(firewall_, options_.nft, plan::table_name) : foreign_rules_;
    // The state takes FRR's sessions as last polled (vtysh is slow); Diagnose asks now.
    o.evpn = evpn_view(n.name, full);
    if (!full) {
        o.routes = e.routes_seen;
        return o;
    }

    o.addresses = links_.list_addresses();
    if (o.bridge) o.routes = routes_through(o.bridge->index, links_.list_routes());
    o.ports.emplace();
    for (const model::Port& p : n.ports)
        (*o.ports)[p.name] = links_.find_link(p.name);
    if (needs_forwarding(n)) {
        o.ip_forward = links_.read_sysctl(ip_forward_key).value_or("");
        if (n.ipv6) o.ipv6_forward = links_.read_sysctl(ipv6_forwarding_key).value_or("");
    }
    // Sockets are listed only for a dnsmasq that should be serving.
    o.listeners.emplace();
    if (n.ipv4 && o.dnsmasq_state == "running") o.listeners = links_.list_listeners();

    const plan::Table planned = plan::build_ruleset(active_specs());
    plan::FirewallView firewall{planned.name, {}, {}, {}};
    for (const plan::Chain& c : planned.chains)
        firewall.planned_chains.push_back(c.name);
    try {
        firewall.chains = firewall_.list_chains();
    } catch (const std::exception& err) {
        firewall.error = err.what();
    }
    if (docker_user_) {
        firewall.docker_user_rules.emplace();
        for (const std::string family : {"ip", "ip6"})
            (*firewall.docker_user_rules)[family] = docker_user_->rules_of(family, n.name);
    }
    o.firewall = std::move(firewall);
    return o;
}

namespace {
nlohmann::json report(const model::Network& n, State state, const std::string& reason, const plan::Drift& drift)
{
    nlohmann::json checks = nlohmann::json::array();
    for (const plan::Finding& f : drift.findings)
        if (!f.check.empty())
            checks.push_back({{"check", f.check}, {"status", plan::status_name(f.status)}, {"detail", f.detail}});
    return {{"network", n.name},
            {"state", state_name(state)},
            {"state_reason", reason},
            {"verdict", plan::status_name(drift.verdict())},
            {"checks", checks}};
}
}  // namespace

nlohmann::json Manager::diagnose(const std::string& name) const
{
    const Entry& e = entry(name);
    return report(e.spec, e.state, e.reason, plan::drift(e.spec, observe(e, true)));
}

void Manager::diagnose(const std::string& name, std::function<void(nlohmann::json report)> done)
{
    const Entry& e = entry(name);
    plan::Drift drift = plan::drift(e.spec, observe(e, true));
    if (!firewalld_) return done(report(e.spec, e.state, e.reason, drift));
    // firewalld is asked over the bus, so here rather than in the pure
    // drift, and without waiting: a hung firewalld must not hold the loop.
    model::Network n = e.spec;
    n.firewall_integration = n.firewall_integration && options_.firewall_integration;
    firewalld_->check(
        n, is_running(e.state),
        [n, state = e.state, reason = e.reason, drift = std::move(drift),
         done = std::move(done)](std::optional<FirewalldCheck> check) mutable {
            if (check)
                drift.findings.push_back(
                    {"firewalld", check->ok ? plan::Status::pass : plan::Status::warn, check->detail, {}, {}, 0});
            done(report(n, state, reason, drift));
        });
}

}  // namespace kvmnet::core
