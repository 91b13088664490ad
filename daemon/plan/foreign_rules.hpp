// Other programs' nftables chains on the forward and input hooks, read as
// `nft -j list table` prints them, and judged for one network: does a new
// connection of its guests (out through its bridge, in to it, DHCP and DNS
// to the host) come out accepted or dropped? In nftables every base chain
// on a hook must accept a packet, so one of them dropping cuts the guests
// off whatever kvmnet's own table says (docs/firewalls.md).
//
// The judgement is deliberately narrow: a rule decides only when each of
// its matches is known to hold for such a packet (interface names, layer 4
// protocol, destination port, conntrack state "new"); an accept or drop
// whose matches cannot be known here (addresses, xt matches, fib, ...) is
// taken not to apply, and a jump or return whose matches cannot be known is
// followed both ways. A chain cuts the guests off only when every way ends
// in a drop: its policy or a rule that certainly applies. Pure: no I/O.
#pragma once

#include "model/network.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace kvmnet::plan {

struct ForeignMatch {
    // "iifname", "oifname", "l4proto", "dport", "ctstate"; "" when not
    // understood (always "maybe").
    std::string key;
    bool negated = false;
    std::vector<std::string> values;  // any of them; empty with a key: not understood
    std::string protocol;             // dport: "tcp", "udp" or "th"
};

enum class ForeignVerdict { none, accept, drop, jump, go_to, ret, unknown };

struct ForeignRule {
    std::uint64_t handle = 0;
    std::vector<ForeignMatch> matches;
    ForeignVerdict verdict = ForeignVerdict::none;
    std::string target;  // jump/goto
    bool log = false;
    std::optional<std::uint64_t> packets;  // its counter, when it has one
    std::string text;                      // nft's syntax, as near as we can say it
};

struct ForeignChain {
    std::string family, table, name;
    bool base = false;
    std::string hook;    // base chains
    std::string policy;  // base chains: "accept" or "drop"
    std::vector<ForeignRule> rules;
};

// Every chain of `nft -j list table ...` / `list ruleset` output, with its
// rules. Throws std::exception when the text is no such JSON.
std::vector<ForeignChain> parse_nft_json(const std::string& json);

// A rule as diagnose names it.
struct RuleRef {
    std::string family, table, chain;
    std::uint64_t handle = 0;
    std::string text;
    std::uint64_t packets = 0;
    std::string str() const;  // "ip filter FORWARD handle 7: iifname \"kvmbr0\" counter packets 3 bytes 180 drop"
};

struct ChainJudgement {
    std::string family, table, name, hook, policy;
    // What of the guests' traffic it drops: "outgoing forwarded traffic",
    // "incoming forwarded traffic (replies, port forwards)", "DHCP", "DNS",
    // "DHCPv6"; empty: it lets all of it through (or cannot tell).
    std::vector<std::string> cut;
    // The rule that drops the first of them; none: the chain's policy.
    std::optional<RuleRef> dropper;
    // The last rule on the dropped packets' way whose counter counted
    // packets and that drops or logs (ufw's "[UFW BLOCK]" rule, a counted drop
    // whose matches are not understood).
    std::optional<RuleRef> counted;
    // Every one of the guests' packets that matter on this hook was
    // followed to a verdict (not given up on, e.g. a jump to a missing chain).
    bool judged = false;
    bool cuts_off() const { return !cut.empty(); }
    // "; dropped by rule ip t c handle 4: ... (3 packets)" or
    // "; dropped by its policy (rule ... counted 3 packets)"; "" when it cuts nothing.
    std::string drop_detail() const;
};

// Every foreign (not family inet table `our_table`, nor firewalld's inet
// firewalld, which has a supported place and a check of its own) base chain of `chains`
// on the forward or input hook that matters to `n`'s guests: of families
// ip, ip6 (when `n` has IPv6) and inet; none for bridge-mode networks,
// whose bridge is the host's. Forward chains only when `n` forwards (NAT,
// routed).
std::vector<ChainJudgement> judge_foreign_chains(const std::vector<ForeignChain>& chains, const model::Network& n,
                                                 const std::string& our_table);

}  // namespace kvmnet::plan
