#include "text.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <ctime>

namespace kvmnet::applet {

namespace {

using json = nlohmann::json;

bool all_digits(const std::string& s)
{
    return !s.empty() && s.size() <= 9 &&
           std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); });
}

json port_value(const std::string& text)
{
    if (all_digits(text)) return std::stoll(text);
    return text;
}

std::string range_text(std::uint64_t first, std::uint64_t last)
{
    std::string out = std::to_string(first);
    if (last > first) out.append("-").append(std::to_string(last));
    return out;
}

std::string local_time(std::int64_t t)
{
    const std::time_t tt = static_cast<std::time_t>(t);
    std::tm tm{};
    localtime_r(&tt, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
    return buf;
}

}  // namespace

std::string forward_document(const std::string& proto, const std::string& host_port, const std::string& guest,
                             const std::string& guest_port, const std::string& description)
{
    json f = {{"proto", proto},
              {"host_port", port_value(host_port)},
              {"guest", guest},
              {"guest_port", port_value(guest_port)}};
    if (!description.empty()) f["description"] = description;
    return f.dump();
}

std::string host_document(const std::string& mac, const std::string& ip, const std::string& name)
{
    json h = {{"mac", mac}, {"ip", ip}};
    if (!name.empty()) h["name"] = name;
    return h.dump();
}

std::string state_text(const Dict& props)
{
    std::string out = props.str("State");
    const std::string reason = props.str("StateReason");
    if (!reason.empty()) out.append(": ").append(reason);
    return out;
}

std::string summary_text(const Dict& props)
{
    std::string out = props.str("Mode");
    const std::string bridge = props.str("Bridge");
    if (!bridge.empty()) out.append(" · bridge ").append(bridge);
    for (const char* key : {"IPv4Address", "IPv6Address"}) {
        const std::string a = props.str(key);
        if (!a.empty()) out.append(" · ").append(a);
    }
    const auto leases = props.num("LeaseCount");
    out.append(" · ").append(std::to_string(leases)).append(leases == 1 ? " guest" : " guests");
    return out;
}

std::string lease_text(const Dict& lease, std::int64_t now)
{
    std::string out = lease.str("mac");
    out.append("  ").append(lease.str("address"));
    const std::string host = lease.str("hostname");
    out.append("  ").append(host.empty() ? "-" : host);
    const std::int64_t expires = lease.signed_num("expires");
    if (expires == 0)
        out.append("  never expires");
    else if (expires <= now)
        out.append("  expired ").append(local_time(expires));
    else
        out.append("  expires ").append(local_time(expires));
    out.append("  ").append(lease.str("type"));
    return out;
}

std::string forward_key_text(const Dict& forward)
{
    std::string out = forward.str("proto");
    const std::string address = forward.str("host_address");
    out.append(" ").append(address.empty() ? "*" : address).append(":");
    out.append(range_text(forward.num("host_port"), forward.num("host_port_end")));
    return out;
}

std::string forward_text(const Dict& forward, bool running)
{
    std::string out = forward_key_text(forward);
    const std::string guest = forward.str("guest");
    const std::string address = forward.str("guest_address");
    out.append(" → ").append(guest);
    if (!address.empty() && address != guest) out.append(" (").append(address).append(")");
    out.append(":").append(range_text(forward.num("guest_port"), forward.num("guest_port_end")));
    if (const auto rate = forward.num("rate"); rate > 0)
        out.append("  rate ").append(std::to_string(rate)).append("/s");
    if (running) {
        out.append("  connections ").append(std::to_string(forward.num("connections")));
        out.append("  dropped ").append(std::to_string(forward.num("dropped")));
    } else {
        out.append("  (not running)");
    }
    const std::string description = forward.str("description");
    if (!description.empty()) out.append("  \"").append(description).append("\"");
    const std::string problem = forward.str("problem");
    if (!problem.empty()) out.append("  problem: ").append(problem);
    return out;
}

std::string port_text(const Dict& port)
{
    std::string out = port.str("name");
    out.append("  ").append(port.str("state"));
    const std::string mac = port.str("mac").empty() ? port.str("host_mac") : port.str("mac");
    if (!mac.empty()) out.append("  ").append(mac);
    if (port.flag("tap")) out.append("  tap");
    if (port.flag("isolated")) out.append("  isolated");
    out.append("  rx ").append(std::to_string(port.num("rx_bytes"))).append(" B");
    out.append("  tx ").append(std::to_string(port.num("tx_bytes"))).append(" B");
    const std::string problem = port.str("problem");
    if (!problem.empty()) out.append("  problem: ").append(problem);
    return out;
}

std::vector<std::string> diagnose_lines(const std::string& text)
{
    std::vector<std::string> out;
    const json d = json::parse(text, nullptr, false);
    if (d.is_discarded() || !d.is_object()) {
        out.push_back("diagnose: the daemon's answer is not JSON");
        return out;
    }
    auto str = [](const json& j, const char* key) {
        auto it = j.find(key);
        return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
    };
    out.push_back("Verdict: " + str(d, "verdict"));
    auto it = d.find("checks");
    if (it == d.end() || !it->is_array()) return out;
    for (const char* wanted : {"fail", "warn", "pass"}) {
        for (const auto& check : *it) {
            if (!check.is_object() || str(check, "status") != wanted) continue;
            std::string status = wanted;
            std::transform(status.begin(), status.end(), status.begin(),
                           [](unsigned char c) { return std::toupper(c); });
            std::string line = status + " " + str(check, "check");
            const std::string detail = str(check, "detail");
            if (!detail.empty()) line.append(": ").append(detail);
            out.push_back(line);
        }
    }
    return out;
}

std::vector<HostEntry> static_hosts(const std::string& document)
try {
    std::vector<HostEntry> out;
    const json d = json::parse(document, nullptr, false);
    if (d.is_discarded() || !d.is_object()) return out;
    for (const char* family : {"ipv4", "ipv6"}) {
        const json* hosts = nullptr;
        if (auto f = d.find(family); f != d.end() && f->is_object())
            if (auto dh = f->find("dhcp"); dh != f->end() && dh->is_object())
                if (auto h = dh->find("hosts"); h != dh->end() && h->is_array()) hosts = &*h;
        if (hosts == nullptr) continue;
        for (const auto& h : *hosts) {
            if (!h.is_object()) continue;
            HostEntry e;
            e.key = h.value("mac", std::string());
            if (e.key.empty()) e.key = h.value("duid", std::string());
            e.text = e.key + "  " + h.value("ip", std::string());
            if (auto n = h.find("name"); n != h.end() && n->is_string())
                e.text.append("  ").append(n->get<std::string>());
            out.push_back(std::move(e));
        }
    }
    return out;
} catch (const json::exception&) {
    return {};  // not the daemon's normalized document: show no hosts rather than wrong ones
}

}  // namespace kvmnet::applet
