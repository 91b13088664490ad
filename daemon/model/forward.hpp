// Port forwards (DNAT from host ports to guest ports) and per-network
// connection limits: the "forwards" and "limits" parts of the network
// document. Pure model: strict JSON parsing with errors naming the field
// ("forwards[2].guest_port: ..."), validation, serialisation, and the
// overlap rules that decide when two forwards clash.
//
// Rules:
// - Forwards exist only on nat networks; limits on nat and routed networks
//   (the modes whose traffic the host forwards).
// - A host port range maps 1:1 onto a guest port range of the same length.
// - Two forwards clash (Conflict) when their protocols overlap ("both"
//   overlaps tcp and udp), their host addresses overlap (no host address =
//   every address, so it overlaps every address) and their host port ranges
//   intersect: within one network (validate) and across networks
//   (validate_against).
#pragma once

#include "model/error.hpp"
#include "model/ipv4.hpp"
#include "model/ipv6.hpp"

#include <nlohmann/json_fwd.hpp>

#include <array>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

namespace kvmnet::model {

struct Network;

enum class Proto { tcp, udp, both };

std::string_view proto_name(Proto proto);  // "tcp", "udp", "both"
std::optional<Proto> parse_proto(std::string_view text);

// At most this many forwards per network (and per AddForwards call).
inline constexpr std::size_t max_forwards = 262144;
// Upper bound of every connection rate and count: forwards[].rate and both limits.
inline constexpr std::uint32_t max_connection_limit = 1000000;
// forwards[].description, in bytes.
inline constexpr std::size_t max_forward_description = 256;

struct PortForward {
    Proto proto = Proto::tcp;
    std::uint16_t host_port_first = 0;   // 1..65535
    std::uint16_t host_port_last = 0;    // == first for a single port
    std::optional<Ipv4> host_address;    // nothing: every host address
    Ipv4 guest;                          // the guest's address (see guest_name)
    std::string guest_name;              // non-empty: "guest" named this static DHCP host; `guest` is its
                                         // address once resolve_forward_guests ran (0.0.0.0 before)
    std::uint16_t guest_port_first = 0;  // the range is as long as the host range
    std::string description;             // optional, printable UTF-8, at most 256 bytes
    std::optional<std::uint32_t> rate;   // new connections per second, 1..1e6
    // IPv6 forwards: the guest is an IPv6 address of the network's ipv6
    // subnet (guest6); host_address6, when set, is the one host address
    // (nothing: every host IPv6 address). host_address and guest are unused.
    // IPv4 and IPv6 forwards never overlap.
    bool ipv6 = false;
    std::optional<Ipv6> host_address6;
    Ipv6 guest6;

