#include "core/driver_overlay.hpp"

#include "core/log.hpp"
#include "model/error.hpp"
#include "plan/planner.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <set>

namespace kvmnet::core {
namespace {

std::set<model::Ipv4> peer_set(const model::Network& n)
{
    // EVPN fills the FDB through FRR: no static flood list of ours.
    if (n.overlay->evpn) return {};
    return {n.overlay->peers.begin(), n.overlay->peers.end()};
}

// The VXLAN device's bridge port. With EVPN, FRR's type-2 routes say where
// each remote MAC is (installed as extern_learn), and zebra puts the remote
// guests' addresses into the bridge's neighbour table: the bridge answers
// ARP/ND for them itself (neigh_suppress) and must not learn MACs from the
// tunnel's traffic, which would race FRR's entries (the setup FRR and
// Proxmox's EVPN zones expect). With static peers nothing else says where a
// remote MAC is: the bridge must learn it from the traffic arriving through
// the tunnel port (else every frame to a remote guest floods to all peers),
// and there is no neighbour table to answer ARP from.
plan::Vxlans::VxlanPortFlags port_flags(const model::Network& n)
{
    return n.overlay->evpn ? plan::Vxlans::VxlanPortFlags{true, false} : plan::Vxlans::VxlanPortFlags{false, true};
}

}  // namespace

OverlayLayer::Underlay OverlayLayer::underlay(const model::Network& n)
{
    const model::Overlay& o = *n.overlay;
    Underlay u;
    const auto addresses = links_.list_addresses();
    if (o.local) {
        const auto it = std::find_if(addresses.begin(), addresses.end(), [&](const plan::AddressInfo& a) {
            return a.address == model::IpAddress(*o.local);
        });
        if (it == addresses.end())
            throw Error(ErrorKind::InvalidArgument, "overlay.local: " + o.local->str() +
                                                        " is not an address of this host (the underlay address of this "
                                                        "host's VXLAN endpoint)");
        u.local = *o.local;
        u.index = it->link_index;
    } else {
        const auto link = links_.find_link(o.local_interface);
        if (!link)
            throw Error(ErrorKind::InvalidArgument,
                        "overlay.local_interface: this host has no interface " + o.local_interface);
        const auto it = std::find_if(addresses.begin(), addresses.end(), [&](const plan::AddressInfo& a) {
            return a.address.is_v4() && a.link_index == link->index;
        });
        if (it == addresses.end())
            throw Error(ErrorKind::InvalidArgument,
                        "overlay.local_interface: " + o.local_interface + " has no IPv4 address to send VXLAN from");
        u.local = *it->address.v4();
        u.index = link->index;
    }
    for (const plan::LinkInfo& l : links_.list_links())
        if (l.index == u.index) u.mtu = l.mtu;
    return u;
}

model::Network OverlayLayer::effective(const model::Network& n)
{
    if (!n.overlay) return n;
    model::Network e = n;
    const Underlay u = underlay(n);
    e.mtu = model::overlay_mtu(n, u.mtu);
    if (!e.overlay->dhcp_slice) e.overlay->dhcp_slice = model::overlay_slice(*n.overlay, u.local);
    e.overlay->host_address = model::overlay_host_address(e, e.overlay->dhcp_slice);
    return e;
}

std::optional<model::Mac> OverlayLayer::bridge_mac(const model::Network& n) const
{
    if (!n.overlay) return std::nullopt;
    return model::overlay_gateway_mac(n);
}

plan::VxlanOptions OverlayLayer::wanted(const model::Network& n, const Underlay& u) const
{
    plan::VxlanOptions v;
    v.vni = n.overlay->vni;
    v.local = u.local;
    v.port = n.overlay->port;
    v.underlay_index = u.index;
    v.mtu = model::overlay_mtu(n, u.mtu);
    // With EVPN, FRR installs the remote MACs; learning from the data plane
    // would race it (and FRR's own bridge ports run with learning off).
    v.learning = !n.overlay->evpn;
    return v;
}

void OverlayLayer::validate(const model::Network& n)
{
    if (!n.overlay) return;
    const Underlay u = underlay(n);
    if (n.mtu != 0 && n.mtu + model::vxlan_overhead > u.mtu)
        throw Error(ErrorKind::InvalidArgument,
                    "mtu: " + std::to_string(n.mtu) + " does not fit the overlay: the underlay's MTU is " +
                        std::to_string(u.mtu) + ", VXLAN takes 50 bytes, so at most " +
                        std::to_string(u.mtu > model::vxlan_overhead ? u.mtu - model::vxlan_overhead : 0));
    if (!n.overlay->evpn && !n.overlay->dhcp_slice && n.ipv4 && !n.ipv4->ranges.empty()) {
        const auto& peers = n.overlay->peers;
        if (std::find(peers.begin(), peers.end(), u.local) != peers.end())
            throw Error(ErrorKind::InvalidArgument,
                        "overlay.peers: " + u.local.str() +
                            " is this host's own underlay address (overlay.local_interface)");
    }
    if (const auto slice = model::overlay_slice(*n.overlay, u.local);
        n.ipv4 && slice && !model::overlay_host_address(n, slice))
        throw Error(ErrorKind::InvalidArgument,
                    "overlay.host_address: the subnet " + n.ipv4->address.network().str() + "/" +
                        std::to_string(n.ipv4->address.prefix) +
                        " has no free address left for this host's own "
                        "address (host " +
                        std::to_string(slice->index + 1) +
                        " of the overlay): shrink the DHCP ranges or give overlay.host_address");
    const std::string name = model::overlay_device_name(n.overlay->vni);
    if (const auto link = links_.find_link(name); link && link->alias != plan::owner_alias(n.name))
        throw Error(ErrorKind::Conflict,
                    "overlay.vni: interface " + name + " already exists and is not managed by kvmnet for this network");
}

void OverlayLayer::setup(const model::Network& n, Undo& undo, std::string& step)
{
    if (!n.overlay) return;
    const std::string name = model::overlay_device_name(n.overlay->vni);
    const Underlay u = underlay(n);
    const plan::VxlanOptions want = wanted(n, u);
    step = "creating VXLAN device " + name;
    const auto existing = links_.vxlan_options(name);
    if (existing && (existing->vni != want.vni || existing->local != want.local || existing->port != want.port ||
                     existing->learning != want.learning)) {
        // Adopted from before an Update that changed the tunnel: made anew.
        links_.delete_link(name);
    }
    if (!existing || !links_.vxlan_options(name)) {
        links_.create_vxlan(name, want);
        undo.push("delete VXLAN device " + name, [this, name] { links_.delete_link(name); });
    }
    links_.set_alias(name, plan::owner_alias(n.name));
    if (const auto link = links_.find_link(name); link && link->mtu != want.mtu) links_.set_mtu(name, want.mtu);
    step = "enslaving " + name + " to " + n.bridge;
    skip_dad(n);
    links_.set_master(name, n.bridge);
    links_.set_up(name, true);
    step = "setting the bridge port flags of " + name;
    if (links_.vxlan_port_flags(name) != port_flags(n)) links_.set_vxlan_port_flags(name, port_flags(n));
    step = "setting the flood list of " + name;
    const auto wanted_peers = peer_set(n);
    const auto have = links_.list_flood(name);
    for (const model::Ipv4& peer : wanted_peers)
        if (std::find(have.begin(), have.end(), peer) == have.end()) links_.add_flood(name, peer);
    for (const model::Ipv4& peer : have)
        if (!wanted_peers.count(peer)) links_.delete_flood(name, peer);
    step = "filtering the gateway and DHCP on " + name;
    links_.set_vxlan_filter(name, model::overlay_gateway_mac(n), n.ipv4->address.address,
                            model::overlay_gateway_ipv6(n));
    undo.push("delete the filter of " + name, [this, name] { links_.delete_vxlan_filter(name); });
    step = "giving " + n.bridge + " this host's own address";
    host_address(n, nullptr);
    undo.push("delete the host address rewrite of " + name, [this, name] { links_.delete_host_rewrite(name); });
}

std::vector<std::string> OverlayLayer::host_address(const model::Network& n, const std::function<bool()>* allowed)
{
    std::vector<std::string> done;
    if (!n.ipv4 || !n.overlay->host_address) return done;
    const model::Ipv4 host = *n.overlay->host_address;
    const auto bridge = links_.find_link(n.bridge);
    if (!bridge) return done;
    const auto addresses = links_.list_addresses();
    const bool has = std::any_of(addresses.begin(), addresses.end(), [&](const plan::AddressInfo& a) {
        return a.link_index == bridge->index && a.address == model::IpAddress(host);
    });
    const model::Ipv4Interface& subnet = n.ipv4->address;
    const model::IpAddress destination = subnet.network();
    bool routed = false;
    for (const plan::RouteInfo& r : links_.list_routes())
        if (r.family == AF_INET && r.table == 254 && r.metric == 0 && r.destination == destination &&
            r.prefix_length == subnet.prefix && r.link_index == bridge->index && !r.gateway)
            routed = routed || r.preferred_source == model::IpAddress(host);
    const std::string name = model::overlay_device_name(n.overlay->vni);
    const bool rewrite = links_.has_host_rewrite(name);
    if ((has && routed && rewrite) || (allowed && !(*allowed)())) return done;
    // /32: dnsmasq, which picks its DHCP server identifier among the
    // addresses of the subnet, keeps the gateway's.
    if (!has) {
        links_.add_address(n.bridge, host, 32);
        done.push_back("added this host's address " + host.str() + " to " + n.bridge);
    }
    // The subnet's route gets the host address as its source: what the host
    // itself sends to guests leaves from the address only this host has, so
    // the answers of guests on other hosts come back here, not to their own
    // host's gateway.
    if (!routed) {
        plan::RouteInfo route;
        route.family = AF_INET;
        route.destination = destination;
        route.prefix_length = subnet.prefix;
        route.preferred_source = host;
        route.protocol = 2;  // RTPROT_KERNEL: it stands for the kernel's own route of the subnet
        route.scope = 253;   // RT_SCOPE_LINK
        links_.replace_route(n.bridge, route);
        done.push_back("made " + host.str() + " the source of the route to " + destination.str() + "/" +
                       std::to_string(subnet.prefix));
    }
    if (!rewrite) {
        links_.set_host_rewrite(name, model::overlay_gateway_mac(n), host, model::overlay_host_mac(n, host));
        done.push_back("restored the host address rewrite of " + name);
    }
    return done;
}

std::vector<std::string> OverlayLayer::repair(const model::Network& n, const std::function<bool()>& allowed)
{
    std::vector<std::string> done;
    if (!n.overlay) return done;
    const std::string name = model::overlay_device_name(n.overlay->vni);
    const auto bridge = links_.find_link(n.bridge);
    if (!bridge) return done;  // the bridge's repair comes first; the next one sees it
    const auto link = links_.find_link(name);
    if (link && link->alias != plan::owner_alias(n.name)) return done;  // someone else's: never touched
    const Underlay u = underlay(n);
    const plan::VxlanOptions want = wanted(n, u);
    const auto wanted_peers = peer_set(n);
    const auto have = link ? links_.list_flood(name) : std::vector<model::Ipv4>{};
    const std::set<model::Ipv4> have_set(have.begin(), have.end());
    const bool drift = !link || link->master_index != bridge->index || !link->up || link->mtu != want.mtu ||
                       have_set != wanted_peers || bridge->mtu != want.mtu;
    const bool attached = link && link->master_index == bridge->index;
    const bool flags = !attached || links_.vxlan_port_flags(name) == port_flags(n);
    const bool filter = links_.has_vxlan_filter(name);
    if (!drift && filter && flags) {
        // The host address's parts are checked only when the rest is right
        // (the common case of a repair that finds nothing else).
        if (link) done = host_address(n, &allowed);
        return done;
    }
    if (!allowed()) return done;
    if (!link) {
        links_.create_vxlan(name, want);
        links_.set_alias(name, plan::owner_alias(n.name));
        done.push_back("recreated VXLAN device " + name);
    } else if (link->mtu != want.mtu) {
        links_.set_mtu(name, want.mtu);
        done.push_back("restored MTU " + std::to_string(want.mtu) + " of " + name);
    }
    if (!link || link->master_index != bridge->index) {
        skip_dad(n);
        links_.set_master(name, n.bridge);
        if (link) done.push_back("re-attached " + name + " to " + n.bridge);
    }
    if (!link || !link->up) {
        links_.set_up(name, true);
        if (link) done.push_back("set " + name + " up again");
    }
    // A port enslaved again comes with the bridge's defaults.
    if (!attached || !flags) {
        links_.set_vxlan_port_flags(name, port_flags(n));
        if (attached) {
            const auto f = port_flags(n);
            done.push_back(std::string("restored neigh_suppress ")
                               .append(f.neigh_suppress ? "on" : "off")
                               .append(", learning ")
                               .append(f.learning ? "on" : "off")
                               .append(" on bridge port ")
                               .append(name));
        }
    }
    if (bridge->mtu != want.mtu) {
        links_.set_mtu(n.bridge, want.mtu);
        done.push_back("restored MTU " + std::to_string(want.mtu) + " of " + n.bridge);
    }
    std::vector<std::string> restored;
    for (const model::Ipv4& peer : wanted_peers)
        if (!have_set.count(peer)) {
            links_.add_flood(name, peer);
            restored.push_back(peer.str());
        }
    for (const model::Ipv4& peer : have)
        if (!wanted_peers.count(peer)) links_.delete_flood(name, peer);
    if (link && !restored.empty()) {
        std::string list;
        for (const auto& r : restored)
            list.append(list.empty() ? "" : ", ").append(r);
        done.push_back("restored the flood list of " + name + " (" + list + ")");
    }
    if (!filter) {
        links_.set_vxlan_filter(name, model::overlay_gateway_mac(n), n.ipv4->address.address,
                                model::overlay_gateway_ipv6(n));
        done.push_back("restored the gateway and DHCP filter of " + name);
    }
    for (auto& d : host_address(n, nullptr))
        done.push_back(std::move(d));
    return done;
}

void OverlayLayer::skip_dad(const model::Network& n)
{
    // The bridge's link-local address is the anycast gateway's, derived
    // from its MAC and the same on every host: duplicate address detection
    // can only fail (the tunnel's ND filter is what keeps it from seeing
    // the other hosts) and holds the address tentative for a second or two
    // after the tunnel port gives the bridge its carrier, so a guest's
    // first neighbour or router solicitation went unanswered. Set before
    // the port comes up, when the kernel makes that address. A host
    // without IPv6 has no such sysctl and no such address.
    const std::string key = "net/ipv6/conf/" + n.bridge + "/accept_dad";
    if (const auto value = links_.read_sysctl(key); value && *value != "0") links_.write_sysctl(key, "0");
}

std::vector<std::string> OverlayLayer::teardown(const model::Network& n)
{
    std::vector<std::string> problems;
    if (!n.overlay) return problems;
    const std::string name = model::overlay_device_name(n.overlay->vni);
    try {
        links_.delete_vxlan_filter(name);
    } catch (const std::exception& err) {
        problems.push_back(std::string("deleting the filter of ").append(name).append(": ").append(err.what()));
    }
    try {
        links_.delete_host_rewrite(name);
    } catch (const std::exception& err) {
        problems.push_back(
            std::string("deleting the host address rewrite of ").append(name).append(": ").append(err.what()));
    }
    const auto link = links_.find_link(name);
    if (!link || link->alias != plan::owner_alias(n.name)) return problems;
    try {
        links_.delete_link(name);
    } catch (const std::exception& err) {
        problems.push_back(std::string("deleting ").append(name).append(": ").append(err.what()));
    }
    return problems;
}

bool OverlayLayer::owns_link(const model::Network& n, const std::string& name) const
{
    return n.overlay && name == model::overlay_device_name(n.overlay->vni);
}

}  // namespace kvmnet::core
