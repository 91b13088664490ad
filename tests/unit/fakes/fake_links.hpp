// A fake kernel for unit tests of core::Manager: links, addresses and routes
// in memory behind plan::LinkAdapter, with the kernel behaviours the manager
// relies on (see FakeLinks), and the text forms tests compare them by.
#pragma once

#include "model/error.hpp"
#include "plan/kernel_view.hpp"

#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace kvmnet::test {

using plan::AddressInfo;
using plan::LinkInfo;
using plan::RouteInfo;
namespace fs = std::filesystem;

constexpr std::uint32_t forever = 0xffffffffu;
// IFA_F_*: what the kernel derives itself rather than taking from a request.
constexpr std::uint32_t ifa_f_secondary = 0x01, ifa_f_dadfailed = 0x08, ifa_f_deprecated = 0x20, ifa_f_tentative = 0x40,
                        ifa_f_permanent = 0x80, ifa_f_noprefixroute = 0x200;
constexpr std::uint32_t derived_address_flags =
    ifa_f_secondary | ifa_f_permanent | ifa_f_deprecated | ifa_f_tentative | ifa_f_dadfailed;
constexpr std::uint8_t rtprot_kernel = 2, rtprot_boot = 3, rtprot_static = 4, rtprot_ra = 9, rtprot_dhcp = 16;
constexpr std::uint8_t scope_link = 253, scope_host = 254;
constexpr std::uint32_t rtnh_f_onlink = 4;

// ---- text forms: every field, so comparing texts compares whole structs ----

std::string text(const AddressInfo& a);
std::string text(const RouteInfo& r);

template <typename T>
std::vector<std::string> texts(const std::vector<T>& items)
{
    std::vector<std::string> result;
    for (const auto& item : items)
        result.push_back(text(item));
    std::sort(result.begin(), result.end());
    return result;
}

// The manager's own wording of an address and a route in step names.
std::string address_step_text(const AddressInfo& a);
std::string route_step_text(const RouteInfo& r);

// The network an address belongs to (192.168.1.0, 2001:db8::).
model::IpAddress network_of(const model::IpAddress& address, unsigned prefix);

bool route_covers(const RouteInfo& r, const model::IpAddress& ip);

// An address written in a test; the test fails if it does not parse.
model::IpAddress ip(const std::string& text);

// IPv4 labels follow the link they are on, as the real adapter rewrites them.
std::string label_for(const std::string& link, const std::string& label);

// ---- the fake kernel -------------------------------------------------------

struct FakeLink {
    LinkInfo info;
    bool tap = false;
    std::uint32_t owner = 0, group = 0;
    bool multi_queue = false;  // taps only
    bool isolated = false;
    bool hairpin = false;
    plan::PortBandwidth bandwidth;
    plan::BridgeOptions bridge;   // bridges only
    bool vlan_filtering = false;  // bridges only
    std::uint16_t pvid = 0;       // ports: as set_port_vlans left them (0/none otherwise)
    std::vector<std::uint16_t> tagged;
};

struct Call {
    std::string verb;
    std::string link;    // the link it names, if any
    std::string detail;  // address or route in the manager's wording, or other arguments
    bool mutating = false;
};

