// What the daemon can observe of, and ask of, the kernel, as plain data and
// small verb-shaped interfaces per kernel object. The real implementations
// are kernel::NetlinkLinks (rtnetlink, sock_diag, /proc/sys) and
// kernel::Nftables; unit tests of the reconciler use fakes. No netlink
// headers here.
#pragma once

#include "model/error.hpp"
#include "model/ip.hpp"
#include "model/mac.hpp"
#include "plan/listeners.hpp"
#include "plan/ruleset.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace kvmnet::plan {

struct LinkStats {
    std::uint64_t rx_bytes = 0, tx_bytes = 0, rx_packets = 0, tx_packets = 0, rx_dropped = 0, tx_dropped = 0;
};

struct LinkInfo {
    int index = 0;
    std::string name;
    std::string kind;   // rtnetlink IFLA_INFO_KIND: "bridge", "veth", "tun", "" for physical
    std::string alias;  // IFLA_IFALIAS; ours carry "kvmnet:<network>"
    std::uint32_t mtu = 0;
    bool up = false;                // administratively up (IFF_UP)
    bool carrier = false;           // IFF_LOWER_UP
    int master_index = 0;           // 0 when not enslaved
    std::optional<model::Mac> mac;  // none for links without a 6-byte hardware address
    bool wireless = false;  // a wireless device (/sys/class/net/NAME/wireless or phy80211 exists); find_link only
    LinkStats stats;
};

struct AddressInfo {
    int link_index = 0;
    model::IpAddress address;  // without prefix; its family is the address's
    std::uint8_t prefix_length = 0;
    // What it takes to put the same address back elsewhere (bridge takeover):
    std::optional<model::Ipv4> broadcast;            // IPv4 only
    std::string label;                               // IFA_LABEL (IPv4), empty when none
    std::uint8_t scope = 0;                          // RT_SCOPE_*
    std::uint32_t flags = 0;                         // IFA_F_* (permanent, noprefixroute, ...)
    std::uint32_t valid_lifetime = 0xffffffffu;      // seconds left; 0xffffffff = forever
    std::uint32_t preferred_lifetime = 0xffffffffu;  // seconds left; 0xffffffff = forever

    int family() const { return address.family(); }  // AF_INET or AF_INET6
};

// A unicast route as the kernel reports it (RTM_GETROUTE), in any table.
struct RouteInfo {
    int family = 0;                               // AF_INET or AF_INET6
    std::optional<model::IpAddress> destination;  // the network; none = default route
    std::uint8_t prefix_length = 0;
    // None = directly connected. Of the other family on an IPv4 route through
    // an IPv6 next hop (RTA_VIA).
    std::optional<model::IpAddress> gateway;
    std::optional<model::IpAddress> preferred_source;  // RTA_PREFSRC
    int link_index = 0;                                // RTA_OIF
    std::uint32_t table = 254;                         // RT_TABLE_MAIN
    std::uint32_t metric = 0;                          // RTA_PRIORITY
    std::uint8_t protocol = 0;                         // RTPROT_* (kernel, boot, static, dhcp, ra, ...)
    std::uint8_t scope = 0;                            // RT_SCOPE_*
    std::uint8_t type = 1;                             // RTN_UNICAST
    std::uint32_t flags = 0;                           // RTNH_F_* (onlink, ...)
    // A route RouteInfo cannot describe so that add_route could recreate it
    // (several next hops, a nexthop object, an IPv6 source prefix). Listed
    // with link_index 0 and no gateway, everything else filled in, so that a
    // bridge takeover sees it and refuses rather than losing hops.
    bool unreproducible = false;
};

struct BridgeOptions {
    bool stp = false;
    std::uint32_t forward_delay_cs = 0;  // centiseconds, as the kernel counts
    std::uint32_t mtu = 0;               // 0: kernel default
    // Applied where non-zero / set; 0 (or nullopt) leaves the kernel default.
    std::uint32_t hello_time_cs = 0;        // STP hello time, centiseconds
    std::uint32_t max_age_cs = 0;           // STP max age, centiseconds
    std::optional<std::uint16_t> priority;  // bridge priority
    std::optional<bool> multicast_snooping;
    std::optional<model::Mac> mac;  // bridge MAC at creation (bridge mode: the uplink's); nothing = random
    bool operator==(const BridgeOptions&) const = default;
};

