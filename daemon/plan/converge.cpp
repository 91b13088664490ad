#include "plan/converge.hpp"
#include "plan/route_text.hpp"

#include "plan/drift.hpp"
#include "plan/planner.hpp"

#include <algorithm>

namespace kvmnet::plan {
namespace {

bool is_on(const std::string& value) { return !value.empty() && value[0] == '1'; }

// net/ipv4/conf/LINK/forwarding, which a write of net.ipv4.ip_forward sets too.
bool link_ipv4_forwarding(const std::string& key)
{
    const std::string prefix = "net/ipv4/conf/", suffix = "/forwarding";
    return key.size() > prefix.size() + suffix.size() && key.compare(0, prefix.size(), prefix) == 0 &&
           key.compare(key.size() - suffix.size(), suffix.size(), suffix) == 0;
}

constexpr int af_inet = 2, af_inet6 = 10;     // <sys/socket.h>, not included in plan/
constexpr std::uint8_t rtprot_kernel = 2;     // <linux/rtnetlink.h>
constexpr std::uint8_t rt_scope_link = 253;   // RT_SCOPE_LINK
constexpr std::uint32_t rt_table_main = 254;  // RT_TABLE_MAIN
constexpr std::uint32_t ifa_f_dadfailed = 0x08, ifa_f_noprefixroute = 0x200;

// What a repair observed drifted, in the order plan_converge promises.
void plan_repairs(const model::Network& n, const ConvergeObserved& o, std::vector<ConvergeStep>& steps)
{
    const std::string alias = owner_alias(n.name);
    if (o.links) {
        if (o.bridge && o.bridge->alias != alias) {
            // Nor its ports, sysctls or routes.
            steps.push_back(LeaveReplacedBridge{});
            return;
        }
        if (!o.bridge && o.renamed) steps.push_back(RenameBridgeBack{o.renamed->name, n.bridge, o.renamed->up});
        steps.push_back(RepairLinks{});
    }
    const bool ours = o.bridge && o.bridge->alias == alias;
    if (o.ports && ours) {
        for (const model::Port& p : n.ports) {
            const auto it = o.ports->find(p.name);
            if (it == o.ports->end()) continue;
            if (!it->second)
                steps.push_back(PortMissing{p.name});
            else if (it->second->master_index != o.bridge->index || o.port_problems.count(p.name))
                steps.push_back(AttachPort{p.name});
        }
    }
    if (o.sysctls) {
        const auto value = [&](const std::string& key) {
            const auto it = o.sysctls->find(key);
            return it == o.sysctls->end() ? std::optional<std::string>() : std::optional<std::string>(it->second);
        };
        const auto ip_forward = value(ip_forward_key);
        const bool ip_forward_off = ip_forward && !ip_forward->empty() && !is_on(*ip_forward);
        for (const std::string& key : held_sysctls(n)) {
            const auto v = value(key);
            if (!v || v->empty() || is_on(*v)) continue;
            if (ip_forward_off && key != ip_forward_key && link_ipv4_forwarding(key)) continue;
            steps.push_back(TurnOnSysctl{key});
        }
    }
    if (o.routes && !o.links && ours)
        for (RouteInfo& route : missing_routes(n, *o.bridge, *o.routes))
            steps.push_back(AddRoute{std::move(route)});
}

}  // namespace

std::vector<RouteInfo> network_routes(const model::Network& n, int bridge_index)
{
    std::vector<RouteInfo> routes;
    if (n.mode == model::Mode::bridge) return routes;
    // A /32 or /128 gateway has no prefix route.
    if (n.ipv4 && n.ipv4->address.prefix < 32) {
        RouteInfo r;
        r.family = af_inet;
        r.destination = model::IpAddress(n.ipv4->address.network());
        r.prefix_length = n.ipv4->address.prefix;
        r.preferred_source = model::IpAddress(n.ipv4->address.address);
        r.link_index = bridge_index;
        r.table = rt_table_main;
        r.protocol = rtprot_kernel;
        r.scope = rt_scope_link;
        routes.push_back(std::move(r));
    }
    if (n.ipv6 && n.ipv6->address.prefix < 128) {
        RouteInfo r;
        r.family = af_inet6;
        r.destination = model::IpAddress(n.ipv6->address.network());
        r.prefix_length = n.ipv6->address.prefix;
        r.link_index = bridge_index;
        r.table = rt_table_main;
        r.metric = 256;  // the kernel's own for a prefix route (IP6_RT_PRIO_ADDRCONF)
        r.protocol = rtprot_kernel;
        routes.push_back(std::move(r));
    }
    return routes;
}

std::vector<RouteInfo> missing_routes(const model::Network& n, const LinkInfo& bridge,
                                      const ConvergeObserved::Routes& seen)
{
    std::vector<RouteInfo> missing;
    // A bridge that is down has no routes: setting it up (RepairLinks) brings them back.
    if (!bridge.up) return missing;
    for (RouteInfo& want : network_routes(n, bridge.index)) {
        // Only with its address: the kernel made the route with it, and
        // an address re-added brings its route again.
        const bool address = std::any_of(seen.addresses.begin(), seen.addresses.end(), [&](const AddressInfo& a) {
            return a.link_index == want.link_index && a.family() == want.family &&
                   a.prefix_length == want.prefix_length && !(a.flags & (ifa_f_dadfailed | ifa_f_noprefixroute)) &&
                   (want.family == af_inet ? a.address == want.preferred_source
                                           : a.address == model::IpAddress(n.ipv6->address.address));
        });
        // Any metric or protocol: someone who replaced it meant to.
        const bool present = std::any_of(seen.routes.begin(), seen.routes.end(), [&](const RouteInfo& r) {
            return r.link_index == want.link_index && r.family == want.family && r.table == want.table &&
                   r.destination == want.destination && r.prefix_length == want.prefix_length;
        });
        if (address && !present) missing.push_back(std::move(want));
    }
    return missing;
}

bool is_repair_step(const ConvergeStep& step)
{
    return std::visit(
        [](const auto& s) {
            using T = std::decay_t<decltype(s)>;
            return std::is_same_v<T, RenameBridgeBack> || std::is_same_v<T, LeaveReplacedBridge> ||
                   std::is_same_v<T, RepairLinks> || std::is_same_v<T, AttachPort> || std::is_same_v<T, PortMissing> ||
                   std::is_same_v<T, TurnOnSysctl> || std::is_same_v<T, AddRoute>;
        },
        step);
}

std::string drift_kinds_text(DriftKinds kinds)
{
    static const std::pair<DriftKind, const char*> names[] = {
        {drift_links, "links"},     {drift_addresses, "addresses"}, {drift_ports, "ports"},
        {drift_sysctls, "sysctls"}, {drift_firewall, "firewall"},   {drift_routes, "routes"}};
    std::string text;
    for (const auto& [kind, name] : names)
        if (kinds & kind) text.append(text.empty() ? "" : ", ").append(name);
    return text;
}

std::vector<std::string> held_sysctls(const model::Network& n)
{
    std::vector<std::string> keys;
    if (!needs_forwarding(n)) return keys;
    keys.push_back(ip_forward_key);
    if (n.ipv6) keys.push_back(ipv6_forwarding_key);
    keys.push_back("net/ipv4/conf/" + n.bridge + "/forwarding");
    if (n.mode == model::Mode::nat) keys.push_back("net/ipv4/conf/" + n.bridge + "/route_localnet");
    return keys;
}

std::vector<ConvergeStep> plan_converge(const model::Network& n, const ConvergeObserved& o)
{
    std::vector<ConvergeStep> steps;
    if (!o.running) {
        steps.emplace_back(SetUpLinks{});
        steps.emplace_back(CommitTable{});
        steps.emplace_back(HoldForwarding{});
        steps.emplace_back(AttachPorts{});
        if (n.ipv4) steps.emplace_back(StartDnsmasq{});
        steps.emplace_back(RecordActive{});
        return steps;  // nothing of it exists: nothing to repair
    }
    const model::Network& old = *o.running;
    const BridgeOptions from = bridge_options(old);
    BridgeOptions to = bridge_options(n);
    if (!(from == to)) {
        // Linux's defaults for a new bridge (br_dev_setup, br_multicast_init).
        if (to.hello_time_cs == 0 && from.hello_time_cs != 0) to.hello_time_cs = 200;
        if (to.max_age_cs == 0 && from.max_age_cs != 0) to.max_age_cs = 2000;
        if (!to.priority && from.priority) to.priority = 0x8000;
        if (!to.multicast_snooping && from.multicast_snooping) to.multicast_snooping = true;
        steps.push_back(SetBridgeOptions{to});
    }
    if (n.mtu != old.mtu) {
        if (n.mtu != 0)
            steps.push_back(SetBridgeMtu{n.mtu});
        else if (o.bridge_mtu != 0)
            steps.push_back(SetBridgeMtu{o.bridge_mtu});
    }
    const auto find = [](const model::Network& in, const std::string& name) {
        const auto it =
            std::find_if(in.ports.begin(), in.ports.end(), [&](const model::Port& p) { return p.name == name; });
        return it == in.ports.end() ? nullptr : &*it;
    };
    for (const model::Port& p : old.ports)
        if (!find(n, p.name)) steps.push_back(DetachPort{p.name});
    for (const model::Port& p : n.ports) {
        const model::Port* previous = find(old, p.name);
        if (!previous || !(*previous == p) || n.mtu != old.mtu) steps.push_back(ApplyPort{p.name});
    }
    plan_repairs(n, o, steps);
    return steps;
}

std::string describe(const ConvergeStep& step)
{
    return std::visit(
        [](const auto& s) -> std::string {
            using T = std::decay_t<decltype(s)>;
            if constexpr (std::is_same_v<T, SetUpLinks>)
                return "set up links";
            else if constexpr (std::is_same_v<T, CommitTable>)
                return "commit table";
            else if constexpr (std::is_same_v<T, HoldForwarding>)
                return "hold forwarding";
            else if constexpr (std::is_same_v<T, AttachPorts>)
                return "attach ports";
            else if constexpr (std::is_same_v<T, StartDnsmasq>)
                return "start dnsmasq";
            else if constexpr (std::is_same_v<T, RecordActive>)
                return "record active";
            else if constexpr (std::is_same_v<T, SetBridgeOptions>)
                return "set bridge options";
            else if constexpr (std::is_same_v<T, SetBridgeMtu>)
                return std::string("set bridge MTU ").append(std::to_string(s.mtu));
            else if constexpr (std::is_same_v<T, DetachPort>)
                return std::string("detach port ").append(s.name);
            else if constexpr (std::is_same_v<T, ApplyPort>)
                return std::string("apply port ").append(s.name);
            else if constexpr (std::is_same_v<T, RenameBridgeBack>)
                return std::string("rename ").append(s.from).append(" back to ").append(s.to);
            else if constexpr (std::is_same_v<T, LeaveReplacedBridge>)
                return "leave the interface under the bridge's name alone";
            else if constexpr (std::is_same_v<T, RepairLinks>)
                return "repair links";
            else if constexpr (std::is_same_v<T, AttachPort>)
                return std::string("attach port ").append(s.name);
            else if constexpr (std::is_same_v<T, PortMissing>)
                return std::string("port ").append(s.name).append(" missing");
            else if constexpr (std::is_same_v<T, TurnOnSysctl>)
                return std::string("turn on ").append(s.key);
            else
                return "add route " + destination_text(s.route);
        },
        step);
}

const char* update_path_name(UpdatePath path)
{
    switch (path) {
    case UpdatePath::store: return "store";
    case UpdatePath::hosts: return "hosts";
    case UpdatePath::table: return "table";
    case UpdatePath::live: return "live";
    case UpdatePath::restart: return "restart";
    }
    return "restart";
}

UpdatePath plan_update(const model::Network& current, const model::Network& next, bool running)
{
    // Each path: `next` with what that path can change taken from `current`
    // must be `current` itself.
    if (running && next.ipv4 && current.ipv4 && next.ipv4->dhcp == current.ipv4->dhcp) {
        model::Network same = next;
        same.ipv4->hosts = current.ipv4->hosts;
        if (same.ipv6 && current.ipv6) same.ipv6->hosts = current.ipv6->hosts;
        same.dns.hosts = current.dns.hosts;
        if (same == current && plan_dnsmasq(next, "", "").config == plan_dnsmasq(current, "", "").config)
            return UpdatePath::hosts;
    }
    if (!running) return UpdatePath::store;
    model::Network same = next;
    same.forwards = current.forwards;
    same.limits = current.limits;
    if (same == current) return UpdatePath::table;
    same = current;
    same.stp = next.stp;
    same.forward_delay = next.forward_delay;
    same.hello_time = next.hello_time;
    same.max_age = next.max_age;
    same.priority = next.priority;
    same.multicast_snooping = next.multicast_snooping;
    same.mtu = next.mtu;
    same.autostart = next.autostart;
    same.ports = next.ports;
    if (same == next) return UpdatePath::live;
    return UpdatePath::restart;
}

}  // namespace kvmnet::plan
