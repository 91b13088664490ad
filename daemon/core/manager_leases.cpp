// DHCP on a running network: dnsmasq's leases (read, and watched for lease
// events) and static hosts changed without restarting dnsmasq.
#include "core/manager.hpp"

#include "core/evpn.hpp"
#include "core/log.hpp"
#include "plan/leases.hpp"
#include "plan/planner.hpp"
#include "store/files.hpp"
#include "store/store.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <csignal>

namespace kvmnet::core {
namespace {

std::string lower(std::string s)
{
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return s;
}

bool has_dhcp(const model::Network& n) { return n.ipv4 && n.ipv4->dhcp; }

// dnsmasq keeps a lease file for DHCPv4 and stateful DHCPv6 alike.
bool has_leases(const model::Network& n) { return has_dhcp(n) || (n.ipv6 && !n.ipv6->ranges.empty()); }

}  // namespace

nlohmann::json Manager::leases(const std::string& name, bool remote) const
{
    const Entry& e = entry(name);
    if (!has_leases(e.spec) || e.state == State::inactive) return nlohmann::json::array();
    const auto text = store::read_file(layout_.dnsmasq_leases(name));
    nlohmann::json leases = plan::to_json(plan::parse_leases(text.value_or("")),
                                          has_dhcp(e.spec) ? e.spec.ipv4->hosts : std::vector<model::DhcpHost>{},
                                          e.spec.ipv6 ? e.spec.ipv6->hosts : std::vector<model::Dhcp6Host>{});
    // With EVPN, FRR knows the guests of the other hosts (type-2 routes).
    if (remote && e.spec.overlay && e.spec.overlay->evpn && is_running(e.state) && evpn_->wanted()) {
        evpn_->refresh_if_stale();
        plan::add_evpn_lease_hosts(leases, evpn_->status(), e.spec.overlay->vni);
    }
    return leases;
}

std::size_t Manager::lease_count(const std::string& name) const
{
    const Entry& e = entry(name);
    if (!has_leases(e.spec) || e.state == State::inactive) return 0;
    if (e.lease_watch) return e.lease_watch->leases().size();
    return plan::parse_leases(store::read_file(layout_.dnsmasq_leases(name)).value_or("")).size();
}

void Manager::watch_leases(Entry& e)
{
    e.lease_watch.reset();
    if (!has_leases(e.spec)) return;
    const std::string name = e.spec.name;
    try {
        e.lease_watch = std::make_unique<LeaseWatch>(
            loop_, directory_watch(), layout_.dnsmasq_leases(name),
            [this, name](const std::vector<plan::LeaseEvent>& events) {
                for (const auto& ev : events) {
                    log_info("network " + name + ": lease " + ev.event + ": " + ev.lease.mac + " " + ev.lease.ip +
                                 (ev.lease.hostname.empty() ? "" : " " + ev.lease.hostname),
                             name, MessageId::lease_changed);
                    if (listener_)
                        listener_->lease_changed(name, ev.event, ev.lease.mac, ev.lease.ip, ev.lease.hostname);
                }
            });
    } catch (const std::exception& err) {
        // Leases still work; only their signals are missing.
        log_error("network " + name + ": not watching DHCP leases: " + err.what(), name);
    }
}

// The next document of a host change: e's, with its forwards set aside
// (`aside`) when none of them names a static host. Then no host change
// can change or invalidate a forward (a host's name is unique, and a
// forward only names a host that exists), so neither the copy nor the
// validation of a few hundred forwards is needed: commit_hosts moves e's
// forwards into the new document, and the network's forward cache holds.
model::Network Manager::host_change_base(Entry& e, bool& aside)
{
    aside = std::none_of(e.spec.forwards.begin(), e.spec.forwards.end(),
                         [](const model::PortForward& f) { return !f.guest_name.empty(); });
    if (!aside) {
        forget_forwards(e.spec.name);
        return e.spec;
    }
    std::vector<model::PortForward> forwards;
    forwards.swap(e.spec.forwards);
    try {
        model::Network next = e.spec;
        e.spec.forwards.swap(forwards);
        return next;
    } catch (...) {
        e.spec.forwards.swap(forwards);
        throw;
    }
}

void Manager::add_host(const std::string& name, const std::string& host_document)
{
    Entry& e = forwards_changeable(name);
    const auto parsed = model::parse_any_dhcp_host(host_document);
    // The whole document is validated; errors about the new entry name it "host".
    const auto validate_with_entry = [&](const model::Network& next, const std::string& entry_path) {
        try {
            model::validate(next);
        } catch (const Error& err) {
            std::string message = err.what();
            if (message.rfind(entry_path, 0) == 0) message = "host" + message.substr(entry_path.size());
            throw Error(err.kind(), message);
        }
        model::validate_against(next, configured_except(name));
    };
    if (const auto* v6 = std::get_if<model::Dhcp6Host>(&parsed)) {
        const model::Dhcp6Host& host = *v6;
        if (!e.spec.ipv6 || e.spec.ipv6->ranges.empty())
            throw invalid_field("ipv6.dhcp",
                                "network '" + name + "' serves no DHCPv6; static IPv6 hosts need ipv6.dhcp.ranges");
        const std::string client = host.duid.empty() ? host.mac : host.duid;
        for (const auto& h : e.spec.ipv6->hosts) {
            if (!host.mac.empty() && h.mac == host.mac)
                throw Error(ErrorKind::Conflict, "host.mac: " + host.mac + " already has a static IPv6 host (" +
                                                     h.ip.str() + "); remove it first");
            if (!host.duid.empty() && h.duid == host.duid)
                throw Error(ErrorKind::Conflict, "host.duid: " + host.duid + " already has a static IPv6 host (" +
                                                     h.ip.str() + "); remove it first");
            if (h.ip == host.ip)
                throw Error(ErrorKind::Conflict, "host.ip: " + host.ip.str() + " is already reserved for " +
                                                     (h.duid.empty() ? h.mac : h.duid));
            if (!host.name.empty() && lower(h.name) == lower(host.name))
                throw Error(ErrorKind::Conflict,
                            "host.name: " + host.name + " is already the name of " + (h.duid.empty() ? h.mac : h.duid));
        }
        if (e.spec.ipv6->hosts.size() >= model::max_dhcp_hosts)
            throw invalid_field("ipv6.dhcp.hosts", "more than " + std::to_string(model::max_dhcp_hosts) + " entries");
        // dnsmasq would not hand out an address another client holds.
        for (const auto& lease : leases(name)) {
            if (lease.value("ip", "") != host.ip.str()) continue;
            const bool same_client =
                host.duid.empty() ? lease.value("mac", "") == host.mac : lease.value("duid", "") == host.duid;
            if (!same_client)
                throw Error(ErrorKind::Conflict,
                            "host.ip: " + host.ip.str() + " is leased to " +
                                lease.value("duid", lease.value("mac", "another client")) +
                                " at the moment; choose another address or wait for the lease to end");
        }
        bool aside = false;
        model::Network next = host_change_base(e, aside);
        next.ipv6->hosts.push_back(host);
        validate_with_entry(next, "ipv6.dhcp.hosts[" + std::to_string(next.ipv6->hosts.size() - 1) + "]");
        commit_hosts(e, std::move(next), aside);
        log_info("network " + name + ": static IPv6 host " + client + " " + host.ip.str() + " added", name);
        return;
    }
    const model::DhcpHost& host = std::get<model::DhcpHost>(parsed);
    if (!has_dhcp(e.spec))
        throw invalid_field("ipv4.dhcp",
                            "network '" + name + "' serves no DHCP; static hosts need an ipv4.dhcp object");
    for (const auto& h : e.spec.ipv4->hosts) {
        if (h.mac == host.mac)
            throw Error(ErrorKind::Conflict,
                        "host.mac: " + host.mac + " already has a static host (" + h.ip.str() + "); remove it first");
        if (h.ip == host.ip)
            throw Error(ErrorKind::Conflict, "host.ip: " + host.ip.str() + " is already reserved for " + h.mac);
        if (!host.name.empty() && lower(h.name) == lower(host.name))
            throw Error(ErrorKind::Conflict, "host.name: " + host.name + " is already the name of " + h.mac);
    }
    if (e.spec.ipv4->hosts.size() >= model::max_dhcp_hosts)
        throw invalid_field("ipv4.dhcp.hosts", "more than " + std::to_string(model::max_dhcp_hosts) + " entries");
    // dnsmasq would not hand out an address another guest holds.
    for (const auto& lease : leases(name))
        if (lease["ip"] == host.ip.str() && lease["mac"] != host.mac)
            throw Error(ErrorKind::Conflict, "host.ip: " + host.ip.str() + " is leased to " +
                                                 lease["mac"].get<std::string>() +
                                                 " at the moment; choose another address or wait for the lease to end");

    bool aside = false;
    model::Network next = host_change_base(e, aside);
    next.ipv4->hosts.push_back(host);
    validate_with_entry(next, "ipv4.dhcp.hosts[" + std::to_string(next.ipv4->hosts.size() - 1) + "]");
    commit_hosts(e, std::move(next), aside);
    log_info("network " + name + ": static host " + host.mac + " " + host.ip.str() + " added", name);
}

// MAC names the static hosts of both families with that MAC, or the IPv6
// host with that DUID: each of them goes.
void Manager::remove_host(const std::string& name, const std::string& mac)
{
    Entry& e = forwards_changeable(name);
    const std::string wanted = lower(mac);
    const bool dhcp6 = e.spec.ipv6 && !e.spec.ipv6->ranges.empty();
    if (!has_dhcp(e.spec) && !dhcp6)
        throw Error(ErrorKind::NotFound, "network '" + name + "' serves no DHCP and has no static hosts");
    bool aside = false;
    model::Network next = host_change_base(e, aside);
    std::size_t removed = 0;
    if (has_dhcp(next))
        removed += std::erase_if(next.ipv4->hosts, [&](const model::DhcpHost& h) { return h.mac == wanted; });
    if (dhcp6)
        removed += std::erase_if(next.ipv6->hosts,
                                 [&](const model::Dhcp6Host& h) { return h.mac == wanted || h.duid == wanted; });
    if (removed == 0)
        throw Error(ErrorKind::NotFound,
                    "mac: network '" + name + "' has no static host with MAC " + mac + (dhcp6 ? " or DUID" : ""));
    model::validate(next);
    commit_hosts(e, std::move(next), aside);
    log_info("network " + name + ": static host " + wanted + " removed", name);
}

void Manager::commit_hosts(Entry& e, model::Network next, bool forwards_aside)
{
    const std::string name = e.spec.name;
    const bool running = is_running(e.state);
    if (forwards_aside) {
        // e's forwards name no host (host_change_base): they are the new
        // document's as they are, in the same vector.
        // The document's text is made and written on the store's writer
        // thread, not here: of several host changes of one network in a
        // batch only the last is made at all (DurableWriter::replace_made).
        // A write that fails there (a full disk) puts the hosts back
        // (document_lost: dnsmasq re-reads them, no restart) before the
        // batch's callers hear the error.
        const std::uint64_t forwards_part = forward_cache(e).revision_part;
        next.forwards.swap(e.spec.forwards);
        try {
            store_.save(next, reads_.revision(next, forwards_part), store::Store::Text::on_writer);
        } catch (...) {
            next.forwards.swap(e.spec.forwards);
            throw;
        }
        const bool dnsmasq_reads_hosts =
            running && (has_leases(next) || !next.dns.hosts.empty() || !e.spec.dns.hosts.empty());
        e.spec = std::move(next);
        reload_hosts(e, dnsmasq_reads_hosts);
        return;
    }
    forget_forwards(name);
    // Forwards that name a static host follow its address.
    model::resolve_forward_guests(next);
    const bool forwards_changed = running && next.forwards != e.spec.forwards;
    if (forwards_changed) {
        auto active = active_networks("", name);
        active.push_back(&next);
        apply_firewall(active);
    }
    // A change that cannot be stored takes the forwards' new addresses out
    // of the table again (e.spec is still the old document).
    const auto restore_table = [&] {
        if (!forwards_changed) return;
        try {
            apply_firewall(active_networks());
        } catch (const std::exception& err) {
            log_error("network " + name + ": restoring the table: " + err.what(), name);
        }
    };
    // The document first, the one durable write (fsynced) of the change.
    // Its revision made here is the one the next reads ask for (kept).
    try {
        const bool same_forwards = forwards_changed ? false : next.forwards == e.spec.forwards;
        store_.save(next, reads_.revision(next, same_forwards ? forward_cache(e).revision_part
                                                              : store::forwards_hash(next.forwards)));
    } catch (...) {
        restore_table();
        throw;
    }
    const bool dnsmasq_reads_hosts =
        running && (has_leases(next) || !next.dns.hosts.empty() || !e.spec.dns.hosts.empty());
    e.spec = std::move(next);
    reload_hosts(e, dnsmasq_reads_hosts);
}

void Manager::reload_hosts(Entry& e, bool dnsmasq_reads_hosts)
{
    const std::string& name = e.spec.name;
    if (!dnsmasq_reads_hosts) {
        if (listener_) listener_->network_changed(name);
        return;
    }
    // Only dnsmasq.hosts and dnsmasq.names depend on the hosts and dns.hosts
    // (the caller made sure the config stays the same), and dnsmasq re-reads
    // both on SIGHUP: no restart, no lease lost. They live in the runtime
    // directory, which the next start rewrites from the document anyway.
    try {
        dnsmasq_of(e).reload_hosts(plan::plan_dnsmasq(e.spec, layout_.network_dir(name), dnsmasq_user_));
    } catch (const std::exception& err) {
        // A dnsmasq of another user (adopted after an upgrade from a root
        // daemon) keeps serving the old hosts: the state says so.
        dnsmasq_of(e).set_problem(err.what());
        log_error("network " + name + ": " + err.what(), name);
        assess(e);
    }
    if (listener_) listener_->network_changed(name);
}

}  // namespace kvmnet::core
