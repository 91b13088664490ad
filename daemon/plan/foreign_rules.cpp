#include "plan/foreign_rules.hpp"

#include "plan/drift.hpp"
#include "plan/planner.hpp"

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>

namespace kvmnet::plan {
namespace {

using json = nlohmann::json;

std::string scalar_text(const json& v)
{
    if (v.is_string()) return v.get<std::string>();
    if (v.is_number_unsigned()) return std::to_string(v.get<std::uint64_t>());
    if (v.is_number_integer()) return std::to_string(v.get<std::int64_t>());
    return {};
}

// nft prints well-known protocols by name, iptables-nft's sometimes by number.
std::string protocol_name(const std::string& p)
{
    static const std::map<std::string, std::string> names{
        {"6", "tcp"}, {"17", "udp"}, {"1", "icmp"}, {"58", "ipv6-icmp"}};
    const auto it = names.find(p);
    return it == names.end() ? p : it->second;
}

std::string value_text(const json& v, bool quoted)
{
    if (v.is_string()) return quoted ? "\"" + v.get<std::string>() + "\"" : v.get<std::string>();
    if (v.is_number()) return scalar_text(v);
    if (v.is_array()) {
        std::string out;
        for (const auto& e : v)
            out.append(out.empty() ? "" : ",").append(value_text(e, quoted));
        return out;
    }
    if (v.is_object() && v.contains("set")) {
        std::string out = "{ ";
        bool first = true;
        for (const auto& e : v["set"]) {
            out.append(first ? "" : ", ").append(value_text(e, quoted));
            first = false;
        }
        return out + " }";
    }
    if (v.is_object() && v.contains("prefix"))
        return value_text(v["prefix"].value("addr", json()), false) + "/" + std::to_string(v["prefix"].value("len", 0));
    if (v.is_object() && v.contains("range") && v["range"].is_array() && v["range"].size() == 2)
        return value_text(v["range"][0], false) + "-" + value_text(v["range"][1], false);
    if (v.is_object() && !v.empty()) return "@" + v.begin().key();
    return "?";
}

std::string left_text(const json& left)
{
    if (left.contains("meta")) {
        const std::string key = left["meta"].value("key", "");
        return key == "iifname" || key == "oifname" || key == "iif" || key == "oif" ? key : "meta " + key;
    }
    if (left.contains("payload"))
        return left["payload"].value("protocol", "") + " " + left["payload"].value("field", "");
    if (left.contains("ct")) return "ct " + left["ct"].value("key", "");
    if (left.contains("fib")) return "fib " + left["fib"].value("result", "");
    if (left.is_object() && !left.empty()) return left.begin().key();
    return "?";
}

// The values a match compares with, as text; false when they are not a
// plain value or a set of plain values (ranges, prefixes, maps).
bool plain_values(const json& right, std::vector<std::string>& out)
{
    const auto add = [&](const json& v) {
        const std::string s = scalar_text(v);
        if (s.empty()) return false;
        out.push_back(s);
        return true;
    };
    if (right.is_string() || right.is_number()) return add(right);
    const json* list = right.is_array() ? &right : right.is_object() && right.contains("set") ? &right["set"] : nullptr;
    if (!list || !list->is_array()) return false;
    for (const auto& v : *list)
        if (!add(v)) return false;
    return true;
}

ForeignMatch parse_match(const json& m)
{
    ForeignMatch out;
    const std::string op = m.value("op", "==");
    const json& left = m.contains("left") ? m["left"] : json();
    const json& right = m.contains("right") ? m["right"] : json();
    if (op != "==" && op != "!=" && op != "in") return out;
    std::vector<std::string> values;
    if (!plain_values(right, values)) return out;
    std::string key;
    if (left.contains("meta")) {
        const std::string k = left["meta"].value("key", "");
        if (k == "iifname" || k == "oifname") key = k;
        if (k == "l4proto") key = "l4proto";
    } else if (left.contains("payload")) {
        const std::string proto = left["payload"].value("protocol", "");
        const std::string field = left["payload"].value("field", "");
        if ((proto == "ip" || proto == "ip6") && (field == "protocol" || field == "nexthdr")) key = "l4proto";
        if ((proto == "tcp" || proto == "udp" || proto == "th") && field == "dport") {
            key = "dport";
            out.protocol = proto;
        }
    } else if (left.contains("ct") && left["ct"].value("key", "") == "state") {
        key = "ctstate";
    }
    if (key.empty()) return out;
    out.key = key;
    out.negated = op == "!=";
    if (key == "l4proto")
        for (auto& v : values)
            v = protocol_name(v);
    out.values = std::move(values);
    return out;
}

ForeignRule parse_rule(const json& r)
{
    ForeignRule rule;
    rule.handle = r.value("handle", std::uint64_t{0});
    std::string text;
    const auto say = [&](const std::string& part) { text.append(text.empty() ? "" : " ").append(part); };
    for (const json& e : r.value("expr", json::array())) {
        if (!e.is_object() || e.empty()) continue;
        const std::string kind = e.begin().key();
        const json& v = e.begin().value();
        if (kind == "match") {
            rule.matches.push_back(parse_match(v));
            const std::string op = v.value("op", "==");
            const std::string left = left_text(v.value("left", json()));
            const bool quoted = left == "iifname" || left == "oifname";
            say(left + (op == "==" || op == "in" ? " " : " " + op + " ") +
                value_text(v.value("right", json()), quoted));
        } else if (kind == "counter") {
            if (v.is_object()) {
                rule.packets = v.value("packets", std::uint64_t{0});
                say("counter packets " + std::to_string(*rule.packets) + " bytes " +
                    std::to_string(v.value("bytes", std::uint64_t{0})));
            } else {
                say("counter name " + value_text(v, true));
            }
        } else if (kind == "accept" || kind == "drop" || kind == "return" || kind == "continue") {
            rule.verdict = kind == "accept"   ? ForeignVerdict::accept
                           : kind == "drop"   ? ForeignVerdict::drop
                           : kind == "return" ? ForeignVerdict::ret
                                              : ForeignVerdict::none;
            say(kind);
        } else if (kind == "reject") {
            rule.verdict = ForeignVerdict::drop;
            say("reject");
        } else if (kind == "jump" || kind == "goto") {
            rule.verdict = kind == "jump" ? ForeignVerdict::jump : ForeignVerdict::go_to;
            rule.target = v.is_object() ? v.value("target", "") : "";
            say(kind + " " + rule.target);
        } else if (kind == "log") {
            rule.log = true;
            say(v.is_object() && v.contains("prefix") ? "log prefix \"" + v["prefix"].get<std::string>() + "\""
                                                      : "log");
        } else if (kind == "limit") {
            // Under its rate it matches: the packets we ask about are few.
            if (v.is_object())
                say("limit rate " + scalar_text(v.value("rate", json(0))) + "/" + v.value("per", "second") +
                    (v.contains("burst") ? " burst " + scalar_text(v["burst"]) + " packets" : ""));
        } else if (kind == "xt") {
            const std::string type = v.value("type", "");
            const std::string name = v.value("name", "");
            say("xt " + type + " \"" + name + "\"");
            if (type == "target") {
                if (name == "LOG" || name == "NFLOG")
                    rule.log = true;
                else if (name == "REJECT" || name == "DROP")
                    rule.verdict = ForeignVerdict::drop;
                else if (name == "ACCEPT")
                    rule.verdict = ForeignVerdict::accept;
                else if (name == "RETURN")
                    rule.verdict = ForeignVerdict::ret;
                else
                    rule.verdict = ForeignVerdict::unknown;
            } else if (name != "comment") {
                rule.matches.push_back({});  // an iptables match we cannot read
            }
        } else if (kind == "mangle" || kind == "notrack" || kind == "set" || kind == "dup" || kind == "quota" ||
                   kind == "meter") {
            // Statements: they change or note the packet, they do not decide.
            say(kind);
            if (kind == "quota" || kind == "meter") rule.matches.push_back({});
        } else {
            // Verdict maps, queues and whatever else: nothing we can tell.
            say(kind);
            rule.matches.push_back({});
            if (kind == "vmap" || kind == "queue") rule.verdict = ForeignVerdict::unknown;
        }
    }
    if (r.contains("comment") && r["comment"].is_string()) say("comment \"" + r["comment"].get<std::string>() + "\"");
    rule.text = std::move(text);
    return rule;
}

enum class Tri { no, yes, maybe };

// One of the guests' packets, as far as the judgement knows it. An empty
// interface is "another one than the bridge"; an empty protocol or a zero
// port is unknown.
struct Packet {
    std::string iif, oif;
    std::string l4proto;
    unsigned dport = 0;
};

bool name_matches(const std::string& pattern, const std::string& name)
{
    if (!pattern.empty() && pattern.back() == '*') return name.rfind(pattern.substr(0, pattern.size() - 1), 0) == 0;
    return pattern == name;
}

Tri any_of(const ForeignMatch& m, const std::string& value)
{
    const bool in = std::any_of(m.values.begin(), m.values.end(),
                                [&](const std::string& v) { return v == value || name_matches(v, value); });
    return in != m.negated ? Tri::yes : Tri::no;
}

Tri holds(const ForeignMatch& m, const Packet& p, const std::string& bridge, const std::string& hook)
{
    if (m.key.empty() || m.values.empty()) return Tri::maybe;
    if (m.key == "iifname" || m.key == "oifname") {
        const std::string& ifname = m.key == "iifname" ? p.iif : p.oif;
        if (m.key == "oifname" && hook == "input") return Tri::maybe;
        if (!ifname.empty()) return any_of(m, ifname);
        // Another interface than the bridge: a rule for the bridge does not
        // apply to it; one for another name may.
        const bool bridge_only = std::all_of(m.values.begin(), m.values.end(),
                                             [&](const std::string& v) { return name_matches(v, bridge); });
        return bridge_only ? (m.negated ? Tri::yes : Tri::no) : Tri::maybe;
    }
    if (m.key == "l4proto") return p.l4proto.empty() ? Tri::maybe : any_of(m, p.l4proto);
    if (m.key == "dport") {
        // "udp dport" implies the protocol, whatever the operator.
        if (m.protocol != "th" && !p.l4proto.empty() && m.protocol != p.l4proto) return Tri::no;
        if (p.dport == 0) return Tri::maybe;
        const Tri port = any_of(m, std::to_string(p.dport));
        if (port == Tri::no || m.protocol == "th" || !p.l4proto.empty()) return port;
        return Tri::maybe;
    }
    if (m.key == "ctstate") return any_of(m, "new");
    return Tri::maybe;
}

Tri rule_holds(const ForeignRule& r, const Packet& p, const std::string& bridge, const std::string& hook)
{
    Tri all = Tri::yes;
    for (const auto& m : r.matches) {
        const Tri t = holds(m, p, bridge, hook);
        if (t == Tri::no) return Tri::no;
        if (t == Tri::maybe) all = Tri::maybe;
    }
    return all;
}

struct Outcome {
    enum Kind { accept, drop, ret } kind;
    const ForeignChain* chain = nullptr;
    const ForeignRule* rule = nullptr;  // the dropping rule; null: a policy or a return
};

class Walker {
public:
    Walker(const std::vector<ForeignChain>& chains, const ForeignChain& base, const Packet& p,
           const std::string& bridge)
        : chains_(chains), base_(base), packet_(p), bridge_(bridge)
    {
    }

