// Parsing, validation and the derived values of the "overlay" section.
#include "model/overlay.hpp"

#include "model/json_reader.hpp"
#include "model/network.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <set>

namespace kvmnet::model {
namespace {

using json = nlohmann::json;
using detail::item;
using detail::lower;
using detail::ObjectReader;
using detail::type_name;

// An underlay address: a unicast IPv4 address a VTEP can have.
Ipv4 parse_underlay(const std::string& field, const json& v)
{
    if (!v.is_string()) throw invalid_field(field, std::string("expected a string, got ") + type_name(v));
    const auto& text = v.get_ref<const std::string&>();
    const auto ip = Ipv4::parse(text);
    if (!ip) throw invalid_field(field, std::string("'").append(text.substr(0, 64)).append("' is not an IPv4 address"));
    const std::uint32_t a = ip->value;
    if (a == 0 || a == 0xffffffffu || (a >> 24) == 0 || (a >> 24) == 127 || (a >> 28) >= 0xe)
        throw invalid_field(field, text + " is not a unicast address a VXLAN endpoint can have");
    return *ip;
}

std::vector<Ipv4> parse_addresses(ObjectReader& r, const std::string& key)
{
    std::vector<Ipv4> out;
    if (const json* list = r.array(key, max_overlay_peers)) {
        for (std::size_t i = 0; i < list->size(); ++i) {
            const std::string f = item(r.field(key), i);
            out.push_back(parse_underlay(f, (*list)[i]));
            for (std::size_t k = 0; k + 1 < out.size(); ++k)
                if (out[k] == out.back()) throw invalid_field(f, out.back().str() + " is already " + item(key, k));
        }
    }
    return out;
}

json addresses_json(const std::vector<Ipv4>& list)
{
    json out = json::array();
    for (const Ipv4& a : list)
        out.push_back(a.str());
    return out;
}

std::uint64_t address_count(const std::vector<DhcpRange>& ranges)
{
    std::uint64_t total = 0;
    for (const DhcpRange& r : ranges)
        total += std::uint64_t{r.last.value} - r.first.value + 1;
    return total;
}

}  // namespace

Overlay parse_overlay(const json& j, const std::string& field)
{
    ObjectReader r(j, field);
    Overlay o;
    const auto vni = r.unsigned_integer("vni", 1, max_vni);
    if (!vni) throw invalid_field(r.field("vni"), "required (the VXLAN network identifier, 1 to 16777215)");
    o.vni = static_cast<std::uint32_t>(*vni);
    if (const json* local = r.get("local")) o.local = parse_underlay(r.field("local"), *local);
    o.local_interface = r.string("local_interface", 64).value_or("");
    if (r.get("local_interface") && !valid_interface_name(o.local_interface))
        throw invalid_field(r.field("local_interface"),
                            "'" + o.local_interface + "' is not a valid interface name (1-15 bytes)");
    if (o.local && !o.local_interface.empty())
        throw invalid_field(r.field("local_interface"), "give either local or local_interface, not both");
    if (!o.local && o.local_interface.empty())
        throw invalid_field(r.field("local"), "required: this host's underlay address (local) or the interface to "
                                              "take it from (local_interface)");
    o.port = static_cast<std::uint16_t>(r.unsigned_integer("port", 1, 65535).value_or(default_vxlan_port));
    o.peers = parse_addresses(r, "peers");
    if (const json* slice = r.get("dhcp_slice")) {
        ObjectReader s(*slice, r.field("dhcp_slice"));
        const auto count = s.unsigned_integer("count", 1, max_overlay_peers + 1);
        if (!count) throw invalid_field(s.field("count"), "required (how many hosts share the DHCP ranges)");
        const auto index = s.unsigned_integer("index", 0, max_overlay_peers);
        if (!index) throw invalid_field(s.field("index"), "required (this host's slice, 0 to count - 1)");
        if (*index >= *count)
            throw invalid_field(s.field("index"), "must be below count (" + std::to_string(*count) + ")");
        s.finish();
        o.dhcp_slice = DhcpSlice{static_cast<std::uint32_t>(*index), static_cast<std::uint32_t>(*count)};
    }
    if (const json* evpn = r.get("evpn")) {
        if (r.get("peers") != nullptr)
            throw invalid_field(r.field("evpn"), "give either peers (static) or evpn, not both: with EVPN, BGP "
                                                 "tells each host where the others are");
        ObjectReader e(*evpn, r.field("evpn"));
        OverlayEvpn config;
        const auto asn = e.unsigned_integer("asn", 1, 4294967295u);
        if (!asn) throw invalid_field(e.field("asn"), "required (the BGP autonomous system number)");
        config.asn = static_cast<std::uint32_t>(*asn);
        config.neighbors = parse_addresses(e, "neighbors");
        if (const json* rr = e.get("route_reflector"))
            config.route_reflector = parse_underlay(e.field("route_reflector"), *rr);
        e.finish();
        if (config.neighbors.empty() && !config.route_reflector)
            throw invalid_field(r.field("evpn.neighbors"), "required: at least one BGP neighbour or a route_reflector");
        o.evpn = std::move(config);
    }
    if (const json* host = r.get("host_address")) {
        if (!host->is_string())
            throw invalid_field(r.field("host_address"), std::string("expected a string, got ") + type_name(*host));
        const auto& text = host->get_ref<const std::string&>();
        o.host_address = Ipv4::parse(text);
        // Typed apart from a typo: an IPv6 host address is a wish kvmnet
        // cannot meet yet (docs/overlay.md, "Limits").
        if (!o.host_address && Ipv6::parse(text))
            throw Error(ErrorKind::Unsupported,
                        r.field("host_address") + ": '" + text +
                            "' is an IPv6 address; the per-host address is IPv4 only (IPv6 traffic the host "
                            "itself starts to a guest on another host leaves from the gateway address)");
        if (!o.host_address)
            throw invalid_field(r.field("host_address"),
                                std::string("'").append(text.substr(0, 64)).append("' is not an IPv4 address"));
    }
    o.gateway_mac = lower(r.string("gateway_mac", 32).value_or(""));
    if (r.get("gateway_mac") && !valid_unicast_mac(o.gateway_mac))
        throw invalid_field(r.field("gateway_mac"),
                            "'" + o.gateway_mac + "' is not a unicast MAC address like 02:00:00:12:34:56");
    r.finish();
    return o;
}

json to_json(const Overlay& o)
{
    json j = {{"vni", o.vni}, {"port", o.port}};
    if (o.local) j["local"] = o.local->str();
    if (!o.local_interface.empty()) j["local_interface"] = o.local_interface;
    if (!o.evpn) j["peers"] = addresses_json(o.peers);
    if (o.dhcp_slice) j["dhcp_slice"] = {{"index", o.dhcp_slice->index}, {"count", o.dhcp_slice->count}};
    if (o.evpn) {
        json evpn = {{"asn", o.evpn->asn}, {"neighbors", addresses_json(o.evpn->neighbors)}};
        if (o.evpn->route_reflector) evpn["route_reflector"] = o.evpn->route_reflector->str();
        j["evpn"] = std::move(evpn);
    }
    if (!o.gateway_mac.empty()) j["gateway_mac"] = o.gateway_mac;
    if (o.host_address) j["host_address"] = o.host_address->str();
    return j;
}

std::string overlay_device_name(std::uint32_t vni) { return "kvx-" + std::to_string(vni); }

namespace {

// FNV-1a over the name, the VNI and `extra`: stable across hosts, versions
// and byte orders (no std::hash, whose value the standard leaves open), made
// a locally administered unicast MAC.
Mac hashed_mac(const Network& n, std::optional<std::uint32_t> extra)
{
    std::uint64_t h = 0xcbf29ce484222325ull;
    const auto mix = [&h](unsigned char c) {
        h ^= c;
        h *= 0x100000001b3ull;
    };
    for (const char c : n.name)
        mix(static_cast<unsigned char>(c));
    const std::uint32_t vni = n.overlay ? n.overlay->vni : 0;
    for (int shift = 0; shift < 32; shift += 8)
        mix(static_cast<unsigned char>(vni >> shift));
    if (extra)
        for (int shift = 0; shift < 32; shift += 8)
            mix(static_cast<unsigned char>(*extra >> shift));
    Mac mac;
    for (std::size_t i = 0; i < 6; ++i)
        mac.bytes[i] = static_cast<std::uint8_t>(h >> (8 * i));
    // Locally administered (bit 1), unicast (bit 0 clear).
    mac.bytes[0] = static_cast<std::uint8_t>((mac.bytes[0] & 0xfc) | 0x02);
    return mac;
}

// Why `ip` cannot be a host address of `n` ("" when it can).
std::string host_address_conflict(const Network& n, Ipv4 ip)
{
    const Ipv4Interface& subnet = n.ipv4->address;
    if (!subnet.contains(ip))
        return "is outside the network's subnet " + subnet.network().str() + "/" + std::to_string(subnet.prefix);
    if (ip == subnet.network() || ip == subnet.broadcast()) return "is the subnet's network or broadcast address";
    if (ip == subnet.address) return "is the gateway address (the same on every host)";
    for (const DhcpRange& r : n.ipv4->ranges)
        if (ip.value >= r.first.value && ip.value <= r.last.value)
            return "is in the DHCP range " + r.first.str() + "-" + r.last.str();
    for (const DhcpHost& h : n.ipv4->hosts)
        if (h.ip == ip) return "is the address of the static DHCP host " + h.mac;
    return {};
}

}  // namespace

Mac overlay_gateway_mac(const Network& n)
{
    if (n.overlay && !n.overlay->gateway_mac.empty())
        if (const auto mac = Mac::parse(n.overlay->gateway_mac)) return *mac;
    return hashed_mac(n, std::nullopt);
}

Mac overlay_host_mac(const Network& n, Ipv4 host_address) { return hashed_mac(n, host_address.value); }

std::optional<Ipv4> overlay_host_address(const Network& n, std::optional<DhcpSlice> slice)
{
    if (!n.overlay || !n.ipv4) return std::nullopt;
    if (n.overlay->host_address) return n.overlay->host_address;
    if (!slice) return std::nullopt;
    const Ipv4Interface& subnet = n.ipv4->address;
    if (subnet.prefix > 30) return std::nullopt;
    std::uint32_t skip = slice->index;
    for (std::uint32_t v = subnet.broadcast().value - 1; v > subnet.network().value; --v) {
        if (!host_address_conflict(n, Ipv4{v}).empty()) continue;
        if (skip == 0) return Ipv4{v};
        --skip;
    }
    return std::nullopt;
}

std::vector<Ipv6> overlay_gateway_ipv6(const Network& n)
{
    if (!n.overlay || !n.ipv6) return {};
    const Mac mac = overlay_gateway_mac(n);
    // RFC 4291 appendix A: the MAC with ff:fe in its middle and the
    // universal/local bit inverted, after fe80::/64.
    Ipv6 link_local;
    link_local.bytes[0] = 0xfe;
    link_local.bytes[1] = 0x80;
    link_local.bytes[8] = static_cast<std::uint8_t>(mac.bytes[0] ^ 0x02);
    link_local.bytes[9] = mac.bytes[1];
    link_local.bytes[10] = mac.bytes[2];
    link_local.bytes[11] = 0xff;
    link_local.bytes[12] = 0xfe;
    link_local.bytes[13] = mac.bytes[3];
    link_local.bytes[14] = mac.bytes[4];
    link_local.bytes[15] = mac.bytes[5];
    return {n.ipv6->address.address, link_local};
}

std::optional<DhcpSlice> overlay_slice(const Overlay& o, std::optional<Ipv4> local)
{
    if (o.dhcp_slice) return o.dhcp_slice;
    if (o.evpn) return std::nullopt;
    if (!local) local = o.local;
    if (!local) return std::nullopt;
    std::vector<Ipv4> all = o.peers;
    if (std::find(all.begin(), all.end(), *local) == all.end()) all.push_back(*local);
    std::sort(all.begin(), all.end(), [](Ipv4 a, Ipv4 b) { return a.value < b.value; });
    const auto at = std::find(all.begin(), all.end(), *local);
    return DhcpSlice{static_cast<std::uint32_t>(at - all.begin()), static_cast<std::uint32_t>(all.size())};
}

std::vector<DhcpRange> slice_ranges(const std::vector<DhcpRange>& ranges, DhcpSlice slice)
{
    const std::uint64_t total = address_count(ranges);
    if (slice.count == 0 || slice.index >= slice.count || total < slice.count) return {};
    // Addresses [begin, end) of the concatenation of all ranges.
    const std::uint64_t begin = total * slice.index / slice.count;
    const std::uint64_t end = total * (slice.index + 1) / slice.count;
    std::vector<DhcpRange> out;
    std::uint64_t offset = 0;  // of the current range's first address
    for (const DhcpRange& r : ranges) {
        const std::uint64_t size = std::uint64_t{r.last.value} - r.first.value + 1;
        const std::uint64_t lo = std::max(begin, offset);
        const std::uint64_t hi = std::min(end, offset + size);
        if (lo < hi)
            out.push_back({Ipv4{static_cast<std::uint32_t>(r.first.value + (lo - offset))},
                           Ipv4{static_cast<std::uint32_t>(r.first.value + (hi - offset - 1))}});
        offset += size;
    }
    return out;
}

std::uint32_t overlay_mtu(const Network& n, std::uint32_t underlay_mtu)
{
    if (n.mtu != 0) return n.mtu;
    return underlay_mtu > vxlan_overhead + 68 ? underlay_mtu - vxlan_overhead : 68;
}

void check_overlay_forward(const Network& n, const PortForward& f, const std::string& field)
{
    if (!n.overlay) return;
    // A forward's reply leaves through the gateway of the host its guest is
    // on, which has no connection-tracking entry for it: a forward can only
    // work on the host that hands out its guest's address.
    if (f.ipv6)
        throw invalid_field(field, "IPv6 forwards are not supported on overlay networks (no DHCPv6 slices: "
                                   "the guest could be on any host)");
    const auto slice = overlay_slice(*n.overlay, std::nullopt);
    if (!slice)
        throw invalid_field(field, "a forward on an overlay network needs this host's DHCP slice: give "
                                   "overlay.local as an address, or overlay.dhcp_slice");
    const auto mine = n.ipv4 ? slice_ranges(n.ipv4->ranges, *slice) : std::vector<DhcpRange>{};
    const bool local = std::any_of(mine.begin(), mine.end(), [&](const DhcpRange& r) {
        return f.guest.value >= r.first.value && f.guest.value <= r.last.value;
    });
    if (local) return;
    std::string ranges;
    for (const DhcpRange& r : mine)
        ranges.append(ranges.empty() ? "" : ", ").append(r.first.str()).append("-").append(r.last.str());
    throw invalid_field(field, f.guest.str() + " is not in this host's DHCP slice (" +
                                   (ranges.empty() ? std::string("none") : ranges) +
                                   "): on an overlay network a forward must target a guest this host addresses, "
                                   "because a guest elsewhere answers through its own host's gateway and the reply "
                                   "would never pass this host's NAT; add it on the host that serves " +
                                   f.guest.str());
}

void validate_overlay(const Network& n)
{
    const Overlay& o = *n.overlay;
    if (n.mode == Mode::bridge)
        throw invalid_field("overlay", "not for bridge mode: the overlay hangs on a bridge of kvmnet's own (nat, "
                                       "routed or isolated networks)");
    if (o.vni == 0 || o.vni > max_vni) throw invalid_field("overlay.vni", "must be between 1 and 16777215");
    if (o.local && std::find(o.peers.begin(), o.peers.end(), *o.local) != o.peers.end())
        throw invalid_field("overlay.peers", o.local->str() + " is this host's own address (overlay.local)");
    if (o.evpn && !o.peers.empty()) throw invalid_field("overlay.evpn", "give either peers (static) or evpn, not both");
    if (o.evpn && o.local &&
        std::find(o.evpn->neighbors.begin(), o.evpn->neighbors.end(), *o.local) != o.evpn->neighbors.end())
        throw invalid_field("overlay.evpn.neighbors", o.local->str() + " is this host's own address (overlay.local)");
    if (!o.gateway_mac.empty() && !valid_unicast_mac(o.gateway_mac))
        throw invalid_field("overlay.gateway_mac", "'" + o.gateway_mac + "' is not a unicast MAC address");
    if (o.host_address) {
        if (!n.ipv4) throw invalid_field("overlay.host_address", "needs an ipv4 section (the subnet it belongs to)");
        if (const std::string why = host_address_conflict(n, *o.host_address); !why.empty())
            throw invalid_field("overlay.host_address", o.host_address->str() + " " + why +
                                                            ": it must be a free address of the subnet, "
                                                            "different on every host");
    }
    if (o.dhcp_slice && o.dhcp_slice->index >= o.dhcp_slice->count)
        throw invalid_field("overlay.dhcp_slice.index",
                            "must be below count (" + std::to_string(o.dhcp_slice->count) + ")");
    if (o.dhcp_slice && !o.evpn && o.dhcp_slice->count < o.peers.size() + 1)
        throw invalid_field("overlay.dhcp_slice.count",
                            std::to_string(o.dhcp_slice->count) + " slices for " + std::to_string(o.peers.size() + 1) +
                                " hosts (overlay.peers and this one): two hosts would hand out the same addresses");
    const bool dhcp_ranges = n.ipv4 && !n.ipv4->ranges.empty();
    if (o.evpn && !o.dhcp_slice && dhcp_ranges)
        throw invalid_field("overlay.dhcp_slice", "required with evpn and DHCP ranges: BGP neighbours are not "
                                                  "necessarily every host, so this host's slice must be given");
    if (dhcp_ranges) {
        const std::uint32_t count = o.dhcp_slice ? o.dhcp_slice->count : static_cast<std::uint32_t>(o.peers.size() + 1);
        if (address_count(n.ipv4->ranges) < count)
            throw invalid_field("ipv4.dhcp.ranges", std::to_string(address_count(n.ipv4->ranges)) +
                                                        " addresses cannot be cut into " + std::to_string(count) +
                                                        " DHCP slices (one per overlay host)");
    }
    // Each host's dnsmasq serves its own slice of the IPv4 ranges; DHCPv6
    // ranges are not sliced (yet), so two hosts would hand out one address.
    if (n.ipv6 && !n.ipv6->ranges.empty())
        throw invalid_field("ipv6.dhcp.ranges", "not supported on overlay networks (DHCPv6 ranges are not split "
                                                "between hosts); use SLAAC (leave out ipv6.dhcp)");
    for (std::size_t i = 0; i < n.forwards.size(); ++i)
        check_overlay_forward(n, n.forwards[i], item("forwards", i));
}

}  // namespace kvmnet::model