// One forwarding database entry of a bridge (RTM_GETNEIGH, AF_BRIDGE).
struct FdbEntry {
    model::Mac mac;
    int port_index = 0;  // the bridge port it was learnt on (or the bridge itself)
    std::uint16_t vlan = 0;
    bool local = false;  // the port's own address (NUD_PERMANENT), not learnt
};

// Traffic shaping of a guest port, in libvirt's <bandwidth> terms: rates in
// kilobytes per second, burst in kilobytes. "inbound" is traffic to the
// guest (egress of the host-side port), "outbound" traffic from the guest
// (ingress of the host-side port). All zero = no limit.
struct Rate {
    std::uint64_t average_kBps = 0;
    std::uint64_t peak_kBps = 0;
    std::uint64_t burst_kB = 0;
    bool operator==(const Rate&) const = default;
};
struct PortBandwidth {
    Rate inbound;
    Rate outbound;
    bool operator==(const PortBandwidth&) const = default;
};

// The kernel's links and their neighbours, one small interface per kernel
// object (as systemd-networkd and libvirt's virnetdev*.c divide them), so a
// collaborator can depend on exactly what it touches. Every verb throws
// kvmnet::Error (kind Kernel, or Unsupported where the kernel lacks the
// feature, NotFound for an absent link) with a message naming the link and
// the errno.

// Links: observation, bridges as a link kind, and link-level attributes.
class Links {
public:
    virtual ~Links() = default;
    virtual std::vector<LinkInfo> list_links() = 0;
    virtual std::optional<LinkInfo> find_link(const std::string& name) = 0;
    // The links enslaved to the link with index `master_index` (a bridge's
    // ports). The kernel adapter has the kernel filter the dump, so that a
    // bridge's ports cost the same with 1 or 1,000 bridges on the host.
    virtual std::vector<LinkInfo> list_ports(int master_index)
    {
        std::vector<LinkInfo> ports;
        for (LinkInfo& l : list_links())
            if (l.master_index == master_index) ports.push_back(std::move(l));
        return ports;
    }
    virtual void create_bridge(const std::string& name, const BridgeOptions& options) = 0;
    // Changes STP, forward delay, hello time, max age, priority and multicast
    // snooping of an existing bridge (mtu and mac are ignored here).
    virtual void set_bridge_options(const std::string& name, const BridgeOptions& options) = 0;
    virtual void set_alias(const std::string& name, const std::string& alias) = 0;
    // Renames link `name` to `new_name` (kernels before 6.x: only while it is down).
    virtual void rename_link(const std::string& name, const std::string& new_name) = 0;
    virtual void set_mtu(const std::string& name, std::uint32_t mtu) = 0;
    virtual void set_up(const std::string& name, bool up) = 0;
    virtual void set_mac(const std::string& name, const model::Mac& mac) = 0;
    virtual void delete_link(const std::string& name) = 0;
};

class Addresses {
public:
    virtual ~Addresses() = default;
    virtual std::vector<AddressInfo> list_addresses() = 0;
    // The addresses of the link with index `link_index` (filtered by the
    // kernel where it can, as list_ports).
    virtual std::vector<AddressInfo> list_addresses_of(int link_index)
    {
        std::vector<AddressInfo> mine;
        for (AddressInfo& a : list_addresses())
            if (a.link_index == link_index) mine.push_back(std::move(a));
        return mine;
    }
    virtual void add_address(const std::string& name, const model::IpAddress& address, std::uint8_t prefix_length) = 0;
    // Adds an address with everything `info` carries (lifetimes, flags,
    // broadcast, label, scope); info.link_index is ignored.
    virtual void add_address_info(const std::string& name, const AddressInfo& info) = 0;
    virtual void delete_address(const std::string& name, const model::IpAddress& address,
                                std::uint8_t prefix_length) = 0;
};