// Links, addresses and routes in memory, with the kernel behaviours the
// manager depends on:
//  - adding an address or route that exists: AlreadyExists; deleting an
//    absent one, or naming an absent link: NotFound;
//  - a route with the same family, table, destination, prefix and metric as
//    one on ANY link: AlreadyExists (the adapter adds with NLM_F_EXCL);
//  - an IPv4 gateway must be reachable through a directly connected route on
//    the same link (unless onlink), and a preferred source must be a local
//    address;
//  - addresses bring their prefix routes (protocol kernel) with them; an
//    IPv4 address in the subnet of an earlier one is its secondary, and
//    deleting the primary deletes the secondaries (promote_secondaries off);
//  - when an IPv4 address leaves the host, routes using it as preferred
//    source go; when a link loses its last IPv4 address, its IPv4 routes go;
//  - deleting a link deletes its addresses and routes and releases its ports.
// fail_on(verb, n) makes the n-th call of `verb` (counted since
// reset_calls) throw Error(Kernel, "injected ...") before it changes anything.
class FakeLinks final : public plan::LinkAdapter {
public:
    // ---- test controls (not counted as calls)
    int add_link(LinkInfo info)
    {
        info.index = next_index_++;
        FakeLink link;
        link.info = std::move(info);
        links_.push_back(std::move(link));
        return links_.back().info.index;
    }
    FakeLink& fake(const std::string& name)
    {
        FakeLink* l = find(name);
        REQUIRE(l);
        return *l;
    }
    LinkInfo& link(const std::string& name) { return fake(name).info; }
    bool has(const std::string& name) { return find(name) != nullptr; }
    // No checks at all: for routes the kernel reports but a verb cannot make (multipath).
    void add_raw_route(const RouteInfo& route) { routes_.push_back(route); }
    void fail_on(const std::string& verb, int nth) { failures_[verb] = nth; }
    void reset_calls()
    {
        calls_.clear();
        counts_.clear();
        failures_.clear();
    }
    const std::vector<Call>& calls() const { return calls_; }
    int count(const std::string& verb) const
    {
        const auto it = counts_.find(verb);
        return it == counts_.end() ? 0 : it->second;
    }
    std::vector<std::string> mutations() const
    {
        std::vector<std::string> result;
        for (const auto& c : calls_)
            if (c.mutating) result.push_back(c.verb + " " + c.link + " " + c.detail);
        return result;
    }
    // What vlan_filtering_supported() answers; set_port_vlans throws Unsupported while false.
    bool vlan_filtering = false;
    // list_fdb answers with fdb_script(n) on its n-th call (from 1) when set.
    std::function<std::vector<plan::FdbEntry>(int)> fdb_script;

    std::vector<AddressInfo> addresses_on(const std::string& name)
    {
        std::vector<AddressInfo> result;
        const int index = link(name).index;
        for (const auto& a : addresses_)
            if (a.link_index == index) result.push_back(a);
        return result;
    }
    std::vector<RouteInfo> routes_on(const std::string& name)
    {
        std::vector<RouteInfo> result;
        const int index = link(name).index;
        for (const auto& r : routes_)
            if (r.link_index == index) result.push_back(r);
        return result;
    }

    // Everything about one link: its fields, addresses and routes.
    std::string state_of(const FakeLink& l) const
    {
        const LinkInfo& i = l.info;
        std::ostringstream s;
        s << "link #" << i.index << " " << i.name << " kind '" << i.kind << "' alias '" << i.alias << "' mtu " << i.mtu
          << " up " << i.up << " carrier " << i.carrier << " master #" << i.master_index << " mac "
          << (i.mac ? i.mac->str() : "") << " wireless " << i.wireless << " tap " << l.tap << " owner " << l.owner
          << " group " << l.group << " isolated " << l.isolated << " bandwidth " << l.bandwidth.inbound.average_kBps
          << "/" << l.bandwidth.inbound.peak_kBps << "/" << l.bandwidth.inbound.burst_kB << ","
          << l.bandwidth.outbound.average_kBps << "/" << l.bandwidth.outbound.peak_kBps << "/"
          << l.bandwidth.outbound.burst_kB << " pvid " << l.pvid << " tagged " << vlan_text(l.tagged);
        if (i.kind == "bridge")
            s << " stp " << l.bridge.stp << " forward_delay " << l.bridge.forward_delay_cs << " hello "
              << l.bridge.hello_time_cs << " max_age " << l.bridge.max_age_cs << " priority "
              << (l.bridge.priority ? int(*l.bridge.priority) : -1) << " snooping "
              << (l.bridge.multicast_snooping ? int(*l.bridge.multicast_snooping) : -1) << " vlan_filtering "
              << l.vlan_filtering;
        s << "\n";
        std::vector<std::string> lines;
        for (const auto& a : addresses_)
            if (a.link_index == i.index) lines.push_back("  " + text(a));
        for (const auto& r : routes_)
            if (r.link_index == i.index) lines.push_back("  " + text(r));
        std::sort(lines.begin(), lines.end());
        for (const auto& line : lines)
            s << line << "\n";
        return s.str();
    }
    std::string state_of(const std::string& name) { return state_of(fake(name)); }
    // The whole kernel, deterministic: compared against snapshots.
    std::string state() const
    {
        std::string s;
        for (const auto& l : links_)
            s += state_of(l);
        for (const auto& r : routes_)
            if (r.link_index == 0) s += text(r) + "\n";
        return s;
    }

