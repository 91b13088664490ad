// The nftables ruleset as plain data. The planner builds a Table; the golden
// tests render it to nft syntax; the kernel adapter (kernel/nftables.cpp)
// turns the very same data into libnftnl objects and commits them in one
// batch. Nothing here includes libnftnl, so it stays unit-testable.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace kvmnet::plan {

struct Ipv4Prefix {
    std::uint32_t address = 0;  // host byte order, already masked to `length`
    std::uint8_t length = 32;
    bool operator==(const Ipv4Prefix&) const = default;
};

enum class Cmp { eq, neq };

// iifname / oifname compared to an interface name.
struct MatchIfname {
    bool input = true;  // true: iifname, false: oifname
    Cmp op = Cmp::eq;
    std::string name;
    bool operator==(const MatchIfname&) const = default;
};

// ip saddr / ip daddr compared to a prefix; implies "meta nfproto ipv4".
struct MatchIpv4 {
    bool source = true;  // true: saddr, false: daddr
    Cmp op = Cmp::eq;
    Ipv4Prefix prefix;
    bool operator==(const MatchIpv4&) const = default;
};

// "meta l4proto P th dport N" (rendered as "udp dport N" / "tcp dport N").
struct MatchL4Dport {
    std::uint8_t protocol = 17;  // IPPROTO_TCP (6) or IPPROTO_UDP (17)
    std::uint16_t port = 0;
    bool operator==(const MatchL4Dport&) const = default;
};

// "ct state S1,S2": (ct state & mask) != 0.
namespace ct {
inline constexpr std::uint32_t invalid = 1, established = 2, related = 4, new_ = 8, untracked = 64;
}
struct MatchCtState {
    std::uint32_t mask = 0;
    bool operator==(const MatchCtState&) const = default;
};

// ---- named sets and maps, and the expressions that use them ----------------------------------------------------

// nft data types usable in set keys and map data; concatenated when more than one.
// `verdict` is map data only (a verdict map): its values are "jump CHAIN" or
// "goto CHAIN".
enum class SetType { ipv4_addr, ipv6_addr, ether_addr, inet_proto, inet_service, ifname, verdict };

// Packet fields a rule can look up in a set, add to a meter, or use as a DNAT
// map key. The type of each is fixed (field_type()); the adapter adds nft's
// protocol dependencies (meta nfproto for ip/ip6, meta iiftype for ether).
enum class Field {
    ip_saddr,      // "ip saddr"       ipv4_addr
    ip_daddr,      // "ip daddr"       ipv4_addr
    ip6_saddr,     // "ip6 saddr"      ipv6_addr
    ip6_daddr,     // "ip6 daddr"      ipv6_addr
    meta_l4proto,  // "meta l4proto"   inet_proto
    th_sport,      // "th sport"       inet_service
    th_dport,      // "th dport"       inet_service
    iifname,       // "iifname"        ifname
    oifname,       // "oifname"        ifname
    ether_saddr,   // "ether saddr"    ether_addr
};

SetType field_type(Field f);
const char* field_text(Field f);
const char* set_type_text(SetType t);

// One element. Values are nft's own spelling, one per key (or data) type:
// "192.0.2.10", "fd00::1", "tcp" / "udp" / a protocol number, "8080",
// "52:54:00:12:34:56", and an interface name (unquoted here, quoted by render).
struct SetElement {
    std::vector<std::string> key;
    std::vector<std::string> data;  // only in maps: one value per data type
    std::string comment;            // element userdata, shown by `nft list`
    // Only in sets with `limit`: this element's own rate ("limit rate N/second
    // burst B packets"); a lookup that finds the element over its rate does
    // not match (the rule stops there).
    std::uint64_t limit_per_second = 0;
    std::uint32_t limit_burst = 5;
    bool operator==(const SetElement&) const = default;
};

// "set NAME { ... }", or "map NAME { ... }" when `data` is not empty.
struct Set {
    std::string name;
    std::vector<SetType> key;   // "type a . b . c"
    std::vector<SetType> data;  // map data types ("... : x . y"); empty for a set
    std::uint32_t size = 0;     // "size N"; 0: none (the kernel's default)
    bool dynamic = false;       // "flags dynamic": rules add elements (meters)
    bool counter = false;       // "counter": a packet/byte counter on every element
    std::vector<SetElement> elements;
    // "limit ... counter": every element carries its own rate limit (then its
    // counter, which so counts only what passed the limit). Needs `counter`.
    bool limit = false;
    // "flags interval": a value of an address type in an element may be a
    // prefix ("192.0.2.0/24", "fd00::/64"), matching every address in it.
    // With a concatenated key the kernel's pipapo set (Linux 5.6+), so that
    // "iifname . ip saddr" can be looked up in one step (a bridge and its
    // subnet).
    bool interval = false;
};

// The netmask of a prefix length: host byte order (IPv4), network byte
// order (IPv6); lengths past the address are the whole address.
std::uint32_t ipv4_mask(unsigned length);
std::array<std::uint8_t, 16> ipv6_mask(unsigned length);

// "KEYS @set" or "KEYS != @set": the concatenation of `keys` is (not) in the set.
// With `prefix` (1 to 31 for IPv4, 1 to 127 for IPv6), each address key is
// masked to its first `prefix` bits before the lookup ("iifname . ip saddr &
// 255.255.255.0 @net4_p24"): its network address looked up in a plain hash
// set, where an interval set (pipapo) would take the whole address.
struct MatchSetLookup {
    std::vector<Field> keys;
    std::string set;
    bool negate = false;
    std::uint8_t prefix = 0;  // 0: no mask
    bool operator==(const MatchSetLookup&) const = default;
};