class Routes {
public:
    virtual ~Routes() = default;
    // Unicast routes of both families in every table (no cache/local/broadcast entries).
    virtual std::vector<RouteInfo> list_routes() = 0;
    // Adds `route` on link `name` (route.link_index is ignored).
    virtual void add_route(const std::string& name, const RouteInfo& route) = 0;
    // Puts `route` in place of the route with the same table, destination and
    // metric, in one step (NLM_F_REPLACE; added when there is none).
    virtual void replace_route(const std::string& name, const RouteInfo& /*route*/)
    {
        throw Error(ErrorKind::Unsupported, "replacing a route on " + name + ": not supported by this link adapter");
    }
    virtual void delete_route(const RouteInfo& route) = 0;
};

// A link as a port of a bridge: enslaving, port flags, VLANs, the FDB.
class BridgePorts {
public:
    virtual ~BridgePorts() = default;
    // Enslaves `name` to bridge `master`; an empty master releases it.
    virtual void set_master(const std::string& name, const std::string& master) = 0;
    // Bridge port isolation (IFLA_BRPORT_ISOLATED).
    virtual void set_port_isolated(const std::string& name, bool isolated) = 0;
    // Hairpin mode: frames may go back out of the port they came in by. NAT
    // networks need it for a guest reaching itself through a port forward
    // (with br_netfilter the DNATed frame is bridged back to its own port).
    virtual void set_port_hairpin(const std::string& name, bool hairpin) = 0;
    // The bridge port flags of `name`, so that a detach can give them back;
    // nullopt when it is no bridge port or the kernel does not report them.
    struct PortFlags {
        bool isolated = false;
        bool hairpin = false;
    };
    virtual std::optional<PortFlags> port_flags(const std::string& /*name*/) { return std::nullopt; }
    virtual std::vector<FdbEntry> list_fdb(const std::string& bridge) = 0;
    // Whether bridge VLAN filtering works on this kernel (probed once, cached).
    virtual bool vlan_filtering_supported() = 0;
    // Per-port VLANs through bridge VLAN filtering. Turns vlan_filtering on
    // for `bridge` if it is off, then makes `port` (a port of `bridge`) a
    // member of exactly these VLANs: `pvid` as PVID and untagged on egress
    // (none when 0), each of `tagged` as tagged only; every other VLAN of the
    // port, the default VLAN 1 included, is removed. Unsupported (naming
    // CONFIG_BRIDGE_VLAN_FILTERING) when the kernel has no VLAN filtering.
    virtual void set_port_vlans(const std::string& bridge, const std::string& port, std::uint16_t pvid,
                                const std::vector<std::uint16_t>& tagged) = 0;
};

class Taps {
public:
    virtual ~Taps() = default;
    // A persistent tap (survives our process) that `owner`/`group` may open
    // without privileges, as QEMU's -netdev tap,ifname=NAME,script=no does.
    // With `multi_queue` it is made IFF_MULTI_QUEUE, which QEMU's queues=N (N > 1) needs: the kernel refuses
    // to attach a multiqueue open to a single-queue tap, and the other way round.
    virtual void create_tap(const std::string& name, std::uint32_t owner, std::uint32_t group, bool multi_queue) = 0;
    // What the kernel reports of a tap (IFLA_INFO_DATA of kind "tun"); nullopt when `name` is no tap or the
    // kernel does not report it.
    struct TapInfo {
        bool multi_queue = false;
        std::uint32_t open_queues = 0;  // queues attached now (QEMU's open file descriptors)
    };
    virtual std::optional<TapInfo> tap_info(const std::string& /*name*/) { return std::nullopt; }
};

class TrafficControl {
public:
    virtual ~TrafficControl() = default;
    // tc shaping on a bridge port; an all-zero PortBandwidth removes it.
    virtual void set_bandwidth(const std::string& name, const PortBandwidth& bandwidth) = 0;
};

// What the host's network namespace says about itself beyond its links.
class HostFacts {
public:
    virtual ~HostFacts() = default;
    // A sysctl of the daemon's network namespace, by its /proc/sys path
    // ("net/ipv4/ip_forward"); read gives nothing when it does not exist.
    virtual std::optional<std::string> read_sysctl(const std::string& key) = 0;
    virtual void write_sysctl(const std::string& key, const std::string& value) = 0;
    // Listening TCP and bound UDP sockets of the namespace (sock_diag).
    virtual std::vector<Listener> list_listeners() = 0;
};

