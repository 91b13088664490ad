// The nftables ruleset as plain data. The planner builds a Table; the golden
// tests render it to nft syntax; the kernel adapter (kernel/nftables.cpp)
// turns the very same data into libnftnl objects and commits them in one
// batch. Nothing here includes libnftnl, so it stays unit-testable.
#pragma once

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

namespace kvmnet::plan {

struct Ipv4Prefix {
    std::uint32_t address = 0;  // host byte order, already masked to `length`
    std::uint8_t length = 32;
};

enum class Cmp { eq, neq };

// iifname / oifname compared to an interface name.
struct MatchIfname {
    bool input = true;  // true: iifname, false: oifname
    Cmp op = Cmp::eq;
    std::string name;
};

// ip saddr / ip daddr compared to a prefix; implies "meta nfproto ipv4".
struct MatchIpv4 {
    bool source = true;  // true: saddr, false: daddr
    Cmp op = Cmp::eq;
    Ipv4Prefix prefix;
};

// "meta l4proto P th dport N" (rendered as "udp dport N" / "tcp dport N").
struct MatchL4Dport {
    std::uint8_t protocol = 17;  // IPPROTO_TCP (6) or IPPROTO_UDP (17)
    std::uint16_t port = 0;
};

// "ct state S1,S2": (ct state & mask) != 0.
namespace ct {
inline constexpr std::uint32_t invalid = 1, established = 2, related = 4, new_ = 8, untracked = 64;
}
struct MatchCtState {
    std::uint32_t mask = 0;
};

using Match = std::variant<MatchIfname, MatchIpv4, MatchL4Dport, MatchCtState>;

enum class Verdict { none, accept, drop, return_, masquerade };

struct Rule {
    std::vector<Match> matches;
    bool counter = false;
    Verdict verdict = Verdict::none;
    std::string comment;  // stored as rule userdata, shown by `nft list`
};

struct Chain {
    std::string name;
    std::string type;  // "filter" or "nat"
    std::string hook;  // "prerouting", "input", "forward", "output", "postrouting"
    int priority = 0;
    bool policy_accept = true;
    std::vector<Rule> rules;
};

// Always family inet.
struct Table {
    std::string name;
    std::vector<Chain> chains;
};

// nft(8) input syntax for the whole table, deterministic, for golden files
// and for `nft -f` cross-checks.
std::string render(const Table& table);

}  // namespace kvmnet::plan
