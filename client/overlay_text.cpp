#include "overlay_text.hpp"

#include <sstream>

namespace kvmnet::client {
namespace {

using json = nlohmann::json;

std::string str(const json& j, const char* key, const std::string& fallback = "-")
{
    if (!j.is_object() || !j.contains(key)) return fallback;
    const json& v = j[key];
    if (v.is_string()) return v.get<std::string>();
    if (v.is_null()) return fallback;
    return v.dump();
}

std::string joined(const json& list, const std::string& separator = " ")
{
    std::string out;
    if (!list.is_array()) return out;
    for (const json& e : list)
        out.append(out.empty() ? "" : separator).append(e.is_string() ? e.get<std::string>() : e.dump());
    return out;
}

}  // namespace

std::string overlay_config_text(const json& o)
{
    std::string local = o.contains("local") ? str(o, "local") : "the address of " + str(o, "local_interface");
    std::string text = "VNI " + str(o, "vni") + " over " + local + ":" + str(o, "port", "4789");
    if (o.contains("evpn")) {
        const json& e = o["evpn"];
        text.append(", EVPN AS ").append(str(e, "asn"));
        if (e.contains("neighbors")) text.append(" with ").append(joined(e["neighbors"]));
        if (e.contains("route_reflector")) text.append(", route reflector ").append(str(e, "route_reflector"));
    } else {
        text.append(", peers ").append(o.contains("peers") ? joined(o["peers"]) : "none");
    }
    if (o.contains("dhcp_slice"))
        text.append(", DHCP slice ")
            .append(std::to_string(o["dhcp_slice"].value("index", 0u) + 1))
            .append("/")
            .append(str(o["dhcp_slice"], "count"));
    return text;
}

std::vector<std::string> overlay_summary_lines(const json& s)
{
    std::vector<std::string> lines;
    std::size_t reachable = 0, total = 0, macs = 0;
    for (const json& p : s.value("peers", json::array())) {
        ++total;
        if (p.value("reachability", "") == "reachable" || p.value("reachability", "") == "stale") ++reachable;
        macs += p.value("remote_macs", json::array()).size();
    }
    lines.push_back(str(s, "device") + (s.value("device_present", false) ? "" : " (absent)") + ": " +
                    std::to_string(total) + (total == 1 ? " peer, " : " peers, ") + std::to_string(reachable) +
                    " reachable, " + std::to_string(macs) + " remote MAC" + (macs == 1 ? "" : "s") +
                    " (kvmnetctl overlay status)");
    if (s.contains("evpn")) {
        const json& e = s["evpn"];
        std::size_t up = 0, n = 0;
        for (const json& session : e.value("sessions", json::array())) {
            ++n;
            if (session.value("established", false)) ++up;
        }
        lines.push_back("EVPN " + str(e, "state") + ": " + std::to_string(up) + " of " + std::to_string(n) +
                        " BGP sessions established");
    }
    return lines;
}

std::string overlay_status_text(const json& s)
{
    std::ostringstream out;
    out << "network " << str(s, "network") << ": " << str(s, "state") << ", VNI " << str(s, "vni") << " on "
        << str(s, "device") << (s.value("device_present", false) ? "" : " (absent)") << ", local " << str(s, "local")
        << ":" << str(s, "port") << ", " << (str(s, "control") == "evpn" ? "EVPN" : "static peers") << "\n";
    if (s.contains("port_flags") && s["port_flags"].is_object())
        out << "bridge port: neigh_suppress " << (s["port_flags"].value("neigh_suppress", false) ? "on" : "off")
            << ", learning " << (s["port_flags"].value("learning", true) ? "on" : "off") << "\n";
    const json peers = s.value("peers", json::array());
    out << "peers (" << peers.size() << "):\n";
    for (const json& p : peers) {
        out << "  " << str(p, "vtep") << "  " << str(p, "reachability");
        if (p.contains("neighbour_state") && p["neighbour_state"].is_string())
            out << " (ARP " << p["neighbour_state"].get<std::string>() << ")";
        out << ", flood entry " << (p.value("flood", false) ? "yes" : "no");
        if (!p.value("configured", true)) out << ", learned from FRR";
        out << "\n";
        const json macs = p.value("remote_macs", json::array());
        out << "    remote MACs (" << macs.size() << ")" << (macs.empty() ? "" : ": " + joined(macs)) << "\n";
    }
    if (s.contains("evpn")) {
        const json& e = s["evpn"];
        out << "EVPN: " << str(e, "state") << ", AS " << str(e, "asn");
        if (e.contains("error")) out << " (" << str(e, "error") << ")";
        if (e.contains("problem")) out << "; not applied: " << str(e, "problem");
        out << "\n";
        for (const json& session : e.value("sessions", json::array())) {
            out << "  BGP " << str(session, "neighbor") << "  " << str(session, "state");
            if (session.contains("uptime")) out << ", up " << str(session, "uptime");
            if (session.contains("prefixes_received")) out << ", " << str(session, "prefixes_received") << " prefixes";
            out << "\n";
        }
    }
    return out.str();
}

}  // namespace kvmnet::client
