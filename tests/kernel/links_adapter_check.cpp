// Standalone check of kernel::NetlinkLinks against a real kernel: drives every verb and compares the adapter's own
// view with what iproute2 (`ip -j`) reports. It mutates links, so it refuses to run in the host's network namespace.
// Run it only inside a throwaway namespace:
//     ip netns add kvmnl-$$; ip netns exec kvmnl-$$ ./links_adapter_check; ip netns del kvmnl-$$
// Exit status: 0 all passed, 1 some check failed, 77 (automake "skip") when not in a separate namespace.
#include "check_util.hpp"
#include "kernel/netlink_links.hpp"
#include "model/error.hpp"
#include "netns_guard.hpp"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <functional>
#include <iostream>
#include <optional>
#include <regex>
#include <string>
#include <system_error>

namespace {

using namespace kvmnet::test;

using kvmnet::Error;
using kvmnet::ErrorKind;
using kvmnet::kernel::NetlinkLinks;
using nlohmann::json;

// BridgeOptions has grown beyond what this check sets; the rest keeps its "kernel default" value.
kvmnet::plan::BridgeOptions bridge(bool stp, std::uint32_t forward_delay_cs, std::uint32_t mtu)
{
    kvmnet::plan::BridgeOptions options;
    options.stp = stp;
    options.forward_delay_cs = forward_delay_cs;
    options.mtu = mtu;
    return options;
}

// The single element of `ip -j ... dev NAME`, or null when the device does not exist.
json ip_json(const std::string& args, const std::string& dev)
{
    const Output out = run("ip -j " + args + " dev " + dev);
    if (out.status != 0) {
        return nullptr;
    }
    try {
        json parsed = json::parse(out.text);
        if (parsed.is_array() && parsed.size() == 1) {
            return parsed[0];
        }
    } catch (const json::exception& e) {
        check(false, "parsing `ip -j " + args + "` output: " + e.what());
    }
    return nullptr;
}

bool ip_has_flag(const json& link, const std::string& flag)
{
    if (!link.contains("flags")) {
        return false;
    }
    for (const auto& f : link["flags"]) {
        if (f == flag) {
            return true;
        }
    }
    return false;
}

// From `ip -j addr show dev NAME`: the addr_info entry with this local address, or null.
json ip_addr(const std::string& dev, const std::string& local)
{
    const json link = ip_json("addr show", dev);
    if (link.is_null() || !link.contains("addr_info")) {
        return nullptr;
    }
    for (const auto& info : link["addr_info"]) {
        if (info.value("local", "") == local) {
            return info;
        }
    }
    return nullptr;
}

kvmnet::model::IpAddress ip_of(const std::string& text) { return kvmnet::model::IpAddress::parse(text).value(); }

bool adapter_has_address(NetlinkLinks& links, int ifindex, int family, const std::string& address,
                         unsigned prefix_length)
{
    for (const auto& a : links.list_addresses()) {
        if (a.link_index == ifindex && a.family() == family && a.address == ip_of(address) &&
            a.prefix_length == prefix_length) {
            return true;
        }
    }
    return false;
}

void check_links_and_lookup(NetlinkLinks& links)
{
    std::cout << "* list_links / find_link on a fresh namespace\n";
    bool saw_lo = false;
    for (const auto& l : links.list_links()) {
        if (l.name == "lo") {
            saw_lo = true;
            check(l.index == 1, "lo has ifindex 1");
            check(l.kind.empty(), "lo has no kind, got \"" + l.kind + "\"");
            check(l.mac && l.mac->zero(), "lo mac is all zero, got \"" + (l.mac ? l.mac->str() : "none") + "\"");
            check(l.mtu == 65536, "lo mtu 65536, got " + std::to_string(l.mtu));
        }
    }
    check(saw_lo, "list_links contains lo");
    check(!links.find_link("kvmbr9").has_value(), "find_link(kvmbr9) is nullopt");
    check(!links.find_link("a-name-that-is-far-too-long").has_value(), "find_link(overlong name) is nullopt");
}

void check_not_found_verbs(NetlinkLinks& links)
{
    std::cout << "* verbs on an absent link\n";
    const std::string absent = "kvmbr9";
    const std::string needle = "no such interface kvmbr9";
    expect_error("set_alias absent", ErrorKind::NotFound, {needle}, [&] { links.set_alias(absent, "x"); });
    expect_error("set_mtu absent", ErrorKind::NotFound, {needle}, [&] { links.set_mtu(absent, 1500); });
    expect_error("set_up absent", ErrorKind::NotFound, {needle}, [&] { links.set_up(absent, true); });
    expect_error("add_address absent", ErrorKind::NotFound, {needle},
                 [&] { links.add_address(absent, ip_of("10.9.9.1"), 24); });
    expect_error("delete_address absent", ErrorKind::NotFound, {needle},
                 [&] { links.delete_address(absent, ip_of("10.9.9.1"), 24); });
    expect_error("delete_link absent", ErrorKind::NotFound, {needle}, [&] { links.delete_link(absent); });
}

void check_bridge(NetlinkLinks& links)
{
    const std::string br = "kvmtest0";
    std::cout << "* create_bridge " << br << " (stp off, forward delay 0, mtu 1400)\n";
    if (!step("create_bridge", [&] { links.create_bridge(br, bridge(false, 0, 1400)); })) {
        return;
    }
    const auto found = links.find_link(br);
    check(found.has_value(), "find_link finds the new bridge");
    if (!found) {
        return;
    }
    check(found->kind == "bridge", "kind is bridge, got \"" + found->kind + "\"");
    check(found->mtu == 1400, "adapter mtu 1400, got " + std::to_string(found->mtu));
    check(!found->up, "new bridge is down");
    check(found->master_index == 0, "new bridge has no master");
    check(found->alias.empty(), "new bridge has no alias");
    const std::string mac = found->mac ? found->mac->str() : "";
    check(found->mac && found->mac->unicast(), "new bridge has a unicast mac, got \"" + mac + "\"");
    bool listed = false;
    for (const auto& l : links.list_links()) {
        listed = listed || (l.name == br && l.index == found->index && l.kind == "bridge");
    }
    check(listed, "list_links contains the bridge with the same index");

    json ip = ip_json("-d link show", br);
    check(!ip.is_null(), "ip -d link show finds the bridge");
    if (!ip.is_null()) {
        check(ip.value("ifindex", -1) == found->index, "ip ifindex matches adapter");
        check(ip.value("mtu", 0) == 1400, "ip mtu 1400");
        check(ip.value("address", "") == mac, "ip address matches adapter mac " + mac);
        const json info = ip.value("linkinfo", json::object());
        check(info.value("info_kind", "") == "bridge", "ip info_kind bridge");
        const json data = info.value("info_data", json::object());
        check(data.value("stp_state", -1) == 0, "ip stp_state 0, got " + data.value("stp_state", json()).dump());
        check(data.value("forward_delay", -1) == 0,
              "ip forward_delay 0, got " + data.value("forward_delay", json()).dump());
    }

    std::cout << "* duplicate create_bridge\n";
    expect_error("duplicate bridge", ErrorKind::AlreadyExists, {"kvmtest0 already exists", "creating bridge"},
                 [&] { links.create_bridge(br, bridge(false, 0, 0)); });
    expect_error("invalid bridge name", ErrorKind::InvalidArgument, {"invalid interface name"},
                 [&] { links.create_bridge("this-name-is-too-long", {}); });

    std::cout << "* set_alias / set_up / set_mtu\n";
    if (step("set_alias", [&] { links.set_alias(br, "kvmnet:test"); })) {
        const auto l = links.find_link(br);
        check(l && l->alias == "kvmnet:test", "adapter alias kvmnet:test");
        check(ip_json("link show", br).value("ifalias", "") == "kvmnet:test", "ip ifalias kvmnet:test");
    }
    if (step("set_up(true)", [&] { links.set_up(br, true); })) {
        const auto l = links.find_link(br);
        check(l && l->up, "adapter reports up");
        check(ip_has_flag(ip_json("link show", br), "UP"), "ip flags contain UP");
    }
    if (step("set_mtu(1300)", [&] { links.set_mtu(br, 1300); })) {
        const auto l = links.find_link(br);
        check(l && l->mtu == 1300, "adapter mtu 1300");
        check(ip_json("link show", br).value("mtu", 0) == 1300, "ip mtu 1300");
    }
    step("set_mtu(1400)", [&] { links.set_mtu(br, 1400); });
    expect_error("set_mtu(10)", ErrorKind::Kernel, {"setting MTU 10 on kvmtest0 failed"},
                 [&] { links.set_mtu(br, 10); });

    std::cout << "* add_address / delete_address\n";
    const int index = found->index;
    if (step("add IPv4", [&] { links.add_address(br, ip_of("192.168.122.1"), 24); })) {
        check(adapter_has_address(links, index, AF_INET, "192.168.122.1", 24), "adapter lists 192.168.122.1/24");
        const json a = ip_addr(br, "192.168.122.1");
        check(!a.is_null() && a.value("prefixlen", 0) == 24, "ip shows 192.168.122.1/24");
        check(!a.is_null() && a.value("broadcast", "") == "192.168.122.255", "ip shows broadcast 192.168.122.255");
    }
    expect_error("duplicate IPv4", ErrorKind::AlreadyExists,
                 {"netlink: adding address 192.168.122.1/24 to kvmtest0 failed: Object exists"},
                 [&] { links.add_address(br, ip_of("192.168.122.1"), 24); });
    if (step("add IPv4 /32", [&] { links.add_address(br, ip_of("10.0.0.7"), 32); })) {
        const json a = ip_addr(br, "10.0.0.7");
        check(!a.is_null() && a.value("prefixlen", 0) == 32, "ip shows 10.0.0.7/32");
        check(!a.is_null() && !a.contains("broadcast"), "no broadcast on a /32");
    }
    if (step("add IPv6", [&] { links.add_address(br, ip_of("fd00:1:2::1"), 64); })) {
        check(adapter_has_address(links, index, AF_INET6, "fd00:1:2::1", 64), "adapter lists fd00:1:2::1/64");
        const json a = ip_addr(br, "fd00:1:2::1");
        check(!a.is_null() && a.value("prefixlen", 0) == 64, "ip shows fd00:1:2::1/64");
    }
    expect_error("duplicate IPv6", ErrorKind::AlreadyExists, {"adding address fd00:1:2::1/64 to kvmtest0"},
                 [&] { links.add_address(br, ip_of("fd00:1:2::1"), 64); });
    expect_error("bad prefix", ErrorKind::InvalidArgument, {"prefix length"},
                 [&] { links.add_address(br, ip_of("10.1.1.1"), 33); });

    if (step("delete IPv4", [&] { links.delete_address(br, ip_of("192.168.122.1"), 24); })) {
        check(!adapter_has_address(links, index, AF_INET, "192.168.122.1", 24), "adapter no longer lists IPv4");
        check(ip_addr(br, "192.168.122.1").is_null(), "ip no longer shows IPv4");
    }
    step("delete IPv4 /32", [&] { links.delete_address(br, ip_of("10.0.0.7"), 32); });
    if (step("delete IPv6", [&] { links.delete_address(br, ip_of("fd00:1:2::1"), 64); })) {
        check(!adapter_has_address(links, index, AF_INET6, "fd00:1:2::1", 64), "adapter no longer lists IPv6");
        check(ip_addr(br, "fd00:1:2::1").is_null(), "ip no longer shows IPv6");
    }
    expect_error("delete absent address", ErrorKind::NotFound, {"deleting address 192.168.122.1/24 from kvmtest0"},
                 [&] { links.delete_address(br, ip_of("192.168.122.1"), 24); });

    if (step("set_up(false)", [&] { links.set_up(br, false); })) {
        const auto l = links.find_link(br);
        check(l && !l->up, "adapter reports down");
        check(!ip_has_flag(ip_json("link show", br), "UP"), "ip flags lack UP");
    }
    if (step("set_alias(\"\")", [&] { links.set_alias(br, ""); })) {
        const auto l = links.find_link(br);
        check(l && l->alias.empty(), "alias cleared, got \"" + (l ? l->alias : std::string("?")) + "\"");
    }

    std::cout << "* delete_link\n";
    if (step("delete_link", [&] { links.delete_link(br); })) {
        check(!links.find_link(br).has_value(), "find_link after delete is nullopt");
        check(ip_json("link show", br).is_null(), "ip link show no longer finds the bridge");
    }
    expect_error("delete_link twice", ErrorKind::NotFound, {"no such interface kvmtest0"},
                 [&] { links.delete_link(br); });
}

// STP on: the kernel accepts delays 200..3000 cs and would clamp others silently, so the adapter refuses them.
void check_stp(NetlinkLinks& links)
{
    std::cout << "* STP on\n";
    struct Case {
        std::string name;
        std::uint32_t delay;
    };
    for (const Case& c : {Case{"kvmstp0", 1500}, Case{"kvmstp1", 200}, Case{"kvmstp2", 3000}}) {
        if (!step("create_bridge " + c.name + " stp on delay " + std::to_string(c.delay),
                  [&] { links.create_bridge(c.name, bridge(true, c.delay, 0)); })) {
            continue;
        }
        const json data =
            ip_json("-d link show", c.name).value("linkinfo", json::object()).value("info_data", json::object());
        std::cout << "  (" << c.name << ": stp_state " << data.value("stp_state", json()).dump() << ", forward_delay "
                  << data.value("forward_delay", json()).dump() << ")\n";
        check(data.value("stp_state", -1) != 0, c.name + ": stp_state non-zero");
        check(data.value("forward_delay", json()) == c.delay, c.name + ": forward_delay " + std::to_string(c.delay));
        step("delete_link " + c.name, [&] { links.delete_link(c.name); });
    }
    for (std::uint32_t delay : {0u, 199u, 3001u}) {
        expect_error("stp on, delay " + std::to_string(delay), ErrorKind::InvalidArgument, {"outside 200..3000"},
                     [&] { links.create_bridge("kvmstp9", bridge(true, delay, 0)); });
    }
    check(!links.find_link("kvmstp9").has_value(), "refused STP bridge was not created");
}

// A bridge's MTU must survive a port joining; the kernel resets it unless it was set as a change after creation.
void check_mtu_pinned(NetlinkLinks& links)
{
    std::cout << "* MTU survives a 1500-byte port joining\n";
    const std::string br = "kvmmtu0";
    if (!step("create_bridge kvmmtu0 mtu 1400", [&] { links.create_bridge(br, bridge(false, 0, 1400)); })) {
        return;
    }
    const Output veth = run("ip link add kvmv0 type veth peer name kvmv1 && ip link set kvmv0 master " + br);
    check(veth.status == 0, "adding a veth port with ip: " + veth.text);
    const auto l = links.find_link(br);
    const auto port = links.find_link("kvmv0");
    check(port && l && port->master_index == l->index, "adapter reports the port's master index");
    check(l && l->mtu == 1400,
          "bridge MTU still 1400 after the port joined, got " + (l ? std::to_string(l->mtu) : std::string("?")));
    step("delete_link kvmv0", [&] { links.delete_link("kvmv0"); });
    step("delete_link kvmmtu0", [&] { links.delete_link(br); });
}

}  // namespace

int main()
{
    std::string why;
    if (!kvmnet::test::in_safe_netns(why)) {
        std::cerr << "links_adapter_check: refusing to run, possibly in the root network namespace (" << why
                  << "); run it as\n"
                     "  ip netns add kvmnl-$$; ip netns exec kvmnl-$$ ./links_adapter_check; ip netns del kvmnl-$$\n";
        return 77;
    }
    try {
        NetlinkLinks links;
        check_links_and_lookup(links);
        check_not_found_verbs(links);
        check_bridge(links);
        check_stp(links);
        check_mtu_pinned(links);
    } catch (const std::exception& e) {
        check(false, std::string("unexpected exception: ") + e.what());
    }
    std::cout << (failures == 0 ? "PASS" : "FAILED") << ": " << checks - failures << "/" << checks
              << " checks passed\n";
    return failures == 0 ? 0 : 1;
}