    // Every way the packet can leave `chain`.
    std::vector<Outcome> walk(const ForeignChain& chain, int depth)
    {
        std::vector<Outcome> out;
        if (depth > 16 || ++steps_ > 10000) {
            gave_up_ = true;
            return out;
        }
        for (const ForeignRule& r : chain.rules) {
            const Tri t = rule_holds(r, packet_, bridge_, base_.hook);
            if (t == Tri::no) continue;
            if (r.packets && *r.packets > 0 && (r.log || r.verdict == ForeignVerdict::drop))
                counted_ = RuleRef{chain.family, chain.table, chain.name, r.handle, r.text, *r.packets};
            switch (r.verdict) {
            case ForeignVerdict::accept:
            case ForeignVerdict::drop:
                if (t == Tri::yes) {
                    out.push_back({r.verdict == ForeignVerdict::accept ? Outcome::accept : Outcome::drop, &chain, &r});
                    return out;
                }
                break;
            case ForeignVerdict::jump:
            case ForeignVerdict::go_to: {
                const ForeignChain* target = find(chain, r.target);
                if (!target) {
                    gave_up_ = true;
                    return out;
                }
                bool returned = false;
                for (const Outcome& o : walk(*target, depth + 1)) {
                    if (o.kind == Outcome::ret)
                        returned = true;
                    else
                        out.push_back(o);
                }
                if (r.verdict == ForeignVerdict::go_to && returned) out.push_back({Outcome::ret, &chain, nullptr});
                if (t == Tri::yes && (r.verdict == ForeignVerdict::go_to || !returned)) return out;
                break;
            }
            case ForeignVerdict::ret:
                out.push_back({Outcome::ret, &chain, nullptr});
                if (t == Tri::yes) return out;
                break;
            case ForeignVerdict::unknown:
                // A verdict map or a queue that may apply: its verdict
                // cannot be told, so neither can the chain's.
                gave_up_ = true;
                return out;
            case ForeignVerdict::none: break;
            }
        }
        out.push_back({Outcome::ret, &chain, nullptr});
        return out;
    }

