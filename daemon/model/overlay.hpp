// The "overlay" section of the network document: one guest network spread
// over several hosts as a VXLAN segment (docs/overlay.md). The same network
// (name, subnet, VNI) defined on every host is one L2 segment; each host
// carries the same gateway address and MAC (an anycast gateway) and serves
// DHCP from its own slice of the ranges. The control plane is either a
// static peer list (head-end replication) or BGP EVPN through FRR.
// Pure model: parsing, validation and the derived values (device name,
// gateway MAC, DHCP slice, MTU) that every host must compute alike.
#pragma once

#include "model/ipv4.hpp"
#include "model/ipv6.hpp"
#include "model/mac.hpp"

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace kvmnet::model {

struct Network;
struct DhcpRange;
struct PortForward;

inline constexpr std::uint32_t max_vni = 16777215;  // 24 bits
inline constexpr std::uint16_t default_vxlan_port = 4789;
// Outer Ethernet (14) + IPv4 (20) + UDP (8) + VXLAN (8) headers: a guest
// frame must be this much smaller than the underlay's MTU.
inline constexpr std::uint32_t vxlan_overhead = 50;
inline constexpr std::size_t max_overlay_peers = 256;

// overlay.dhcp_slice: this host serves the index-th of `count` equal parts
// of the network's DHCP ranges.
struct DhcpSlice {
    std::uint32_t index = 0;
    std::uint32_t count = 1;
    bool operator==(const DhcpSlice&) const = default;
};

// overlay.evpn: BGP EVPN through FRR instead of a static peer list.
struct OverlayEvpn {
    std::uint32_t asn = 0;                // 1..4294967295
    std::vector<Ipv4> neighbors;          // BGP neighbours (iBGP peers)
    std::optional<Ipv4> route_reflector;  // a route reflector to peer with instead of (or beside) neighbours
    bool operator==(const OverlayEvpn&) const = default;
};

struct Overlay {
    std::uint32_t vni = 0;        // 1..16777215
    std::optional<Ipv4> local;    // this host's underlay address, or:
    std::string local_interface;  // the underlay interface whose (first IPv4) address is used
    std::uint16_t port = default_vxlan_port;
    std::vector<Ipv4> peers;              // static: the other hosts' underlay addresses
    std::optional<DhcpSlice> dhcp_slice;  // nothing: this host's index in sorted(local + peers)
    std::optional<OverlayEvpn> evpn;      // exclusive with peers
    std::string gateway_mac;              // empty: derived from the network's name and the VNI
    std::optional<Ipv4> host_address;     // this host's own address on the bridge; nothing: derived
    bool operator==(const Overlay&) const = default;
};

// Strict parsing of the "overlay" object (errors name "overlay.<field>").
Overlay parse_overlay(const nlohmann::json& j, const std::string& field = "overlay");
nlohmann::json to_json(const Overlay& overlay);

// Rules of the overlay inside its network (called by validate()).
void validate_overlay(const Network& n);
// A forward of an overlay network targets an address of this host's DHCP
// slice (InvalidArgument naming `field` otherwise); no-op without overlay.
void check_overlay_forward(const Network& n, const PortForward& f, const std::string& field);

// The VXLAN device of VNI `vni`: "kvx-<vni>" (at most 12 bytes).
std::string overlay_device_name(std::uint32_t vni);

// The anycast gateway MAC: overlay.gateway_mac, or a locally administered
// unicast address hashed from the network's name and the VNI, so every host
// computes the same one without talking to the others.
Mac overlay_gateway_mac(const Network& n);

// The anycast gateway's IPv6 addresses that neighbour discovery must keep
// on each host: the network's ipv6.address and the bridge's link-local
// address (EUI-64 of the gateway MAC, the same on every host: guests take
// it as their router from its advertisements). Empty without ipv6.
std::vector<Ipv6> overlay_gateway_ipv6(const Network& n);

// This host's DHCP slice: the explicit one, or this host's index among the
// sorted underlay addresses (local + peers). nullopt when it depends on an
// address not known yet (local_interface, or EVPN without dhcp_slice).
std::optional<DhcpSlice> overlay_slice(const Overlay& overlay, std::optional<Ipv4> local);

// The part of `ranges` that slice `slice` serves: the addresses of all
// ranges in order, cut into slice.count consecutive parts as equal as
// possible. Empty when there are fewer addresses than slices.
std::vector<DhcpRange> slice_ranges(const std::vector<DhcpRange>& ranges, DhcpSlice slice);

// This host's own address on the bridge, beside the anycast gateway: the
// source of traffic the host itself starts towards guests, which must reach
// guests on other hosts and come back to this host alone. overlay.host_address
// when given; otherwise the slice.index-th free address counted down from the
// top of the subnet (free: not the gateway, in no DHCP range, no static DHCP
// host), so every host derives a different one from the same document.
// nullopt when the slice is unknown or the subnet has no free address left.
std::optional<Ipv4> overlay_host_address(const Network& n, std::optional<DhcpSlice> slice);

// The MAC that frames from the host address carry over the overlay: a
// locally administered unicast address hashed from the network's name, the
// VNI and the host address (the bridge's own MAC is the anycast gateway's,
// which never crosses the overlay).
Mac overlay_host_mac(const Network& n, Ipv4 host_address);

// The MTU of the VXLAN device and the bridge for an underlay MTU: the
// network's own mtu when set (validated against this), else underlay − 50.
std::uint32_t overlay_mtu(const Network& n, std::uint32_t underlay_mtu);

}  // namespace kvmnet::model
