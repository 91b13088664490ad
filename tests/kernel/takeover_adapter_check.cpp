// Standalone check of the bridge-takeover verbs of kernel::NetlinkLinks (routes, full addresses, bridge options)
// against a real kernel. It simulates what bridge mode does to a host uplink -- create a bridge with the uplink's
// MAC, enslave the uplink, move its IPv4/IPv6 addresses and routes to the bridge, and back on stop -- using only the
// adapter's verbs (plus `ip link set ... master`, whose verb belongs to netlink_ports.cpp), and checks with `ip -j`
// that the configuration arrives exactly and returns exactly. It mutates links, so it refuses to run in the host's
// network namespace. Run it only inside a throwaway namespace:
//     bash tests/kernel/run-in-netns.sh build/tests/kernel/takeover_adapter_check
// Exit status: 0 all passed, 1 some check failed, 77 (automake "skip") when not in a separate namespace.
#include "check_util.hpp"
#include "kernel/netlink_links.hpp"
#include "model/error.hpp"
#include "netns_guard.hpp"

#include <arpa/inet.h>
#include <linux/if_addr.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

namespace {

using namespace kvmnet::test;

using kvmnet::Error;
using kvmnet::ErrorKind;
using kvmnet::kernel::NetlinkLinks;
using kvmnet::plan::AddressInfo;
using kvmnet::plan::BridgeOptions;
using kvmnet::plan::RouteInfo;
using nlohmann::json;

kvmnet::model::IpAddress ip(const std::string& text) { return kvmnet::model::IpAddress::parse(text).value(); }
kvmnet::model::Ipv4 ipv4(const std::string& text) { return kvmnet::model::Ipv4::parse(text).value(); }
// "" for none, as the checks below spell an absent address.
std::string txt(const std::optional<kvmnet::model::IpAddress>& a) { return a ? a->str() : std::string(); }
std::string txt(const std::optional<kvmnet::model::Ipv4>& a) { return a ? a->str() : std::string(); }

// Fixture set-up and the one verb that is not ours to test here; a failure is a failed check.
bool sh(const std::string& command)
{
    const Output out = run(command);
    return check(out.status == 0, "`" + command + "` failed: " + out.text);
}

json ip_json(const std::string& args)
{
    const Output out = run("ip -j " + args);
    if (out.status != 0) {
        return nullptr;
    }
    try {
        return json::parse(out.text);
    } catch (const json::exception& e) {
        check(false, "parsing `ip -j " + args + "` output: " + e.what());
        return nullptr;
    }
}

json ip_link(const std::string& args, const std::string& dev)
{
    const json all = ip_json(args + " dev " + dev);
    return all.is_array() && all.size() == 1 ? all[0] : json();
}

// ---- Snapshots with ip -j ----------------------------------------------------------------------------------------

// A link's IP configuration as `ip -j` shows it, comparable between links: labels have the link's name replaced by
// "LINK", and lifetimes (which count down) are set aside for a comparison with slack.
struct Snapshot {
    std::vector<std::string> addresses;  // normalised addr_info entries, sorted
    std::vector<std::string> routes;     // `ip -4/-6 route show table all dev LINK` entries, sorted
    std::map<std::string, std::pair<long long, long long>> lifetimes;  // local -> (valid, preferred)
    std::chrono::steady_clock::time_point taken;
};

Snapshot snapshot(const std::string& dev)
{
    Snapshot shot;
    shot.taken = std::chrono::steady_clock::now();
    const json link = ip_link("addr show", dev);
    for (json a : link.value("addr_info", json::array())) {
        shot.lifetimes[a.value("local", "")] = {a.value("valid_life_time", -1LL), a.value("preferred_life_time", -1LL)};
        a.erase("valid_life_time");
        a.erase("preferred_life_time");
        if (a.contains("label")) {
            std::string label = a["label"];
            if (label.rfind(dev, 0) == 0) {
                label = "LINK" + label.substr(dev.size());
            }
            a["label"] = label;
        }
        shot.addresses.push_back(a.dump());
    }
    // With a dev filter ip leaves "dev" out, so entries of different links compare directly.
    for (const char* family : {"-4", "-6"}) {
        const json routes = ip_json(std::string(family) + " route show table all dev " + dev);
        for (const auto& r : routes.is_array() ? routes : json::array()) {
            shot.routes.push_back(r.dump());
        }
    }
    std::sort(shot.addresses.begin(), shot.addresses.end());
    std::sort(shot.routes.begin(), shot.routes.end());
    return shot;
}

void compare_lists(const std::string& what, const std::vector<std::string>& expected,
                   const std::vector<std::string>& actual)
{
    std::vector<std::string> missing, extra;
    std::set_difference(expected.begin(), expected.end(), actual.begin(), actual.end(), std::back_inserter(missing));
    std::set_difference(actual.begin(), actual.end(), expected.begin(), expected.end(), std::back_inserter(extra));
    for (const auto& m : missing) {
        check(false, what + ": missing " + m);
    }
    for (const auto& e : extra) {
        check(false, what + ": unexpected " + e);
    }
    check(missing.empty() && extra.empty(), what + ": " + std::to_string(expected.size()) + " entries identical");
}

// Lifetimes may only have counted down, by no more than the time that passed (plus rounding).
void compare_lifetimes(const std::string& what, const Snapshot& before, const Snapshot& after)
{
    const auto elapsed = std::chrono::duration_cast<std::chrono::seconds>(after.taken - before.taken).count() + 2;
    for (const auto& [local, life] : before.lifetimes) {
        const auto found = after.lifetimes.find(local);
        if (!check(found != after.lifetimes.end(), what + ": lifetimes of " + local + " present")) {
            continue;
        }
        for (const auto& [name, was, now] : {std::tuple{"valid", life.first, found->second.first},
                                             std::tuple{"preferred", life.second, found->second.second}}) {
            const bool ok = was == 0xffffffffLL ? now == was : (now <= was && was - now <= elapsed);
            check(ok, what + ": " + local + " " + name + " lifetime " + std::to_string(was) + " became " +
                          std::to_string(now) + " within " + std::to_string(elapsed) + " s");
        }
    }
}

// The kernel keeps an IPv6 address "tentative" until DAD is done; snapshots must not race with it.
void wait_for_dad(const std::string& dev)
{
    for (int i = 0; i < 50; ++i) {
        const json link = ip_link("addr show", dev);
        bool tentative = false;
        for (const auto& a : link.value("addr_info", json::array())) {
            tentative = tentative || a.value("tentative", false);
        }
        if (!tentative) {
            return;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    check(false, dev + ": IPv6 DAD still tentative after 5 s");
}

// ---- The takeover, with adapter verbs only ------------------------------------------------------------------------

bool is_kernel_link_local(const AddressInfo& a) { return a.family() == AF_INET6 && a.scope == RT_SCOPE_LINK; }

// Moves the IP configuration of `from` to `to` as bridge mode does. The order matters:
//  1. addresses onto `to` first: a route's gateway must be reachable through a connected prefix on its link, and a
//     preferred source must be a local address;
//  2. then each route: delete on `from`, add on `to` -- not the other way round, because with NLM_F_EXCL the kernel
//     refuses a second route with the same table, prefix and metric even when the link differs;
//  3. last, the addresses on `from`, in reverse order: removing an IPv4 primary also removes its secondaries
//     (unless promote_secondaries is set), and removing a link's last IPv4 address flushes its IPv4 routes.
// Kernel-made entries stay where they are: IPv6 link-local addresses (each link makes its own) and proto kernel
// routes (they follow the addresses).
bool move_configuration(NetlinkLinks& links, const std::string& from, const std::string& to)
{
    const auto source = links.find_link(from);
    const auto target = links.find_link(to);
    if (!check(source && target, "move " + from + " -> " + to + ": both links exist")) {
        return false;
    }
    std::vector<AddressInfo> addresses;
    for (const auto& a : links.list_addresses()) {
        if (a.link_index == source->index && !is_kernel_link_local(a)) {
            addresses.push_back(a);
        }
    }
    std::vector<RouteInfo> routes;
    for (const auto& r : links.list_routes()) {
        if (r.unreproducible) {
            // What the daemon does too: a multipath route might use the uplink, and cannot be moved.
            check(false, "move " + from + " -> " + to + ": a multipath route to " + txt(r.destination) + " exists");
            return false;
        }
        if (r.link_index == source->index && r.protocol != RTPROT_KERNEL) {
            routes.push_back(r);
        }
    }
    std::cout << "  moving " << addresses.size() << " addresses and " << routes.size() << " routes " << from << " -> "
              << to << "\n";
    bool ok = true;
    for (const auto& a : addresses) {
        ok = step("add_address_info " + a.address.str() + " on " + to, [&] { links.add_address_info(to, a); }) && ok;
    }
    for (const auto& r : routes) {
        const std::string text = (r.destination ? r.destination->str() : std::string("default")) + " table " +
                                 std::to_string(r.table) + " metric " + std::to_string(r.metric);
        ok = step("delete_route " + text + " on " + from, [&] { links.delete_route(r); }) && ok;
        ok = step("add_route " + text + " on " + to, [&] { links.add_route(to, r); }) && ok;
    }
    for (auto a = addresses.rbegin(); a != addresses.rend(); ++a) {
        ok = step("delete_address " + a->address.str() + " on " + from,
                  [&] { links.delete_address(from, a->address, a->prefix_length); }) &&
             ok;
    }
    return ok;
}

const RouteInfo* find_route(const std::vector<RouteInfo>& routes, int family, const std::string& destination,
                            std::uint32_t table, std::uint32_t metric)
{
    for (const auto& r : routes) {
        if (r.family == family && txt(r.destination) == destination && r.table == table && r.metric == metric) {
            return &r;
        }
    }
    return nullptr;
}

const AddressInfo* find_address(const std::vector<AddressInfo>& addresses, int ifindex, const std::string& local)
{
    for (const auto& a : addresses) {
        if (a.link_index == ifindex && a.address.str() == local) {
            return &a;
        }
    }
    return nullptr;
}

// ---- Checks -------------------------------------------------------------------------------------------------------

void set_up_uplink()
{
    std::cout << "* uplink0: a veth with addresses and routes of every kind a host may have\n";
    for (const char* command : {
             "ip link add uplink0 type veth peer name uplink0p",
             "ip link set uplink0p up",
             "ip link set uplink0 up",
             "ip addr add 192.0.2.10/24 brd + dev uplink0",
             "ip addr add 192.0.2.11/24 brd + dev uplink0 label uplink0:1 valid_lft 3600 preferred_lft 1800",
             "ip addr add 203.0.113.7/24 dev uplink0 noprefixroute",
             "ip -6 addr add 2001:db8:1::10/64 dev uplink0 nodad",
             "ip route add default via 192.0.2.1 dev uplink0 metric 100 proto static",
             "ip route add 198.51.100.0/24 via 192.0.2.254 dev uplink0 metric 50",
             "ip route add 198.51.100.0/24 via 192.0.2.254 dev uplink0 table 100 proto static",
             "ip route add 10.99.0.0/16 via 10.255.0.1 dev uplink0 onlink metric 7 proto static table 1000",
             "ip route add 198.18.0.0/15 dev uplink0 src 192.0.2.10 scope link metric 5",
             "ip route add 10.88.0.0/16 via inet6 2001:db8:1::1 dev uplink0 metric 9",
             "ip -6 route add default via 2001:db8:1::1 dev uplink0 metric 1024",
         }) {
        sh(command);
    }
    wait_for_dad("uplink0");
}

void check_link_fields(NetlinkLinks& links)
{
    std::cout << "* list_links / find_link: carrier, wireless, stats\n";
    const json before = ip_link("-s link show", "uplink0");
    const auto uplink = links.find_link("uplink0");
    const json after = ip_link("-s link show", "uplink0");
    if (!check(uplink.has_value(), "find_link(uplink0)")) {
        return;
    }
    check(uplink->carrier, "uplink0 has carrier (its peer is up)");
    check(!uplink->wireless, "uplink0 is not wireless");
    // Traffic (IPv6 ND/MLD) may flow between the reads, so the adapter's counters lie between ip's two readings.
    for (const auto& [dir, field, value] :
         {std::tuple{"rx", "bytes", uplink->stats.rx_bytes}, std::tuple{"tx", "bytes", uplink->stats.tx_bytes},
          std::tuple{"rx", "packets", uplink->stats.rx_packets}, std::tuple{"tx", "packets", uplink->stats.tx_packets},
          std::tuple{"rx", "dropped", uplink->stats.rx_dropped},
          std::tuple{"tx", "dropped", uplink->stats.tx_dropped}}) {
        const auto low = before["stats64"][dir].value(field, std::uint64_t{0});
        const auto high = after["stats64"][dir].value(field, std::uint64_t{0});
        check(low <= value && value <= high, std::string("uplink0 ") + dir + " " + field + " " + std::to_string(value) +
                                                 " within ip's " + std::to_string(low) + ".." + std::to_string(high));
    }
    check(uplink->stats.tx_packets > 0,
          "uplink0 has sent packets (IPv6 ND), tx_packets " + std::to_string(uplink->stats.tx_packets));
    bool listed = false;
    for (const auto& l : links.list_links()) {
        if (l.name == "uplink0") {
            listed = l.carrier && !l.wireless && l.stats.tx_packets >= uplink->stats.tx_packets;
        }
        if (l.name == "lo") {
            check(!l.wireless, "lo is not wireless");
        }
    }
    check(listed, "list_links reports uplink0 with carrier and stats");
    if (sh("ip link set uplink0p down")) {
        const auto down = links.find_link("uplink0");
        check(down && down->up && !down->carrier, "uplink0 up without carrier once its peer is down");
        sh("ip link set uplink0p up");
        const auto up = links.find_link("uplink0");
        check(up && up->carrier, "uplink0 has carrier again");
    }
}

void check_listings(NetlinkLinks& links)
{
    std::cout << "* list_addresses / list_routes report what ip shows\n";
    const auto uplink = links.find_link("uplink0");
    if (!uplink) {
        return;
    }
    const auto addresses = links.list_addresses();
    if (const auto* a = find_address(addresses, uplink->index, "192.0.2.10"); check(a, "192.0.2.10 listed")) {
        check(a->family() == AF_INET && a->prefix_length == 24, "192.0.2.10 is IPv4 /24");
        check(txt(a->broadcast) == "192.0.2.255",
              "192.0.2.10 broadcast 192.0.2.255, got \"" + txt(a->broadcast) + "\"");
        check(a->label == "uplink0", "192.0.2.10 label uplink0, got \"" + a->label + "\"");
        check(a->scope == RT_SCOPE_UNIVERSE, "192.0.2.10 scope global");
        check((a->flags & IFA_F_PERMANENT) != 0 && (a->flags & IFA_F_SECONDARY) == 0, "192.0.2.10 permanent primary");
        check(a->valid_lifetime == 0xffffffffu && a->preferred_lifetime == 0xffffffffu, "192.0.2.10 lives forever");
    }
    if (const auto* a = find_address(addresses, uplink->index, "192.0.2.11"); check(a, "192.0.2.11 listed")) {
        check(a->label == "uplink0:1", "192.0.2.11 label uplink0:1, got \"" + a->label + "\"");
        check((a->flags & IFA_F_SECONDARY) != 0 && (a->flags & IFA_F_PERMANENT) == 0, "192.0.2.11 dynamic secondary");
        check(a->valid_lifetime <= 3600 && a->valid_lifetime >= 3590,
              "192.0.2.11 valid lifetime ~3600, got " + std::to_string(a->valid_lifetime));
        check(a->preferred_lifetime <= 1800 && a->preferred_lifetime >= 1790,
              "192.0.2.11 preferred lifetime ~1800, got " + std::to_string(a->preferred_lifetime));
    }
    if (const auto* a = find_address(addresses, uplink->index, "203.0.113.7"); check(a, "203.0.113.7 listed")) {
        check((a->flags & IFA_F_NOPREFIXROUTE) != 0, "203.0.113.7 noprefixroute (a flag above the low 8 bits)");
        check(!a->broadcast, "203.0.113.7 has no broadcast");
    }
    if (const auto* a = find_address(addresses, uplink->index, "2001:db8:1::10"); check(a, "2001:db8:1::10 listed")) {
        check(a->family() == AF_INET6 && a->prefix_length == 64, "2001:db8:1::10 is IPv6 /64");
        check((a->flags & IFA_F_NODAD) != 0, "2001:db8:1::10 nodad");
        check(a->label.empty() && !a->broadcast, "2001:db8:1::10 has neither label nor broadcast");
    }

    const auto routes = links.list_routes();
    for (const auto& r : routes) {
        check(r.table != RT_TABLE_LOCAL && r.type == RTN_UNICAST, "no local-table or non-unicast route listed");
    }
    if (const auto* r = find_route(routes, AF_INET, "", RT_TABLE_MAIN, 100); check(r, "IPv4 default listed")) {
        check(r->prefix_length == 0 && txt(r->gateway) == "192.0.2.1" && r->link_index == uplink->index &&
                  r->protocol == RTPROT_STATIC && r->scope == RT_SCOPE_UNIVERSE,
              "IPv4 default via 192.0.2.1 dev uplink0 proto static");
    }
    if (const auto* r = find_route(routes, AF_INET, "198.51.100.0", 100, 0); check(r, "table 100 route listed")) {
        check(txt(r->gateway) == "192.0.2.254" && r->prefix_length == 24 && r->protocol == RTPROT_STATIC,
              "table 100: 198.51.100.0/24 via 192.0.2.254 proto static");
    }
    if (const auto* r = find_route(routes, AF_INET, "10.99.0.0", 1000, 7); check(r, "table 1000 route listed")) {
        check((r->flags & RTNH_F_ONLINK) != 0 && txt(r->gateway) == "10.255.0.1", "table 1000: onlink via 10.255.0.1");
    }
    if (const auto* r = find_route(routes, AF_INET, "198.18.0.0", RT_TABLE_MAIN, 5); check(r, "prefsrc route listed")) {
        check(txt(r->preferred_source) == "192.0.2.10" && r->scope == RT_SCOPE_LINK && !r->gateway &&
                  r->protocol == RTPROT_BOOT,
              "198.18.0.0/15 scope link src 192.0.2.10 proto boot");
    }
    if (const auto* r = find_route(routes, AF_INET, "10.88.0.0", RT_TABLE_MAIN, 9); check(r, "RTA_VIA route listed")) {
        check(txt(r->gateway) == "2001:db8:1::1",
              "10.88.0.0/16 via inet6 2001:db8:1::1, got \"" + txt(r->gateway) + "\"");
    }
    if (const auto* r = find_route(routes, AF_INET6, "", RT_TABLE_MAIN, 1024); check(r, "IPv6 default listed")) {
        check(txt(r->gateway) == "2001:db8:1::1" && r->link_index == uplink->index, "IPv6 default via 2001:db8:1::1");
    }
    if (const auto* r = find_route(routes, AF_INET, "192.0.2.0", RT_TABLE_MAIN, 0); check(r, "connected listed")) {
        check(r->protocol == RTPROT_KERNEL && r->scope == RT_SCOPE_LINK && txt(r->preferred_source) == "192.0.2.10",
              "192.0.2.0/24 proto kernel scope link src 192.0.2.10");
    }

    std::cout << "* multipath routes are listed unreproducible, with link_index 0 and no gateway\n";
    if (sh("ip route add 10.77.0.0/16 nexthop via 192.0.2.1 dev uplink0 nexthop via 192.0.2.2 dev uplink0") &&
        sh("ip -6 route add 2001:db8:77::/48 nexthop via 2001:db8:1::1 dev uplink0 nexthop via 2001:db8:1::2 dev "
           "uplink0")) {
        const auto with = links.list_routes();
        for (const auto& [family, dst] : {std::pair{AF_INET, "10.77.0.0"}, std::pair{AF_INET6, "2001:db8:77::"}}) {
            int seen = 0;
            for (const auto& r : with) {
                if (r.family == family && txt(r.destination) == dst) {
                    ++seen;
                    check(r.link_index == 0 && r.unreproducible && !r.gateway,
                          std::string(dst) + ": link_index 0, no gateway, unreproducible");
                }
            }
            check(seen == 1, std::string(dst) + ": listed once, got " + std::to_string(seen));
        }
        RouteInfo marker;
        for (const auto& r : with) {
            if (r.unreproducible) {
                marker = r;
            }
        }
        expect_error("add_route multipath marker", ErrorKind::InvalidArgument, {"multipath"},
                     [&] { links.add_route("uplink0", marker); });
        expect_error("delete_route multipath marker", ErrorKind::InvalidArgument, {"multipath"},
                     [&] { links.delete_route(marker); });
        sh("ip route del 10.77.0.0/16");
        sh("ip -6 route del 2001:db8:77::/48");
    }
}

// While br0 carries the configuration: refusals of the route verbs, and that a delete removes only its own route.
void check_route_refusals(NetlinkLinks& links)
{
    std::cout << "* route verb refusals\n";
    RouteInfo r;
    r.family = AF_INET;
    r.destination = ip("10.60.0.0");
    r.prefix_length = 16;
    r.gateway = ip("192.0.2.1");
    r.metric = 33;
    r.protocol = RTPROT_STATIC;
    expect_error("add_route absent link", ErrorKind::NotFound, {"no such interface kvmnope0", "10.60.0.0/16"},
                 [&] { links.add_route("kvmnope0", r); });
    if (step("add_route 10.60.0.0/16 on br0", [&] { links.add_route("br0", r); })) {
        expect_error("add_route duplicate", ErrorKind::AlreadyExists, {"adding IPv4 route 10.60.0.0/16", "br0"},
                     [&] { links.add_route("br0", r); });
        RouteInfo other = r;
        other.metric = 0;  // IPv4 delete treats metric 0 as "any": the adapter must not let that hit the metric-33 one
        expect_error("delete_route other metric", ErrorKind::NotFound, {"no such route"},
                     [&] { links.delete_route(other); });
        other = r;
        other.gateway.reset();  // likewise an empty gateway
        expect_error("delete_route no gateway", ErrorKind::NotFound, {"no such route"},
                     [&] { links.delete_route(other); });
        const auto br = links.find_link("br0");
        RouteInfo exact = r;
        exact.link_index = br ? br->index : 0;
        step("delete_route 10.60.0.0/16", [&] { links.delete_route(exact); });
        check(find_route(links.list_routes(), AF_INET, "10.60.0.0", RT_TABLE_MAIN, 33) == nullptr, "10.60.0.0/16 gone");
        expect_error("delete_route twice", ErrorKind::NotFound, {"deleting IPv4 route 10.60.0.0/16", "no such route"},
                     [&] { links.delete_route(exact); });
    }
    // Why a move deletes before it adds: with NLM_F_EXCL the kernel refuses the same table, prefix and metric even
    // on another link. (onlink, because uplink0 has no address left to reach the gateway through.)
    const auto current = links.list_routes();
    if (const auto* moved = find_route(current, AF_INET, "", RT_TABLE_MAIN, 100);
        check(moved, "default route on br0")) {
        RouteInfo twin = *moved;
        twin.flags |= RTNH_F_ONLINK;
        expect_error("add_route same key on another link", ErrorKind::AlreadyExists, {"File exists"},
                     [&] { links.add_route("uplink0", twin); });
    }
    RouteInfo bad = r;
    bad.gateway = ip("10.200.0.1");
    expect_error("add_route unreachable gateway", ErrorKind::Kernel, {"via 10.200.0.1", "unreachable"},
                 [&] { links.add_route("br0", bad); });
    bad = r;
    bad.destination = ip("10.60.0.1");
    expect_error("add_route host bits", ErrorKind::InvalidArgument, {"host bits"},
                 [&] { links.add_route("br0", bad); });
    bad = r;
    bad.family = AF_INET6;
    bad.destination = ip("2001:db8:60::1");
    bad.prefix_length = 48;
    bad.gateway = ip("2001:db8:1::1");
    expect_error("add_route IPv6 host bits", ErrorKind::InvalidArgument, {"host bits"},
                 [&] { links.add_route("br0", bad); });
    bad = r;
    bad.prefix_length = 33;
    expect_error("add_route prefix 33", ErrorKind::InvalidArgument, {"prefix length"},
                 [&] { links.add_route("br0", bad); });
    bad = r;
    bad.family = AF_INET6;
    bad.destination = ip("2001:db8:60::");
    bad.prefix_length = 48;
    expect_error("add_route IPv4 gateway on an IPv6 route", ErrorKind::InvalidArgument, {"gateway 192.0.2.1"},
                 [&] { links.add_route("br0", bad); });
    bad = r;
    bad.table = 0;
    expect_error("add_route table 0", ErrorKind::InvalidArgument, {"table 0"}, [&] { links.add_route("br0", bad); });
    bad = r;
    bad.family = AF_UNIX;
    expect_error("add_route bad family", ErrorKind::InvalidArgument, {"family"}, [&] { links.add_route("br0", bad); });
}

void check_takeover(NetlinkLinks& links)
{
    const Snapshot original = snapshot("uplink0");
    std::cout << "* takeover: uplink0 has " << original.addresses.size() << " addresses and " << original.routes.size()
              << " routes (ip -j, all tables)\n";
    const auto uplink = links.find_link("uplink0");
    if (!uplink) {
        return;
    }
    BridgeOptions options;
    options.mac = uplink->mac;
    if (!step("create_bridge br0 with uplink0's MAC", [&] { links.create_bridge("br0", options); })) {
        return;
    }
    check(links.find_link("br0").value_or(kvmnet::plan::LinkInfo{}).mac == uplink->mac, "br0 has uplink0's MAC");
    sh("ip link set uplink0 master br0");
    step("set_up br0", [&] { links.set_up("br0", true); });
    const auto br = links.find_link("br0");
    check(br && br->mac == uplink->mac, "br0 keeps uplink0's MAC with uplink0 as a port");
    check(br && links.find_link("uplink0")->master_index == br->index, "uplink0 is a port of br0");
    // The bridge's own link-local address is derived from the same MAC, so it must match the uplink's after DAD.
    wait_for_dad("br0");

    move_configuration(links, "uplink0", "br0");
    wait_for_dad("br0");
    const Snapshot on_bridge = snapshot("br0");
    std::cout << "* br0 carries exactly what uplink0 had\n";
    compare_lists("br0 addresses vs uplink0's", original.addresses, on_bridge.addresses);
    compare_lists("br0 routes vs uplink0's", original.routes, on_bridge.routes);
    compare_lifetimes("br0 vs uplink0", original, on_bridge);
    const Snapshot left = snapshot("uplink0");
    for (const auto& a : left.addresses) {
        check(json::parse(a).value("scope", "") == "link", "uplink0 keeps only its link-local address, has " + a);
    }
    for (const auto& r : left.routes) {
        check(json::parse(r).value("protocol", "") == "kernel", "uplink0 keeps only kernel routes, has " + r);
    }

    check_route_refusals(links);

    std::cout << "* stop: everything back to uplink0\n";
    sh("ip link set uplink0 nomaster");
    check(links.find_link("br0").value_or(kvmnet::plan::LinkInfo{}).mac == uplink->mac,
          "br0 keeps uplink0's MAC after the port left");
    move_configuration(links, "br0", "uplink0");
    step("delete_link br0", [&] { links.delete_link("br0"); });
    wait_for_dad("uplink0");
    const Snapshot restored = snapshot("uplink0");
    compare_lists("uplink0 addresses after the round trip", original.addresses, restored.addresses);
    compare_lists("uplink0 routes after the round trip", original.routes, restored.routes);
    compare_lifetimes("uplink0 after the round trip", original, restored);
}

void check_address_info(NetlinkLinks& links)
{
    std::cout << "* add_address_info / list_addresses round trip\n";
    const std::string dev = "kvmlt0";
    if (!step("create_bridge kvmlt0", [&] { links.create_bridge(dev, {}); }) ||
        !step("set_up kvmlt0", [&] { links.set_up(dev, true); })) {
        return;
    }
    const int index = links.find_link(dev)->index;
    AddressInfo v4;
    v4.address = ip("10.50.0.1");
    v4.prefix_length = 24;
    v4.broadcast = ipv4("10.50.0.255");
    v4.label = "otherlink:x";  // rewritten to kvmlt0:x
    v4.valid_lifetime = 3600;
    v4.preferred_lifetime = 1800;
    AddressInfo v6;
    v6.address = ip("fd00:50::1");
    v6.prefix_length = 64;
    v6.flags = IFA_F_NODAD | IFA_F_NOPREFIXROUTE | IFA_F_PERMANENT;  // permanent is derived, and dropped
    v6.valid_lifetime = 3600;
    v6.preferred_lifetime = 0;  // deprecated at once
    AddressInfo scoped;
    scoped.address = ip("169.254.9.9");
    scoped.prefix_length = 16;
    scoped.scope = RT_SCOPE_LINK;
    scoped.label = "otherlink";  // rewritten to kvmlt0
    for (const AddressInfo* a : {&v4, &v6, &scoped}) {
        step("add_address_info " + a->address.str(), [&] { links.add_address_info(dev, *a); });
    }
    const auto listed = links.list_addresses();
    if (const auto* a = find_address(listed, index, "10.50.0.1"); check(a, "10.50.0.1 listed")) {
        check(a->valid_lifetime >= 3598 && a->valid_lifetime <= 3600,
              "10.50.0.1 valid lifetime 3600, got " + std::to_string(a->valid_lifetime));
        check(a->preferred_lifetime >= 1798 && a->preferred_lifetime <= 1800,
              "10.50.0.1 preferred lifetime 1800, got " + std::to_string(a->preferred_lifetime));
        check((a->flags & IFA_F_PERMANENT) == 0, "10.50.0.1 not permanent");
        check(a->label == "kvmlt0:x", "10.50.0.1 label rewritten to kvmlt0:x, got \"" + a->label + "\"");
        check(txt(a->broadcast) == "10.50.0.255", "10.50.0.1 broadcast 10.50.0.255");
    }
    if (const auto* a = find_address(listed, index, "fd00:50::1"); check(a, "fd00:50::1 listed")) {
        check(a->valid_lifetime >= 3598 && a->valid_lifetime <= 3600 && a->preferred_lifetime == 0,
              "fd00:50::1 lifetimes 3600/0, got " + std::to_string(a->valid_lifetime) + "/" +
                  std::to_string(a->preferred_lifetime));
        check((a->flags & (IFA_F_NODAD | IFA_F_NOPREFIXROUTE | IFA_F_DEPRECATED)) ==
                  (IFA_F_NODAD | IFA_F_NOPREFIXROUTE | IFA_F_DEPRECATED),
              "fd00:50::1 nodad, noprefixroute, deprecated");
        check((a->flags & IFA_F_PERMANENT) == 0, "fd00:50::1 not permanent (finite lifetime)");
    }
    if (const auto* a = find_address(listed, index, "169.254.9.9"); check(a, "169.254.9.9 listed")) {
        check(a->scope == RT_SCOPE_LINK && a->label == "kvmlt0", "169.254.9.9 scope link, label kvmlt0");
        check(a->valid_lifetime == 0xffffffffu && (a->flags & IFA_F_PERMANENT) != 0, "169.254.9.9 permanent");
    }
    const json link = ip_link("addr show", dev);
    std::map<std::string, json> by_local;
    for (const auto& a : link.value("addr_info", json::array())) {
        by_local[a.value("local", "")] = a;
    }
    const json a4 = by_local["10.50.0.1"];
    check(a4.value("label", "") == "kvmlt0:x" && a4.value("broadcast", "") == "10.50.0.255" &&
              a4.value("dynamic", false) && a4.value("valid_life_time", 0) >= 3598 &&
              a4.value("preferred_life_time", 0) >= 1798,
          "ip shows 10.50.0.1 as asked: " + a4.dump());
    const json a6 = by_local["fd00:50::1"];
    check(a6.value("nodad", false) && a6.value("noprefixroute", false) && a6.value("deprecated", false) &&
              a6.value("preferred_life_time", -1) == 0,
          "ip shows fd00:50::1 as asked: " + a6.dump());
    const json al = by_local["169.254.9.9"];
    check(al.value("scope", "") == "link" && al.value("label", "") == "kvmlt0",
          "ip shows 169.254.9.9 as asked: " + al.dump());
    check(find_route(links.list_routes(), AF_INET6, "fd00:50::", RT_TABLE_MAIN, 256) == nullptr,
          "noprefixroute: no fd00:50::/64 prefix route");

    expect_error("add_address_info duplicate", ErrorKind::AlreadyExists, {"adding address 10.50.0.1/24 to kvmlt0"},
                 [&] { links.add_address_info(dev, v4); });
    expect_error("add_address_info absent link", ErrorKind::NotFound, {"no such interface kvmnope0"},
                 [&] { links.add_address_info("kvmnope0", v4); });
    AddressInfo bad = v4;
    bad.address = ip("10.50.0.2");
    bad.valid_lifetime = 0;
    expect_error("valid lifetime 0", ErrorKind::InvalidArgument, {"valid lifetime 0"},
                 [&] { links.add_address_info(dev, bad); });
    bad.valid_lifetime = 100;
    bad.preferred_lifetime = 200;
    expect_error("preferred > valid", ErrorKind::InvalidArgument, {"exceeds valid lifetime"},
                 [&] { links.add_address_info(dev, bad); });
    bad = v4;
    bad.address = ip("10.50.0.2");
    bad.label = "old:a-long-alias-name";
    expect_error("label too long", ErrorKind::InvalidArgument, {"kvmlt0:a-long-alias-name"},
                 [&] { links.add_address_info(dev, bad); });
    bad = v6;
    bad.address = ip("fd00:50::2");
    bad.broadcast = ipv4("10.50.0.255");
    expect_error("IPv6 broadcast", ErrorKind::InvalidArgument, {"broadcast"},
                 [&] { links.add_address_info(dev, bad); });
    bad.broadcast.reset();
    bad.label = "kvmlt0";
    expect_error("IPv6 label", ErrorKind::InvalidArgument, {"label"}, [&] { links.add_address_info(dev, bad); });
    step("delete_link kvmlt0", [&] { links.delete_link(dev); });
}

json bridge_data(const std::string& dev)
{
    return ip_link("-d link show", dev).value("linkinfo", json::object()).value("info_data", json::object());
}

void check_bridge_options(NetlinkLinks& links)
{
    std::cout << "* set_bridge_options\n";
    const std::string dev = "kvmopt0";
    if (!step("create_bridge kvmopt0", [&] { links.create_bridge(dev, {}); })) {
        return;
    }
    BridgeOptions on;
    on.stp = true;
    on.forward_delay_cs = 1500;
    on.hello_time_cs = 200;
    on.max_age_cs = 2000;
    on.priority = 4096;
    on.multicast_snooping = false;
    if (step("set_bridge_options stp on", [&] { links.set_bridge_options(dev, on); })) {
        const json data = bridge_data(dev);
        std::cout << "  (" << dev << ": " << data.dump() << ")\n";
        check(data.value("stp_state", 0) != 0, "stp_state on");
        check(data.value("forward_delay", 0) == 1500, "forward_delay 1500");
        check(data.value("hello_time", 0) == 200, "hello_time 200");
        check(data.value("max_age", 0) == 2000, "max_age 2000");
        check(data.value("priority", 0) == 4096, "priority 4096");
        check(data.value("mcast_snooping", 1) == 0, "mcast_snooping 0");
    }
    // Each refusal must leave the bridge as it was: br_changelink applies attributes one by one and does not undo.
    BridgeOptions bad = on;
    bad.hello_time_cs = 99;
    expect_error("hello 99", ErrorKind::InvalidArgument, {"hello time 99 cs", "100..1000"},
                 [&] { links.set_bridge_options(dev, bad); });
    bad.hello_time_cs = 1001;
    expect_error("hello 1001", ErrorKind::InvalidArgument, {"hello time 1001 cs"},
                 [&] { links.set_bridge_options(dev, bad); });
    bad = on;
    bad.max_age_cs = 599;
    expect_error("max age 599", ErrorKind::InvalidArgument, {"max age 599 cs", "600..4000"},
                 [&] { links.set_bridge_options(dev, bad); });
    bad.max_age_cs = 4001;
    expect_error("max age 4001", ErrorKind::InvalidArgument, {"max age 4001 cs"},
                 [&] { links.set_bridge_options(dev, bad); });
    bad = on;
    bad.forward_delay_cs = 199;
    expect_error("stp on, delay 199", ErrorKind::InvalidArgument, {"forward delay 199 cs", "200..3000"},
                 [&] { links.set_bridge_options(dev, bad); });
    bad.forward_delay_cs = 3001;
    expect_error("stp on, delay 3001", ErrorKind::InvalidArgument, {"forward delay 3001 cs"},
                 [&] { links.set_bridge_options(dev, bad); });
    const json unchanged = bridge_data(dev);
    check(unchanged.value("forward_delay", 0) == 1500 && unchanged.value("hello_time", 0) == 200 &&
              unchanged.value("max_age", 0) == 2000 && unchanged.value("stp_state", 0) != 0,
          "refusals left the bridge unchanged: " + unchanged.dump());
    // Odd centiseconds do not survive the kernel's jiffies when HZ is 250 (or 300).
    BridgeOptions odd = on;
    odd.forward_delay_cs = 1501;
    try {
        links.set_bridge_options(dev, odd);
        check(bridge_data(dev).value("forward_delay", 0) == 1501, "forward delay 1501 accepted and stored exactly");
    } catch (const Error& e) {
        std::cout << "  (forward delay 1501 -> " << kind_text(e.kind()) << ": " << e.what() << ")\n";
        check(e.kind() == ErrorKind::InvalidArgument && std::string(e.what()).find("as 1500 cs") != std::string::npos,
              std::string("forward delay 1501 refused as rounded: ") + e.what());
    }

    // STP off with delay 0 while STP is on: two messages, or the delay is refused and STP stays on.
    BridgeOptions off;
    off.stp = false;
    off.forward_delay_cs = 0;
    if (step("set_bridge_options stp off delay 0", [&] { links.set_bridge_options(dev, off); })) {
        const json data = bridge_data(dev);
        check(data.value("stp_state", 1) == 0 && data.value("forward_delay", 1) == 0,
              "stp off and forward_delay 0: " + data.dump());
        check(data.value("priority", 0) == 4096 && data.value("mcast_snooping", 1) == 0,
              "unset options keep their values: " + data.dump());
    }
    BridgeOptions off_hello = off;
    off_hello.hello_time_cs = 1001;
    expect_error("stp off, hello 1001", ErrorKind::InvalidArgument, {"hello time 1001 cs"},
                 [&] { links.set_bridge_options(dev, off_hello); });
    expect_error("set_bridge_options absent", ErrorKind::NotFound, {"no such interface kvmnope0"},
                 [&] { links.set_bridge_options("kvmnope0", off); });
    if (sh("ip link add kvmveth0 type veth peer name kvmveth1")) {
        expect_error("set_bridge_options on a veth", ErrorKind::InvalidArgument, {"kvmveth0 is not a bridge"},
                     [&] { links.set_bridge_options("kvmveth0", off); });
        sh("ip link del kvmveth0");
    }
    step("delete_link kvmopt0", [&] { links.delete_link(dev); });

    std::cout << "* create_bridge with every option\n";
    BridgeOptions all = on;
    all.mac = kvmnet::model::Mac::parse("02:11:22:33:44:55");
    all.mtu = 1400;
    all.priority = 8192;
    all.hello_time_cs = 300;
    all.max_age_cs = 1200;
    if (step("create_bridge kvmopt1", [&] { links.create_bridge("kvmopt1", all); })) {
        const json link = ip_link("-d link show", "kvmopt1");
        const json data = link.value("linkinfo", json::object()).value("info_data", json::object());
        check(link.value("address", "") == "02:11:22:33:44:55", "kvmopt1 MAC 02:11:22:33:44:55");
        check(link.value("mtu", 0) == 1400, "kvmopt1 MTU 1400");
        check(data.value("stp_state", 0) != 0 && data.value("forward_delay", 0) == 1500 &&
                  data.value("hello_time", 0) == 300 && data.value("max_age", 0) == 1200 &&
                  data.value("priority", 0) == 8192 && data.value("mcast_snooping", 1) == 0,
              "kvmopt1 options: " + data.dump());
        step("delete_link kvmopt1", [&] { links.delete_link("kvmopt1"); });
    }
    for (const auto& [what, options, needle] : {
             std::tuple{"multicast MAC",
                        [] {
                            BridgeOptions o;
                            o.mac = kvmnet::model::Mac::parse("01:00:5e:00:00:01");
                            return o;
                        }(),
                        "multicast"},
             std::tuple{"hello 50",
                        [] {
                            BridgeOptions o;
                            o.hello_time_cs = 50;
                            return o;
                        }(),
                        "hello time 50 cs"},
             std::tuple{"max age 5000",
                        [] {
                            BridgeOptions o;
                            o.max_age_cs = 5000;
                            return o;
                        }(),
                        "max age 5000 cs"},
         }) {
        expect_error(std::string("create_bridge ") + what, ErrorKind::InvalidArgument, {needle},
                     [&] { links.create_bridge("kvmopt2", options); });
    }
    check(!links.find_link("kvmopt2").has_value(), "refused bridges were not created");
}

}  // namespace

int main()
{
    std::string why;
    if (!kvmnet::test::in_safe_netns(why)) {
        std::cerr << "takeover_adapter_check: refusing to run, possibly in the root network namespace (" << why
                  << "); run it as\n"
                     "  bash tests/kernel/run-in-netns.sh build/tests/kernel/takeover_adapter_check\n";
        return 77;
    }
    try {
        NetlinkLinks links;
        set_up_uplink();
        check_link_fields(links);
        check_listings(links);
        check_takeover(links);
        check_address_info(links);
        check_bridge_options(links);
    } catch (const std::exception& e) {
        check(false, std::string("unexpected exception: ") + e.what());
    }
    std::cout << (failures == 0 ? "PASS" : "FAILED") << ": " << checks - failures << "/" << checks
              << " checks passed\n";
    return failures == 0 ? 0 : 1;
}