    std::uint32_t port_count() const { return std::uint32_t{host_port_last} - host_port_first + 1; }
    // The last guest port; may exceed 65535 for a forward built in code (validate refuses it).
    std::uint32_t guest_port_last() const { return guest_port_first + port_count() - 1; }
    bool operator==(const PortForward&) const = default;
};

// Per network protections against exhausting the conntrack/NAT table.
struct Limits {
    std::optional<std::uint32_t> new_connections_per_second;  // 1..1e6
    std::optional<std::uint32_t> connections_per_source;      // 1..1e6, concurrent, per source address
    bool empty() const { return !new_connections_per_second && !connections_per_source; }
    bool operator==(const Limits&) const = default;
};

// What identifies a forward for RemoveForward: protocol, host address and
// first host port (unique within a valid network, since forwards with the
// same key overlap).
struct ForwardKey {
    Proto proto = Proto::tcp;
    std::optional<Ipv4> host_address;
    std::uint16_t host_port = 0;
    bool ipv6 = false;
    std::optional<Ipv6> host_address6;
    auto operator<=>(const ForwardKey&) const = default;
};

ForwardKey forward_key(const PortForward& forward);
bool same_forward(const PortForward& a, const PortForward& b);  // forward_key(a) == forward_key(b)
// A key from RemoveForward's arguments: proto "tcp"|"udp"|"both", host
// address "" (every IPv4 address), A.B.C.D, "::" (every IPv6 address) or
// an IPv6 address, port 1..65535. InvalidArgument
// naming "proto", "host_address" or "host_port".
ForwardKey make_forward_key(const std::string& proto, const std::string& host_address, std::uint32_t host_port);

// "tcp *:8080", "udp 203.0.113.1:5000-5010"
std::string describe(const ForwardKey& key);
// "tcp *:8080-8090 -> 192.168.122.10:80-90" (the guest's name when it has one)
std::string describe(const PortForward& forward);

// True when the two forwards would capture the same packets (the Conflict rule above).
bool forwards_overlap(const PortForward& a, const PortForward& b);

// One forward object, e.g. {"proto": "tcp", "host_port": "8080-8090",
// "host_address": "203.0.113.1", "guest": "web", "guest_port": "80-90",
// "description": "...", "rate": 5}. Strict: unknown fields, wrong types and
// per-field value errors are InvalidArgument naming `field`.<key>. Checks
// everything that needs only the forward itself (validate_forward); the
// guest's subnet and name are validate's job.
PortForward parse_forward(const nlohmann::json& forward, const std::string& field = "forward");
// For AddForwards: one object (errors name "forward.<key>") or an array of
// them (errors name "forwards[i].<key>"). An empty array is InvalidArgument.
std::vector<PortForward> parse_forwards(const nlohmann::json& array_or_object);
std::vector<PortForward> parse_forwards(const std::string& text);
nlohmann::json to_json(const PortForward& forward);
// The typed form of a forward (AddForwardsTyped's a(ssqqsqsu), in this
// order): protocol; host address ("" = every address of the guest's
// family); first and last host port (last 0 = the first); guest (address
// or static host name); first guest port (the guest range is as long as the
// host range); description; rate (0 = none).
struct ForwardFields {
    std::string proto;
    std::string host_address;
    std::uint16_t host_port = 0;
    std::uint16_t host_port_end = 0;
    std::string guest;
    std::uint16_t guest_port = 0;
    std::string description;
    std::uint32_t rate = 0;
    bool operator==(const ForwardFields&) const = default;
};
// What parse_forward checks, from the typed form: InvalidArgument naming
// `field`.<name> (proto, host_port, host_address, guest, guest_port,
// description, rate).
PortForward forward_from_fields(const ForwardFields& fields, const std::string& field);
// Each entry as "forwards[i]"; empty or more than max_forwards: InvalidArgument naming "forwards".
std::vector<PortForward> forwards_from_fields(const std::vector<ForwardFields>& fields);
ForwardFields fields_of(const PortForward& forward);
// Appends to_json(forward) as compact JSON text (the same members; written
// directly, without the JSON tree: the journal line of 100,000 forwards).
void append_json(std::string& out, const PortForward& forward);

Limits parse_limits(const nlohmann::json& limits, const std::string& field = "limits");
nlohmann::json to_json(const Limits& limits);  // only the limits that are set

// The rules a forward obeys on its own: ports 1..65535, ranges ordered,
// guest range inside 1..65535, a usable host address, a guest, printable
// description, rate 1..1e6.
void validate_forward(const PortForward& forward, const std::string& field);
void validate_limits(const Limits& limits, const std::string& field = "limits");

// Sets `guest` of every forward that names a static DHCP host to that host's
// address (names compare without regard to case). InvalidArgument naming
// forwards[i].guest for a name no static host of the network carries.
// parse_network does this; call it again after changing the static hosts.
void resolve_forward_guests(Network& network);

// The rules of forwards and limits inside their network, applied by
// validate(): mode, each forward (validate_forward), guest inside the subnet
// and not its network, broadcast or gateway address, guest names known,
// and no two overlapping forwards (Conflict). A named guest is checked at
// its host's current address, whatever `guest` holds.
void validate_forwards(const Network& network);

// AddForwards: `added` checked as validate_forwards would check them inside
// `network` (whose own forwards are valid already), against each other, the
// network's forwards and `others`' forwards, without re-checking what is
// there (linear in the existing forwards for a few, O(n log n) for many).
// Errors name the added forwards as field(i) gives ("forward", "forwards[3]").
// Resolves named guests in `added`.
void validate_added_forwards(const Network& network, std::vector<PortForward>& added,
                             const std::function<std::string(std::size_t)>& field,
                             const std::vector<const Network*>& others);

// The host side of forwards (protocol, host address, host ports) for the
// overlap check, kept across calls: finding whether a forward overlaps any
// held one is logarithmic in their number (AddForwards at 100,000 existing
// costs what it costs at none). Holds forwards that do not overlap each
// other, as validation guarantees for one network's forwards.
class ForwardIndex {
public:
    ForwardIndex() = default;
    explicit ForwardIndex(const std::vector<PortForward>& forwards);
    void insert(const PortForward& forward);
    void erase(const PortForward& forward);  // one held with the same key
    // Takes every forward `other` holds (none may overlap one held here):
    // its nodes move, nothing is copied or allocated.
    void merge(ForwardIndex&& other);
    // The key of a held forward that overlaps `forward` (forwards_overlap), if any.
    std::optional<ForwardKey> find(const PortForward& forward) const;
    std::size_t size() const { return size_; }

private:
    struct Held {
        std::uint16_t last = 0;
        ForwardKey key;
    };
    // (protocol: tcp 0, udp 1, IPv6 tcp 2, IPv6 udp 3; a specific address?; its bytes)
    using GroupKey = std::tuple<int, bool, std::array<std::uint8_t, 16>>;
    std::map<GroupKey, std::map<std::uint16_t, Held>> groups_;  // by first port
    std::size_t size_ = 0;
};

// The checks of validate_added_forwards without the overlap check: the
// network takes forwards, and each added forward is valid in it (named
// guests resolved). InvalidArgument naming field(i).
void check_added_forwards(const Network& network, std::vector<PortForward>& added,
                          const std::function<std::string(std::size_t)>& field);

// Another network's forwards with their index.
struct IndexedForwards {
    const Network* network = nullptr;
    const ForwardIndex* index = nullptr;
};
// The overlap check of validate_added_forwards with indexes kept by the
// caller: `added` against each other, `own` (the index of network's
// forwards) and `others`. Conflict naming field(i) and the forward it
// clashes with, in the order: an earlier added one, this network's, another
// network's.
// When it passes and `added_index` is given, that is an index of `added`
// (built for the check anyway): merge it into own's, no second insertion.
void check_added_overlaps(const Network& network, const ForwardIndex& own, const std::vector<PortForward>& added,
                          const std::function<std::string(std::size_t)>& field,
                          const std::vector<IndexedForwards>& others, ForwardIndex* added_index = nullptr);

// No forward of `network` overlaps a forward of another network: Conflict
// naming the other network. Applied by validate_against().
void validate_forwards_against(const Network& network, const std::vector<Network>& others);

}  // namespace kvmnet::model