    bool gave_up() const { return gave_up_; }
    const std::optional<RuleRef>& counted() const { return counted_; }

private:
    const ForeignChain* find(const ForeignChain& from, const std::string& name) const
    {
        for (const auto& c : chains_)
            if (c.family == from.family && c.table == from.table && c.name == name) return &c;
        return nullptr;
    }

    const std::vector<ForeignChain>& chains_;
    const ForeignChain& base_;
    Packet packet_;
    std::string bridge_;
    int steps_ = 0;
    bool gave_up_ = false;
    std::optional<RuleRef> counted_;
};

struct Probe {
    std::string what;  // "outgoing forwarded traffic", ...
    Packet packet;
    bool v4 = true;  // an IPv4 packet (else IPv6)
};

std::vector<Probe> probes(const model::Network& n, const std::string& hook)
{
    std::vector<Probe> out;
    const auto both = [&](const std::string& what, const Packet& p) {
        if (n.ipv4) out.push_back({what, p, true});
        if (n.ipv6) out.push_back({what, p, false});
    };
    if (hook == "forward") {
        if (!needs_forwarding(n)) return out;
        both("outgoing forwarded traffic", {n.bridge, "", "", 0});
        both("incoming forwarded traffic (replies, port forwards)", {"", n.bridge, "", 0});
    } else if (hook == "input") {
        if (n.ipv4 && n.ipv4->dhcp) out.push_back({"DHCP", {n.bridge, "", "udp", 67}, true});
        both("DNS", {n.bridge, "", "udp", 53});
        if (n.ipv6 && !n.ipv6->ranges.empty()) out.push_back({"DHCPv6", {n.bridge, "", "udp", 547}, false});
    }
    return out;
}

}  // namespace

std::vector<ForeignChain> parse_nft_json(const std::string& text)
{
    const json doc = json::parse(text);
    std::vector<ForeignChain> chains;
    std::map<std::string, std::size_t> index;
    const auto key = [](const std::string& f, const std::string& t, const std::string& c) {
        return f + '\0' + t + '\0' + c;
    };
    for (const json& item : doc.at("nftables")) {
        if (item.contains("chain")) {
            const json& c = item["chain"];
            ForeignChain chain;
            chain.family = c.value("family", "");
            chain.table = c.value("table", "");
            chain.name = c.value("name", "");
            chain.base = c.contains("hook");
            chain.hook = c.value("hook", "");
            chain.policy = chain.base ? c.value("policy", "accept") : "";
            index[key(chain.family, chain.table, chain.name)] = chains.size();
            chains.push_back(std::move(chain));
        } else if (item.contains("rule")) {
            const json& r = item["rule"];
            const auto it = index.find(key(r.value("family", ""), r.value("table", ""), r.value("chain", "")));
            if (it != index.end()) chains[it->second].rules.push_back(parse_rule(r));
        }
    }
    return chains;
}

std::string RuleRef::str() const
{
    return family + " " + table + " " + chain + " handle " + std::to_string(handle) + ": " + text;
}

std::string ChainJudgement::drop_detail() const
{
    if (cut.empty()) return {};
    if (dropper)
        return "; dropped by rule " + dropper->str() +
               (dropper->packets ? " (" + std::to_string(dropper->packets) + " packets so far)" : "");
    std::string out = "; dropped by its policy";
    if (counted)
        out.append(" (rule ")
            .append(counted->str())
            .append(" counted ")
            .append(std::to_string(counted->packets))
            .append(" packets)");
    return out;
}

std::vector<ChainJudgement> judge_foreign_chains(const std::vector<ForeignChain>& chains, const model::Network& n,
                                                 const std::string& our_table)
{
    std::vector<ChainJudgement> out;
    if (n.mode == model::Mode::bridge) return out;
    for (const ForeignChain& c : chains) {
        if (!c.base || (c.hook != "forward" && c.hook != "input")) continue;
        if (c.family == "inet" && c.table == our_table) continue;
        // firewalld's table has a supported place for the guests (zone
        // kvmnet, core/firewalld.hpp) and a check of its own. Its
        // firewalld_policy_drop drops everything only while it reloads
        // (and its panic mode, on other hooks): judged, it flapped every
        // network to degraded and back at each reload.
        if (c.family == "inet" && (c.table == "firewalld" || c.table == "firewalld_policy_drop")) continue;
        if (c.family != "ip" && c.family != "ip6" && c.family != "inet") continue;
        if (c.family == "ip6" && !n.ipv6) continue;
        ChainJudgement j{c.family, c.table, c.name, c.hook, c.policy, {}, {}, {}, false};
        int tried = 0, followed = 0;
        for (const Probe& probe : probes(n, c.hook)) {
            if ((c.family == "ip" && !probe.v4) || (c.family == "ip6" && probe.v4)) continue;
            ++tried;
            Walker walker(chains, c, probe.packet, n.bridge);
            const auto outcomes = walker.walk(c, 0);
            if (walker.gave_up() || outcomes.empty()) continue;
            ++followed;
            const bool drops = std::all_of(outcomes.begin(), outcomes.end(), [&](const Outcome& o) {
                return o.kind == Outcome::drop || (o.kind == Outcome::ret && c.policy == "drop");
            });
            if (!drops) continue;
            if (std::find(j.cut.begin(), j.cut.end(), probe.what) == j.cut.end()) j.cut.push_back(probe.what);
            if (j.cut.size() == 1) {
                // Of the rules that may drop them, the first whose counter
                // counted packets is the one that did. Else the way taken
                // last: the walk takes the uncertain turns (a return on a
                // match it cannot know) first, so the last way is the one
                // where the unknown matches did not apply, the common case
                // (ufw's DHCP drop rather than its "not local" drop).
                const Outcome* counted = nullptr;
                for (const Outcome& o : outcomes)
                    if (!counted && o.kind == Outcome::drop && o.rule && o.rule->packets.value_or(0) > 0) counted = &o;
                const Outcome* first = counted ? counted : &outcomes.back();
                if (first->kind == Outcome::drop && first->rule)
                    j.dropper = RuleRef{first->chain->family, first->chain->table, first->chain->name,
                                        first->rule->handle,  first->rule->text,   first->rule->packets.value_or(0)};
                j.counted = walker.counted();
            }
        }
        j.judged = tried > 0 && followed == tried;
        out.push_back(std::move(j));
    }
    return out;
}

}  // namespace kvmnet::plan