// VXLAN devices (the overlay driver): a device per VNI and its flood list,
// the all-zeros FDB entries that send broadcast and unknown unicast to each
// remote VTEP (head-end replication). Defaults throw Unsupported, so
// adapters without overlays (the unit tests' fakes) need not implement it.
struct VxlanOptions {
    std::uint32_t vni = 0;
    model::Ipv4 local;  // source address of the tunnel
    std::uint16_t port = 4789;
    int underlay_index = 0;  // IFLA_VXLAN_LINK: the link the tunnel leaves by; 0 = routed
    std::uint32_t mtu = 0;   // 0: the kernel's default
    bool learning = true;
    bool operator==(const VxlanOptions&) const = default;
};

class Vxlans {
public:
    virtual ~Vxlans() = default;
    virtual void create_vxlan(const std::string& name, const VxlanOptions& /*options*/) { unsupported(name); }
    // The options of VXLAN device `name`; nullopt when absent or not a VXLAN device.
    virtual std::optional<VxlanOptions> vxlan_options(const std::string& /*name*/) { return std::nullopt; }
    // Remote VTEP addresses of the all-zeros FDB entries of `name`.
    virtual std::vector<model::Ipv4> list_flood(const std::string& /*name*/) { return {}; }
    virtual void add_flood(const std::string& name, model::Ipv4 /*remote*/) { unsupported(name); }
    virtual void delete_flood(const std::string& name, model::Ipv4 /*remote*/) { unsupported(name); }
    // Every unicast FDB entry of VXLAN device `name` (its own table, NTF_SELF):
    // a remote MAC and the VTEP it is sent to; `extern_learn` when a control
    // plane (FRR) installed it rather than the device learning it.
    struct VxlanFdbEntry {
        model::Mac mac;
        model::Ipv4 vtep;
        bool extern_learn = false;
    };
    virtual std::vector<VxlanFdbEntry> vxlan_fdb(const std::string& /*name*/) { return {}; }
    // The IPv4 neighbour entry (ARP) of `address` on any link, the kernel's
    // state in words ("REACHABLE", "STALE", "FAILED", ...); "" when it has
    // none. The underlay's view of whether a remote VTEP answers.
    virtual std::string neighbour_state(const std::string& /*address*/) { return ""; }
    // The bridge port flags of VXLAN device `name` that the control plane
    // decides: ARP/ND suppression (IFLA_BRPORT_NEIGH_SUPPRESS) and MAC
    // learning on the port (IFLA_BRPORT_LEARNING). nullopt when it is no
    // bridge port (or the kernel does not report them).
    struct VxlanPortFlags {
        bool neigh_suppress = false;
        bool learning = true;
        bool operator==(const VxlanPortFlags&) const = default;
    };
    virtual std::optional<VxlanPortFlags> vxlan_port_flags(const std::string& /*name*/) { return std::nullopt; }
    virtual void set_vxlan_port_flags(const std::string& name, const VxlanPortFlags& /*flags*/) { unsupported(name); }
    // The anycast gateway's filter on VXLAN device `name` (nftables table
    // "bridge kvmnet-<name>"): frames from `gateway_mac`, ARP for
    // `gateway_ip`, neighbour and router solicitations for the addresses of
    // `gateway_ipv6` (when it has any) and DHCP/DHCPv6 neither leave nor
    // enter through it.
    virtual void set_vxlan_filter(const std::string& name, const model::Mac& /*gateway_mac*/,
                                  model::Ipv4 /*gateway_ip*/, const std::vector<model::Ipv6>& /*gateway_ipv6*/)
    {
        unsupported(name);
    }
    virtual void delete_vxlan_filter(const std::string& /*name*/) {}
    virtual bool has_vxlan_filter(const std::string& /*name*/) { return false; }
    // The host address's MAC on VXLAN device `name` (nftables table "bridge
    // kvmnet-host-<name>", ahead of the gateway filter): frames and ARP from
    // `host_ip` leave with `host_mac` instead of the gateway's MAC, and
    // frames arriving for `host_mac` are delivered to the bridge itself.
    virtual void set_host_rewrite(const std::string& name, const model::Mac& /*gateway_mac*/, model::Ipv4 /*host_ip*/,
                                  const model::Mac& /*host_mac*/)
    {
        unsupported(name);
    }
    virtual void delete_host_rewrite(const std::string& /*name*/) {}
    virtual bool has_host_rewrite(const std::string& /*name*/) { return false; }

private:
    [[noreturn]] static void unsupported(const std::string& name)
    {
        throw Error(ErrorKind::Unsupported, "VXLAN device " + name + ": not supported by this link adapter");
    }
};