    // ---- LinkAdapter: reads
    std::vector<LinkInfo> list_links() override
    {
        enter("list_links", "", "", false);
        std::vector<LinkInfo> result;
        for (const auto& l : links_)
            result.push_back(l.info);
        return result;
    }
    std::optional<LinkInfo> find_link(const std::string& name) override
    {
        enter("find_link", name, "", false);
        if (const FakeLink* l = find(name)) return l->info;
        return std::nullopt;
    }
    std::vector<AddressInfo> list_addresses() override
    {
        enter("list_addresses", "", "", false);
        return addresses_;
    }
    std::vector<AddressInfo> list_addresses_of(int link_index) override
    {
        enter("list_addresses_of", "", std::to_string(link_index), false);
        std::vector<AddressInfo> result;
        for (const auto& a : addresses_)
            if (a.link_index == link_index) result.push_back(a);
        return result;
    }
    std::vector<LinkInfo> list_ports(int master_index) override
    {
        enter("list_ports", "", std::to_string(master_index), false);
        std::vector<LinkInfo> result;
        for (const auto& l : links_)
            if (l.info.master_index == master_index) result.push_back(l.info);
        return result;
    }
    std::vector<RouteInfo> list_routes() override
    {
        enter("list_routes", "", "", false);
        return routes_;
    }
    std::vector<plan::FdbEntry> list_fdb(const std::string& bridge) override
    {
        enter("list_fdb", bridge, "", false);
        require(bridge);
        return fdb_script ? fdb_script(count("list_fdb")) : std::vector<plan::FdbEntry>{};
    }
    bool vlan_filtering_supported() override
    {
        enter("vlan_filtering_supported", "", "", false);
        return vlan_filtering;
    }

