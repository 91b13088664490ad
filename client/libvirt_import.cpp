// libvirt network XML → kvmnet network document. Every element and
// attribute is either mapped, or reported with its line: a libvirt user
// must be able to see exactly what kvmnet will not do for them.
#include "libvirt_import.hpp"

#include "model/error.hpp"
#include "model/ipv4.hpp"
#include "model/network.hpp"

#include <pugixml.hpp>

#include <algorithm>
#include <bit>
#include <cctype>
#include <initializer_list>
#include <optional>
#include <set>
#include <sstream>
#include <utility>

namespace kvmnet::libvirt {
namespace {

using json = nlohmann::json;

bool is_element(const pugi::xml_node& n) { return n.type() == pugi::node_element; }

std::string trimmed(const char* text)
{
    std::string s = text;
    const auto first = s.find_first_not_of(" \t\r\n");
    if (first == std::string::npos) return "";
    return s.substr(first, s.find_last_not_of(" \t\r\n") - first + 1);
}

// libvirt writes a DUID as hex bytes that may drop a leading zero
// ("0:3:0:1:52:54:0:66:0:1"); kvmnet's (and dnsmasq's lease file's) have
// two digits each. Anything else is left for the document's validation.
std::string libvirt_duid(const std::string& id)
{
    std::string duid, part;
    std::istringstream in(id);
    while (std::getline(in, part, ':')) {
        if (part.empty() || part.size() > 2 ||
            !std::all_of(part.begin(), part.end(), [](unsigned char c) { return std::isxdigit(c) != 0; }))
            return id;
        if (!duid.empty()) duid += ':';
        duid += (part.size() == 1 ? "0" : "") + part;
    }
    std::transform(duid.begin(), duid.end(), duid.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return id.empty() || id.back() == ':' ? id : duid;
}

std::optional<std::uint64_t> decimal(const std::string& text)
{
    if (text.empty() || text.size() > 12) return std::nullopt;
    std::uint64_t v = 0;
    for (char c : text) {
        if (c < '0' || c > '9') return std::nullopt;
        v = v * 10 + static_cast<std::uint64_t>(c - '0');
    }
    return v;
}

// Thrown for a file that cannot become a kvmnet network at all.
struct Refusal {
    unsigned line;
    std::string message;
};

class Converter {
public:
    Converter(std::string_view xml, Conversion& out) : out_(out)
    {
        for (std::size_t i = 0; i < xml.size(); ++i)
            if (xml[i] == '\n') newlines_.push_back(i);
    }

    void run(std::string_view xml, bool autostart);

private:
    Conversion& out_;
    std::vector<std::size_t> newlines_;
    json doc_ = json::object();
    std::string mode_;
    // Which document field came from which line, to place the model's errors.
    std::vector<std::pair<std::string, unsigned>> origins_;
    bool have_ipv4_ = false, have_ipv6_ = false;
    std::vector<pugi::xml_node> host_nodes_;   // the <host> of each ipv4.dhcp.hosts entry
    std::vector<pugi::xml_node> host6_nodes_;  // the <host> of each ipv6.dhcp.hosts entry
    bool nat66_ = false;
    unsigned nat66_line_ = 0;

    unsigned line_of_offset(std::ptrdiff_t offset) const
    {
        if (offset < 0) return 0;
        return static_cast<unsigned>(
                   std::upper_bound(newlines_.begin(), newlines_.end(), static_cast<std::size_t>(offset)) -
                   newlines_.begin()) +
               1;
    }
    unsigned line(const pugi::xml_node& n) const { return line_of_offset(n.offset_debug()); }

    // "<dns><srv>": the element's path below <network>. Built with append,
    // not "<" + std::string&&: g++ 12 at -O3 warns a false -Wrestrict on that
    // (GCC bug 105329), which fails the release build.
    static std::string what(const pugi::xml_node& n, const char* attribute = nullptr)
    {
        const auto tag = [&](const pugi::xml_node& element) {
            std::string text("<");
            text.append(element.name());
            if (element == n && attribute) text.append(" ").append(attribute);
            return text.append(">");
        };
        std::string path;
        for (pugi::xml_node p = n; p && is_element(p) && p.parent() && is_element(p.parent()); p = p.parent())
            path.insert(0, tag(p));
        if (path.empty()) path = tag(n);
        return path;
    }

    void note(const pugi::xml_node& n, const char* attribute, std::string message, bool lossy = true)
    {
        out_.notes.push_back({line(n), what(n, attribute), std::move(message), lossy});
    }
    void ignored(const pugi::xml_node& n, const std::string& why)
    {
        note(n, nullptr, why.empty() ? "not supported by kvmnet (ignored)" : why + " (ignored)");
    }
    void ignored(const pugi::xml_node& n, const char* attribute, const std::string& why)
    {
        note(n, attribute, why.empty() ? "not supported by kvmnet (ignored)" : why + " (ignored)");
    }
    [[noreturn]] void refuse(const pugi::xml_node& n, const std::string& message) const
    {
        throw Refusal{line(n), what(n) + ": " + message};
    }
    void origin(const std::string& field, const pugi::xml_node& n) { origins_.emplace_back(field, line(n)); }

    // Reports every attribute not in `known`.
    void attributes(const pugi::xml_node& n, std::initializer_list<std::string_view> known)
    {
        for (const pugi::xml_attribute& a : n.attributes()) {
            const std::string_view name = a.name();
            // Namespace declarations (xmlns:dnsmasq=...) are XML, not settings.
            if (!name.starts_with("xmlns") && std::find(known.begin(), known.end(), name) == known.end())
                ignored(n, a.name(), "unknown to kvmnet's import");
        }
    }
    // Reports every child element (for elements kvmnet maps without children).
    void no_children(const pugi::xml_node& n)
    {
        for (const pugi::xml_node& c : n.children())
            if (is_element(c)) ignored(c, "unknown to kvmnet's import");
    }
    std::string required(const pugi::xml_node& n, const char* attribute)
    {
        const pugi::xml_attribute a = n.attribute(attribute);
        if (!a || trimmed(a.value()).empty()) refuse(n, std::string("attribute '") + attribute + "' is required");
        return trimmed(a.value());
    }
    std::uint64_t number(const pugi::xml_node& n, const char* attribute)
    {
        const std::string text = required(n, attribute);
        const auto v = decimal(text);
        if (!v) refuse(n, std::string(attribute) + "='" + text + "' is not a number");
        return *v;
    }

    std::string forward(const pugi::xml_node& f);
    void bridge(const pugi::xml_node& b, bool& stp, std::uint64_t& delay);
    void ip(const pugi::xml_node& n);
    void dhcp(const pugi::xml_node& d, bool v6, json& family, const std::string& field);
    void dns(const pugi::xml_node& d);
    void domain(const pugi::xml_node& d);
    void host_names();
    void host_names(json& hosts, const std::vector<pugi::xml_node>& nodes);
    void validate();
};

// libvirt takes any name for a static host ("foo.example.com"); kvmnet's
// are single labels that resolve as NAME and NAME.DOMAIN. A name ending in
// the network's own domain loses nothing by dropping it.
void Converter::host_names()
{
    for (const char* family : {"ipv4", "ipv6"}) {
        if (!doc_.contains(family) || !doc_[family].contains("dhcp") || !doc_[family]["dhcp"].contains("hosts"))
            continue;
        host_names(doc_[family]["dhcp"]["hosts"], std::string(family) == "ipv4" ? host_nodes_ : host6_nodes_);
    }
}

void Converter::host_names(json& hosts, const std::vector<pugi::xml_node>& nodes)
{
    const std::string domain =
        doc_.contains("dns") && doc_["dns"].contains("domain") ? doc_["dns"]["domain"].get<std::string>() : "";
    for (std::size_t i = 0; i < hosts.size() && i < nodes.size(); ++i) {
        if (!hosts[i].contains("name")) continue;
        const std::string name = hosts[i]["name"];
        const auto dot = name.find('.');
        if (dot == std::string::npos || dot == 0) continue;
        const std::string label = name.substr(0, dot);
        if (!domain.empty() && name.substr(dot + 1) == domain)
            note(nodes[i], "name",
                 "'" + name + "' becomes '" + label + "', which resolves as " + name + " in the domain " + domain,
                 false);
        else
            ignored(nodes[i], "name",
                    "kvmnet's host names are single labels: '" + name + "' becomes '" + label +
                        "' (the rest is not resolvable)");
        hosts[i]["name"] = label;
    }
}

std::string Converter::forward(const pugi::xml_node& f)
{
    attributes(f, {"mode", "dev"});
    const std::string libvirt_mode = f.attribute("mode") ? trimmed(f.attribute("mode").value()) : "nat";
    const std::string dev = trimmed(f.attribute("dev").value());
    std::string mode;
    if (libvirt_mode == "nat") {
        mode = "nat";
    } else if (libvirt_mode == "route") {
        mode = "routed";
    } else if (libvirt_mode == "open") {
        mode = "routed";
        note(f, "mode",
             "kvmnet has no 'open' mode (no firewall rules at all); imported as routed, where kvmnet's "
             "forwarding rules apply");
    } else if (libvirt_mode == "bridge") {
        mode = "bridge";
    } else {
        refuse(f, "forward mode '" + libvirt_mode +
                      "' (macvtap or SR-IOV device assignment) has no kvmnet equivalent; kvmnet networks are bridges");
    }
    std::string uplink = dev;
    bool uplink_from_interface = false;
    for (const pugi::xml_node& c : f.children()) {
        if (!is_element(c)) continue;
        const std::string name = c.name();
        if (name == "nat" && mode == "nat") {
            attributes(c, {"ipv6"});
            if (std::string(c.attribute("ipv6").value()) == "yes") {
                nat66_ = true;
                nat66_line_ = line(c);
            }
            for (const pugi::xml_node& r : c.children()) {
                if (!is_element(r)) continue;
                if (std::string(r.name()) == "address")
                    ignored(r, "kvmnet masquerades behind the outgoing interface's own address, not a pool");
                else if (std::string(r.name()) == "port")
                    ignored(r, "kvmnet leaves the masquerade source ports to the kernel");
                else
                    ignored(r, "unknown to kvmnet's import");
            }
        } else if (name == "interface") {
            attributes(c, {"dev"});
            const std::string idev = trimmed(c.attribute("dev").value());
            if (mode == "bridge" && (uplink.empty() || (uplink == idev && !uplink_from_interface))) {
                uplink = idev;
                uplink_from_interface = true;
                origin("uplink", c);
            } else if (mode == "bridge") {
                ignored(c, "kvmnet's bridge mode takes over one host interface (" + uplink + ")");
            } else if (idev != dev) {
                ignored(c, "an interface pool is not supported by kvmnet");
            }
        } else {
            ignored(c, name == "nat" ? "only meaningful for forward mode nat" : "not supported by kvmnet");
        }
    }
    if (mode == "bridge") {
        if (uplink.empty())
            refuse(f, "kvmnet's bridge mode takes over a host interface: name it with <forward mode='bridge' "
                      "dev='eth0'> or <interface dev='eth0'/> (an existing host bridge alone is not enough)");
        doc_["uplink"] = uplink;
    } else if (!dev.empty()) {
        // libvirt restricts NAT and routing to this interface; so does kvmnet's uplink.
        doc_["uplink"] = dev;
    }
    if (!dev.empty() && !uplink_from_interface) origin("uplink", f);
    return mode;
}

void Converter::bridge(const pugi::xml_node& b, bool& stp, std::uint64_t& delay)
{
    attributes(b, {"name", "stp", "delay", "macTableManager", "zone"});
    no_children(b);
    if (const std::string name = trimmed(b.attribute("name").value()); !name.empty()) {
        doc_["bridge"] = name;
        origin("bridge", b);
        if (mode_ == "bridge")
            note(b, "name",
                 "libvirt attaches guests to the existing host bridge " + name + "; kvmnet creates " + name +
                     " itself and moves " + doc_["uplink"].get<std::string>() +
                     " and its addresses onto it at start (remove the host's own bridge configuration first)",
                 false);
    }
    if (const pugi::xml_attribute a = b.attribute("stp")) {
        const std::string v = trimmed(a.value());
        if (v != "on" && v != "off") refuse(b, "stp='" + v + "' is neither 'on' nor 'off'");
        stp = v == "on";
    }
    if (b.attribute("delay")) delay = number(b, "delay");
    origin("stp", b);
    origin("forward_delay", b);
    if (const std::string m = b.attribute("macTableManager").value(); m == "libvirt")
        ignored(b, "macTableManager", "kvmnet leaves MAC learning and flooding to the kernel");
    if (b.attribute("zone")) ignored(b, "zone", "kvmnet does not put its bridges into firewalld zones");
}

void Converter::dhcp(const pugi::xml_node& d, bool v6, json& family, const std::string& field)
{
    attributes(d, {});
    json ranges = json::array(), hosts = json::array(), lease_time;
    for (const pugi::xml_node& c : d.children()) {
        if (!is_element(c)) continue;
        const std::string name = c.name();
        if (name == "range") {
            attributes(c, {"start", "end"});
            origin(field + ".dhcp.ranges[" + std::to_string(ranges.size()) + "]", c);
            ranges.push_back(required(c, "start") + "-" + required(c, "end"));
            for (const pugi::xml_node& l : c.children()) {
                if (!is_element(l)) continue;
                if (std::string(l.name()) != "lease") {
                    ignored(l, "unknown to kvmnet's import");
                    continue;
                }
                attributes(l, {"expiry", "unit"});
                const std::uint64_t expiry = number(l, "expiry");
                const std::string unit = l.attribute("unit") ? trimmed(l.attribute("unit").value()) : "minutes";
                const std::uint64_t seconds = unit == "seconds" ? expiry
                                              : unit == "hours" ? expiry * 3600
                                                                : expiry * 60;
                // libvirt's expiry 0 is an infinite lease.
                const json value = seconds == 0 ? json("infinite") : json(seconds);
                if (lease_time.is_null()) {
                    lease_time = value;
                    origin(field + ".dhcp.lease_time", l);
                } else if (lease_time != value) {
                    ignored(l, "kvmnet has one lease time per address family (the first range's)");
                }
            }
        } else if (name == "host" && !v6) {
            attributes(c, {"mac", "name", "ip"});
            for (const pugi::xml_node& l : c.children())
                if (is_element(l)) ignored(l, "kvmnet has one lease time per address family, not per host");
            if (!c.attribute("mac") || !c.attribute("ip")) {
                ignored(c, "kvmnet's static hosts need both mac and ip");
                continue;
            }
            std::string mac = trimmed(c.attribute("mac").value());
            std::transform(mac.begin(), mac.end(), mac.begin(),
                           [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
            json host = {{"mac", mac}, {"ip", trimmed(c.attribute("ip").value())}};
            if (const std::string n = trimmed(c.attribute("name").value()); !n.empty()) host["name"] = n;
            origin(field + ".dhcp.hosts[" + std::to_string(hosts.size()) + "]", c);
            hosts.push_back(host);
            host_nodes_.push_back(c);
        } else if (name == "host") {
            // libvirt names a DHCPv6 client by its DUID (id) or, with
            // dnsmasq, by its host name alone, which kvmnet does not match.
            attributes(c, {"id", "mac", "name", "ip"});
            for (const pugi::xml_node& l : c.children())
                if (is_element(l)) ignored(l, "kvmnet has one lease time per address family, not per host");
            if (!c.attribute("ip") || (!c.attribute("id") && !c.attribute("mac"))) {
                ignored(c, "kvmnet's static DHCPv6 hosts need an ip and an id (DUID) or a mac");
                continue;
            }
            json host;
            if (c.attribute("id")) {
                host["duid"] = libvirt_duid(trimmed(c.attribute("id").value()));
                if (c.attribute("mac")) ignored(c, "mac", "kvmnet matches a DHCPv6 host by its id (DUID) alone");
            } else {
                std::string mac = trimmed(c.attribute("mac").value());
                std::transform(mac.begin(), mac.end(), mac.begin(),
                               [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
                host["mac"] = mac;
            }
            host["ip"] = trimmed(c.attribute("ip").value());
            if (const std::string n = trimmed(c.attribute("name").value()); !n.empty()) host["name"] = n;
            hosts.push_back(host);
            host6_nodes_.push_back(c);
        } else if (name == "bootp") {
            ignored(c, "kvmnet does not serve network boot (bootp)");
        } else {
            ignored(c, "unknown to kvmnet's import");
        }
    }
    origin(field + ".dhcp", d);
    if (v6) {
        // Without ranges libvirt does SLAAC (plus static hosts that kvmnet
        // keeps only beside a range: its DHCPv6 is stateful).
        if (!ranges.empty()) {
            family["dhcp"] = {{"ranges", ranges}};
            if (!lease_time.is_null()) family["dhcp"]["lease_time"] = lease_time;
            if (!hosts.empty()) family["dhcp"]["hosts"] = hosts;
            for (std::size_t i = 0; i < host6_nodes_.size(); ++i)
                origin(field + ".dhcp.hosts[" + std::to_string(i) + "]", host6_nodes_[i]);
        } else {
            for (const pugi::xml_node& h : host6_nodes_)
                ignored(h, "kvmnet's static DHCPv6 hosts need a DHCPv6 <range> in the same <dhcp>");
            host6_nodes_.clear();
        }
        return;
    }
    json dhcp = json::object();
    if (!ranges.empty()) dhcp["ranges"] = ranges;
    if (!hosts.empty()) dhcp["hosts"] = hosts;
    if (!lease_time.is_null()) dhcp["lease_time"] = lease_time;
    family["dhcp"] = dhcp;
}

void Converter::ip(const pugi::xml_node& n)
{
    attributes(n, {"address", "netmask", "prefix", "family", "localPtr"});
    const std::string fam = n.attribute("family") ? trimmed(n.attribute("family").value()) : "ipv4";
    if (fam != "ipv4" && fam != "ipv6") refuse(n, "family='" + fam + "' is neither ipv4 nor ipv6");
    const bool v6 = fam == "ipv6";
    if ((v6 && have_ipv6_) || (!v6 && have_ipv4_)) {
        ignored(n, std::string("kvmnet has one ") + (v6 ? "IPv6" : "IPv4") + " subnet per network");
        return;
    }
    (v6 ? have_ipv6_ : have_ipv4_) = true;
    const std::string field = v6 ? "ipv6" : "ipv4";
    const std::string address = required(n, "address");
    std::uint64_t prefix = 0;
    if (n.attribute("prefix")) {
        prefix = number(n, "prefix");
        if (n.attribute("netmask")) refuse(n, "give either netmask or prefix, not both");
    } else if (n.attribute("netmask")) {
        if (v6) refuse(n, "netmask is for IPv4; IPv6 takes prefix");
        const std::string mask = trimmed(n.attribute("netmask").value());
        const auto m = model::Ipv4::parse(mask);
        const std::uint32_t inverted = m ? ~m->value : 1;
        // A netmask is contiguous: its inverse is 2^k - 1.
        if (!m || (inverted & (inverted + 1)) != 0) refuse(n, "netmask='" + mask + "' is not a contiguous netmask");
        prefix = 32 - static_cast<std::uint64_t>(std::popcount(inverted));
    } else if (v6) {
        prefix = 64;  // libvirt's default for IPv6
    } else {
        // libvirt falls back on the address class.
        const auto a = model::Ipv4::parse(address);
        const std::uint32_t top = a ? a->value >> 24 : 0;
        prefix = top < 128 ? 8 : top < 192 ? 16 : 24;
    }
    json family = {{"address", address + "/" + std::to_string(prefix)}};
    origin(field, n);
    if (n.attribute("localPtr"))
        ignored(n, "localPtr", "kvmnet does not answer reverse lookups of the subnet from local data only");
    for (const pugi::xml_node& c : n.children()) {
        if (!is_element(c)) continue;
        if (std::string(c.name()) == "dhcp")
            dhcp(c, v6, family, field);
        else if (std::string(c.name()) == "tftp")
            ignored(c, "kvmnet does not serve TFTP");
        else
            ignored(c, "unknown to kvmnet's import");
    }
    doc_[field] = family;
}

void Converter::dns(const pugi::xml_node& d)
{
    attributes(d, {"enable", "forwardPlainNames"});
    if (std::string(d.attribute("enable").value()) == "no")
        ignored(d, "enable", "kvmnet always answers DNS on the gateway");
    if (std::string(d.attribute("forwardPlainNames").value()) == "yes")
        ignored(d, "forwardPlainNames", "kvmnet never forwards names without a dot");
    for (const pugi::xml_node& c : d.children()) {
        if (!is_element(c)) continue;
        const std::string name = c.name();
        if (name == "forwarder") {
            attributes(c, {"addr", "domain"});
            if (c.attribute("domain")) {
                ignored(c, "kvmnet has no per-domain forwarders");
            } else if (!c.attribute("addr")) {
                ignored(c, "a forwarder without addr is not supported by kvmnet");
            } else {
                json& forwarders = doc_["dns"]["forwarders"];
                origin("dns.forwarders[" + std::to_string(forwarders.is_array() ? forwarders.size() : 0) + "]", c);
                forwarders.push_back(trimmed(c.attribute("addr").value()));
            }
        } else if (name == "host") {
            attributes(c, {"ip"});
            json names = json::array();
            for (const pugi::xml_node& h : c.children()) {
                if (!is_element(h)) continue;
                if (std::string(h.name()) == "hostname")
                    names.push_back(trimmed(h.child_value()));
                else
                    ignored(h, "unknown to kvmnet's import");
            }
            json& records = doc_["dns"]["hosts"];
            origin("dns.hosts[" + std::to_string(records.is_array() ? records.size() : 0) + "]", c);
            records.push_back({{"ip", required(c, "ip")}, {"names", names}});
        } else if (name == "srv") {
            attributes(c, {"service", "protocol", "domain", "target", "port", "priority", "weight"});
            no_children(c);
            // libvirt allows an SRV without target and port (the service is
            // not offered); kvmnet's records always point somewhere.
            if (!c.attribute("target") || !c.attribute("port")) {
                ignored(c, "kvmnet's SRV records need target and port");
                continue;
            }
            json record = {{"service", required(c, "service")},
                           {"proto", required(c, "protocol")},
                           {"target", trimmed(c.attribute("target").value())},
                           {"port", number(c, "port")}};
            if (c.attribute("domain")) record["domain"] = trimmed(c.attribute("domain").value());
            if (c.attribute("priority")) record["priority"] = number(c, "priority");
            if (c.attribute("weight")) record["weight"] = number(c, "weight");
            json& records = doc_["dns"]["srv"];
            origin("dns.srv[" + std::to_string(records.is_array() ? records.size() : 0) + "]", c);
            records.push_back(std::move(record));
        } else if (name == "txt") {
            attributes(c, {"name", "value"});
            no_children(c);
            json& records = doc_["dns"]["txt"];
            origin("dns.txt[" + std::to_string(records.is_array() ? records.size() : 0) + "]", c);
            records.push_back({{"name", required(c, "name")}, {"value", std::string(c.attribute("value").value())}});
        } else {
            ignored(c, "unknown to kvmnet's import");
        }
    }
}

void Converter::domain(const pugi::xml_node& d)
{
    attributes(d, {"name", "localOnly", "register"});
    no_children(d);
    doc_["dns"]["domain"] = required(d, "name");
    origin("dns.domain", d);
    if (std::string(d.attribute("localOnly").value()) == "no")
        ignored(d, "localOnly", "kvmnet answers its domain from local data only, never forwarding it");
    if (d.attribute("register")) ignored(d, "register", "");
}

void Converter::run(std::string_view xml, bool autostart)
{
    pugi::xml_document document;
    const pugi::xml_parse_result parsed = document.load_buffer(xml.data(), xml.size(), pugi::parse_default);
    if (!parsed) throw Refusal{line_of_offset(parsed.offset), std::string("not valid XML: ") + parsed.description()};
    const pugi::xml_node root = document.document_element();
    if (std::string(root.name()) != "network")
        throw Refusal{line(root),
                      "not a libvirt network: the root element is <" + std::string(root.name()) + ">, not <network>"};

    const pugi::xml_node name = root.child("name");
    if (!name || trimmed(name.child_value()).empty()) refuse(root, "<name> is required");
    doc_["name"] = trimmed(name.child_value());
    origin("name", name);

    const pugi::xml_node fwd = root.child("forward");
    mode_ = fwd ? forward(fwd) : "isolated";
    doc_["mode"] = mode_;
    origin("mode", fwd ? fwd : root);
    if (autostart) doc_["autostart"] = true;

    // libvirt's own bridges run STP unless told otherwise; an existing host
    // bridge (forward mode bridge) is left as it is.
    bool stp = mode_ != "bridge";
    std::uint64_t delay = 0;
    pugi::xml_node bridge_node;

    attributes(root, {"connections", "ipv6", "trustGuestRxFilters"});
    std::set<std::string> seen;
    for (const pugi::xml_node& c : root.children()) {
        if (!is_element(c)) continue;
        const std::string n = c.name();
        const bool repeated = !seen.insert(n).second;
        if (repeated && n != "ip" && n != "portgroup" && n != "route") {
            ignored(c, "appears twice; the first one counts");
            continue;
        }
        if (n == "name" || n == "forward") {
            // Done above.
        } else if (n == "uuid" || n == "title" || n == "description" || n == "metadata") {
            note(c, nullptr, "kvmnet keeps no " + n + " (dropped)", false);
        } else if (n == "bridge") {
            bridge(c, stp, delay);
            bridge_node = c;
        } else if (n == "mtu") {
            attributes(c, {"size"});
            doc_["mtu"] = number(c, "size");
            origin("mtu", c);
        } else if (n == "mac") {
            ignored(c, "kvmnet has no setting for the bridge's own MAC address; the kernel picks it");
        } else if (mode_ == "bridge" && (n == "domain" || n == "dns")) {
            ignored(c, "not used in bridge mode: guests use the LAN's DNS");
        } else if (n == "domain") {
            domain(c);
        } else if (n == "dns") {
            dns(c);
        } else if (n == "ip") {
            ip(c);
        } else if (n == "port") {
            attributes(c, {"isolated"});
            if (std::string(c.attribute("isolated").value()) == "yes")
                ignored(c, "isolated",
                        "kvmnet isolates guest ports one by one (ports[].isolated, kvmnetctl port attach "
                        "--isolated), with no network-wide default");
        } else if (n == "bandwidth") {
            ignored(c, "kvmnet limits bandwidth per guest port (ports[].bandwidth, kvmnetctl port attach "
                       "--inbound/--outbound), not for a whole network");
        } else if (n == "route") {
            ignored(c, "kvmnet adds no static routes");
        } else if (n == "portgroup" || n == "virtualport" || n == "vlan") {
            ignored(c, "");
        } else if (n.find(':') != std::string::npos) {
            ignored(c, "kvmnet passes no options of its own through to dnsmasq");
        } else {
            ignored(c, "unknown to kvmnet's import");
        }
    }
    if (root.attribute("connections"))
        note(root, "connections", "the number of guests libvirt counted (dropped)", false);
    if (std::string(root.attribute("ipv6").value()) == "yes" && !have_ipv6_)
        ignored(root, "ipv6", "kvmnet routes no IPv6 between guests without an IPv6 subnet");
    if (std::string(root.attribute("trustGuestRxFilters").value()) == "yes")
        ignored(root, "trustGuestRxFilters", "kvmnet does not follow guests' receive filters");
    if (stp) {
        // The kernel raises a forward delay below 2 s to 2 s while STP runs
        // (br_stp_start), which is what a libvirt bridge gets; kvmnet asks for
        // that value explicitly.
        if (delay < 2) {
            note(bridge_node ? bridge_node : root, bridge_node ? "delay" : nullptr,
                 "STP on with a forward delay of " + std::to_string(delay) +
                     " s: the kernel's minimum while STP runs is 2 s (set to 2)",
                 false);
            delay = 2;
        }
        doc_["stp"] = true;
    }
    if (delay) doc_["forward_delay"] = delay;
    if (nat66_) {
        if (have_ipv6_) {
            doc_["ipv6"]["nat66"] = true;
            origins_.emplace_back("ipv6.nat66", nat66_line_);
        } else {
            out_.notes.push_back({nat66_line_, "<forward><nat ipv6>", "no IPv6 subnet to masquerade (ignored)", false});
        }
    }
    host_names();
    validate();
    out_.document = doc_;
}

void Converter::validate()
{
    try {
        (void)model::parse_network(doc_);
    } catch (const Error& e) {
        const std::string message = e.what();
        // The error names a field ("ipv4.dhcp.hosts[0].name: ..."): find the
        // element it came from.
        unsigned where = 0;
        std::size_t best = 0;
        for (const auto& [field, l] : origins_) {
            if (field.size() <= best || message.compare(0, field.size(), field) != 0) continue;
            const char next = message.size() > field.size() ? message[field.size()] : ':';
            if (next != ':' && next != '.' && next != '[') continue;
            best = field.size();
            where = l;
        }
        throw Refusal{where, "kvmnet refuses the converted document: " + message};
    }
}

}  // namespace

bool Conversion::lossy() const
{
    return std::any_of(notes.begin(), notes.end(), [](const Note& n) { return n.lossy; });
}

Conversion convert(std::string_view xml, bool autostart)
{
    Conversion out;
    Converter converter(xml, out);
    try {
        converter.run(xml, autostart);
    } catch (const Refusal& r) {
        out.document = json();
        out.error = r.message;
        out.error_line = r.line;
    }
    std::stable_sort(out.notes.begin(), out.notes.end(), [](const Note& a, const Note& b) { return a.line < b.line; });
    return out;
}

std::string format_note(const std::string& file, const Note& note)
{
    return file + ":" + (note.line ? std::to_string(note.line) + ":" : "") + " " + note.what + ": " + note.message;
}

std::string format_error(const std::string& file, const Conversion& conversion)
{
    return file + ":" + (conversion.error_line ? std::to_string(conversion.error_line) + ":" : "") +
           " error: " + conversion.error;
}

}  // namespace kvmnet::libvirt
