// Standalone check of the guest-port verbs of kernel::NetlinkLinks (netlink_ports.cpp, tc.cpp) against a real
// kernel: every verb is driven and its effect compared with what iproute2 reports (`ip -j -d link`, `bridge -j`,
// `tc`). It creates taps, bridges, veths and qdiscs, so it refuses to run outside a throwaway namespace:
//     bash tests/kernel/run-in-netns.sh build/tests/kernel/ports_adapter_check
// Fixtures (bridge, veth pair) are made with ip(8), so only the verbs under test go through the adapter.
// Exit status: 0 all passed, 1 some check failed, 77 (skip) when not in a separate namespace.
#include "check_util.hpp"
#include "kernel/netlink_links.hpp"
#include "model/error.hpp"
#include "model/mac.hpp"
#include "netns_guard.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/if_packet.h>
#include <linux/if_tun.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <string>

namespace {

using namespace kvmnet::test;

using kvmnet::Error;
using kvmnet::ErrorKind;
using kvmnet::kernel::NetlinkLinks;
using kvmnet::plan::PortBandwidth;
using kvmnet::plan::Rate;
using nlohmann::json;

kvmnet::model::Mac mac_value(const char* text) { return kvmnet::model::Mac::parse(text).value(); }

// Fixture commands must work; a failure here is a broken test environment, reported as such.
bool sh(const std::string& command)
{
    const Output out = run(command);
    if (out.status != 0) {
        check(false, "fixture `" + command + "` failed: " + out.text);
        return false;
    }
    return true;
}

json run_json(const std::string& command)
{
    const Output out = run(command);
    if (out.status != 0) {
        return nullptr;
    }
    try {
        return json::parse(out.text);
    } catch (const json::exception& e) {
        check(false, "parsing `" + command + "` output: " + e.what() + " in: " + out.text);
        return nullptr;
    }
}

// The single element of `ip -j -d link show dev NAME`, or null when it does not exist.
json ip_link(const std::string& dev)
{
    const json parsed = run_json("ip -j -d link show dev " + dev);
    return parsed.is_array() && parsed.size() == 1 ? parsed[0] : json(nullptr);
}

int ifindex(const std::string& dev)
{
    const json link = ip_link(dev);
    return link.is_null() ? 0 : link.value("ifindex", 0);
}

std::string mac_of(const std::string& dev)
{
    const json link = ip_link(dev);
    return link.is_null() ? "" : link.value("address", "");
}

bool link_exists_with_prefix(const std::string& prefix)
{
    const json links = run_json("ip -j link show");
    if (!links.is_array()) {
        return false;
    }
    for (const auto& l : links) {
        if (l.value("ifname", "").rfind(prefix, 0) == 0) {
            return true;
        }
    }
    return false;
}

// ------------------------------------------------------------------------------------------------------------
// Errors for absent links and bad input

void check_not_found_and_invalid(NetlinkLinks& links)
{
    std::cout << "* verbs on an absent link -> NotFound\n";
    const std::string absent = "kvmabsent0";
    const std::string needle = "no such interface kvmabsent0";
    expect_error("set_mac absent", ErrorKind::NotFound, {needle},
                 [&] { links.set_mac(absent, mac_value("52:54:00:00:00:01")); });
    expect_error("set_master absent", ErrorKind::NotFound, {needle}, [&] { links.set_master(absent, ""); });
    expect_error("set_port_isolated absent", ErrorKind::NotFound, {needle},
                 [&] { links.set_port_isolated(absent, true); });
    expect_error("list_fdb absent", ErrorKind::NotFound, {needle}, [&] { links.list_fdb(absent); });
    expect_error("set_bandwidth absent", ErrorKind::NotFound, {needle}, [&] {
        links.set_bandwidth(absent, PortBandwidth{{100, 0, 0}, {}});
    });
    expect_error("set_bandwidth(all zero) absent", ErrorKind::NotFound, {needle},
                 [&] { links.set_bandwidth(absent, PortBandwidth{}); });

    std::cout << "* bad input -> InvalidArgument\n";
    if (!sh("ip link add kvmx0 type veth peer name kvmx1")) {
        return;
    }
    expect_error("set_mac multicast", ErrorKind::InvalidArgument, {"kvmx0", "unicast"},
                 [&] { links.set_mac("kvmx0", mac_value("01:00:5e:00:00:01")); });
    expect_error("set_master to absent master", ErrorKind::NotFound, {"no such interface kvmabsent0"},
                 [&] { links.set_master("kvmx0", absent); });
    expect_error("set_master to a veth", ErrorKind::InvalidArgument, {"kvmx1", "not a bridge"},
                 [&] { links.set_master("kvmx0", "kvmx1"); });
    expect_error("set_port_isolated on a non-port", ErrorKind::InvalidArgument, {"kvmx0", "not a bridge port"},
                 [&] { links.set_port_isolated("kvmx0", true); });
    expect_error("list_fdb of a veth", ErrorKind::InvalidArgument, {"kvmx0", "not a bridge"},
                 [&] { links.list_fdb("kvmx0"); });
    expect_error("set_bandwidth peak < average", ErrorKind::InvalidArgument, {"kvmx0", "peak"}, [&] {
        links.set_bandwidth("kvmx0", PortBandwidth{{1000, 10, 0}, {}});
    });
    expect_error("set_bandwidth burst without average", ErrorKind::InvalidArgument, {"kvmx0", "average"}, [&] {
        links.set_bandwidth("kvmx0", PortBandwidth{{}, {0, 0, 64}});
    });
    expect_error("set_bandwidth huge burst at a tiny rate", ErrorKind::InvalidArgument, {"kvmx0", "burst"}, [&] {
        links.set_bandwidth("kvmx0", PortBandwidth{{1, 0, 4000000}, {}});
    });
    expect_error("create_tap bad name", ErrorKind::InvalidArgument, {"invalid interface name"},
                 [&] { links.create_tap("tap%d", 0, 0, false); });
    expect_error("create_tap over a veth", ErrorKind::AlreadyExists, {"kvmx0", "already exists"},
                 [&] { links.create_tap("kvmx0", 0, 0, false); });
    sh("ip link del kvmx0");
}

// ------------------------------------------------------------------------------------------------------------
// Taps

// In a child: drop to uid/gid 65534 (no supplementary groups, so no capabilities either) and attach to tap `name`
// with TUNSETIFF as QEMU would. `open_first` opens /dev/net/tun before dropping privileges, for machines where the
// node is root-only. Returns 0 on success, else the errno.
int attach_as_nobody(const std::string& name, bool open_first)
{
    const pid_t pid = fork();
    if (pid < 0) {
        return errno;
    }
    if (pid == 0) {
        int fd = open_first ? open("/dev/net/tun", O_RDWR | O_CLOEXEC) : -1;
        if (setgroups(0, nullptr) != 0 || setresgid(65534, 65534, 65534) != 0 || setresuid(65534, 65534, 65534) != 0) {
            _exit(200);
        }
        if (!open_first) {
            fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
        }
        if (fd < 0) {
            _exit(errno & 0xff);
        }
        ifreq request{};
        std::strncpy(request.ifr_name, name.c_str(), IFNAMSIZ - 1);
        request.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
        const int rc = ioctl(fd, TUNSETIFF, &request);
        _exit(rc == 0 ? 0 : (errno & 0xff));
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 255;
}

void check_tap(NetlinkLinks& links)
{
    std::cout << "* create_tap kvmtap0 owner 65534 group 65534\n";
    if (!step("create_tap", [&] { links.create_tap("kvmtap0", 65534, 65534, false); })) {
        return;
    }
    const json link = ip_link("kvmtap0");
    check(!link.is_null(), "ip -d link shows kvmtap0");
    if (!link.is_null()) {
        const json info = link["linkinfo"];
        const json data = info.value("info_data", json::object());
        std::cout << "    ip -d: " << info.dump() << '\n';
        check(info.value("info_kind", "") == "tun", "kind tun");
        check(data.value("type", "") == "tap", "type tap");
        check(data.value("pi", true) == false, "pi off (IFF_NO_PI)");
        check(data.value("vnet_hdr", false) == true, "vnet_hdr on");
        check(data.value("persist", false) == true, "persist on");
        // ip prints names when /etc/passwd knows the ids.
        const json user = data.value("user", json());
        const json group = data.value("group", json());
        check(user == "nobody" || user == 65534, "user 65534 (" + user.dump() + ")");
        check(group == "nogroup" || group == "nobody" || group == 65534, "group 65534 (" + group.dump() + ")");
    }
    expect_error("create_tap again", ErrorKind::AlreadyExists, {"kvmtap0", "already exists"},
                 [&] { links.create_tap("kvmtap0", 65534, 65534, false); });

    std::cout << "* unprivileged attach to kvmtap0 as uid/gid 65534\n";
    struct stat node {};
    stat("/dev/net/tun", &node);
    std::cout << "    /dev/net/tun mode " << std::oct << (node.st_mode & 07777) << std::dec << '\n';
    const int direct = attach_as_nobody("kvmtap0", false);
    if (direct == 0) {
        check(true, "uid 65534 opened /dev/net/tun and attached to kvmtap0 (TUNSETIFF)");
    } else if (direct == EACCES && (node.st_mode & 0006) != 0006) {
        // Not the tap's doing: the device node itself is root-only here (distributions ship it 0666).
        std::cout << "    note: uid 65534 cannot open /dev/net/tun (" << std::strerror(direct)
                  << "), the node is not world read/writable on this machine; attaching with an fd opened "
                     "before dropping privileges (as libvirt hands QEMU an fd)\n";
        const int attached = attach_as_nobody("kvmtap0", true);
        check(attached == 0, std::string("uid 65534 attached to kvmtap0 with TUNSETIFF: ") +
                                 (attached == 0 ? "ok" : std::strerror(attached)));
    } else {
        check(false, std::string("uid 65534 attaching to kvmtap0: ") + std::strerror(direct));
    }
    check(!ip_link("kvmtap0").is_null(), "kvmtap0 persists after the unprivileged user closed it");

    // Negative control: the owner check is real, a tap of another user refuses uid 65534.
    if (step("create_tap kvmtap1 owner 1000 group 1000", [&] { links.create_tap("kvmtap1", 1000, 1000, false); })) {
        const int refused = attach_as_nobody("kvmtap1", true);
        check(refused == EPERM, std::string("uid 65534 is refused kvmtap1 (owner 1000): ") +
                                    (refused == 0 ? "attached!" : std::strerror(refused)));
        sh("ip link del kvmtap1");
    }

    std::cout << "* set_mac on kvmtap0\n";
    if (step("set_mac", [&] { links.set_mac("kvmtap0", mac_value("52:54:00:AB:cd:01")); })) {
        check(mac_of("kvmtap0") == "52:54:00:ab:cd:01", "ip shows 52:54:00:ab:cd:01, got " + mac_of("kvmtap0"));
    }
}

// ------------------------------------------------------------------------------------------------------------
// Bridge ports: master, FDB, isolation

std::string master_of(const std::string& dev)
{
    const json link = ip_link(dev);
    return link.is_null() ? "?" : link.value("master", "");
}

// Sends one broadcast Ethernet frame out of `dev` with its own MAC as source, so whatever bridge is on the other
// end learns that MAC. (Both veth ends are in this namespace: an IP packet between them would be delivered
// locally and never cross the wire.)
bool send_frame(const std::string& dev, const std::string& mac_text)
{
    const int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return false;
    }
    std::array<unsigned char, 60> frame{};
    std::fill(frame.begin(), frame.begin() + 6, 0xff);
    const auto mac = kvmnet::model::Mac::parse(mac_text);
    if (!mac) {
        close(fd);
        return false;
    }
    std::copy(mac->bytes.begin(), mac->bytes.end(), frame.begin() + 6);
    frame[12] = 0x88;  // 0x88b5: IEEE local experimental ethertype
    frame[13] = 0xb5;
    sockaddr_ll to{};
    to.sll_family = AF_PACKET;
    to.sll_ifindex = static_cast<int>(if_nametoindex(dev.c_str()));
    to.sll_halen = 6;
    std::memset(to.sll_addr, 0xff, 6);
    const ssize_t sent = sendto(fd, frame.data(), frame.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof(to));
    close(fd);
    return sent == static_cast<ssize_t>(frame.size());
}

bool fdb_has(const std::vector<kvmnet::plan::FdbEntry>& fdb, const std::string& mac, int port, bool local)
{
    for (const auto& e : fdb) {
        if (e.mac.str() == mac && e.port_index == port && e.local == local) {
            return true;
        }
    }
    return false;
}

void check_bridge_ports(NetlinkLinks& links)
{
    std::cout << "* bridge kvmbr0 + veth kvmv0 (port) / kvmv1 (peer, same namespace)\n";
    // IPv6 off on the peer so it sends nothing by itself: the bridge must learn its MAC from our frame only.
    if (!sh("ip link add kvmbr0 type bridge stp_state 0 forward_delay 0") ||
        !sh("ip link add kvmv0 type veth peer name kvmv1") || !sh("ip link set kvmv1 address 02:00:00:00:77:01") ||
        !sh("sysctl -qw net.ipv6.conf.kvmv1.disable_ipv6=1") || !sh("ip link set kvmbr0 up") ||
        !sh("ip link set kvmv1 up")) {
        return;
    }

    std::cout << "* set_master kvmv0 -> kvmbr0, kvmtap0 -> kvmbr0, release kvmtap0\n";
    if (!step("set_master kvmv0 kvmbr0", [&] { links.set_master("kvmv0", "kvmbr0"); })) {
        return;
    }
    check(master_of("kvmv0") == "kvmbr0", "ip shows kvmv0 master kvmbr0");
    if (step("set_master kvmtap0 kvmbr0", [&] { links.set_master("kvmtap0", "kvmbr0"); })) {
        check(master_of("kvmtap0") == "kvmbr0", "ip shows kvmtap0 master kvmbr0");
        const json slave = ip_link("kvmtap0")["linkinfo"].value("info_slave_kind", "");
        check(slave == "bridge", "ip -d shows kvmtap0 as a bridge slave");
        step("set_master kvmtap0 release", [&] { links.set_master("kvmtap0", ""); });
        check(master_of("kvmtap0").empty(), "ip shows kvmtap0 without master, got \"" + master_of("kvmtap0") + "\"");
        step("set_master release again (no master)", [&] { links.set_master("kvmtap0", ""); });
    }
    expect_error("set_master bridge into itself", ErrorKind::InvalidArgument, {"kvmbr0"},
                 [&] { links.set_master("kvmbr0", "kvmbr0"); });
    sh("ip link set kvmv0 up");

    std::cout << "* list_fdb kvmbr0 before and after a frame from kvmv1\n";
    const std::string peer = mac_of("kvmv1");
    const int port = ifindex("kvmv0");
    std::vector<kvmnet::plan::FdbEntry> before;
    step("list_fdb before", [&] { before = links.list_fdb("kvmbr0"); });
    check(!fdb_has(before, peer, port, false), "peer MAC " + peer + " not yet learnt");
    check(fdb_has(before, mac_of("kvmv0"), port, true), "kvmv0's own MAC is a local entry on kvmv0");
    check(send_frame("kvmv1", peer), "sent a broadcast frame from kvmv1");
    usleep(100 * 1000);
    std::vector<kvmnet::plan::FdbEntry> after;
    step("list_fdb after", [&] { after = links.list_fdb("kvmbr0"); });
    for (const auto& e : after) {
        std::cout << "    fdb: " << e.mac.str() << " port " << e.port_index << " vlan " << e.vlan
                  << (e.local ? " local" : "") << '\n';
    }
    check(fdb_has(after, peer, port, false),
          "peer MAC " + peer + " learnt on kvmv0 (ifindex " + std::to_string(port) + "), not local");
    // Same set as bridge(8) shows for the bridge's own entries (not the ports' "self" address lists).
    const json shown = run_json("bridge -j fdb show br kvmbr0");
    std::size_t bridge_entries = 0;
    bool all_present = shown.is_array();
    if (shown.is_array()) {
        for (const auto& e : shown) {
            if (e.value("master", "") != "kvmbr0") {
                continue;
            }
            ++bridge_entries;
            const bool permanent = e.value("state", "") == "permanent";
            if (!fdb_has(after, e.value("mac", ""), ifindex(e.value("ifname", "")), permanent)) {
                all_present = false;
                std::cout << "    missing from list_fdb: " << e.dump() << '\n';
            }
        }
    }
    check(all_present && bridge_entries == after.size(),
          "list_fdb matches `bridge -j fdb show br kvmbr0` (" + std::to_string(after.size()) + " adapter, " +
              std::to_string(bridge_entries) + " bridge(8) entries with master kvmbr0)");

    std::cout << "* set_port_isolated kvmv0 on/off\n";
    const auto isolated = [] {
        const json shown = run_json("bridge -d -j link show dev kvmv0");
        return shown.is_array() && shown.size() == 1 ? shown[0].value("isolated", json()) : json();
    };
    if (step("set_port_isolated on", [&] { links.set_port_isolated("kvmv0", true); })) {
        check(isolated() == true, "bridge -d -j link: isolated true, got " + isolated().dump());
    }
    if (step("set_port_isolated off", [&] { links.set_port_isolated("kvmv0", false); })) {
        check(isolated() == false, "bridge -d -j link: isolated false, got " + isolated().dump());
    }
    expect_error("set_port_isolated on a released tap", ErrorKind::InvalidArgument, {"kvmtap0", "not a bridge port"},
                 [&] { links.set_port_isolated("kvmtap0", true); });

    std::cout << "* port_flags kvmv0 (what DetachPort gives back)\n";
    sh("bridge link set dev kvmv0 isolated on hairpin off");
    auto flags = links.port_flags("kvmv0");
    check(flags && flags->isolated && !flags->hairpin, "port_flags: isolated on, hairpin off as bridge(8) set them");
    sh("bridge link set dev kvmv0 isolated off hairpin on");
    flags = links.port_flags("kvmv0");
    check(flags && !flags->isolated && flags->hairpin, "port_flags: isolated off, hairpin on as bridge(8) set them");
    sh("bridge link set dev kvmv0 hairpin off");
    check(!links.port_flags("kvmtap0"), "port_flags of a link that is no bridge port: none");
    check(!links.port_flags("kvmnosuch0"), "port_flags of an absent link: none");
}

// ------------------------------------------------------------------------------------------------------------
// VLAN filtering probe

bool check_vlan_probe(NetlinkLinks& links)
{
    std::cout << "* vlan_filtering_supported (with a stale probe bridge of our pid in the way)\n";
    // What a crashed earlier probe by a process with the same pid would have left: the probe must clear it.
    sh("ip link add kvmprobe" + std::to_string(getpid()) + " type bridge");
    bool first = false;
    if (!step("vlan_filtering_supported", [&] { first = links.vlan_filtering_supported(); })) {
        return false;
    }
    std::cout << "    probe says: bridge VLAN filtering " << (first ? "SUPPORTED" : "NOT supported") << '\n';
    check(!link_exists_with_prefix("kvmprobe"), "no kvmprobe* link left behind");
    bool second = !first;
    step("vlan_filtering_supported (cached)", [&] { second = links.vlan_filtering_supported(); });
    check(second == first, "second call gives the same answer");
    // An independent oracle: what iproute2 gets from the kernel for the same request.
    const Output oracle = run("ip link add kvmvf0 type bridge vlan_filtering 1");
    const json made = ip_link("kvmvf0");
    const bool ip_says =
        oracle.status == 0 && !made.is_null() && made["linkinfo"]["info_data"].value("vlan_filtering", 0) == 1;
    run("ip link del kvmvf0");
    std::cout << "    `ip link add ... type bridge vlan_filtering 1`: "
              << (oracle.status == 0 ? "ok" : oracle.text.substr(0, oracle.text.find('\n'))) << '\n';
    check(ip_says == first,
          std::string("probe agrees with iproute2 (") + (ip_says ? "supported" : "unsupported") + ")");
    if (!first) {
        std::cout << "    => VLAN verbs on this kernel must report Unsupported (CONFIG_BRIDGE_VLAN_FILTERING)\n";
    }
    return first;
}

// ------------------------------------------------------------------------------------------------------------
// Per-port VLANs (kvmv0 is a port of kvmbr0 here)

// `bridge -j vlan show dev kvmv0` as "10 pvid untagged, 20, 30" (vid order), "" for no VLAN, "?" when unreadable.
std::string vlans_of(const std::string& dev)
{
    const json shown = run_json("bridge -j vlan show dev " + dev);
    if (!shown.is_array()) {
        return "?";
    }
    std::string text;
    for (const auto& port : shown) {
        if (port.value("ifname", "") != dev || !port.contains("vlans")) {
            continue;
        }
        for (const auto& v : port["vlans"]) {
            const json flags = v.value("flags", json::array());
            const auto has = [&](const char* flag) {
                return std::find(flags.begin(), flags.end(), flag) != flags.end();
            };
            text += (text.empty() ? "" : ", ") + std::to_string(v.value("vlan", 0)) + (has("PVID") ? " pvid" : "") +
                    (has("Egress Untagged") ? " untagged" : "");
        }
    }
    return text;
}

int bridge_vlan_filtering(const std::string& bridge)
{
    const json link = ip_link(bridge);
    return link.is_null() ? -1 : link["linkinfo"]["info_data"].value("vlan_filtering", 0);
}

void check_port_vlans(NetlinkLinks& links, bool supported)
{
    std::cout << "* set_port_vlans kvmbr0 kvmv0 pvid 10 tagged 20,30 (VLAN filtering "
              << (supported ? "supported" : "NOT supported") << ")\n";
    const std::string before = vlans_of("kvmv0");
    const int filtering_before = bridge_vlan_filtering("kvmbr0");
    std::cout << "    before: vlans [" << before << "], kvmbr0 vlan_filtering " << filtering_before << '\n';
    if (!supported) {
        expect_error("set_port_vlans without VLAN filtering", ErrorKind::Unsupported,
                     {"kvmv0", "VLAN filtering", "CONFIG_BRIDGE_VLAN_FILTERING"}, [&] {
                         links.set_port_vlans("kvmbr0", "kvmv0", 10, {20, 30});
                     });
        check(vlans_of("kvmv0") == before, "kvmv0's VLANs unchanged, now [" + vlans_of("kvmv0") + "]");
        check(bridge_vlan_filtering("kvmbr0") == filtering_before, "kvmbr0's vlan_filtering unchanged");
        check(master_of("kvmv0") == "kvmbr0", "kvmv0 still a port of kvmbr0");
        expect_error("set_port_vlans tagged only without VLAN filtering", ErrorKind::Unsupported,
                     {"CONFIG_BRIDGE_VLAN_FILTERING"}, [&] { links.set_port_vlans("kvmbr0", "kvmv0", 0, {20}); });
        check(vlans_of("kvmv0") == before, "kvmv0's VLANs still unchanged");
        return;
    }
    if (step("set_port_vlans pvid 10 tagged 20,30", [&] { links.set_port_vlans("kvmbr0", "kvmv0", 10, {20, 30}); })) {
        check(bridge_vlan_filtering("kvmbr0") == 1, "ip -d shows kvmbr0 vlan_filtering 1");
        const std::string now = vlans_of("kvmv0");
        check(now == "10 pvid untagged, 20, 30",
              "bridge vlan show: 10 pvid untagged, 20, 30 (VLAN 1 gone), got [" + now + "]");
    }
    if (step("set_port_vlans replace: tagged 30,40 only", [&] {
            links.set_port_vlans("kvmbr0", "kvmv0", 0, {30, 40});
        })) {
        const std::string now = vlans_of("kvmv0");
        check(now == "30, 40", "bridge vlan show: 30, 40, got [" + now + "]");
    }
    if (step("set_port_vlans back to pvid 1", [&] { links.set_port_vlans("kvmbr0", "kvmv0", 1, {}); })) {
        const std::string now = vlans_of("kvmv0");
        check(now == "1 pvid untagged", "bridge vlan show: 1 pvid untagged, got [" + now + "]");
    }
    expect_error("set_port_vlans on a tap that is no port", ErrorKind::InvalidArgument, {"kvmtap0", "not a port"},
                 [&] { links.set_port_vlans("kvmbr0", "kvmtap0", 10, {}); });
    expect_error("set_port_vlans on an absent port", ErrorKind::NotFound, {"no such interface kvmabsent0"},
                 [&] { links.set_port_vlans("kvmbr0", "kvmabsent0", 10, {}); });
}

// ------------------------------------------------------------------------------------------------------------
// Bandwidth

json qdisc_at(const std::string& dev, const std::string& parent_or_root)
{
    const json list = run_json("tc -j qdisc show dev " + dev);
    if (!list.is_array()) {
        return nullptr;
    }
    for (const auto& q : list) {
        if ((parent_or_root == "root" && q.value("root", false)) || q.value("parent", "") == parent_or_root) {
            return q;
        }
    }
    return nullptr;
}

// tc prints rates in bits/s with SI prefixes ("8Mbit") and sizes in bytes with binary ones ("64Kb").
// (No std::regex here: GCC 12 warns inside <regex> under -O2 with sanitizers, and the build uses -Werror.)
double tc_number(const std::string& text, bool size)
{
    std::size_t used = 0;
    double value = 0;
    try {
        value = std::stod(text, &used);
    } catch (const std::exception&) {
        return -1;
    }
    const std::string prefixes = "KMGT";
    const std::size_t power = used < text.size() ? prefixes.find(text[used]) : std::string::npos;
    if (power != std::string::npos) {
        value *= std::pow(size ? 1024.0 : 1000.0, static_cast<double>(power + 1));
    }
    return value;
}

// The word after `key` in `text` ("rate 8Mbit ceil ..." -> "8Mbit"), or "".
std::string word_after(const std::string& text, const std::string& key)
{
    const std::size_t at = text.find(" " + key + " ");
    if (at == std::string::npos) {
        return {};
    }
    const std::size_t begin = at + key.size() + 2;
    return text.substr(begin, text.find_first_of(" \n", begin) - begin);
}

struct HtbClass {
    bool found = false;
    double rate_bps = 0, ceil_bps = 0, burst = 0;
};

// iproute2 6.1 prints htb classes as text even with -j.
HtbClass htb_class(const std::string& dev)
{
    HtbClass c;
    const Output out = run("tc class show dev " + dev);
    const std::size_t at = out.text.find("class htb 1:1 ");
    if (at == std::string::npos) {
        return c;
    }
    const std::string line = out.text.substr(at, out.text.find('\n', at) - at);
    c.found = true;
    c.rate_bps = tc_number(word_after(line, "rate"), false);
    c.ceil_bps = tc_number(word_after(line, "ceil"), false);
    c.burst = tc_number(word_after(line, "burst"), true);
    return c;
}

bool near(double a, double b) { return std::fabs(a - b) <= 0.01 * b; }

void check_bandwidth(NetlinkLinks& links)
{
    const std::string dev = "kvmv0";
    std::cout << "* set_bandwidth inbound average 1000 kB/s peak 2000 kB/s burst 64 kB on " << dev << '\n';
    if (step("set_bandwidth inbound", [&] { links.set_bandwidth(dev, PortBandwidth{{1000, 2000, 64}, {}}); })) {
        const json root = qdisc_at(dev, "root");
        std::cout << "    tc qdisc: " << root.dump() << "\n    tc class: " << run("tc class show dev " + dev).text;
        check(!root.is_null() && root.value("kind", "") == "htb" && root.value("handle", "") == "1:",
              "root qdisc htb 1:");
        check(!root.is_null() && root["options"].value("default", "") == "0x1", "htb default class 1");
        const HtbClass c = htb_class(dev);
        check(c.found && near(c.rate_bps, 8e6), "class 1:1 rate 8Mbit (1000 kB/s)");
        check(c.found && near(c.ceil_bps, 16e6), "class 1:1 ceil 16Mbit (peak 2000 kB/s)");
        check(c.found && near(c.burst, 64 * 1024), "class 1:1 burst 64Kb");
    }

    std::cout << "* replace: inbound average 500 kB/s\n";
    if (step("set_bandwidth replace", [&] { links.set_bandwidth(dev, PortBandwidth{{500, 0, 0}, {}}); })) {
        const json root = qdisc_at(dev, "root");
        check(!root.is_null() && root.value("kind", "") == "htb" && root.value("handle", "") == "1:",
              "root qdisc still htb 1:");
        const HtbClass c = htb_class(dev);
        std::cout << "    tc class: " << run("tc class show dev " + dev).text;
        check(c.found && near(c.rate_bps, 4e6) && near(c.ceil_bps, 4e6), "class 1:1 rate = ceil = 4Mbit");
        const Output classes = run("tc class show dev " + dev);
        check(std::count(classes.text.begin(), classes.text.end(), '\n') == 1, "exactly one class");
    }

    std::cout << "* outbound average 100 kB/s burst 32 kB (ingress police)\n";
    // The oracle: can tc(8) itself build the same filter here?
    sh("ip link add kvmo0 type veth peer name kvmo1");
    sh("tc qdisc add dev kvmo0 ingress");
    const Output oracle =
        run("tc filter add dev kvmo0 parent ffff: protocol all prio 1 u32 match u32 0 0 police rate 100kbps "
            "burst 32kb mtu 64kb drop");
    sh("ip link del kvmo0");
    const bool police_available = oracle.status == 0;
    std::cout << "    tc(8) u32+police on this kernel: "
              << (police_available ? "ok" : oracle.text.substr(0, oracle.text.find('\n'))) << '\n';
    const PortBandwidth both{{500, 0, 0}, {100, 0, 32}};
    if (police_available) {
        if (step("set_bandwidth outbound", [&] { links.set_bandwidth(dev, both); })) {
            const json ingress = qdisc_at(dev, "ffff:fff1");
            check(!ingress.is_null() && ingress.value("kind", "") == "ingress", "ingress qdisc present");
            const Output filters = run("tc -j filter show dev " + dev + " ingress");
            std::cout << "    tc filter: " << filters.text << '\n';
            check(filters.text.find("\"police\"") != std::string::npos ||
                      filters.text.find("police") != std::string::npos,
                  "u32 filter with a police action");
            step("set_bandwidth outbound replace", [&] {
                links.set_bandwidth(dev, PortBandwidth{{500, 0, 0}, {200, 0, 0}});
            });
            const Output again = run("tc filter show dev " + dev + " ingress");
            std::cout << "    tc filter after replace: " << again.text << '\n';
        }
    } else {
        const std::string message =
            expect_error("set_bandwidth outbound", ErrorKind::Unsupported, {dev, "police", "CONFIG_NET_ACT_POLICE"},
                         [&] { links.set_bandwidth(dev, both); });
        check(qdisc_at(dev, "ffff:fff1").is_null(), "no ingress qdisc left behind after Unsupported");
        const HtbClass c = htb_class(dev);
        check(c.found && near(c.rate_bps, 4e6), "inbound shaping untouched by the failed call");
    }

    std::cout << "* remove: all-zero bandwidth\n";
    if (step("set_bandwidth zero", [&] { links.set_bandwidth(dev, PortBandwidth{}); })) {
        const json root = qdisc_at(dev, "root");
        check(root.is_null() || root.value("kind", "") != "htb", "no root htb, now: " + root.dump());
        check(qdisc_at(dev, "ffff:fff1").is_null(), "no ingress qdisc");
        check(!htb_class(dev).found, "no htb class");
    }
    step("set_bandwidth zero again (nothing to remove)", [&] { links.set_bandwidth(dev, PortBandwidth{}); });

    std::cout << "* inbound on the tap, then removed\n";
    if (step("set_bandwidth tap", [&] { links.set_bandwidth("kvmtap0", PortBandwidth{{2000, 0, 128}, {}}); })) {
        const HtbClass c = htb_class("kvmtap0");
        check(c.found && near(c.rate_bps, 16e6) && near(c.burst, 128 * 1024), "kvmtap0 class 16Mbit burst 128Kb");
        step("set_bandwidth tap zero", [&] { links.set_bandwidth("kvmtap0", PortBandwidth{}); });
        check(!htb_class("kvmtap0").found, "kvmtap0 shaping removed");
    }
}

}  // namespace

int main()
{
    std::string why;
    if (!kvmnet::test::in_safe_netns(why)) {
        std::cerr << "ports_adapter_check: refusing to run, possibly in the root network namespace (" << why
                  << "); run it as\n  bash tests/kernel/run-in-netns.sh ports_adapter_check\n";
        return 77;
    }
    try {
        NetlinkLinks links;
        check_not_found_and_invalid(links);
        check_tap(links);
        check_bridge_ports(links);
        check_port_vlans(links, check_vlan_probe(links));
        check_bandwidth(links);
    } catch (const std::exception& e) {
        check(false, std::string("unexpected exception: ") + e.what());
    }
    // The namespace goes away with everything in it; delete anyway so a manual run leaves little behind.
    for (const char* dev : {"kvmtap0", "kvmtap1", "kvmv0", "kvmx0", "kvmo0", "kvmbr0"}) {
        run(std::string("ip link del ") + dev);
    }
    std::cout << (failures == 0 ? "PASS" : "FAILED") << ": " << checks - failures << "/" << checks
              << " checks passed\n";
    return failures == 0 ? 0 : 1;
}
