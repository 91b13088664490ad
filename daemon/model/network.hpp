// The network document: the one description of a virtual network that is
// stored on disk, sent over D-Bus and accepted by `kvmnetctl create --file`.
// Parsing is strict (unknown fields and wrong types are errors naming the
// field) and validation is pure, so both are exhaustively unit-tested.
#pragma once

#include "model/error.hpp"
#include "model/forward.hpp"
#include "model/ipv4.hpp"
#include "model/ipv6.hpp"
#include "model/mac.hpp"
#include "model/overlay.hpp"

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace kvmnet::model {

enum class Mode { nat, bridge, isolated, routed };

std::string_view mode_name(Mode mode);

struct DhcpRange {
    Ipv4 first;
    Ipv4 last;
    bool operator==(const DhcpRange&) const = default;
};

struct DhcpHost {
    std::string mac;  // normalised lower case "52:54:00:12:34:56"
    Ipv4 ip;
    std::string name;  // optional host name
    bool operator==(const DhcpHost&) const = default;
};

// DHCP lease times in seconds ("lease_time"): dnsmasq's default of an hour
// unless the document says otherwise; 0 stands for "infinite". dnsmasq
// raises anything shorter than 2 minutes to 2 minutes, so shorter ones are
// refused rather than silently changed.
inline constexpr std::uint32_t default_lease_time = 3600;
inline constexpr std::uint32_t infinite_lease_time = 0;
inline constexpr std::uint32_t min_lease_time = 120;
inline constexpr std::uint32_t max_lease_time = 0x7fffffff;

struct Ipv4Config {
    Ipv4Interface address;  // the gateway address on the bridge and its prefix
    bool dhcp = false;      // true when a "dhcp" object is present
    std::vector<DhcpRange> ranges;
    std::vector<DhcpHost> hosts;
    std::uint32_t lease_time = default_lease_time;  // ipv4.dhcp.lease_time
    bool operator==(const Ipv4Config&) const = default;
};

struct Ipv6Range {
    Ipv6 first;
    Ipv6 last;
    bool operator==(const Ipv6Range&) const = default;
};

// ipv6.dhcp.hosts: a static DHCPv6 address for the client with this DUID,
// or for the client whose MAC dnsmasq learns (from a DUID-LL or DUID-LLT,
// or from the neighbour table). Exactly one of mac and duid is set.
struct Dhcp6Host {
    std::string mac;   // normalised lower case "52:54:00:12:34:56"
    std::string duid;  // hex bytes, lower case "00:03:00:01:52:54:00:12:34:56"
    Ipv6 ip;
    std::string name;  // optional host name
    bool operator==(const Dhcp6Host&) const = default;
};

// IPv6 beside IPv4 (nat, routed, isolated). The gateway address goes on the
// bridge; dnsmasq sends router advertisements (ra) for SLAAC, or, with
// ranges, hands out addresses by stateful DHCPv6. nat66 masquerades the
// subnet like IPv4 NAT; without it a NAT network forwards its guests' IPv6
// traffic with their own addresses (and still refuses new inbound).
struct Ipv6Config {
    Ipv6Interface address;
    std::vector<Ipv6Range> ranges;                  // "dhcp": {"ranges": [...]}; empty: SLAAC only
    std::vector<Dhcp6Host> hosts;                   // "dhcp": {"hosts": [...]}
    std::uint32_t lease_time = default_lease_time;  // ipv6.dhcp.lease_time
    bool ra = true;
    bool nat66 = false;
    bool operator==(const Ipv6Config&) const = default;
};

// DNS from the network's dnsmasq. With a domain, guests resolve each other
// (DHCP host names and static hosts' names) as NAME and NAME.domain, and the
// domain is never forwarded. Names dnsmasq does not know go to the
// forwarders, in order; without forwarders there is no upstream at all.
// dns.hosts: names answered with an address (A or AAAA), as /etc/hosts has them.
struct DnsHost {
    std::string ip;                  // IPv4 or IPv6, canonical text
    std::vector<std::string> names;  // domain names, lower case
    bool operator==(const DnsHost&) const = default;
};

// dns.srv: an SRV record _SERVICE._PROTO[.DOMAIN] → TARGET:PORT.
struct DnsSrv {
    std::string service;  // e.g. "ldap", without the leading '_'
    std::string proto;    // "tcp" or "udp"
    std::string domain;   // empty: dns.domain (dnsmasq's default)
    std::string target;
    std::uint16_t port = 0;
    std::uint16_t priority = 0;
    std::uint16_t weight = 0;
    bool operator==(const DnsSrv&) const = default;
};

// dns.txt: a TXT record.
struct DnsTxt {
    std::string name;
    std::string value;
    bool operator==(const DnsTxt&) const = default;
};

struct DnsConfig {
    std::string domain;                   // empty: no local domain
    std::vector<std::string> forwarders;  // IPv4 or IPv6 addresses, canonical text
    std::vector<DnsHost> hosts;           // in dnsmasq.names (addn-hosts, re-read on SIGHUP)
    std::vector<DnsSrv> srv;              // srv-host= lines of dnsmasq.conf (a restart)
    std::vector<DnsTxt> txt;              // txt-record= lines of dnsmasq.conf (a restart)
    bool empty() const { return domain.empty() && forwarders.empty() && hosts.empty() && srv.empty() && txt.empty(); }
    bool operator==(const DnsConfig&) const = default;
};

// At most this many entries in each of dns.hosts, dns.srv and dns.txt.
inline constexpr std::size_t max_dns_records = 1024;

// Traffic shaping in libvirt's <bandwidth> terms: kilobytes per second and
// kilobytes. Zero average = no limit in that direction.
struct Rate {
    std::uint64_t average = 0;  // kB/s
    std::uint64_t peak = 0;     // kB/s, 0 = same as average
    std::uint64_t burst = 0;    // kB, 0 = a default derived from the rate
    bool operator==(const Rate&) const = default;
};

// What an existing interface was before AttachPort changed it, recorded by
// the daemon and stored with the port, so that DetachPort (also after a
// restart) puts it back.
struct PortOriginal {
    std::optional<Mac> mac;  // nothing: unknown, left as it is
    std::uint32_t mtu = 0;   // 0: unknown, left as it is
    bool up = false;
    // Already a port of the network's bridge (as libvirt plugs its taps):
    // detach leaves it there with these bridge port flags.
    bool on_bridge = false;
    bool isolated = false;
    bool hairpin = false;
    bool operator==(const PortOriginal&) const = default;
};

// A guest port: a tap the daemon creates (tap = true) for QEMU, or an
// existing interface (tap or veth) enslaved to the network's bridge.
struct Port {
    std::string name;
    bool tap = false;
    std::uint32_t owner = 0;                 // taps: uid allowed to open it
    std::uint32_t group = 0;                 // taps: gid allowed to open it
    std::uint16_t queues = 1;                // taps: >1 makes it IFF_MULTI_QUEUE, for QEMU's queues=N
    std::optional<Mac> mac;                  // set on the interface when given
    bool isolated = false;                   // bridge port isolation
    std::uint16_t vlan_pvid = 0;             // 0 = no VLAN configuration
    std::vector<std::uint16_t> vlan_tagged;  // tagged VLANs
    Rate inbound;                            // to the guest
    Rate outbound;                           // from the guest
    std::optional<PortOriginal> original;    // existing interfaces: their state before attach
    bool operator==(const Port&) const = default;
};

// The kernel's limit of queues on one tap (MAX_TAP_QUEUES in drivers/net/tun.c).
inline constexpr std::uint16_t max_tap_queues = 256;

struct Network {
    std::string name;
    Mode mode = Mode::nat;
    std::string bridge;
    bool autostart = false;
    std::optional<Ipv4Config> ipv4;
    DnsConfig dns;                   // not in bridge mode
    std::optional<Ipv6Config> ipv6;  // not in bridge mode; needs ipv4
    std::string uplink;              // NAT: masquerade only out of this interface; empty: any other interface
    // false: kvmnet adds no rules to other firewalls' chains for this
    // network (Docker's DOCKER-USER, docs/firewalls.md); the administrator
    // lets its traffic through by hand.
    bool firewall_integration = true;
    // nat and routed networks with an uplink: established forwarded flows
    // between the bridge and the uplink go through an nftables flowtable
    // (conntrack and NAT once per flow, in the ingress hook); Start refuses
    // it with Unsupported on a kernel without flowtables.
    bool fast_path = false;
    bool stp = false;
    std::uint32_t forward_delay = 0;  // seconds
    std::uint32_t mtu = 0;            // 0: kernel default
    std::uint32_t hello_time = 0;     // seconds, 0: kernel default (2)
    std::uint32_t max_age = 0;        // seconds, 0: kernel default (20)
    std::optional<std::uint16_t> priority;
    std::optional<bool> multicast_snooping;
    std::vector<Port> ports;
    std::vector<PortForward> forwards;  // nat networks only (model/forward.hpp)
    Limits limits;                      // nat and routed networks
    std::optional<Overlay> overlay;     // nat, routed, isolated: a VXLAN segment across hosts (model/overlay.hpp)

    bool operator==(const Network&) const = default;
};

// Strict parsing of the JSON document. Throws kvmnet::Error(InvalidArgument)
// naming the field ("ipv4.dhcp.ranges[1]: ...") for syntax, type, unknown
// field and per-field value errors; Unsupported for features this version
// cannot provide (require_forwarding_support).
Network parse_network(const nlohmann::json& document);
Network parse_network(const std::string& text);
inline Network parse_network(const char* text) { return parse_network(std::string(text)); }

nlohmann::json to_json(const Network& network);
// Without "forwards" (which can be 100,000 entries): the rest of the document.
nlohmann::json to_json(const Network& network, bool with_forwards);

// One entry of "ports", as AttachPort takes it; `field` prefixes error paths.
Port parse_port(const nlohmann::json& port, const std::string& field = "port");
Port parse_port(const std::string& text);
inline Port parse_port(const char* text) { return parse_port(std::string(text)); }
nlohmann::json to_json(const Port& port);
// Rules for one port inside its network (name, MAC and VLAN sanity).
void validate_port(const Port& port, const std::string& field);

// At most this many dns.forwarders.
inline constexpr std::size_t max_dns_forwarders = 16;

// At most this many ipv4.dhcp.hosts entries.
inline constexpr std::size_t max_dhcp_hosts = 4096;

// One entry of ipv4.dhcp.hosts, as AddHost takes it ({"mac", "ip", "name"?});
// `field` prefixes error paths. Per-entry rules only: whether the address
// fits the subnet and is unique is validate()'s job.
DhcpHost parse_dhcp_host(const nlohmann::json& host, const std::string& field = "host");
DhcpHost parse_dhcp_host(const std::string& text);
inline DhcpHost parse_dhcp_host(const char* text) { return parse_dhcp_host(std::string(text)); }

// One entry of ipv6.dhcp.hosts ({"mac" or "duid", "ip", "name"?}); as
// parse_dhcp_host. At most max_dhcp_hosts of them too.
Dhcp6Host parse_dhcp6_host(const nlohmann::json& host, const std::string& field = "host");

// What AddHost takes: an IPv4 host, or an IPv6 one when it has a "duid" or
// its "ip" is an IPv6 address.
std::variant<DhcpHost, Dhcp6Host> parse_any_dhcp_host(const std::string& text);

// A DHCPv6 DUID as dnsmasq and its lease file write it: 3 to 130 bytes as
// two-digit hex separated by ':'.
bool valid_duid(const std::string& duid);

// Cross-field rules that need only the document itself: gateway inside its
// subnet, DHCP ranges inside and ordered, static hosts unique, etc. Applied
// by parse_network too; exposed for documents built in code.
void validate(const Network& network);

// Rules against the other configured networks (name, bridge, subnet overlap).
// `others` must not contain `network` itself.
void validate_against(const Network& network, const std::vector<Network>& others);

bool valid_network_name(const std::string& name);
bool valid_interface_name(const std::string& name);
// A DNS domain such as "kvm.lan": dot-separated host name labels, <= 253 bytes.
bool valid_domain_name(const std::string& name);
// "52:54:00:12:34:56": six hex pairs; unicast; not all zero.
bool valid_unicast_mac(const std::string& mac);

}  // namespace kvmnet::model