    // ---- LinkAdapter: verbs
    void create_bridge(const std::string& name, const plan::BridgeOptions& options) override
    {
        enter("create_bridge", name, "", true);
        if (find(name)) throw Error(ErrorKind::AlreadyExists, "fake: " + name + " already exists");
        LinkInfo info;
        info.name = name;
        info.kind = "bridge";
        info.mtu = options.mtu ? options.mtu : 1500;
        info.mac = options.mac ? options.mac : generated_mac();
        add_link(info);
        fake(name).bridge = options;
    }
    void set_bridge_options(const std::string& name, const plan::BridgeOptions& options) override
    {
        enter("set_bridge_options", name, "", true);
        FakeLink& l = require(name);
        const auto mtu = l.bridge.mtu;
        const auto mac = l.bridge.mac;
        l.bridge = options;
        l.bridge.mtu = mtu;
        l.bridge.mac = mac;
    }
    void set_alias(const std::string& name, const std::string& alias) override
    {
        enter("set_alias", name, alias, true);
        require(name).info.alias = alias;
    }
    void rename_link(const std::string& name, const std::string& new_name) override
    {
        enter("rename_link", name, new_name, true);
        require(name).info.name = new_name;
    }
    void set_mtu(const std::string& name, std::uint32_t mtu) override
    {
        enter("set_mtu", name, std::to_string(mtu), true);
        require(name).info.mtu = mtu;
    }
    void set_up(const std::string& name, bool up) override
    {
        enter("set_up", name, up ? "up" : "down", true);
        require(name).info.up = up;
    }
    void set_mac(const std::string& name, const model::Mac& mac) override
    {
        enter("set_mac", name, mac.str(), true);
        require(name).info.mac = mac;
    }
    void set_master(const std::string& name, const std::string& master) override
    {
        enter("set_master", name, master, true);
        FakeLink& l = require(name);
        if (master.empty()) {
            // A port leaves its VLANs behind with the bridge.
            l.info.master_index = 0;
            l.pvid = 0;
            l.tagged.clear();
            return;
        }
        const FakeLink& m = require(master);
        if (m.info.kind != "bridge" || m.info.index == l.info.index)
            throw Error(ErrorKind::Kernel, "fake: " + master + " cannot be a master of " + name);
        l.info.master_index = m.info.index;
    }
    void add_address(const std::string& name, const model::IpAddress& address, std::uint8_t prefix_length) override
    {
        enter("add_address", name, address.str() + "/" + std::to_string(prefix_length), true);
        AddressInfo a;
        a.address = address;
        a.prefix_length = prefix_length;
        insert_address(name, a);
    }
    void add_address_info(const std::string& name, const AddressInfo& info) override
    {
        enter("add_address_info", name, address_step_text(info), true);
        insert_address(name, info);
    }
    void delete_address(const std::string& name, const model::IpAddress& address, std::uint8_t prefix_length) override
    {
        enter("delete_address", name, address.str() + "/" + std::to_string(prefix_length), true);
        const int index = require(name).info.index;
        const auto it = std::find_if(addresses_.begin(), addresses_.end(), [&](const AddressInfo& a) {
            return a.link_index == index && a.address == address && a.prefix_length == prefix_length;
        });
        if (it == addresses_.end())
            throw Error(ErrorKind::NotFound, "fake: " + address.str() + " is not on " + name + " (EADDRNOTAVAIL)");
        const AddressInfo gone = *it;
        addresses_.erase(it);
        std::vector<model::IpAddress> removed{gone.address};
        if (gone.family() == AF_INET && !(gone.flags & ifa_f_secondary)) {
            // Without promote_secondaries, the primary takes its secondaries along.
            for (auto s = addresses_.begin(); s != addresses_.end();) {
                if (s->link_index == index && s->family() == AF_INET && (s->flags & ifa_f_secondary) &&
                    s->prefix_length == gone.prefix_length &&
                    network_of(s->address, s->prefix_length) == network_of(gone.address, gone.prefix_length)) {
                    removed.push_back(s->address);
                    s = addresses_.erase(s);
                } else {
                    ++s;
                }
            }
        }
        addresses_changed(index, removed);
    }
    void add_route(const std::string& name, const RouteInfo& route) override
    {
        enter("add_route", name, route_step_text(route), true);
        RouteInfo r = route;
        r.link_index = require(name).info.index;
        for (const auto& existing : routes_)
            if (existing.family == r.family && existing.table == r.table && existing.destination == r.destination &&
                existing.prefix_length == r.prefix_length && existing.metric == r.metric)
                throw Error(ErrorKind::AlreadyExists, "fake: " + route_step_text(r) + " exists (EEXIST)");
        if (r.family == AF_INET && r.gateway && !(r.flags & rtnh_f_onlink) &&
            std::none_of(routes_.begin(), routes_.end(), [&](const RouteInfo& c) {
                return c.link_index == r.link_index && c.family == AF_INET && !c.gateway && route_covers(c, *r.gateway);
            }))
            throw Error(ErrorKind::Kernel,
                        "fake: gateway " + r.gateway->str() + " unreachable on " + name + " (ENETUNREACH)");
        if (r.family == AF_INET && r.preferred_source && !address_anywhere(*r.preferred_source))
            throw Error(ErrorKind::Kernel,
                        "fake: preferred source " + r.preferred_source->str() + " is not local (EINVAL)");
        routes_.push_back(r);
    }
    void delete_route(const RouteInfo& route) override
    {
        enter("delete_route", "", route_step_text(route), true);
        const auto it = std::find_if(routes_.begin(), routes_.end(), [&](const RouteInfo& r) {
            return r.family == route.family && r.table == route.table && r.destination == route.destination &&
                   r.prefix_length == route.prefix_length && r.metric == route.metric &&
                   r.link_index == route.link_index && r.gateway == route.gateway &&
                   (route.protocol == 0 || r.protocol == route.protocol);
        });
        if (it == routes_.end()) throw Error(ErrorKind::NotFound, "fake: no such route " + route_step_text(route));
        routes_.erase(it);
    }
    void delete_link(const std::string& name) override
    {
        enter("delete_link", name, "", true);
        const int index = require(name).info.index;
        std::vector<model::IpAddress> removed;
        for (auto a = addresses_.begin(); a != addresses_.end();) {
            if (a->link_index == index) {
                removed.push_back(a->address);
                a = addresses_.erase(a);
            } else {
                ++a;
            }
        }
        routes_.erase(
            std::remove_if(routes_.begin(), routes_.end(), [&](const RouteInfo& r) { return r.link_index == index; }),
            routes_.end());
        for (auto& l : links_)
            if (l.info.master_index == index) l.info.master_index = 0;
        links_.erase(
            std::find_if(links_.begin(), links_.end(), [&](const FakeLink& l) { return l.info.index == index; }));
        addresses_changed(index, removed);
    }
    void create_tap(const std::string& name, std::uint32_t owner, std::uint32_t group, bool multi_queue) override
    {
        enter("create_tap", name,
              std::to_string(owner) + ":" + std::to_string(group) + (multi_queue ? " multi_queue" : ""), true);
        if (find(name)) throw Error(ErrorKind::AlreadyExists, "fake: " + name + " already exists");
        LinkInfo info;
        info.name = name;
        info.kind = "tun";
        info.mtu = 1500;
        info.mac = generated_mac();
        add_link(info);
        FakeLink& l = fake(name);
        l.tap = true;
        l.owner = owner;
        l.group = group;
        l.multi_queue = multi_queue;
    }
    std::optional<TapInfo> tap_info(const std::string& name) override
    {
        const FakeLink* l = find(name);
        if (!l || !l->tap) return std::nullopt;
        return TapInfo{l->multi_queue, 0};
    }
    void set_port_isolated(const std::string& name, bool isolated) override
    {
        enter("set_port_isolated", name, isolated ? "on" : "off", true);
        FakeLink& l = require(name);
        if (l.info.master_index == 0)
            throw Error(ErrorKind::InvalidArgument, "fake: " + name + " is not a bridge port");
        l.isolated = isolated;
    }
    // The namespace's sysctls, as the manager writes them (never the real ones).
    std::map<std::string, std::string> sysctls{{"net/ipv4/ip_forward", "0"}, {"net/ipv6/conf/all/forwarding", "0"}};
    std::map<std::string, int> sysctl_reads;  // per key, since construction
    std::optional<std::string> read_sysctl(const std::string& key) override
    {
        ++sysctl_reads[key];
        auto it = sysctls.find(key);
        if (it == sysctls.end()) return std::nullopt;
        return it->second;
    }
    void write_sysctl(const std::string& key, const std::string& value) override
    {
        enter("write_sysctl", key, value, true);
        sysctls[key] = value;
    }
    std::vector<plan::Listener> listeners;
    std::vector<plan::Listener> list_listeners() override { return listeners; }
    void set_port_hairpin(const std::string& name, bool hairpin) override
    {
        enter("set_port_hairpin", name, hairpin ? "on" : "off", true);
        FakeLink& l = require(name);
        if (l.info.master_index == 0)
            throw Error(ErrorKind::InvalidArgument, "fake: " + name + " is not a bridge port");
        l.hairpin = hairpin;
    }
    void set_port_vlans(const std::string& bridge, const std::string& port, std::uint16_t pvid,
                        const std::vector<std::uint16_t>& tagged) override
    {
        enter("set_port_vlans", port, bridge + " pvid " + std::to_string(pvid) + " tagged " + vlan_text(tagged), true);
        if (!vlan_filtering)
            throw Error(ErrorKind::Unsupported, "fake: no bridge VLAN filtering (CONFIG_BRIDGE_VLAN_FILTERING)");
        FakeLink& b = require(bridge);
        FakeLink& l = require(port);
        if (b.info.kind != "bridge" || l.info.master_index != b.info.index)
            throw Error(ErrorKind::InvalidArgument, "fake: " + port + " is not a port of " + bridge);
        b.vlan_filtering = true;
        l.pvid = pvid;
        l.tagged = tagged;
    }
    void set_bandwidth(const std::string& name, const plan::PortBandwidth& bandwidth) override
    {
        enter("set_bandwidth", name, "", true);
        require(name).bandwidth = bandwidth;
    }

private:
    static std::string vlan_text(const std::vector<std::uint16_t>& vids)
    {
        std::string text;
        for (const auto vid : vids)
            text += (text.empty() ? "" : ",") + std::to_string(vid);
        return text.empty() ? "-" : text;
    }
    void enter(const std::string& verb, const std::string& link, const std::string& detail, bool mutating)
    {
        const int n = ++counts_[verb];
        calls_.push_back({verb, link, detail, mutating});
        if (const auto it = failures_.find(verb); it != failures_.end() && it->second == n)
            throw Error(ErrorKind::Kernel, "injected failure of " + verb + " call " + std::to_string(n));
    }
    FakeLink* find(const std::string& name)
    {
        for (auto& l : links_)
            if (l.info.name == name) return &l;
        return nullptr;
    }
    const FakeLink* find(const std::string& name) const { return const_cast<FakeLinks*>(this)->find(name); }
    FakeLink& require(const std::string& name)
    {
        FakeLink* l = find(name);
        if (!l) throw Error(ErrorKind::NotFound, "fake: no link named " + name + " (ENODEV)");
        return *l;
    }
    std::optional<model::Mac> generated_mac()
    {
        model::Mac mac{
            {0x02, 0, 0, 0, static_cast<std::uint8_t>(generated_ >> 8), static_cast<std::uint8_t>(generated_)}};
        ++generated_;
        return mac;
    }
    bool address_anywhere(const model::IpAddress& address) const
    {
        return std::any_of(addresses_.begin(), addresses_.end(),
                           [&](const AddressInfo& a) { return a.address == address; });
    }
    void insert_address(const std::string& name, const AddressInfo& info)
    {
        const FakeLink& l = require(name);
        const int index = l.info.index;
        if (info.valid_lifetime == 0 || info.preferred_lifetime > info.valid_lifetime)
            throw Error(ErrorKind::InvalidArgument, "fake: bad lifetimes for " + info.address.str());
        for (const auto& a : addresses_)
            if (a.link_index == index && a.address == info.address &&
                (info.family() == AF_INET6 || a.prefix_length == info.prefix_length))
                throw Error(ErrorKind::AlreadyExists,
                            "fake: " + info.address.str() + " already on " + name + " (EEXIST)");
        AddressInfo a = info;
        a.link_index = index;
        a.flags &= ~derived_address_flags;
        if (a.valid_lifetime == forever) a.flags |= ifa_f_permanent;
        if (a.family() == AF_INET) {
            a.label = label_for(name, a.label);
            const bool secondary = std::any_of(addresses_.begin(), addresses_.end(), [&](const AddressInfo& p) {
                return p.link_index == index && p.family() == AF_INET && p.prefix_length == a.prefix_length &&
                       network_of(p.address, p.prefix_length) == network_of(a.address, a.prefix_length);
            });
            if (secondary) a.flags |= ifa_f_secondary;
        } else {
            a.label.clear();
        }
        addresses_.push_back(a);
        sync_kernel_routes(index);
    }
    // After addresses left link `index` (or the link itself went).
    void addresses_changed(int index, const std::vector<model::IpAddress>& removed)
    {
        for (const auto& address : removed)
            if (address.is_v4() && !address_anywhere(address))
                routes_.erase(std::remove_if(routes_.begin(), routes_.end(),
                                             [&](const RouteInfo& r) {
                                                 return r.family == AF_INET && r.preferred_source == address;
                                             }),
                              routes_.end());
        const bool has_ipv4 = std::any_of(addresses_.begin(), addresses_.end(), [&](const AddressInfo& a) {
            return a.link_index == index && a.family() == AF_INET;
        });
        if (!has_ipv4)
            routes_.erase(
                std::remove_if(routes_.begin(), routes_.end(),
                               [&](const RouteInfo& r) { return r.link_index == index && r.family == AF_INET; }),
                routes_.end());
        sync_kernel_routes(index);
    }
    // The prefix routes the kernel keeps for the addresses of link `index`.
    void sync_kernel_routes(int index)
    {
        std::vector<RouteInfo> wanted;
        for (const auto& a : addresses_) {
            if (a.link_index != index || a.scope == scope_host || (a.flags & ifa_f_noprefixroute)) continue;
            if (a.family() == AF_INET && ((a.flags & ifa_f_secondary) || a.prefix_length >= 32)) continue;
            if (a.family() == AF_INET6 && a.prefix_length >= 128) continue;
            RouteInfo r;
            r.family = a.family();
            r.destination = network_of(a.address, a.prefix_length);
            r.prefix_length = a.prefix_length;
            r.link_index = index;
            r.protocol = rtprot_kernel;
            if (a.family() == AF_INET) {
                r.preferred_source = a.address;
                r.scope = scope_link;
            } else {
                r.metric = 256;
            }
            const bool dup = std::any_of(wanted.begin(), wanted.end(), [&](const RouteInfo& w) {
                return w.family == r.family && w.destination == r.destination && w.prefix_length == r.prefix_length;
            });
            if (!dup) wanted.push_back(r);
        }
        const auto same = [](const RouteInfo& x, const RouteInfo& y) { return text(x) == text(y); };
        routes_.erase(std::remove_if(routes_.begin(), routes_.end(),
                                     [&](const RouteInfo& r) {
                                         return r.link_index == index && r.protocol == rtprot_kernel &&
                                                std::none_of(wanted.begin(), wanted.end(),
                                                             [&](const RouteInfo& w) { return same(w, r); });
                                     }),
                      routes_.end());
        for (const auto& w : wanted)
            if (std::none_of(routes_.begin(), routes_.end(), [&](const RouteInfo& r) { return same(w, r); }))
                routes_.push_back(w);
    }

    std::vector<FakeLink> links_;
    std::vector<AddressInfo> addresses_;
    std::vector<RouteInfo> routes_;
    int next_index_ = 1;
    unsigned generated_ = 1;
    std::vector<Call> calls_;
    std::map<std::string, int> counts_;
    std::map<std::string, int> failures_;
};

}  // namespace kvmnet::test
