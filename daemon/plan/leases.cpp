#include "plan/leases.hpp"

#include "model/ipv4.hpp"
#include "model/ipv6.hpp"
#include "model/mac.hpp"
#include "model/time_text.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <sstream>

namespace kvmnet::plan {
namespace {

// dnsmasq writes host names and client ids as printable ASCII; anything else
// (not UTF-8, so not even JSON or D-Bus text) is not a line of its.
bool printable_ascii(const std::string& s)
{
    return std::all_of(s.begin(), s.end(), [](unsigned char c) { return c > 0x20 && c < 0x7f; });
}

bool same_lease(const Lease& a, const Lease& b)
{
    if (a.ipv6 != b.ipv6 || a.ip != b.ip) return false;
    return a.ipv6 ? a.duid == b.duid && a.iaid == b.iaid : a.mac == b.mac;
}

// "00:01:..." as dnsmasq writes a DUID: hex pairs joined by ':'.
bool is_hex_pairs(const std::string& s)
{
    if (s.size() < 2 || s.size() % 3 != 2) return false;
    for (std::size_t i = 0; i < s.size(); ++i) {
        const bool colon = i % 3 == 2;
        if (colon ? s[i] != ':' : !std::isxdigit(static_cast<unsigned char>(s[i]))) return false;
    }
    return true;
}

// The MAC inside a DUID-LLT (type 1) or DUID-LL (type 3) of an Ethernet
// interface (hardware type 1), which is what guests send; empty otherwise.
std::string mac_of_duid(const std::string& duid)
{
    if (duid.rfind("00:01:00:01:", 0) == 0 && duid.size() == 14 * 3 - 1) return duid.substr(8 * 3);
    if (duid.rfind("00:03:00:01:", 0) == 0 && duid.size() == 10 * 3 - 1) return duid.substr(4 * 3);
    return "";
}

template <typename Int>
bool parse_int(const std::string& text, Int& value)
{
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    return ec == std::errc() && end == text.data() + text.size() && !text.empty();
}

std::string lower(std::string s)
{
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return s;
}

}  // namespace

std::vector<Lease> parse_leases(const std::string& text)
{
    std::vector<Lease> leases;
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);) {
        std::istringstream fields(line);
        std::string expiry, mac, ip, hostname, client_id, extra;
        if (!(fields >> expiry >> mac >> ip >> hostname >> client_id) || (fields >> extra)) continue;
        Lease l;
        if (!parse_int(expiry, l.expiry) || l.expiry < 0 || !printable_ascii(hostname)) continue;
        if (hostname != "*") l.hostname = std::move(hostname);
        if (const auto v6 = model::Ipv6::parse(ip)) {
            // The second field is the IAID here.
            std::string iaid = mac;
            if (!iaid.empty() && iaid.front() == 'T') iaid.erase(0, 1);
            std::string duid = lower(client_id);
            if (!parse_int(iaid, l.iaid) || (duid != "*" && !is_hex_pairs(duid))) continue;
            l.ipv6 = true;
            l.ip = v6->str();
            if (duid != "*") {
                l.mac = mac_of_duid(duid);
                l.duid = std::move(duid);
            }
            leases.push_back(std::move(l));
            continue;
        }
        const auto parsed_mac = model::Mac::parse(mac);
        if (!parsed_mac || !model::Ipv4::parse(ip) || !printable_ascii(client_id)) continue;
        l.mac = parsed_mac->str();
        l.ip = std::move(ip);
        if (client_id != "*") l.client_id = std::move(client_id);
        leases.push_back(std::move(l));
    }
    return leases;
}

nlohmann::json to_json(const Lease& l)
{
    // "expiry" (Unix time) stays for the scripts that read it.
    nlohmann::json j = {
        {"family", l.ipv6 ? "ipv6" : "ipv4"},
        {"ip", l.ip},
        {"expiry", l.expiry},
        {"expires_at", l.expiry == 0 ? nlohmann::json() : nlohmann::json(model::rfc3339_utc(l.expiry))}};
    if (!l.mac.empty()) j["mac"] = l.mac;
    if (!l.hostname.empty()) j["hostname"] = l.hostname;
    if (!l.client_id.empty()) j["client_id"] = l.client_id;
    if (l.ipv6) {
        j["iaid"] = l.iaid;
        if (!l.duid.empty()) j["duid"] = l.duid;
    }
    return j;
}

nlohmann::json to_json(const std::vector<Lease>& leases)
{
    nlohmann::json j = nlohmann::json::array();
    for (const Lease& l : leases)
        j.push_back(to_json(l));
    return j;
}

std::string lease_type(const Lease& l, const std::vector<model::DhcpHost>& hosts,
                       const std::vector<model::Dhcp6Host>& hosts6)
{
    const bool reserved =
        l.ipv6 ? std::any_of(hosts6.begin(), hosts6.end(),
                             [&](const model::Dhcp6Host& h) {
                                 return h.ip.str() == l.ip &&
                                        (h.duid.empty() ? !l.mac.empty() && h.mac == l.mac : h.duid == l.duid);
                             })
               : std::any_of(hosts.begin(), hosts.end(),
                             [&](const model::DhcpHost& h) { return h.mac == l.mac && h.ip.str() == l.ip; });
    return reserved ? "static" : "dynamic";
}

nlohmann::json to_json(const std::vector<Lease>& leases, const std::vector<model::DhcpHost>& hosts,
                       const std::vector<model::Dhcp6Host>& hosts6)
{
    nlohmann::json j = nlohmann::json::array();
    for (const Lease& l : leases) {
        nlohmann::json lease = to_json(l);
        lease["type"] = lease_type(l, hosts, hosts6);
        j.push_back(std::move(lease));
    }
    return j;
}

std::vector<LeaseEvent> diff_leases(const std::vector<Lease>& before, const std::vector<Lease>& after, std::int64_t now)
{
    std::vector<LeaseEvent> events;
    for (const Lease& old : before) {
        if (std::any_of(after.begin(), after.end(), [&](const Lease& l) { return same_lease(l, old); })) continue;
        const bool expired = old.expiry != 0 && old.expiry <= now;
        events.push_back({expired ? "expired" : "released", old});
    }
    for (const Lease& l : after) {
        auto old = std::find_if(before.begin(), before.end(), [&](const Lease& o) { return same_lease(o, l); });
        if (old == before.end())
            events.push_back({"added", l});
        else if (old->expiry != l.expiry || old->hostname != l.hostname)
            events.push_back({"renewed", l});
    }
    return events;
}

}  // namespace kvmnet::plan