// "fib daddr type local" (or "!= local"): the destination is one of this host's addresses.
struct MatchFibDaddrLocal {
    Cmp op = Cmp::eq;
    bool operator==(const MatchFibDaddrLocal&) const = default;
};

// "ct status S1,S2": (ct status & mask) != 0; for hairpin masquerade "ct status dnat".
namespace ct_status {
inline constexpr std::uint32_t expected = 0x1, seen_reply = 0x2, assured = 0x4, confirmed = 0x8, snat = 0x10,
                               dnat = 0x20, dying = 0x200;
}
struct MatchCtStatus {
    std::uint32_t mask = 0;
    bool operator==(const MatchCtStatus&) const = default;
};

// "limit rate [over] N/second [burst B packets]": with `over`, true when the
// rate is exceeded (use with drop); without, true while under the rate.
struct MatchLimit {
    std::uint64_t per_second = 0;
    std::uint32_t burst = 5;  // nft's default, which `nft list` leaves out
    bool over = true;
    bool operator==(const MatchLimit&) const = default;
};

// "add @set { KEYS ct count [over] N }": a per-key connection count (a meter);
// the set must be dynamic and have the keys' types. With `over`, true when the
// key already has more than N connections.
struct MatchConnLimit {
    std::vector<Field> keys;
    std::string set;
    std::uint32_t count = 0;
    bool over = true;
    bool operator==(const MatchConnLimit&) const = default;
};

// A statement, not a condition: "dnat ip to KEYS map @map" (ip6 for IPv6),
// the map's data being an address, or an address and a port. It ends the
// rule, so the rule's verdict must be none.
struct DnatMap {
    bool ipv6 = false;
    std::vector<Field> keys;
    std::string map;
    bool operator==(const DnatMap&) const = default;
};

// An IPv6 prefix; `address` in network byte order, already masked to `length`.
struct Ipv6Prefix {
    std::array<std::uint8_t, 16> address{};
    std::uint8_t length = 128;
    bool operator==(const Ipv6Prefix&) const = default;
};

// ip6 saddr / ip6 daddr compared to a prefix; implies "meta nfproto ipv6".
// "ip6 saddr ::/0" matches every IPv6 packet.
struct MatchIpv6 {
    bool source = true;  // true: saddr, false: daddr
    Cmp op = Cmp::eq;
    Ipv6Prefix prefix;
    bool operator==(const MatchIpv6&) const = default;
};

// "meta nfproto ipv4" / "meta nfproto ipv6": the packet's family, for rules
// whose other conditions do not imply one (lookups keyed by port only).
struct MatchNfproto {
    bool ipv6 = false;
    bool operator==(const MatchNfproto&) const = default;
};

// A statement, not a condition: "KEYS vmap @map", the map's data being a
// verdict (jump CHAIN): the packet continues in the chain its keys map to
// and, when that chain ends without a verdict, with the next rule. It ends
// the rule, so the rule's verdict must be none.
struct VerdictMap {
    std::vector<Field> keys;
    std::string map;
    bool operator==(const VerdictMap&) const = default;
};

// Conditions, in rule order. A DnatMap or VerdictMap may appear at most once
// (not both); render() and the adapter put it after the conditions and the
// counter, wherever it is.
using Match = std::variant<MatchIfname, MatchIpv4, MatchL4Dport, MatchCtState, MatchSetLookup, MatchFibDaddrLocal,
                           MatchCtStatus, MatchLimit, MatchConnLimit, DnatMap, MatchIpv6, MatchNfproto, VerdictMap>;

enum class Verdict { none, accept, drop, return_, masquerade };

struct Rule {
    std::vector<Match> matches;
    bool counter = false;
    Verdict verdict = Verdict::none;
    std::string comment;  // stored as rule userdata, shown by `nft list`
    bool operator==(const Rule&) const = default;
};

// A base chain has a hook; a regular chain (hook and type empty) is reached
// only through a jump, e.g. from a verdict map.
struct Chain {
    std::string name;
    std::string type;  // "filter" or "nat"; empty for a regular chain
    std::string hook;  // "prerouting", "input", "forward", "output", "postrouting"; empty for a regular chain
    int priority = 0;
    bool policy_accept = true;
    std::vector<Rule> rules;
    bool base() const { return !hook.empty(); }
    bool operator==(const Chain&) const = default;
};

// Always family inet. Sets are declared (and rendered) before the chains.
// A constructor rather than an aggregate, so Table{name, chains} keeps working
// without naming the sets.
struct Table {
    Table() = default;
    Table(std::string name_, std::vector<Chain> chains_ = {}, std::vector<Set> sets_ = {})
        : name(std::move(name_)), chains(std::move(chains_)), sets(std::move(sets_))
    {
    }
    std::string name;
    std::vector<Chain> chains;
    std::vector<Set> sets;
};

// nft(8) input syntax for the whole table, deterministic, for golden files
// and for `nft -f` cross-checks.
std::string render(const Table& table);
// One chain, and one set without its elements, as render() writes them
// inside the table: the parts CommittedTable fingerprints one by one, so
// that a network's start hashes only its own chains.
std::string render_chain(const Chain& chain);
std::string render_declaration(const Set& set);

}  // namespace kvmnet::plan
