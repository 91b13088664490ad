// Guest ports: taps created for QEMU (owned by the user who runs it) or
// existing interfaces enslaved to a network's bridge, with MAC, isolation,
// VLAN and bandwidth settings; and the MAC-conflict watch over the bridge's
// forwarding database.
#include "core/log.hpp"
#include "core/manager.hpp"
#include "core/undo.hpp"
#include "plan/planner.hpp"
#include "plan/route_text.hpp"

#include <algorithm>
#include <optional>

namespace kvmnet::core {
namespace {

using json = nlohmann::json;

constexpr std::uint64_t fdb_poll_usec = 1'000'000;

// The guest's MAC on the host side of its port, libvirt's way: first octet
// 0xfe, so the bridge never takes it as its own address and never drops the
// guest's frames as "own source address".
model::Mac host_side_mac(model::Mac mac)
{
    mac.bytes[0] = 0xfe;
    return mac;
}

plan::PortBandwidth bandwidth_of(const model::Port& p)
{
    return {{p.inbound.average, p.inbound.peak, p.inbound.burst},
            {p.outbound.average, p.outbound.peak, p.outbound.burst}};
}

bool has_bandwidth(const model::Port& p) { return p.inbound.average != 0 || p.outbound.average != 0; }

bool has_vlans(const model::Port& p) { return p.vlan_pvid != 0 || !p.vlan_tagged.empty(); }

Error vlans_unsupported()
{
    return Error(ErrorKind::Unsupported, "port.vlan: per-port VLANs need bridge VLAN filtering "
                                         "(CONFIG_BRIDGE_VLAN_FILTERING), which this kernel does not provide");
}

bool link_local6(const model::IpAddress& address)
{
    const model::Ipv6* ip = address.v6();
    return ip && (ip->is_link_local() || ip->is_multicast());
}

// An interface that carries the host's own addresses or routes is the
// host's, not a guest's: enslaved, its addresses stop working and, for the
// uplink, the host loses its gateway. An IPv6 link-local address (and its
// fe80::/64 route) is on every interface that is up, so it does not count.
void check_not_host_interface(plan::LinkAdapter& links, const plan::LinkInfo& link)
{
    std::vector<std::string> reasons;
    for (const auto& a : links.list_addresses_of(link.index))
        if (!link_local6(a.address)) reasons.push_back("the address " + plan::address_text(a));
    for (const auto& r : links.list_routes()) {
        if (r.link_index != link.index || (r.destination && link_local6(*r.destination))) continue;
        // A subnet's own route comes with its address, named above already.
        if (r.protocol == 2 /* RTPROT_KERNEL */ && !reasons.empty()) continue;
        std::string route = r.destination ? "the route to " + plan::destination_text(r) : "the default route";
        if (r.gateway) route += " via " + r.gateway->str();
        if (r.table != 254) route += " (table " + std::to_string(r.table) + ")";
        reasons.push_back(route);
    }
    if (reasons.empty()) return;
    std::string list;
    for (std::size_t i = 0; i < reasons.size() && i < 4; ++i)
        list += (i == 0 ? "" : i + 1 == reasons.size() || i == 3 ? " and " : ", ") + reasons[i];
    if (reasons.size() > 4) list += " (" + std::to_string(reasons.size() - 4) + " more)";
    throw Error(ErrorKind::Conflict, "port: " + link.name + " is a host interface: it carries " + list +
                                         ", which would stop working on a bridge port; a guest port must carry "
                                         "neither (to put a host's uplink on a bridge, use a bridge-mode network "
                                         "with uplink " +
                                         link.name + ")");
}

// What attach is about to change on an existing interface.
model::PortOriginal observe_original(plan::LinkAdapter& links, const plan::LinkInfo& link, int bridge_index)
{
    model::PortOriginal o;
    o.mac = link.mac;
    o.mtu = link.mtu;
    o.up = link.up;
    o.on_bridge = bridge_index != 0 && link.master_index == bridge_index;
    if (o.on_bridge)
        if (const auto flags = links.port_flags(link.name)) {
            o.isolated = flags->isolated;
            o.hairpin = flags->hairpin;
        }
    return o;
}

// Puts an existing interface back the way `p.original` recorded it: shaping
// and VLANs this port added removed, released from the bridge unless it was a
// port already (then its own bridge port flags again), its MAC, MTU and
// up/down state.
void restore_original(plan::LinkAdapter& links, const std::string& bridge_name, const model::Port& p)
{
    const model::PortOriginal& o = *p.original;
    const auto link = links.find_link(p.name);
    if (!link) return;
    const auto bridge = links.find_link(bridge_name);
    const bool on_bridge = bridge && link->master_index == bridge->index;
    if (has_bandwidth(p)) links.set_bandwidth(p.name, {});
    if (on_bridge && o.on_bridge) {
        if (has_vlans(p)) links.set_port_vlans(bridge_name, p.name, 1, {});
        links.set_port_isolated(p.name, o.isolated);
        links.set_port_hairpin(p.name, o.hairpin);
    } else if (on_bridge) {
        links.set_master(p.name, "");
    }
    // Down first where it was down: not every driver changes its MAC while up.
    if (!o.up && link->up) links.set_up(p.name, false);
    if (o.mac && link->mac != o.mac) links.set_mac(p.name, *o.mac);
    if (o.mtu != 0 && link->mtu != o.mtu) links.set_mtu(p.name, o.mtu);
    if (o.up && !link->up) links.set_up(p.name, true);
}

}  // namespace

void Manager::check_port_mac(const Entry& e, const model::Port& p)
{
    if (!p.mac) return;
    const model::Mac mac = *p.mac;
    const std::string text = mac.str();
    for (const auto& l : links_.list_links()) {
        if (l.name == p.name || !l.mac) continue;
        if (l.mac == mac) {
            const std::string role = l.name == e.spec.bridge   ? "the bridge " + l.name
                                     : l.name == e.spec.uplink ? "the uplink " + l.name
                                                               : "the host interface " + l.name;
            throw Error(ErrorKind::Conflict, "port.mac: " + text + " is the MAC address of " + role);
        }
    }
    for (const model::Port& other : e.spec.ports)
        if (other.name != p.name && other.mac == p.mac)
            throw Error(ErrorKind::Conflict, "port.mac: " + text + " is already used by port " + other.name);
    // Someone on the bridge (a guest, or a LAN host in bridge mode) already
    // sends with this MAC from another port.
    if (is_running(e.state)) {
        const auto bridge = links_.find_link(e.spec.bridge);
        const auto port = links_.find_link(p.name);
        if (bridge)
            for (const auto& f : links_.list_fdb(e.spec.bridge))
                if (!f.local && f.mac == mac && (!port || f.port_index != port->index)) {
                    std::string where = "port " + std::to_string(f.port_index);
                    for (const auto& l : links_.list_links())
                        if (l.index == f.port_index) where = l.name;
                    throw Error(ErrorKind::Conflict, "port.mac: " + text + " is already in use on bridge " +
                                                         e.spec.bridge + " behind " + where);
                }
    }
}

void Manager::apply_port(Entry& e, const model::Port& p, const model::Port* previous)
{
    const model::Network& n = e.spec;
    auto link = links_.find_link(p.name);
    if (!link) {
        if (!p.tap) throw Error(ErrorKind::NotFound, "port: there is no interface named " + p.name);
        links_.create_tap(p.name, p.owner, p.group, p.queues > 1);
        link = links_.find_link(p.name);
        if (!link) throw Error(ErrorKind::Kernel, "port: tap " + p.name + " vanished right after it was created");
    }
    const auto bridge = links_.find_link(n.bridge);
    if (!bridge) throw Error(ErrorKind::Kernel, "port: bridge " + n.bridge + " is missing");
    // An interface of the port's name that came (back) as a host interface
    // is not taken, as AttachPort would not take it.
    if (link->master_index != bridge->index && !p.tap) check_not_host_interface(links_, *link);
    if (p.mac && link->mac != host_side_mac(*p.mac)) links_.set_mac(p.name, host_side_mac(*p.mac));
    if (n.mtu != 0 && link->mtu != n.mtu) links_.set_mtu(p.name, n.mtu);
    if (link->master_index != bridge->index) links_.set_master(p.name, n.bridge);
    if (!link->up) links_.set_up(p.name, true);
    links_.set_port_isolated(p.name, p.isolated);
    driver(n).port_attached(n, p.name);
    if (has_vlans(p)) {
        if (!links_.vlan_filtering_supported()) throw vlans_unsupported();
        links_.set_port_vlans(n.bridge, p.name, p.vlan_pvid, p.vlan_tagged);
    } else if (previous && has_vlans(*previous)) {
        // Back to the bridge's default membership (VLAN 1, untagged, as a new port gets it).
        links_.set_port_vlans(n.bridge, p.name, 1, {});
    }
    // Shaping is touched only when this port has (or had) limits, so qdiscs
    // that someone else put on an adopted interface stay as they are.
    if (has_bandwidth(p) || (previous && has_bandwidth(*previous))) links_.set_bandwidth(p.name, bandwidth_of(p));
}

void Manager::attach_ports(Entry& e)
{
    e.port_problems.clear();
    for (const model::Port& p : e.spec.ports) {
        try {
            apply_port(e, p);
        } catch (const std::exception& err) {
            e.port_problems[p.name] = err.what();
            log_warning("network " + e.spec.name + ": port " + p.name + ": " + err.what(), e.spec.name);
        }
    }
    ensure_fdb_poll();
}

void Manager::ensure_fdb_poll()
{
    if (!fdb_timer_) fdb_timer_ = loop_.add_timer(fdb_poll_usec, [this] { poll_fdb(); });
}

void Manager::attach_port(const std::string& name, const std::string& port_document)
{
    Entry& e = changeable(name);
    model::Port p = model::parse_port(port_document);
    // Refused up front, also for a network that is not running (whose ports
    // are only recorded now), so nothing is created or stored in vain.
    if (has_vlans(p) && !links_.vlan_filtering_supported()) throw vlans_unsupported();
    // The whole document must stay valid with the port in it.
    model::Network next = e.spec;
    next.ports.erase(
        std::remove_if(next.ports.begin(), next.ports.end(), [&](const model::Port& q) { return q.name == p.name; }),
        next.ports.end());
    const bool replacing = next.ports.size() != e.spec.ports.size();
    const auto old_entry =
        std::find_if(e.spec.ports.begin(), e.spec.ports.end(), [&](const model::Port& q) { return q.name == p.name; });
    const std::optional<model::Port> previous =
        old_entry == e.spec.ports.end() ? std::nullopt : std::optional<model::Port>(*old_entry);
    next.ports.push_back(p);
    try {
        model::validate(next);
    } catch (const Error& err) {
        // Name the request's field ("port.mac"), not the port's place in the document.
        const std::string place = "ports[" + std::to_string(next.ports.size() - 1) + "]";
        const std::string message = err.what();
        if (message.rfind(place, 0) != 0) throw;
        throw Error(err.kind(), "port" + message.substr(place.size()));
    }
    model::validate_against(next, configured_except(name));
    check_port_mac(e, p);

    const auto existing = links_.find_link(p.name);
    if (existing && p.tap && !replacing)
        throw Error(ErrorKind::AlreadyExists,
                    "port: interface " + p.name + " already exists; attach it without --tap to enslave it as it is");
    // The multiqueue flag is fixed when a tap is made: a replacement that changes it would leave a tap QEMU
    // cannot open as the port says.
    if (existing && p.tap && replacing && previous && previous->tap && (previous->queues > 1) != (p.queues > 1))
        throw Error(ErrorKind::Conflict, "port.queues: tap " + p.name + " exists as a " +
                                             (previous->queues > 1 ? "multiqueue" : "single-queue") +
                                             " tap, which cannot change while it exists; detach the port and "
                                             "attach it again (with QEMU stopped)");
    if (existing && existing->kind == "bridge")
        throw Error(ErrorKind::Conflict, "port: " + p.name + " is a bridge, not a guest interface");
    const auto bridge = links_.find_link(e.spec.bridge);
    if (existing && existing->master_index != 0) {
        if (!bridge || existing->master_index != bridge->index)
            throw Error(ErrorKind::Conflict, "port: " + p.name + " is already enslaved to another bridge");
    }
    if (!existing && !p.tap) throw Error(ErrorKind::NotFound, "port: there is no interface named " + p.name);
    if (existing) check_not_host_interface(links_, *existing);

    // What DetachPort restores: recorded at the first attach of an existing
    // interface (a later one finds it as this port left it), never taken
    // from the caller.
    p.original.reset();
    if (existing && !p.tap) {
        if (!previous)
            p.original = observe_original(links_, *existing, bridge ? bridge->index : 0);
        else
            p.original = previous->original;
    }
    next.ports.back() = p;

    const bool created = !existing && p.tap;
    const bool running = is_running(e.state);
    // Leaves the interface as it was found: a tap we made goes away, an
    // existing interface gets its MAC, MTU, master, state and shaping back.
    const auto undo = [&] {
        try {
            if (created) {
                if (links_.find_link(p.name)) links_.delete_link(p.name);
            } else if (!running) {
                // Nothing was applied.
            } else if (previous) {
                // From what `p` may have left (shaping, VLANs) back to `previous`.
                apply_port(e, *previous, &p);
            } else if (p.original) {
                restore_original(links_, e.spec.bridge, p);
            }
        } catch (const std::exception& err) {
            log_error("rollback of port " + p.name + ": " + err.what());
        }
    };
    try {
        if (running)
            apply_port(e, p, previous ? &*previous : nullptr);
        else if (created)
            // The tap exists from now on, so QEMU can start before the network.
            links_.create_tap(p.name, p.owner, p.group, p.queues > 1);
        // Stored last: a document that cannot be written (full or read-only
        // disk) undoes the kernel side, so disk, memory and kernel agree.
        store_.save(next);
    } catch (...) {
        undo();
        throw;
    }
    e.spec = std::move(next);
    e.port_problems.erase(p.name);
    ensure_fdb_poll();
    log_info("network " + name + ": port " + p.name + " attached", name);
    if (listener_) listener_->network_changed(name);
}

void Manager::detach_port(const std::string& name, const std::string& port_name)
{
    Entry& e = changeable(name);
    auto it = std::find_if(e.spec.ports.begin(), e.spec.ports.end(),
                           [&](const model::Port& p) { return p.name == port_name; });
    if (it == e.spec.ports.end())
        throw Error(ErrorKind::NotFound, "port: network '" + name + "' has no port named " + port_name);
    const model::Port port = *it;
    model::Network next = e.spec;
    next.ports.erase(next.ports.begin() + (it - e.spec.ports.begin()));
    // Stored first: a deleted tap cannot come back as it was (QEMU holds it
    // open), so a document that cannot be written must stop the call before
    // the kernel is touched.
    store_.save(next);
    e.spec = std::move(next);
    e.port_problems.erase(port_name);
    try {
        release_port(e, port);
    } catch (const Error& err) {
        if (listener_) listener_->network_changed(name);
        throw Error(err.kind(), "port " + port_name + " is detached from network '" + name +
                                    "', but putting its interface back failed: " + err.what());
    }
    log_info("network " + name + ": port " + port_name + " detached", name);
    if (listener_) listener_->network_changed(name);
}

json Manager::list_ports(const std::string& name) const
{
    const Entry& e = entry(name);
    auto& links = const_cast<plan::LinkAdapter&>(links_);
    const auto bridge = links.find_link(e.spec.bridge);
    json result = json::array();
    for (const model::Port& p : e.spec.ports) {
        json j = model::to_json(p);
        const auto link = links.find_link(p.name);
        std::string state;
        if (!link)
            state = "missing";
        else if (bridge && link->master_index == bridge->index)
            state = "attached";
        else
            state = "detached";
        j["state"] = state;
        if (auto problem = e.port_problems.find(p.name); problem != e.port_problems.end())
            j["problem"] = problem->second;
        if (link) {
            j["host_mac"] = link->mac ? link->mac->str() : "";
            j["rx_bytes"] = link->stats.rx_bytes;
            j["tx_bytes"] = link->stats.tx_bytes;
            j["rx_packets"] = link->stats.rx_packets;
            j["tx_packets"] = link->stats.tx_packets;
            // The kernel knows whether a tap is multiqueue and how many queues are open on it now; how many
            // QEMU will open is the document's `queues`.
            if (p.tap)
                if (const auto tap = links.tap_info(p.name)) {
                    j["multi_queue"] = tap->multi_queue;
                    j["open_queues"] = tap->open_queues;
                }
        }
        result.push_back(std::move(j));
    }
    return result;
}

void Manager::release_port(Entry& e, const model::Port& port)
{
    const auto link = links_.find_link(port.name);
    if (!link) return;
    if (port.tap) {
        links_.delete_link(port.name);
    } else if (port.original) {
        restore_original(links_, e.spec.bridge, port);
    } else {
        // A port stored before attach recorded the interface's state.
        const auto bridge = links_.find_link(e.spec.bridge);
        if (bridge && link->master_index == bridge->index) links_.set_master(port.name, "");
        if (has_bandwidth(port)) links_.set_bandwidth(port.name, {});
    }
}

void Manager::update_live(Entry& e, const model::Network& next)
{
    const model::Network old = e.spec;
    // The MACs of the ports to apply are checked against the new document
    // before anything changes: bad input changes nothing.
    e.spec = next;
    try {
        for (const auto& step : plan::plan_converge(next, {&old, 0}))
            if (const auto* apply = std::get_if<plan::ApplyPort>(&step))
                for (const model::Port& p : next.ports)
                    if (p.name == apply->name) check_port_mac(e, p);
        // Disk first: a document that cannot be stored changes nothing.
        store_.save(next);
    } catch (...) {
        e.spec = old;
        throw;
    }
    // What a document without an MTU goes back to when the update fails.
    const auto bridge = links_.find_link(next.bridge);
    converge(e, next, {&old, bridge ? bridge->mtu : 0}, Failure::update);
    ensure_fdb_poll();
}

void Manager::note_fdb(Entry& e, const std::string& mac, int port_index)
{
    const auto flap = e.mac_watch.learned(mac, port_index);
    if (!flap) return;
    std::string a = std::to_string(flap->previous), b = std::to_string(flap->port);
    for (const auto& l : links_.list_links()) {
        if (l.index == flap->previous) a = l.name;
        if (l.index == flap->port) b = l.name;
    }
    const std::vector<std::string> ports{std::min(a, b), std::max(a, b)};
    const std::string conflict = "MAC " + mac + " is used behind two ports at once: " + ports[0] + " and " + ports[1];
    const bool is_new = e.mac_watch.report(conflict);
    assess(e);
    if (is_new) {
        log_warning("network " + e.spec.name + ": " + conflict, e.spec.name);
        if (listener_) listener_->mac_conflict(e.spec.name, mac, ports);
    }
}

void Manager::fdb_learned(int bridge_index, const std::string& mac, int port_index)
{
    for (auto& [name, e] : networks_) {
        // Cached index: FDB notifications are frequent, and a netlink lookup
        // per notification and network would be wasted work.
        if (!is_running(e.state) || e.spec.ports.empty() || e.bridge_index != bridge_index) continue;
        note_fdb(e, mac, port_index);
    }
}

// The notifications (fdb_learned) see every move; this poll is the safety
// net for lost notifications and lets a resolved conflict expire.
void Manager::poll_fdb()
{
    fdb_timer_.reset();
    bool any = false;
    for (auto& [name, e] : networks_) {
        if (!is_running(e.state) || e.spec.ports.empty()) continue;
        any = true;
        try {
            for (const auto& f : links_.list_fdb(e.spec.bridge))
                if (!f.local && f.port_index != 0) note_fdb(e, f.mac.str(), f.port_index);
        } catch (const std::exception& err) {
            log_debug("network " + name + ": reading the forwarding database: " + err.what(), name);
        }
        if (e.mac_watch.expire()) assess(e);
    }
    if (any) ensure_fdb_poll();
}

}  // namespace kvmnet::core
