// Rendering of the ruleset data to nft(8) syntax: golden files and
// cross-checks against what the kernel adapter commits.
#include "plan/ruleset.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <sstream>

namespace kvmnet::plan {
namespace {

std::string ipv4_text(std::uint32_t a)
{
    std::ostringstream out;
    out << ((a >> 24) & 0xff) << '.' << ((a >> 16) & 0xff) << '.' << ((a >> 8) & 0xff) << '.' << (a & 0xff);
    return out.str();
}

const char* op_text(Cmp op) { return op == Cmp::eq ? "" : "!= "; }

std::string quote(const std::string& s)
{
    std::string out = "\"";
    for (char c : s) {
        if (c == '"' || c == '\\') out += '\\';
        out += c;
    }
    return out + "\"";
}

void keys_text(std::ostream& out, const std::vector<Field>& keys)
{
    const char* sep = "";
    for (Field f : keys) {
        out << sep << field_text(f);
        sep = " . ";
    }
}

struct MatchRenderer {
    std::ostream& out;
    void operator()(const MatchSetLookup& m) const
    {
        const char* sep = "";
        for (Field f : m.keys) {
            out << sep << field_text(f);
            sep = " . ";
            if (m.prefix == 0) continue;
            if (f == Field::ip_saddr || f == Field::ip_daddr) {
                out << " & " << ipv4_text(ipv4_mask(m.prefix));
            } else if (f == Field::ip6_saddr || f == Field::ip6_daddr) {
                const std::array<std::uint8_t, 16> mask = ipv6_mask(m.prefix);
                char text[INET6_ADDRSTRLEN];
                ::inet_ntop(AF_INET6, mask.data(), text, sizeof text);
                out << " & " << text;
            }
        }
        out << (m.negate ? " != @" : " @") << m.set;
    }
    void operator()(const MatchFibDaddrLocal& m) const { out << "fib daddr type " << op_text(m.op) << "local"; }
    void operator()(const MatchCtStatus& m) const
    {
        static const std::pair<std::uint32_t, const char*> names[] = {
            {ct_status::expected, "expected"}, {ct_status::seen_reply, "seen-reply"},
            {ct_status::assured, "assured"},   {ct_status::confirmed, "confirmed"},
            {ct_status::snat, "snat"},         {ct_status::dnat, "dnat"},
            {ct_status::dying, "dying"}};
        out << "ct status ";
        bool first = true;
        for (const auto& [bit, name] : names) {
            if ((m.mask & bit) == 0) continue;
            out << (first ? "" : ",") << name;
            first = false;
        }
    }
    void operator()(const MatchLimit& m) const
    {
        out << "limit rate " << (m.over ? "over " : "") << m.per_second << "/second";
        if (m.burst != 5) out << " burst " << m.burst << " packets";
    }
    void operator()(const MatchConnLimit& m) const
    {
        out << "add @" << m.set << " { ";
        keys_text(out, m.keys);
        out << " ct count " << (m.over ? "over " : "") << m.count << " }";
    }
    void operator()(const DnatMap& m) const
    {
        out << (m.ipv6 ? "dnat ip6 to " : "dnat ip to ");
        keys_text(out, m.keys);
        out << " map @" << m.map;
    }
    void operator()(const VerdictMap& m) const
    {
        keys_text(out, m.keys);
        out << " vmap @" << m.map;
    }
    void operator()(const MatchIfname& m) const
    {
        out << (m.input ? "iifname " : "oifname ") << op_text(m.op) << quote(m.name);
    }
    void operator()(const MatchIpv4& m) const
    {
        out << (m.source ? "ip saddr " : "ip daddr ") << op_text(m.op) << ipv4_text(m.prefix.address);
        if (m.prefix.length != 32) out << '/' << int(m.prefix.length);
    }
    void operator()(const MatchNfproto& m) const { out << "meta nfproto " << (m.ipv6 ? "ipv6" : "ipv4"); }
    void operator()(const MatchIpv6& m) const
    {
        char text[INET6_ADDRSTRLEN] = {};
        ::inet_ntop(AF_INET6, m.prefix.address.data(), text, sizeof text);
        out << (m.source ? "ip6 saddr " : "ip6 daddr ") << op_text(m.op) << text;
        if (m.prefix.length != 128) out << '/' << int(m.prefix.length);
    }
    void operator()(const MatchL4Dport& m) const { out << (m.protocol == 6 ? "tcp" : "udp") << " dport " << m.port; }
    void operator()(const MatchCtState& m) const
    {
        static const std::pair<std::uint32_t, const char*> names[] = {{ct::invalid, "invalid"},
                                                                      {ct::established, "established"},
                                                                      {ct::related, "related"},
                                                                      {ct::new_, "new"},
                                                                      {ct::untracked, "untracked"}};
        out << "ct state ";
        bool first = true;
        for (const auto& [bit, name] : names) {
            if ((m.mask & bit) == 0) continue;
            out << (first ? "" : ",") << name;
            first = false;
        }
    }
};

const char* verdict_text(Verdict v)
{
    switch (v) {
    case Verdict::none: return "";
    case Verdict::accept: return "accept";
    case Verdict::drop: return "drop";
    case Verdict::return_: return "return";
    case Verdict::masquerade: return "masquerade";
    }
    return "";
}

void values_text(std::ostream& out, const std::vector<SetType>& types, const std::vector<std::string>& values)
{
    for (std::size_t i = 0; i < values.size(); ++i) {
        if (i != 0) out << " . ";
        // Interface names are strings to nft; everything else is a bare word.
        const bool is_string = i < types.size() && types[i] == SetType::ifname;
        out << (is_string ? quote(values[i]) : values[i]);
    }
}

void types_text(std::ostream& out, const std::vector<SetType>& types)
{
    const char* sep = "";
    for (SetType t : types) {
        out << sep << set_type_text(t);
        sep = " . ";
    }
}

void render_set(std::ostream& out, const Set& set, bool with_elements = true)
{
    const bool map = !set.data.empty();
    out << '\t' << (map ? "map " : "set ") << set.name << " {\n\t\ttype ";
    types_text(out, set.key);
    if (map) {
        out << " : ";
        types_text(out, set.data);
    }
    out << '\n';
    if (set.size != 0) out << "\t\tsize " << set.size << '\n';
    if (set.dynamic) out << "\t\tflags dynamic\n";
    if (set.interval) out << "\t\tflags interval\n";
    if (set.limit)
        out << "\t\tlimit rate 1/second counter\n";
    else if (set.counter)
        out << "\t\tcounter\n";
    if (with_elements && !set.elements.empty()) {
        out << "\t\telements = { ";
        bool first = true;
        for (const SetElement& e : set.elements) {
            if (!first) out << ",\n\t\t\t     ";
            first = false;
            values_text(out, set.key, e.key);
            if (set.limit) {
                out << " limit rate " << e.limit_per_second << "/second";
                if (e.limit_burst != 5) out << " burst " << e.limit_burst << " packets";
                out << " counter";
            }
            if (!e.comment.empty()) out << " comment " << quote(e.comment);
            if (map) {
                out << " : ";
                values_text(out, set.data, e.data);
            }
        }
        out << " }\n";
    }
    out << "\t}\n";
}

void render_chain(std::ostream& out, const Chain& chain)
{
    out << "\tchain " << chain.name << " {\n";
    if (chain.base())
        out << "\t\ttype " << chain.type << " hook " << chain.hook << " priority " << chain.priority << "; policy "
            << (chain.policy_accept ? "accept" : "drop") << ";\n";
    for (const Rule& rule : chain.rules) {
        std::ostringstream line;
        const char* sep = "";
        const Match* dnat = nullptr;
        for (const Match& m : rule.matches) {
            if (std::holds_alternative<DnatMap>(m) || std::holds_alternative<VerdictMap>(m)) {
                dnat = &m;  // a statement: after the counter, which it would otherwise skip
                continue;
            }
            line << sep;
            std::visit(MatchRenderer{line}, m);
            sep = " ";
        }
        if (rule.counter) {
            line << sep << "counter";
            sep = " ";
        }
        if (dnat != nullptr) {
            line << sep;
            std::visit(MatchRenderer{line}, *dnat);
            sep = " ";
        }
        if (rule.verdict != Verdict::none) {
            line << sep << verdict_text(rule.verdict);
            sep = " ";
        }
        if (!rule.comment.empty()) line << sep << "comment " << quote(rule.comment);
        out << "\t\t" << line.str() << '\n';
    }
    out << "\t}\n";
}

}  // namespace

std::uint32_t ipv4_mask(unsigned length) { return length >= 32 ? 0xffffffffu : ~(0xffffffffu >> length); }

std::array<std::uint8_t, 16> ipv6_mask(unsigned length)
{
    std::array<std::uint8_t, 16> mask{};
    for (unsigned i = 0; i < 16; ++i) {
        const unsigned bits = length > i * 8 ? std::min(8u, length - i * 8) : 0;
        mask[i] = static_cast<std::uint8_t>(bits == 0 ? 0 : 0xff << (8 - bits));
    }
    return mask;
}

SetType field_type(Field f)
{
    switch (f) {
    case Field::ip_saddr:
    case Field::ip_daddr: return SetType::ipv4_addr;
    case Field::ip6_saddr:
    case Field::ip6_daddr: return SetType::ipv6_addr;
    case Field::meta_l4proto: return SetType::inet_proto;
    case Field::th_sport:
    case Field::th_dport: return SetType::inet_service;
    case Field::iifname:
    case Field::oifname: return SetType::ifname;
    case Field::ether_saddr: return SetType::ether_addr;
    }
    return SetType::ipv4_addr;
}

const char* field_text(Field f)
{
    switch (f) {
    case Field::ip_saddr: return "ip saddr";
    case Field::ip_daddr: return "ip daddr";
    case Field::ip6_saddr: return "ip6 saddr";
    case Field::ip6_daddr: return "ip6 daddr";
    case Field::meta_l4proto: return "meta l4proto";
    case Field::th_sport: return "th sport";
    case Field::th_dport: return "th dport";
    case Field::iifname: return "iifname";
    case Field::oifname: return "oifname";
    case Field::ether_saddr: return "ether saddr";
    }
    return "?";
}

const char* set_type_text(SetType t)
{
    switch (t) {
    case SetType::ipv4_addr: return "ipv4_addr";
    case SetType::ipv6_addr: return "ipv6_addr";
    case SetType::ether_addr: return "ether_addr";
    case SetType::inet_proto: return "inet_proto";
    case SetType::inet_service: return "inet_service";
    case SetType::ifname: return "ifname";
    case SetType::verdict: return "verdict";
    }
    return "?";
}

std::string render(const Table& table)
{
    std::ostringstream out;
    out << "table inet " << table.name << " {\n";
    bool first_object = true;
    for (const Set& set : table.sets) {
        if (!first_object) out << '\n';
        first_object = false;
        render_set(out, set);
    }
    for (const Chain& chain : table.chains) {
        if (!first_object) out << '\n';
        first_object = false;
        render_chain(out, chain);
    }
    out << "}\n";
    return out.str();
}

std::string render_chain(const Chain& chain)
{
    std::ostringstream out;
    render_chain(out, chain);
    return out.str();
}

std::string render_declaration(const Set& set)
{
    std::ostringstream out;
    render_set(out, set, false);
    return out.str();
}

}  // namespace kvmnet::plan
