#include "plan/leases.hpp"

#include "model/ipv4.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <sstream>

namespace kvmnet::plan {
namespace {

bool is_mac(const std::string& s)
{
    if (s.size() != 17) return false;
    for (std::size_t i = 0; i < s.size(); ++i) {
        const bool colon = i % 3 == 2;
        if (colon ? s[i] != ':' : !std::isxdigit(static_cast<unsigned char>(s[i]))) return false;
    }
    return true;
}

// dnsmasq writes host names and client ids as printable ASCII; anything else
// (not UTF-8, so not even JSON or D-Bus text) is not a line of its.
bool printable_ascii(const std::string& s)
{
    return std::all_of(s.begin(), s.end(), [](unsigned char c) { return c > 0x20 && c < 0x7f; });
}

bool same_lease(const Lease& a, const Lease& b) { return a.mac == b.mac && a.ip == b.ip; }

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
        const auto [end, ec] = std::from_chars(expiry.data(), expiry.data() + expiry.size(), l.expiry);
        if (ec != std::errc() || end != expiry.data() + expiry.size() || l.expiry < 0) continue;
        std::transform(mac.begin(), mac.end(), mac.begin(), [](unsigned char c) { return std::tolower(c); });
        if (!is_mac(mac) || !model::Ipv4::parse(ip) || !printable_ascii(hostname) || !printable_ascii(client_id))
            continue;
        l.mac = std::move(mac);
        l.ip = std::move(ip);
        if (hostname != "*") l.hostname = std::move(hostname);
        if (client_id != "*") l.client_id = std::move(client_id);
        leases.push_back(std::move(l));
    }
    return leases;
}

nlohmann::json to_json(const Lease& l)
{
    nlohmann::json j = {{"mac", l.mac}, {"ip", l.ip}, {"expiry", l.expiry}};
    if (!l.hostname.empty()) j["hostname"] = l.hostname;
    if (!l.client_id.empty()) j["client_id"] = l.client_id;
    return j;
}

nlohmann::json to_json(const std::vector<Lease>& leases)
{
    nlohmann::json j = nlohmann::json::array();
    for (const Lease& l : leases)
        j.push_back(to_json(l));
    return j;
}

std::string lease_type(const Lease& l, const std::vector<model::DhcpHost>& hosts)
{
    const bool reserved = std::any_of(hosts.begin(), hosts.end(),
                                      [&](const model::DhcpHost& h) { return h.mac == l.mac && h.ip.str() == l.ip; });
    return reserved ? "static" : "dynamic";
}

nlohmann::json to_json(const std::vector<Lease>& leases, const std::vector<model::DhcpHost>& hosts)
{
    nlohmann::json j = nlohmann::json::array();
    for (const Lease& l : leases) {
        nlohmann::json lease = to_json(l);
        lease["type"] = lease_type(l, hosts);
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
