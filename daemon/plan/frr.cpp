#include "plan/frr.hpp"

#include "model/error.hpp"

#include <algorithm>
#include <set>
#include <sstream>

namespace kvmnet::plan {

namespace {

std::vector<std::string> words(const std::string& line)
{
    std::vector<std::string> out;
    std::istringstream in(line);
    std::string w;
    while (in >> w)
        out.push_back(w);
    return out;
}

bool contains(const std::vector<std::string>& v, const std::string& s)
{
    return std::find(v.begin(), v.end(), s) != v.end();
}

std::vector<std::string> network_neighbors(const EvpnNetwork& n)
{
    std::vector<std::string> out;
    const std::string local = n.local ? n.local->str() : std::string();
    for (const std::string& a : n.neighbors)
        if (a != local && !contains(out, a)) out.push_back(a);
    std::sort(out.begin(), out.end());
    return out;
}

const nlohmann::json* member(const nlohmann::json& j, const char* key)
{
    if (!j.is_object()) return nullptr;
    auto it = j.find(key);
    return it == j.end() ? nullptr : &*it;
}

std::string string_at(const nlohmann::json& j, const char* key)
{
    const nlohmann::json* v = member(j, key);
    return v && v->is_string() ? v->get<std::string>() : std::string();
}

std::uint64_t number_at(const nlohmann::json& j, const char* key)
{
    const nlohmann::json* v = member(j, key);
    return v && v->is_number_unsigned() ? v->get<std::uint64_t>() : 0;
}

std::optional<std::uint32_t> vni_of(const std::string& key)
{
    if (key.empty() || key.size() > 8 || key.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
    return static_cast<std::uint32_t>(std::stoul(key));
}

}  // namespace

std::optional<FrrConfig> frr_config(const std::vector<EvpnNetwork>& networks)
{
    if (networks.empty()) return std::nullopt;
    std::vector<const EvpnNetwork*> sorted;
    for (const EvpnNetwork& n : networks)
        sorted.push_back(&n);
    std::sort(sorted.begin(), sorted.end(), [](const EvpnNetwork* a, const EvpnNetwork* b) { return a->vni < b->vni; });
    FrrConfig c;
    c.asn = sorted.front()->asn;
    std::set<std::string> neighbors;
    for (const EvpnNetwork* n : sorted) {
        if (n->asn != c.asn)
            throw Error(ErrorKind::Conflict,
                        "overlay.evpn.asn: network '" + n->network + "' asks for AS " + std::to_string(n->asn) +
                            " but network '" + sorted.front()->network + "' for AS " + std::to_string(c.asn) +
                            "; FRR runs one BGP instance, so every EVPN network of a host needs the same ASN");
        if (c.update_source.empty() && n->local) c.update_source = n->local->str();
        for (const std::string& a : network_neighbors(*n))
            neighbors.insert(a);
        c.networks.push_back(n->network + " (VNI " + std::to_string(n->vni) + ")");
    }
    // A neighbour that is this host (documents are the same on every host,
    // so the list may name all of them) is no session.
    neighbors.erase(c.update_source);
    c.neighbors.assign(neighbors.begin(), neighbors.end());
    return c;
}

std::string render_frr_fragment(const FrrConfig& c, bool dad)
{
    const std::string g = frr_peer_group;
    std::ostringstream out;
    out << "! kvmnet: BGP EVPN of";
    for (std::size_t i = 0; i < c.networks.size(); ++i)
        out << (i ? ", " : " ") << c.networks[i];
    out << ".\n! Applied by kvmnetd through vtysh and removed when the networks stop; do not edit.\n";
    out << "router bgp " << c.asn << "\n";
    out << " neighbor " << g << " peer-group\n";
    out << " neighbor " << g << " remote-as " << c.asn << "\n";
    out << " neighbor " << g << " description kvmnet EVPN\n";
    if (!c.update_source.empty()) out << " neighbor " << g << " update-source " << c.update_source << "\n";
    for (const std::string& a : c.neighbors)
        out << " neighbor " << a << " peer-group " << g << "\n";
    // Only EVPN: the administrator's IPv4 routes are not ours to exchange.
    out << " !\n address-family ipv4 unicast\n  no neighbor " << g << " activate\n exit-address-family\n";
    out << " !\n address-family l2vpn evpn\n  neighbor " << g << " activate\n  advertise-all-vni\n";
    if (dad) out << "  " << frr_dad_line << "\n";
    out << " exit-address-family\nexit\n";
    return out.str();
}

FrrRunning parse_frr_running(const std::string& text)
{
    FrrRunning r;
    const std::string g = frr_peer_group;
    std::istringstream in(text);
    std::string line;
    bool in_bgp = false;
    std::string family;
    std::set<std::string> names;
    std::vector<std::string> evpn_active;
    while (std::getline(in, line)) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        const std::vector<std::string> w = words(line);
        if (w.empty() || w[0] == "!") continue;
        const bool top = line[0] != ' ';
        if (top) {
            in_bgp = false;
            family.clear();
            // The default VRF's instance only: `router bgp ASN vrf NAME` is another.
            if (w.size() == 3 && w[0] == "router" && w[1] == "bgp") {
                in_bgp = true;
                try {
                    r.asn = static_cast<std::uint32_t>(std::stoul(w[2]));
                } catch (const std::exception&) {
                    in_bgp = false;
                }
            }
            continue;
        }
        if (!in_bgp) continue;
        if (w[0] == "address-family") {
            family = w.size() > 2 ? w[1] + " " + w[2] : w.size() > 1 ? w[1] : "";
            continue;
        }
        if (w[0] == "exit-address-family") {
            family.clear();
            continue;
        }
        if (family.empty()) {
            if (w[0] != "neighbor" || w.size() < 3) continue;
            if (w[1] == g) {
                if (w.size() == 3 && w[2] == "peer-group") r.group = true;
                continue;
            }
            if (w.size() == 4 && w[2] == "peer-group" && w[3] == g) {
                if (!contains(r.group_neighbors, w[1])) r.group_neighbors.push_back(w[1]);
                continue;
            }
            names.insert(w[1]);
        } else if (family == "l2vpn evpn") {
            if (w[0] == "advertise-all-vni") r.advertise_all_vni = true;
            // The threshold; `dup-addr-detection freeze ...` is another setting.
            const bool threshold = (w.size() > 1 && w[0] == "dup-addr-detection" && w[1] == "max-moves") ||
                                   (w.size() == 2 && w[0] == "no" && w[1] == "dup-addr-detection");
            if (threshold) {
                r.dad.clear();
                for (const std::string& x : w)
                    r.dad += (r.dad.empty() ? "" : " ") + x;
            }
            if (w[0] == "neighbor" && w.size() == 3 && w[2] == "activate") evpn_active.push_back(w[1]);
        }
    }
    for (const std::string& n : names)
        if (!contains(r.group_neighbors, n)) r.other_neighbors.push_back(n);
    for (const std::string& n : evpn_active)
        if (n != g && !contains(r.group_neighbors, n) && !contains(r.other_evpn_active, n))
            r.other_evpn_active.push_back(n);
    return r;
}

void check_frr_conflicts(const FrrRunning& running, const FrrConfig& wanted)
{
    if (running.asn && *running.asn != wanted.asn)
        throw Error(ErrorKind::Conflict, "overlay.evpn.asn: FRR already runs BGP as AS " +
                                             std::to_string(*running.asn) + " (router bgp " +
                                             std::to_string(*running.asn) + "), kvmnet asks for AS " +
                                             std::to_string(wanted.asn) + "; use the same ASN in both");
    for (const std::string& a : wanted.neighbors)
        if (contains(running.other_neighbors, a))
            throw Error(ErrorKind::Conflict, "overlay.evpn.neighbors: FRR already has neighbor " + a +
                                                 " outside kvmnet's peer group '" + frr_peer_group +
                                                 "'; remove it from FRR's configuration or from the network's");
}

std::string render_frr_removal(const FrrRunning& running, const std::optional<FrrConfig>& wanted)
{
    if (!running.asn) return "";
    std::vector<std::string> commands;
    for (const std::string& a : running.group_neighbors)
        if (!wanted || !contains(wanted->neighbors, a) || wanted->asn != *running.asn)
            commands.push_back(" no neighbor " + a + "\n");
    if (!wanted && running.group) {
        commands.push_back(std::string(" no neighbor ") + frr_peer_group + " peer-group\n");
        if (running.other_evpn_active.empty()) {
            std::string evpn;
            // `no` with the values puts FRR's default back (detection stays
            // on). Before `no advertise-all-vni`: FRR takes it only while
            // EVPN is on.
            if (running.dad == frr_dad_line) evpn += std::string("  no ") + frr_dad_line + "\n";
            if (running.advertise_all_vni) evpn += "  no advertise-all-vni\n";
            if (!evpn.empty()) commands.push_back(" address-family l2vpn evpn\n" + evpn + " exit-address-family\n");
        }
    }
    if (commands.empty()) return "";
    std::string out = "router bgp " + std::to_string(*running.asn) + "\n";
    for (const std::string& c : commands)
        out += c;
    out += "exit\n";
    return out;
}

std::vector<BgpPeer> parse_bgp_evpn_summary(const std::string& json_text)
{
    std::vector<BgpPeer> out;
    const nlohmann::json j = nlohmann::json::parse(json_text, nullptr, false);
    const nlohmann::json* peers = member(j, "peers");
    if (!peers || !peers->is_object()) return out;
    for (auto it = peers->begin(); it != peers->end(); ++it) {
        BgpPeer p;
        p.neighbor = it.key();
        p.state = string_at(*it, "state");
        p.prefixes_received = number_at(*it, "pfxRcd");
        p.uptime = string_at(*it, "peerUptime");
        out.push_back(std::move(p));
    }
    return out;
}

std::map<std::uint32_t, EvpnVniState> parse_evpn_vnis(const std::string& json_text)
{
    std::map<std::uint32_t, EvpnVniState> out;
    const nlohmann::json j = nlohmann::json::parse(json_text, nullptr, false);
    if (!j.is_object()) return out;
    for (auto it = j.begin(); it != j.end(); ++it) {
        const std::optional<std::uint32_t> vni = vni_of(it.key());
        if (!vni || !it->is_object()) continue;
        EvpnVniState s;
        s.vni = *vni;
        s.vxlan = string_at(*it, "vxlanIf");
        s.macs = number_at(*it, "numMacs");
        if (const nlohmann::json* vteps = member(*it, "remoteVteps"); vteps && vteps->is_array())
            for (const nlohmann::json& v : *vteps)
                if (v.is_string()) s.remote_vteps.push_back(v.get<std::string>());
        out[*vni] = std::move(s);
    }
    return out;
}

void add_evpn_remotes(std::map<std::uint32_t, EvpnVniState>& vnis, const std::string& macs_json,
                      const std::string& arp_json)
{
    const nlohmann::json macs = nlohmann::json::parse(macs_json, nullptr, false);
    if (macs.is_object())
        for (auto it = macs.begin(); it != macs.end(); ++it) {
            const std::optional<std::uint32_t> vni = vni_of(it.key());
            const nlohmann::json* entries = vni ? member(*it, "macs") : nullptr;
            if (!entries || !entries->is_object()) continue;
            EvpnVniState& s = vnis[*vni];
            s.vni = *vni;
            for (auto m = entries->begin(); m != entries->end(); ++m)
                if (string_at(*m, "type") == "remote")
                    s.remotes.push_back(EvpnRemote{m.key(), "", string_at(*m, "remoteVtep")});
        }
    const nlohmann::json arp = nlohmann::json::parse(arp_json, nullptr, false);
    if (!arp.is_object()) return;
    for (auto it = arp.begin(); it != arp.end(); ++it) {
        const std::optional<std::uint32_t> vni = vni_of(it.key());
        if (!vni || !it->is_object()) continue;
        EvpnVniState& s = vnis[*vni];
        s.vni = *vni;
        for (auto a = it->begin(); a != it->end(); ++a) {
            // Keys are addresses; numArpNd and the like are counts.
            if (!a->is_object() || string_at(*a, "type") != "remote") continue;
            const std::string mac = string_at(*a, "mac");
            const std::string vtep = string_at(*a, "remoteVtep");
            // IPv4 first: link-local IPv6 addresses say nothing a person looks for.
            const bool v4 = a.key().find(':') == std::string::npos;
            auto known =
                std::find_if(s.remotes.begin(), s.remotes.end(), [&](const EvpnRemote& r) { return r.mac == mac; });
            if (known == s.remotes.end())
                s.remotes.push_back(EvpnRemote{mac, a.key(), vtep});
            else if (known->ip.empty() || (v4 && known->ip.find(':') != std::string::npos))
                known->ip = a.key();
        }
    }
    for (auto& [vni, s] : vnis)
        std::sort(s.remotes.begin(), s.remotes.end(),
                  [](const EvpnRemote& a, const EvpnRemote& b) { return a.mac < b.mac; });
}

std::string evpn_state(const FrrStatus& status, const EvpnNetwork& network)
{
    if (!status.reachable) return "frr-unreachable";
    const std::vector<std::string> wanted = network_neighbors(network);
    std::size_t up = 0;
    for (const std::string& a : wanted)
        for (const BgpPeer& p : status.peers)
            if (p.neighbor == a && p.established()) ++up;
    if (up == wanted.size()) return "established";
    return up == 0 ? "down" : "partial";
}

nlohmann::json evpn_status_json(const FrrStatus& status, const EvpnNetwork& network)
{
    nlohmann::json j = nlohmann::json::object();
    j["state"] = evpn_state(status, network);
    j["asn"] = network.asn;
    j["vni"] = network.vni;
    if (!status.reachable) j["error"] = status.error;
    nlohmann::json sessions = nlohmann::json::array();
    for (const std::string& a : network_neighbors(network)) {
        nlohmann::json s = {{"neighbor", a}, {"established", false}};
        auto p = std::find_if(status.peers.begin(), status.peers.end(),
                              [&](const BgpPeer& peer) { return peer.neighbor == a; });
        if (!status.reachable)
            s["state"] = "unknown";
        else if (p == status.peers.end())
            s["state"] = "not configured in FRR";
        else {
            s["state"] = p->state;
            s["established"] = p->established();
            s["prefixes_received"] = p->prefixes_received;
            if (!p->uptime.empty()) s["uptime"] = p->uptime;
        }
        sessions.push_back(std::move(s));
    }
    j["sessions"] = std::move(sessions);
    nlohmann::json vteps = nlohmann::json::array();
    nlohmann::json remotes = nlohmann::json::array();
    auto v = status.vnis.find(network.vni);
    if (v != status.vnis.end()) {
        j["vni_known_to_frr"] = true;
        j["macs"] = v->second.macs;
        for (const std::string& t : v->second.remote_vteps)
            vteps.push_back(t);
        for (const EvpnRemote& r : v->second.remotes) {
            nlohmann::json e = {{"mac", r.mac}, {"vtep", r.vtep}};
            if (!r.ip.empty()) e["ip"] = r.ip;
            remotes.push_back(std::move(e));
        }
    } else {
        j["vni_known_to_frr"] = false;
    }
    j["remote_vteps"] = std::move(vteps);
    j["remote_guests"] = std::move(remotes);
    return j;
}

void add_evpn_lease_hosts(nlohmann::json& leases, const FrrStatus& status, std::uint32_t vni)
{
    auto v = status.vnis.find(vni);
    if (v == status.vnis.end()) return;
    std::set<std::string> leased;
    for (nlohmann::json& l : leases) {
        const std::string mac = l.value("mac", "");
        if (mac.empty()) continue;
        leased.insert(mac);
        if (const std::string vtep = evpn_vtep_of(status, vni, mac); !vtep.empty()) l["vtep"] = vtep;
    }
    for (const EvpnRemote& r : v->second.remotes) {
        // IPv6 addresses of a guest are mostly link-local or SLAAC: not leases.
        if (r.ip.empty() || r.ip.find(':') != std::string::npos || leased.count(r.mac)) continue;
        leases.push_back({{"family", "ipv4"},
                          {"ip", r.ip},
                          {"expiry", 0},
                          {"expires_at", nullptr},
                          {"mac", r.mac},
                          {"type", "remote"},
                          {"vtep", r.vtep}});
    }
}

std::string evpn_vtep_of(const FrrStatus& status, std::uint32_t vni, const std::string& mac)
{
    auto v = status.vnis.find(vni);
    if (v == status.vnis.end()) return "";
    for (const EvpnRemote& r : v->second.remotes)
        if (r.mac == mac) return r.vtep;
    return "";
}

}  // namespace kvmnet::plan
