// Rendering of the ruleset data to nft(8) syntax: golden files and
// cross-checks against what the kernel adapter commits.
#include "plan/ruleset.hpp"

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

struct MatchRenderer {
    std::ostream& out;
    void operator()(const MatchIfname& m) const
    {
        out << (m.input ? "iifname " : "oifname ") << op_text(m.op) << quote(m.name);
    }
    void operator()(const MatchIpv4& m) const
    {
        out << (m.source ? "ip saddr " : "ip daddr ") << op_text(m.op) << ipv4_text(m.prefix.address);
        if (m.prefix.length != 32) out << '/' << int(m.prefix.length);
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

}  // namespace

std::string render(const Table& table)
{
    std::ostringstream out;
    out << "table inet " << table.name << " {\n";
    bool first_chain = true;
    for (const Chain& chain : table.chains) {
        if (!first_chain) out << '\n';
        first_chain = false;
        out << "\tchain " << chain.name << " {\n";
        out << "\t\ttype " << chain.type << " hook " << chain.hook << " priority " << chain.priority << "; policy "
            << (chain.policy_accept ? "accept" : "drop") << ";\n";
        for (const Rule& rule : chain.rules) {
            std::ostringstream line;
            const char* sep = "";
            for (const Match& m : rule.matches) {
                line << sep;
                std::visit(MatchRenderer{line}, m);
                sep = " ";
            }
            if (rule.counter) {
                line << sep << "counter";
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
    out << "}\n";
    return out.str();
}

}  // namespace kvmnet::plan
