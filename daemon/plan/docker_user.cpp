#include "plan/docker_user.hpp"

#include <algorithm>
#include <sstream>

namespace kvmnet::plan {
namespace {

// iptables-save's quoting: a token in double quotes may hold spaces and
// backslash-escaped quotes.
std::vector<std::string> tokens(const std::string& line)
{
    std::vector<std::string> out;
    std::size_t i = 0;
    while (i < line.size()) {
        while (i < line.size() && line[i] == ' ')
            ++i;
        if (i >= line.size()) break;
        std::string t;
        if (line[i] == '"') {
            for (++i; i < line.size() && line[i] != '"'; ++i) {
                if (line[i] == '\\' && i + 1 < line.size()) ++i;
                t += line[i];
            }
            ++i;
        } else {
            while (i < line.size() && line[i] != ' ')
                t += line[i++];
        }
        out.push_back(std::move(t));
    }
    return out;
}

}  // namespace

std::vector<std::string> DockerUserRule::spec() const
{
    return {direction, bridge, "-m", "comment", "--comment", docker_user_comment_prefix + network, "-j", "ACCEPT"};
}

std::vector<DockerUserRule> docker_user_rules(const std::vector<DockerUserNetwork>& networks)
{
    std::vector<DockerUserRule> out;
    for (const auto& n : networks) {
        out.push_back({n.name, "-i", n.bridge});
        out.push_back({n.name, "-o", n.bridge});
    }
    return out;
}

std::vector<DockerUserRule> parse_docker_user(const std::string& listing)
{
    std::vector<DockerUserRule> out;
    std::istringstream in(listing);
    const std::string prefix = docker_user_comment_prefix;
    for (std::string line; std::getline(in, line);) {
        const auto t = tokens(line);
        if (t.size() < 2 || t[0] != "-A" || t[1] != docker_user_chain) continue;
        DockerUserRule r;
        std::string verdict;
        int interfaces = 0;
        bool other = false;
        for (std::size_t i = 2; i < t.size(); ++i) {
            const bool has_value = i + 1 < t.size();
            if ((t[i] == "-i" || t[i] == "-o") && has_value) {
                r.direction = t[i];
                r.bridge = t[++i];
                ++interfaces;
            } else if (t[i] == "--comment" && has_value) {
                const std::string& c = t[++i];
                if (c.rfind(prefix, 0) == 0) r.network = c.substr(prefix.size());
            } else if (t[i] == "-j" && has_value) {
                verdict = t[++i];
            } else if (t[i] == "-m" && has_value && t[i + 1] == "comment") {
                ++i;
            } else {
                other = true;
            }
        }
        if (!r.network.empty() && interfaces == 1 && verdict == "ACCEPT" && !other) out.push_back(std::move(r));
    }
    return out;
}

DockerUserPlan plan_docker_user(const std::string& listing, const std::vector<DockerUserNetwork>& networks)
{
    const auto have = parse_docker_user(listing);
    const auto want = docker_user_rules(networks);
    DockerUserPlan plan;
    for (auto it = have.begin(); it != have.end(); ++it)
        // A second copy of a wanted rule (a crash between insert and the
        // next listing) goes too: one is enough.
        if (std::find(want.begin(), want.end(), *it) == want.end() || std::find(have.begin(), it, *it) != it)
            plan.remove.push_back(*it);
    for (const auto& r : want)
        if (std::find(have.begin(), have.end(), r) == have.end()) plan.insert.push_back(r);
    return plan;
}

}  // namespace kvmnet::plan