// All of the above in one object, as the manager takes it today; new code
// should take only the interfaces it uses.
class LinkAdapter : public Links,
                    public Addresses,
                    public Routes,
                    public BridgePorts,
                    public Taps,
                    public TrafficControl,
                    public HostFacts,
                    public Vxlans {};

// Elements to add to, or delete from, one set or map of our table.
struct ElementChange {
    const Set* set = nullptr;  // the declaration: key/data types, limit; its own elements are ignored
    std::vector<SetElement> elements;
    bool add = true;
};

// One element as the kernel has it, with its counter when the set has one.
struct ElementCounters {
    SetElement element;
    bool has_counter = false;
    std::uint64_t packets = 0;
    std::uint64_t bytes = 0;
};

// The counter of one rule, found by its comment.
struct RuleCounter {
    std::string chain;
    std::string comment;
    std::uint64_t packets = 0;
    std::uint64_t bytes = 0;
};

// The firewall as the reconciler needs it; kernel/nftables.cpp implements it.
// One chain of any table of any family, as the kernel reports it: what
// Diagnose needs to see our table's shape and other programs' base chains
// that may drop guests' traffic (a forward hook with policy drop).
struct ChainInfo {
    std::string family;  // "ip", "ip6", "inet", "bridge", "arp", "netdev"
    std::string table;
    std::string name;
    bool base = false;  // hooked into the stack (the fields below are set)
    std::string hook;   // "prerouting", "input", "forward", "output", "postrouting", "ingress", ...
    std::int32_t priority = 0;
    std::string policy;  // "accept" or "drop"
};

struct TableDiff;  // plan/table_diff.hpp

class FirewallAdapter {
public:
    virtual ~FirewallAdapter() = default;
    // Atomically replaces our table with exactly `table`.
    virtual void replace_table(const Table& table) = 0;
    // Atomically turns our table, as the kernel has it, into `table` by the
    // changes in `diff` (diff_tables of the table last committed and
    // `table`). An adapter without increments replaces the table.
    virtual void update_table(const Table& table, const TableDiff& diff)
    {
        (void)diff;
        replace_table(table);
    }
    // Removes our table; absent is fine.
    virtual void delete_table(const std::string& name) = 0;
    // The ruleset generation of this network namespace: every committed
    // transaction (anyone's, any table) increments it by one. nullopt when
    // unknown; then nothing is assumed about the table and every apply writes.
    virtual std::optional<std::uint32_t> generation() { return std::nullopt; }
    // The O(1) change path: every change, in order, in one transaction, so
    // all of them or none apply. Adding an element that is there, or deleting
    // one that is not, fails the whole transaction (ErrorKind::Kernel).
    virtual void change_elements(const std::string& table, const std::vector<ElementChange>& changes) = 0;
    // Every element of a set (NotFound when the set does not exist).
    virtual std::vector<ElementCounters> list_elements(const std::string& table, const Set& set) = 0;
    // The counters of every rule of the table that has a counter and a comment.
    virtual std::vector<RuleCounter> rule_counters(const std::string& table) = 0;
    // Every chain of every table of every family (ours and other programs').
    virtual std::vector<ChainInfo> list_chains() = 0;
    // Whether this kernel has nftables flowtables and `flow add` (probed in
    // a scratch table committed and deleted in one transaction, until the
    // kernel answers). The empty string when it does, else what is missing
    // (for Unsupported); a probe that failed otherwise throws Kernel.
    virtual std::string flowtables_missing() { return "this adapter has no flowtables"; }
    // The fast-path table (fast_path_table): one flowtable over `links`'
    // bridges and uplinks and a forward rule per link that adds its
    // established flows to it; no links: no table. Commits only when that
    // differs from what the kernel has.
    struct FastPathLink {
        std::string bridge, uplink;
        bool operator==(const FastPathLink&) const = default;
    };
    virtual void sync_fast_path(const std::vector<FastPathLink>& links) { (void)links; }
};

}  // namespace kvmnet::plan
