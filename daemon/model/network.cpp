// Parsing, serialisation and validation of the network document.
#include "model/network.hpp"

#include "model/forward_text.hpp"
#include "model/json_reader.hpp"
#include "model/json_text.hpp"
#include "model/mac.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <initializer_list>
#include <map>
#include <set>

namespace kvmnet {

std::string_view error_kind_name(ErrorKind kind)
{
    switch (kind) {
    case ErrorKind::InvalidArgument: return "InvalidArgument";
    case ErrorKind::NotFound: return "NotFound";
    case ErrorKind::AlreadyExists: return "AlreadyExists";
    case ErrorKind::Conflict: return "Conflict";
    case ErrorKind::Unsupported: return "Unsupported";
    case ErrorKind::Kernel: return "Kernel";
    case ErrorKind::Busy: return "Busy";
    case ErrorKind::TooLarge: return "TooLarge";
    }
    return "Kernel";
}

}  // namespace kvmnet

namespace kvmnet::model {
namespace {

using json = nlohmann::json;
using detail::item;
using detail::lower;
using detail::ObjectReader;
using detail::type_name;
using detail::valid_host_name;

Ipv4 parse_ip(const std::string& field, const std::string& text)
{
    auto ip = Ipv4::parse(text);
    if (!ip) throw invalid_field(field, "'" + text + "' is not an IPv4 address");
    return *ip;
}

std::string reserved_interface_name(const std::string& name)
{
    // The kernel refuses these (EINVAL): they are the per-family sysctl
    // directories /proc/sys/net/ipv4/conf/all and .../default.
    if (name == "all" || name == "default")
        return "the kernel reserves it (/proc/sys/net/ipv4/conf/" + name + " is not an interface)";
    return "";
}

// The error for an invalid interface name in `field`: the reason when the
// kernel reserves it, otherwise the allowed form.
Error invalid_interface_name(const std::string& field, const std::string& name)
{
    const std::string reserved = reserved_interface_name(name);
    if (!reserved.empty()) return invalid_field(field, "'" + name + "' cannot be an interface name: " + reserved);
    return invalid_field(field,
                         "'" + name + "' is not a valid interface name (1-15 bytes: letters, digits, '-', '_', '.')");
}

// An optional unicast MAC at `key` ("" is the same as absent), for error
// messages `like` an example address ("" for none).
std::optional<Mac> optional_unicast_mac(ObjectReader& r, const std::string& key, const std::string& like)
{
    const std::string text = lower(r.string(key, 32).value_or(""));
    if (text.empty()) return std::nullopt;
    const auto mac = Mac::parse(text);
    if (!mac || !mac->unicast()) {
        std::string message = "'" + text + "' is not a unicast MAC address";
        if (!like.empty()) message += " like " + like;
        throw invalid_field(r.field(key), message);
    }
    return mac;
}

}  // namespace

DhcpHost parse_dhcp_host(const json& j, const std::string& field)
{
    ObjectReader h(j, field);
    DhcpHost host;
    auto mac = h.string("mac");
    if (!mac || !Mac::parse(*mac)) throw invalid_field(h.field("mac"), "expected a MAC address like 52:54:00:12:34:56");
    // A guest's NIC sends from a unicast address; dnsmasq would never match
    // a multicast, broadcast or all-zero one.
    if (!valid_unicast_mac(*mac))
        throw invalid_field(h.field("mac"), "'" + *mac + "' is not a unicast MAC address like 52:54:00:12:34:56");
    host.mac = lower(*mac);
    auto ip = h.string("ip");
    if (!ip) throw invalid_field(h.field("ip"), "required");
    host.ip = parse_ip(h.field("ip"), *ip);
    host.name = h.string("name", 63).value_or("");
    if (!host.name.empty() && !valid_host_name(host.name))
        throw invalid_field(h.field("name"), "'" + host.name + "' is not a valid host name (letters, digits, '-')");
    h.finish();
    return host;
}

DhcpHost parse_dhcp_host(const std::string& text)
{
    return parse_dhcp_host(parse_json_text(text, "host", "host"), "host");
}

bool valid_duid(const std::string& duid)
{
    // RFC 8415: a 2-byte type and up to 128 bytes of identifier.
    if (duid.size() < 8 || duid.size() > 130 * 3 - 1 || duid.size() % 3 != 2) return false;
    for (std::size_t i = 0; i < duid.size(); ++i) {
        const bool colon = i % 3 == 2;
        if (colon ? duid[i] != ':' : !std::isxdigit(static_cast<unsigned char>(duid[i]))) return false;
    }
    return true;
}

Dhcp6Host parse_dhcp6_host(const json& j, const std::string& field)
{
    ObjectReader h(j, field);
    Dhcp6Host host;
    auto mac = h.string("mac");
    auto duid = h.string("duid", 130 * 3);
    if (mac && duid) throw invalid_field(h.field("duid"), "give either mac or duid, not both");
    if (!mac && !duid)
        throw invalid_field(h.field("mac"),
                            "required: mac (52:54:00:12:34:56) or duid (00:01:00:01:...) of the client");
    if (mac) {
        if (!Mac::parse(*mac)) throw invalid_field(h.field("mac"), "expected a MAC address like 52:54:00:12:34:56");
        if (!valid_unicast_mac(*mac))
            throw invalid_field(h.field("mac"), "'" + *mac + "' is not a unicast MAC address like 52:54:00:12:34:56");
        host.mac = lower(*mac);
    } else {
        if (!valid_duid(*duid))
            throw invalid_field(h.field("duid"), "'" + duid->substr(0, 64) +
                                                     "' is not a DUID (3 to 130 bytes as hex pairs separated by ':', "
                                                     "e.g. 00:03:00:01:52:54:00:12:34:56)");
        host.duid = lower(*duid);
    }
    auto ip = h.string("ip", 64);
    if (!ip) throw invalid_field(h.field("ip"), "required (an IPv6 address inside ipv6.address's subnet)");
    auto v6 = Ipv6::parse(*ip);
    if (!v6) throw invalid_field(h.field("ip"), "'" + *ip + "' is not an IPv6 address");
    host.ip = *v6;
    host.name = h.string("name", 63).value_or("");
    if (!host.name.empty() && !valid_host_name(host.name))
        throw invalid_field(h.field("name"), "'" + host.name + "' is not a valid host name (letters, digits, '-')");
    h.finish();
    return host;
}

std::variant<DhcpHost, Dhcp6Host> parse_any_dhcp_host(const std::string& text)
{
    const json j = parse_json_text(text, "host", "host");
    bool v6 = j.is_object() && j.contains("duid");
    if (j.is_object())
        if (const auto ip = j.find("ip"); ip != j.end() && ip->is_string())
            v6 = v6 || ip->get_ref<const std::string&>().find(':') != std::string::npos;
    if (v6) return parse_dhcp6_host(j, "host");
    return parse_dhcp_host(j, "host");
}

namespace {

// "lease_time": seconds (120 and up) or "infinite".
std::uint32_t parse_lease_time(ObjectReader& r)
{
    const json* v = r.get("lease_time");
    if (!v) return default_lease_time;
    const std::string f = r.field("lease_time");
    if (v->is_string() && v->get_ref<const std::string&>() == "infinite") return infinite_lease_time;
    const std::string wanted = "expected seconds between " + std::to_string(min_lease_time) + " and " +
                               std::to_string(max_lease_time) + ", or \"infinite\"";
    if (!v->is_number_integer())
        throw invalid_field(f, wanted + ", got " +
                                   (v->is_string() ? "'" + v->get<std::string>() + "'" : std::string(type_name(*v))));
    if (v->is_number_unsigned() || v->get<std::int64_t>() >= 0) {
        const auto n = v->get<std::uint64_t>();
        if (n >= min_lease_time && n <= max_lease_time) return static_cast<std::uint32_t>(n);
    }
    throw invalid_field(f, wanted + " (dnsmasq's shortest lease is 2 minutes), got " + v->dump());
}

json lease_time_json(std::uint32_t seconds)
{
    if (seconds == infinite_lease_time) return "infinite";
    return seconds;
}

Ipv4Config parse_ipv4(const json& j)
{
    ObjectReader r(j, "ipv4");
    Ipv4Config config;
    auto address = r.string("address");
    if (!address) throw invalid_field("ipv4.address", "required (for example \"192.168.122.1/24\")");
    auto parsed = Ipv4Interface::parse(*address);
    if (!parsed) throw invalid_field("ipv4.address", "'" + *address + "' is not an address with prefix (A.B.C.D/N)");
    config.address = *parsed;
    if (const json* dhcp = r.get("dhcp")) {
        ObjectReader d(*dhcp, "ipv4.dhcp");
        config.dhcp = true;
        if (const json* ranges = d.array("ranges", 64)) {
            for (std::size_t i = 0; i < ranges->size(); ++i) {
                const std::string f = item("ipv4.dhcp.ranges", i);
                const json& v = (*ranges)[i];
                if (!v.is_string()) throw invalid_field(f, std::string("expected a string, got ") + type_name(v));
                const auto& text = v.get_ref<const std::string&>();
                const auto dash = text.find('-');
                if (dash == std::string::npos) throw invalid_field(f, "expected FIRST-LAST, got '" + text + "'");
                config.ranges.push_back({parse_ip(f, text.substr(0, dash)), parse_ip(f, text.substr(dash + 1))});
            }
        }
        if (const json* hosts = d.array("hosts", max_dhcp_hosts)) {
            for (std::size_t i = 0; i < hosts->size(); ++i)
                config.hosts.push_back(parse_dhcp_host((*hosts)[i], item("ipv4.dhcp.hosts", i)));
        }
        config.lease_time = parse_lease_time(d);
        d.finish();
    }
    r.finish();
    return config;
}

Ipv6 parse_ip6(const std::string& field, const std::string& text)
{
    auto ip = Ipv6::parse(text);
    if (!ip) throw invalid_field(field, "'" + text + "' is not an IPv6 address");
    return *ip;
}

Ipv6Config parse_ipv6(const json& j)
{
    ObjectReader r(j, "ipv6");
    Ipv6Config config;
    auto address = r.string("address", 64);
    if (!address) throw invalid_field("ipv6.address", "required (for example \"fd00:1:2:3::1/64\")");
    auto parsed = Ipv6Interface::parse(*address);
    if (!parsed) throw invalid_field("ipv6.address", "'" + *address + "' is not an IPv6 address with prefix (A::B/N)");
    config.address = *parsed;
    if (const json* dhcp = r.get("dhcp")) {
        ObjectReader d(*dhcp, "ipv6.dhcp");
        const json* ranges = d.array("ranges", 64);
        if (!ranges || ranges->empty())
            throw invalid_field("ipv6.dhcp.ranges", "required: at least one FIRST-LAST range for stateful DHCPv6 "
                                                    "(leave out ipv6.dhcp for SLAAC only)");
        for (std::size_t i = 0; i < ranges->size(); ++i) {
            const std::string f = item("ipv6.dhcp.ranges", i);
            const json& v = (*ranges)[i];
            if (!v.is_string()) throw invalid_field(f, std::string("expected a string, got ") + type_name(v));
            const auto& text = v.get_ref<const std::string&>();
            if (text.size() > 100) throw invalid_field(f, "longer than 100 bytes");
            const auto dash = text.find('-');
            if (dash == std::string::npos) throw invalid_field(f, "expected FIRST-LAST, got '" + text + "'");
            config.ranges.push_back({parse_ip6(f, text.substr(0, dash)), parse_ip6(f, text.substr(dash + 1))});
        }
        if (const json* hosts = d.array("hosts", max_dhcp_hosts))
            for (std::size_t i = 0; i < hosts->size(); ++i)
                config.hosts.push_back(parse_dhcp6_host((*hosts)[i], item("ipv6.dhcp.hosts", i)));
        config.lease_time = parse_lease_time(d);
        d.finish();
    }
    config.ra = r.boolean("ra").value_or(true);
    config.nat66 = r.boolean("nat66").value_or(false);
    r.finish();
    return config;
}

// A domain name field of a DNS record (RFC 1123 labels), lower case.
std::string dns_name(ObjectReader& r, const std::string& key, bool required)
{
    auto name = r.string(key, 253);
    if (!name) {
        if (required) throw invalid_field(r.field(key), "required (a domain name such as \"www.kvm.lan\")");
        return "";
    }
    if (!valid_domain_name(*name))
        throw invalid_field(r.field(key), "'" + *name +
                                              "' is not a domain name (labels of letters, digits and '-', separated "
                                              "by dots)");
    return lower(*name);
}

DnsHost parse_dns_host(const json& j, const std::string& field)
{
    ObjectReader r(j, field);
    DnsHost host;
    auto ip = r.string("ip", 64);
    if (!ip) throw invalid_field(r.field("ip"), "required (an IPv4 or IPv6 address)");
    if (auto v4 = Ipv4::parse(*ip))
        host.ip = v4->str();
    else if (auto v6 = Ipv6::parse(*ip))
        host.ip = v6->str();
    else
        throw invalid_field(r.field("ip"), "'" + *ip + "' is not an IPv4 or IPv6 address");
    const json* names = r.array("names", 16);
    if (!names || names->empty()) throw invalid_field(r.field("names"), "required: 1 to 16 domain names");
    for (std::size_t i = 0; i < names->size(); ++i) {
        const json& v = (*names)[i];
        const std::string f = item(r.field("names"), i);
        if (!v.is_string()) throw invalid_field(f, std::string("expected a string, got ") + type_name(v));
        const auto& name = v.get_ref<const std::string&>();
        if (!valid_domain_name(name))
            throw invalid_field(f, "'" + name.substr(0, 253) +
                                       "' is not a domain name (labels of letters, digits and '-', separated by dots)");
        if (std::find(host.names.begin(), host.names.end(), lower(name)) != host.names.end())
            throw invalid_field(f, name + " listed twice");
        host.names.push_back(lower(name));
    }
    r.finish();
    return host;
}

DnsSrv parse_dns_srv(const json& j, const std::string& field)
{
    ObjectReader r(j, field);
    DnsSrv srv;
    auto service = r.string("service", 64);
    // RFC 6335 service names: 1-15 letters, digits and '-'.
    if (!service) throw invalid_field(r.field("service"), "required (a service name such as \"ldap\")");
    if (service->size() > 15 || !valid_host_name(*service))
        throw invalid_field(r.field("service"), "'" + *service +
                                                    "' is not a service name (1-15 letters, digits and '-', without "
                                                    "the leading '_')");
    srv.service = lower(*service);
    auto proto = r.string("proto", 16);
    if (!proto || (*proto != "tcp" && *proto != "udp"))
        throw invalid_field(r.field("proto"), "required: \"tcp\" or \"udp\"");
    srv.proto = *proto;
    srv.domain = dns_name(r, "domain", false);
    srv.target = dns_name(r, "target", true);
    srv.port = static_cast<std::uint16_t>(r.unsigned_integer("port", 1, 65535).value_or(0));
    if (srv.port == 0) throw invalid_field(r.field("port"), "required (1 to 65535)");
    srv.priority = static_cast<std::uint16_t>(r.unsigned_integer("priority", 0, 65535).value_or(0));
    srv.weight = static_cast<std::uint16_t>(r.unsigned_integer("weight", 0, 65535).value_or(0));
    r.finish();
    return srv;
}

DnsConfig parse_dns(const json& j)
{
    ObjectReader r(j, "dns");
    DnsConfig dns;
    dns.domain = r.string("domain", 253).value_or("");
    if (r.get("domain") && !valid_domain_name(dns.domain))
        throw invalid_field("dns.domain", "'" + dns.domain +
                                              "' is not a domain name (labels of letters, digits and '-', separated "
                                              "by dots, e.g. \"kvm.lan\")");
    if (const json* forwarders = r.array("forwarders", max_dns_forwarders)) {
        for (std::size_t i = 0; i < forwarders->size(); ++i) {
            const std::string f = item("dns.forwarders", i);
            const json& v = (*forwarders)[i];
            if (!v.is_string()) throw invalid_field(f, std::string("expected a string, got ") + type_name(v));
            const auto& text = v.get_ref<const std::string&>();
            if (auto v4 = Ipv4::parse(text)) {
                if (v4->value == 0 || v4->value == 0xffffffffu || (v4->value >> 28) == 0xe)
                    throw invalid_field(f, text + " is not a unicast address of a DNS server");
                dns.forwarders.push_back(v4->str());
            } else if (auto v6 = Ipv6::parse(text)) {
                if (v6->is_unspecified() || v6->is_multicast())
                    throw invalid_field(f, text + " is not a unicast address of a DNS server");
                // A link-local server needs an interface, which a forwarder cannot name.
                if (v6->is_link_local()) throw invalid_field(f, text + " is link-local; use a global or ULA address");
                dns.forwarders.push_back(v6->str());
            } else {
                throw invalid_field(f, "'" + text + "' is not an IPv4 or IPv6 address");
            }
            for (std::size_t k = 0; k + 1 < dns.forwarders.size(); ++k)
                if (dns.forwarders[k] == dns.forwarders.back())
                    throw invalid_field(f, text + " is already " + item("dns.forwarders", k));
        }
    }
    if (const json* hosts = r.array("hosts", max_dns_records))
        for (std::size_t i = 0; i < hosts->size(); ++i)
            dns.hosts.push_back(parse_dns_host((*hosts)[i], item("dns.hosts", i)));
    if (const json* srv = r.array("srv", max_dns_records))
        for (std::size_t i = 0; i < srv->size(); ++i)
            dns.srv.push_back(parse_dns_srv((*srv)[i], item("dns.srv", i)));
    if (const json* txt = r.array("txt", max_dns_records))
        for (std::size_t i = 0; i < txt->size(); ++i) {
            ObjectReader t((*txt)[i], item("dns.txt", i));
            DnsTxt record;
            record.name = dns_name(t, "name", true);
            auto value = t.string("value", 255);
            if (!value) throw invalid_field(t.field("value"), "required (the text, at most 255 bytes)");
            // Written quoted into dnsmasq.conf: printable ASCII without the
            // quote and the backslash, which it would interpret.
            if (!std::all_of(value->begin(), value->end(),
                             [](unsigned char c) { return c >= 0x20 && c < 0x7f && c != '"' && c != '\\'; }))
                throw invalid_field(t.field("value"),
                                    "only printable ASCII without '\"' and '\\' (dnsmasq reads it as quoted text)");
            record.value = *value;
            t.finish();
            dns.txt.push_back(std::move(record));
        }
    r.finish();
    return dns;
}

Mode parse_mode(const std::string& text)
{
    if (text == "nat") return Mode::nat;
    if (text == "bridge") return Mode::bridge;
    if (text == "isolated") return Mode::isolated;
    if (text == "routed") return Mode::routed;
    throw invalid_field("mode", "unknown mode '" + text + "' (expected nat, bridge, isolated or routed)");
}

}  // namespace

std::string_view mode_name(Mode mode)
{
    switch (mode) {
    case Mode::nat: return "nat";
    case Mode::bridge: return "bridge";
    case Mode::isolated: return "isolated";
    case Mode::routed: return "routed";
    }
    return "nat";
}

bool valid_network_name(const std::string& name)
{
    if (name.empty() || name.size() > 32 || !std::isalnum(static_cast<unsigned char>(name.front()))) return false;
    return std::all_of(name.begin(), name.end(),
                       [](unsigned char c) { return std::isalnum(c) || c == '-' || c == '_' || c == '.'; });
}

bool valid_domain_name(const std::string& name)
{
    if (name.empty() || name.size() > 253) return false;
    std::size_t start = 0;
    for (;;) {
        const std::size_t dot = name.find('.', start);
        if (!valid_host_name(name.substr(start, dot == std::string::npos ? std::string::npos : dot - start)))
            return false;
        if (dot == std::string::npos) return true;
        start = dot + 1;
    }
}

bool valid_interface_name(const std::string& name)
{
    // net/core/dev.c dev_valid_name() refuses "", >= IFNAMSIZ (16) bytes, "."
    // and "..", '/', ':' and whitespace; the set allowed here is narrower
    // still, and '%' (a name template for the kernel) is never allowed.
    if (name.empty() || name.size() > 15 || name == "." || name == "..") return false;
    if (!reserved_interface_name(name).empty()) return false;
    return std::all_of(name.begin(), name.end(),
                       [](unsigned char c) { return std::isalnum(c) || c == '-' || c == '_' || c == '.'; });
}

Network parse_network(const nlohmann::json& document)
{
    ObjectReader r(document, "");
    Network n;
    auto name = r.string("name", 64);
    if (!name) throw invalid_field("name", "required");
    n.name = *name;
    if (!valid_network_name(n.name))
        throw invalid_field("name", "'" + n.name +
                                        "' is not a valid network name (1-32 characters: letters, digits, '-', '_', "
                                        "'.', starting with a letter or digit)");
    auto mode = r.string("mode", 16);
    if (!mode) throw invalid_field("mode", "required (nat, bridge, isolated or routed)");
    n.mode = parse_mode(*mode);
    n.bridge = r.string("bridge", 64).value_or("");
    if (!n.bridge.empty() && !valid_interface_name(n.bridge)) throw invalid_interface_name("bridge", n.bridge);
    // Every namespace has its loopback already; a bridge cannot take its name.
    if (n.bridge == "lo") throw invalid_field("bridge", "'lo' is the loopback interface, not a bridge name");
    n.autostart = r.boolean("autostart").value_or(false);
    n.firewall_integration = r.boolean("firewall_integration").value_or(true);
    n.fast_path = r.boolean("fast_path").value_or(false);
    if (const json* ipv4 = r.get("ipv4")) n.ipv4 = parse_ipv4(*ipv4);
    if (const json* dns = r.get("dns")) n.dns = parse_dns(*dns);
    if (const json* ipv6 = r.get("ipv6")) n.ipv6 = parse_ipv6(*ipv6);
    n.uplink = r.string("uplink", 64).value_or("");
    if (!n.uplink.empty() && !valid_interface_name(n.uplink)) throw invalid_interface_name("uplink", n.uplink);
    n.stp = r.boolean("stp").value_or(false);
    n.forward_delay = static_cast<std::uint32_t>(r.unsigned_integer("forward_delay", 0, 30).value_or(0));
    n.mtu = static_cast<std::uint32_t>(r.unsigned_integer("mtu", 68, 65535).value_or(0));
    n.hello_time = static_cast<std::uint32_t>(r.unsigned_integer("hello_time", 1, 10).value_or(0));
    n.max_age = static_cast<std::uint32_t>(r.unsigned_integer("max_age", 6, 40).value_or(0));
    if (auto priority = r.unsigned_integer("priority", 0, 65535)) n.priority = static_cast<std::uint16_t>(*priority);
    n.multicast_snooping = r.boolean("multicast_snooping");
    if (const json* ports = r.array("ports", 4096))
        for (std::size_t i = 0; i < ports->size(); ++i)
            n.ports.push_back(parse_port((*ports)[i], item("ports", i)));
    if (const json* forwards = r.array("forwards", max_forwards)) {
        n.forwards.reserve(forwards->size());
        for (std::size_t i = 0; i < forwards->size(); ++i)
            n.forwards.push_back(parse_forward((*forwards)[i], item("forwards", i)));
    }
    if (const json* limits = r.get("limits")) n.limits = parse_limits(*limits, "limits");
    if (const json* overlay = r.get("overlay")) n.overlay = parse_overlay(*overlay, "overlay");
    r.finish();
    resolve_forward_guests(n);
    validate(n);
    return n;
}

Network parse_network(const std::string& text) { return parse_network(parse_json_text(text, "document", "")); }

namespace {

// What to_json writes of the forwards and static IPv4 hosts: nlohmann's
// tree, or null in their place (network_text writes their text there).
enum class Part { none, tree, placeholder };

json to_json_parts(const Network& n, Part forwards, bool hosts_placeholder)
{
    json j = {{"name", n.name}, {"mode", mode_name(n.mode)}, {"bridge", n.bridge}, {"autostart", n.autostart}};
    // Only the opt-out is written: documents of networks that keep the
    // default read as before.
    if (!n.firewall_integration) j["firewall_integration"] = false;
    if (n.fast_path) j["fast_path"] = true;
    if (n.ipv4) {
        json ipv4 = {{"address", n.ipv4->address.str()}};
        if (n.ipv4->dhcp) {
            json ranges = json::array();
            for (const auto& r : n.ipv4->ranges)
                ranges.push_back(r.first.str() + "-" + r.last.str());
            json hosts = hosts_placeholder ? json() : json::array();
            if (!hosts_placeholder)
                for (const auto& h : n.ipv4->hosts) {
                    json host = {{"mac", h.mac}, {"ip", h.ip.str()}};
                    if (!h.name.empty()) host["name"] = h.name;
                    hosts.push_back(std::move(host));
                }
            ipv4["dhcp"] = {{"ranges", ranges}, {"hosts", hosts}};
            if (n.ipv4->lease_time != default_lease_time)
                ipv4["dhcp"]["lease_time"] = lease_time_json(n.ipv4->lease_time);
        }
        j["ipv4"] = std::move(ipv4);
    }
    if (n.ipv6) {
        json ipv6 = {{"address", n.ipv6->address.str()}, {"ra", n.ipv6->ra}, {"nat66", n.ipv6->nat66}};
        if (!n.ipv6->ranges.empty()) {
            json ranges = json::array();
            for (const auto& r : n.ipv6->ranges)
                ranges.push_back(r.first.str() + "-" + r.last.str());
            ipv6["dhcp"] = {{"ranges", ranges}};
            if (!n.ipv6->hosts.empty()) {
                json hosts = json::array();
                for (const auto& h : n.ipv6->hosts) {
                    json host = h.duid.empty() ? json{{"mac", h.mac}} : json{{"duid", h.duid}};
                    host["ip"] = h.ip.str();
                    if (!h.name.empty()) host["name"] = h.name;
                    hosts.push_back(std::move(host));
                }
                ipv6["dhcp"]["hosts"] = std::move(hosts);
            }
            if (n.ipv6->lease_time != default_lease_time)
                ipv6["dhcp"]["lease_time"] = lease_time_json(n.ipv6->lease_time);
        }
        j["ipv6"] = std::move(ipv6);
    }
    if (!n.dns.empty()) {
        json dns = json::object();
        if (!n.dns.domain.empty()) dns["domain"] = n.dns.domain;
        if (!n.dns.forwarders.empty()) dns["forwarders"] = n.dns.forwarders;
        if (!n.dns.hosts.empty()) {
            json hosts = json::array();
            for (const auto& h : n.dns.hosts)
                hosts.push_back({{"ip", h.ip}, {"names", h.names}});
            dns["hosts"] = std::move(hosts);
        }
        if (!n.dns.srv.empty()) {
            json srv = json::array();
            for (const auto& r : n.dns.srv) {
                json record = {{"service", r.service}, {"proto", r.proto},       {"target", r.target},
                               {"port", r.port},       {"priority", r.priority}, {"weight", r.weight}};
                if (!r.domain.empty()) record["domain"] = r.domain;
                srv.push_back(std::move(record));
            }
            dns["srv"] = std::move(srv);
        }
        if (!n.dns.txt.empty()) {
            json txt = json::array();
            for (const auto& t : n.dns.txt)
                txt.push_back({{"name", t.name}, {"value", t.value}});
            dns["txt"] = std::move(txt);
        }
        j["dns"] = std::move(dns);
    }
    if (!n.uplink.empty()) j["uplink"] = n.uplink;
    j["stp"] = n.stp;
    j["forward_delay"] = n.forward_delay;
    if (n.mtu != 0) j["mtu"] = n.mtu;
    if (n.hello_time != 0) j["hello_time"] = n.hello_time;
    if (n.max_age != 0) j["max_age"] = n.max_age;
    if (n.priority) j["priority"] = *n.priority;
    if (n.multicast_snooping) j["multicast_snooping"] = *n.multicast_snooping;
    json ports = json::array();
    for (const Port& p : n.ports)
        ports.push_back(to_json(p));
    j["ports"] = std::move(ports);
    if (forwards == Part::tree && !n.forwards.empty()) {
        json array = json::array();
        for (const PortForward& f : n.forwards)
            array.push_back(to_json(f));
        j["forwards"] = std::move(array);
    }
    if (forwards == Part::placeholder && !n.forwards.empty()) j["forwards"] = nullptr;
    if (!n.limits.empty()) j["limits"] = to_json(n.limits);
    if (n.overlay) j["overlay"] = to_json(*n.overlay);
    return j;
}

// An array whose items network_text writes: where it is (member names
// from the top object) and its items' text.
struct Spliced {
    std::vector<const char*> path;
    std::string items;
};

// `object` as dump() (step < 0) or dump(step) writes it at nesting `level`,
// each splice's array (named by path[depth] and below) written from its
// items. nlohmann writes an object's members in key order, "key":value
// (pretty: one per line, "key": value), an empty array as [].
void dump_spliced(std::string& out, const json& object, const std::vector<const Spliced*>& splices, std::size_t depth,
                  int step, int level)
{
    const bool pretty = step >= 0;
    const auto inner = static_cast<std::size_t>(pretty ? (level + 1) * step : 0);
    out += '{';
    bool first = true;
    for (auto it = object.begin(); it != object.end(); ++it) {
        if (!first) out += ',';
        first = false;
        if (pretty) {
            out += '\n';
            out.append(inner, ' ');
        }
        out += json(it.key()).dump();
        out += pretty ? ": " : ":";
        const Spliced* here = nullptr;
        std::vector<const Spliced*> below;
        for (const Spliced* s : splices) {
            if (it.key() != s->path[depth]) continue;
            if (s->path.size() == depth + 1)
                here = s;
            else
                below.push_back(s);
        }
        if (here) {
            if (here->items.empty()) {
                out += "[]";
                continue;
            }
            out += '[';
            if (pretty) out += '\n';
            out += here->items;
            if (pretty) {
                out += '\n';
                out.append(inner, ' ');
            }
            out += ']';
        } else if (!below.empty()) {
            dump_spliced(out, it.value(), below, depth + 1, step, level + 1);
        } else if (!pretty) {
            out += it.value().dump();
        } else {
            // Every line of the value after its first one level in (a
            // dump's only newlines are between elements; strings carry
            // theirs escaped).
            for (const char c : it.value().dump(step)) {
                out += c;
                if (c == '\n') out.append(inner, ' ');
            }
        }
    }
    if (pretty && !first) {
        out += '\n';
        out.append(static_cast<std::size_t>(level * step), ' ');
    }
    out += '}';
}

// One static IPv4 host as to_json writes it ({"ip", "mac", "name"}), its
// braces at `indent` when pretty.
void append_host(std::string& out, const DhcpHost& h, int step, std::size_t indent)
{
    const bool pretty = step >= 0;
    const std::string gap = pretty ? "\n" + std::string(indent + static_cast<std::size_t>(step), ' ') : "";
    out += '{';
    out += gap;
    out += pretty ? "\"ip\": " : "\"ip\":";
    append_json_ipv4(out, h.ip);
    out += ',';
    out += gap;
    out += pretty ? "\"mac\": " : "\"mac\":";
    append_json_string(out, h.mac);
    if (!h.name.empty()) {
        out += ',';
        out += gap;
        out += pretty ? "\"name\": " : "\"name\":";
        append_json_string(out, h.name);
    }
    if (pretty) {
        out += '\n';
        out.append(indent, ' ');
    }
    out += '}';
}

// The items of an array at `level` (the level of the object holding it),
// each written by `write(out, item, indent of its braces)`.
template <typename T, typename Write>
std::string items_text(const std::vector<T>& items, int step, int level, const Write& write)
{
    const bool pretty = step >= 0;
    const auto indent = static_cast<std::size_t>(pretty ? (level + 2) * step : 0);
    std::string out;
    for (const T& item : items) {
        if (!out.empty()) out += pretty ? ",\n" : ",";
        out.append(indent, ' ');
        write(out, item, indent);
    }
    return out;
}

}  // namespace

nlohmann::json to_json(const Network& n) { return to_json(n, true); }

nlohmann::json to_json(const Network& n, bool with_forwards)
{
    return to_json_parts(n, with_forwards ? Part::tree : Part::none, false);
}

std::string network_text(const Network& n, bool with_forwards, int indent, const nlohmann::json& extra,
                         const std::string* forwards_items)
{
    const bool forwards = with_forwards && !n.forwards.empty();
    const bool hosts = n.ipv4 && n.ipv4->dhcp;
    json j = to_json_parts(n, forwards ? Part::placeholder : Part::none, hosts);
    for (auto it = extra.begin(); it != extra.end(); ++it)
        j[it.key()] = it.value();
    std::vector<Spliced> splices;
    if (hosts)
        splices.push_back(
            {{"ipv4", "dhcp", "hosts"},
             items_text(n.ipv4->hosts, indent, 2, [&](std::string& out, const DhcpHost& h, std::size_t at) {
                 append_host(out, h, indent, at);
             })});
    if (forwards) {
        if (forwards_items && indent < 0)
            splices.push_back({{"forwards"}, *forwards_items});
        else
            splices.push_back(
                {{"forwards"},
                 items_text(n.forwards, indent, 0, [&](std::string& out, const PortForward& f, std::size_t at) {
                     if (indent < 0)
                         append_json_text(out, f);
                     else
                         append_pretty_json_text(out, f, static_cast<int>(at), indent);
                 })});
    }
    std::vector<const Spliced*> all;
    for (const Spliced& s : splices)
        all.push_back(&s);
    std::string out;
    dump_spliced(out, j, all, 0, indent, 0);
    return out;
}

std::string document_text(const Network& n)
{
    std::string text = network_text(n, true, 2);
    text += '\n';
    return text;
}

namespace {

Rate parse_rate(const json& j, const std::string& field)
{
    ObjectReader r(j, field);
    constexpr std::uint64_t max = 1ull << 32;  // kB/s: about 34 Tbit/s
    Rate rate;
    rate.average = r.unsigned_integer("average", 1, max).value_or(0);
    if (rate.average == 0) throw invalid_field(field + ".average", "required (kilobytes per second)");
    rate.peak = r.unsigned_integer("peak", 1, max).value_or(0);
    rate.burst = r.unsigned_integer("burst", 1, max).value_or(0);
    r.finish();
    if (rate.peak != 0 && rate.peak < rate.average)
        throw invalid_field(field + ".peak", "must not be below average (" + std::to_string(rate.average) + ")");
    return rate;
}

json rate_json(const Rate& rate)
{
    json j = {{"average", rate.average}};
    if (rate.peak) j["peak"] = rate.peak;
    if (rate.burst) j["burst"] = rate.burst;
    return j;
}

}  // namespace

Port parse_port(const json& j, const std::string& field)
{
    ObjectReader r(j, field);
    Port p;
    auto name = r.string("name", 64);
    if (!name) throw invalid_field(r.field("name"), "required (the interface name)");
    p.name = *name;
    p.tap = r.boolean("tap").value_or(false);
    p.owner = static_cast<std::uint32_t>(r.unsigned_integer("owner", 0, 0xfffffffeu).value_or(0));
    p.group = static_cast<std::uint32_t>(r.unsigned_integer("group", 0, 0xfffffffeu).value_or(0));
    if (!p.tap && (r.get("owner") || r.get("group")))
        throw invalid_field(r.field("owner"), "only meaningful for taps the daemon creates (\"tap\": true)");
    if (const json* queues = r.get("queues")) {
        // An existing interface keeps whatever queues it was made with; only a tap we create can be multiqueue.
        if (!p.tap)
            throw invalid_field(r.field("queues"), "only meaningful for taps the daemon creates (\"tap\": true)");
        if (!queues->is_number_integer() || queues->get<std::int64_t>() < 1 ||
            queues->get<std::int64_t>() > max_tap_queues)
            throw invalid_field(r.field("queues"), std::string("must be an integer between 1 and ")
                                                       .append(std::to_string(max_tap_queues))
                                                       .append(" (the kernel's limit of queues on one tap)"));
        p.queues = static_cast<std::uint16_t>(queues->get<std::int64_t>());
    }
    p.mac = optional_unicast_mac(r, "mac", "52:54:00:12:34:56");
    p.isolated = r.boolean("isolated").value_or(false);
    if (const json* vlan = r.get("vlan")) {
        ObjectReader v(*vlan, r.field("vlan"));
        p.vlan_pvid = static_cast<std::uint16_t>(v.unsigned_integer("pvid", 1, 4094).value_or(0));
        if (const json* tagged = v.array("tagged", 4094)) {
            for (std::size_t i = 0; i < tagged->size(); ++i) {
                const json& t = (*tagged)[i];
                const std::string f = item(v.field("tagged"), i);
                if (!t.is_number_integer() || t.get<std::int64_t>() < 1 || t.get<std::int64_t>() > 4094)
                    throw invalid_field(f, "expected a VLAN id between 1 and 4094");
                p.vlan_tagged.push_back(static_cast<std::uint16_t>(t.get<std::int64_t>()));
            }
        }
        v.finish();
        if (p.vlan_pvid == 0 && p.vlan_tagged.empty())
            throw invalid_field(r.field("vlan"), "needs \"pvid\" or \"tagged\"");
    }
    if (const json* original = r.get("original")) {
        ObjectReader o(*original, r.field("original"));
        PortOriginal before;
        before.mac = optional_unicast_mac(o, "mac", "");
        before.mtu = static_cast<std::uint32_t>(o.unsigned_integer("mtu", 68, 65535).value_or(0));
        before.up = o.boolean("up").value_or(false);
        before.on_bridge = o.boolean("on_bridge").value_or(false);
        before.isolated = o.boolean("isolated").value_or(false);
        before.hairpin = o.boolean("hairpin").value_or(false);
        o.finish();
        p.original = before;
    }
    if (const json* bandwidth = r.get("bandwidth")) {
        ObjectReader b(*bandwidth, r.field("bandwidth"));
        if (const json* in = b.get("inbound")) p.inbound = parse_rate(*in, b.field("inbound"));
        if (const json* out = b.get("outbound")) p.outbound = parse_rate(*out, b.field("outbound"));
        b.finish();
    }
    r.finish();
    validate_port(p, field);
    return p;
}

Port parse_port(const std::string& text) { return parse_port(parse_json_text(text, "port", "port"), "port"); }

json to_json(const Port& p)
{
    json j = {{"name", p.name}};
    if (p.tap) {
        j["tap"] = true;
        j["owner"] = p.owner;
        j["group"] = p.group;
        if (p.queues > 1) j["queues"] = p.queues;
    }
    if (p.mac) j["mac"] = p.mac->str();
    if (p.isolated) j["isolated"] = true;
    if (p.vlan_pvid || !p.vlan_tagged.empty()) {
        json vlan = json::object();
        if (p.vlan_pvid) vlan["pvid"] = p.vlan_pvid;
        if (!p.vlan_tagged.empty()) vlan["tagged"] = p.vlan_tagged;
        j["vlan"] = vlan;
    }
    if (p.inbound.average || p.outbound.average) {
        json bw = json::object();
        if (p.inbound.average) bw["inbound"] = rate_json(p.inbound);
        if (p.outbound.average) bw["outbound"] = rate_json(p.outbound);
        j["bandwidth"] = bw;
    }
    if (p.original) {
        const PortOriginal& o = *p.original;
        json original = {{"up", o.up}, {"on_bridge", o.on_bridge}};
        if (o.mac) original["mac"] = o.mac->str();
        if (o.mtu != 0) original["mtu"] = o.mtu;
        if (o.on_bridge) {
            original["isolated"] = o.isolated;
            original["hairpin"] = o.hairpin;
        }
        j["original"] = std::move(original);
    }
    return j;
}

bool valid_unicast_mac(const std::string& mac)
{
    const auto parsed = Mac::parse(mac);
    return parsed && parsed->unicast();
}

void validate_port(const Port& p, const std::string& field)
{
    if (!valid_interface_name(p.name)) throw invalid_interface_name(field + ".name", p.name);
    if (p.mac && !p.mac->unicast())
        throw invalid_field(field + ".mac",
                            "'" + p.mac->str() + "' is not a unicast MAC address like 52:54:00:12:34:56");
    std::set<std::uint16_t> seen;
    for (auto v : p.vlan_tagged) {
        if (!seen.insert(v).second)
            throw invalid_field(field + ".vlan.tagged", "VLAN " + std::to_string(v) + " listed twice");
        if (v == p.vlan_pvid)
            throw invalid_field(field + ".vlan.tagged", "VLAN " + std::to_string(v) + " is also the untagged pvid");
    }
}

namespace {

void validate_ipv6(const Network& n)
{
    const Ipv6Config& v6 = *n.ipv6;
    const Ipv6Interface& a = v6.address;
    const std::string text = a.address.str();
    if (a.prefix < 1) throw invalid_field("ipv6.address", "prefix /0 must be between /1 and /128 (/64 is usual)");
    if (a.address.is_unspecified() || a.address.is_loopback())
        throw invalid_field("ipv6.address", text + " cannot be a gateway address");
    if (a.address.is_multicast()) throw invalid_field("ipv6.address", text + " is a multicast address");
    if (a.address.is_link_local())
        throw invalid_field("ipv6.address", text + " is link-local; use a unique local (fd00::/8) or global prefix");
    if (a.address.is_v4_mapped())
        throw invalid_field("ipv6.address", text + " is an IPv4-mapped address; use a native IPv6 prefix");
    const Ipv6 network = a.network();
    if (a.address == network) {
        Ipv6 first = network;
        first.bytes[15] |= 1;
        throw invalid_field("ipv6.address",
                            "gateway " + text + " is the subnet-router anycast address of " + a.network_str() +
                                "; use a host address such as " +
                                (a.prefix < 128 ? first.str() : std::string("one in a shorter prefix")));
    }
    const auto usable = [&](const Ipv6& ip) { return a.contains(ip) && ip != network; };
    for (std::size_t i = 0; i < v6.ranges.size(); ++i) {
        const auto& r = v6.ranges[i];
        const std::string f = item("ipv6.dhcp.ranges", i);
        const std::string range = r.first.str() + "-" + r.last.str();
        if (!usable(r.first) || !usable(r.last)) throw invalid_field(f, range + " is not inside " + a.network_str());
        if (r.last < r.first) throw invalid_field(f, range + " is reversed");
        if (a.address >= r.first && a.address <= r.last) throw invalid_field(f, "contains the gateway address " + text);
        for (std::size_t k = 0; k < i; ++k) {
            const auto& o = v6.ranges[k];
            if (!(r.last < o.first || o.last < r.first))
                throw invalid_field(f, "overlaps " + item("ipv6.dhcp.ranges", k));
        }
    }
    std::set<std::string> macs, duids, names;
    std::set<Ipv6> ips;
    for (std::size_t i = 0; i < v6.hosts.size(); ++i) {
        const auto& h = v6.hosts[i];
        const std::string f = item("ipv6.dhcp.hosts", i);
        if (!usable(h.ip) || h.ip == a.address)
            throw invalid_field(f + ".ip", h.ip.str() + " is not a free host address inside " + a.network_str());
        if (!h.mac.empty() && !macs.insert(h.mac).second) throw invalid_field(f + ".mac", "duplicate MAC " + h.mac);
        if (!h.duid.empty() && !duids.insert(h.duid).second)
            throw invalid_field(f + ".duid", "duplicate DUID " + h.duid);
        if (!ips.insert(h.ip).second) throw invalid_field(f + ".ip", "duplicate address " + h.ip.str());
        // DNS names compare without regard to case.
        if (!h.name.empty() && !names.insert(lower(h.name)).second)
            throw invalid_field(f + ".name", "duplicate name " + h.name);
    }
    // Hosts form their SLAAC addresses from a /64 prefix only (RFC 4862 with
    // 64-bit interface identifiers); dnsmasq refuses other lengths for it.
    if (v6.ra && v6.ranges.empty() && a.prefix != 64)
        throw invalid_field("ipv6.address", "SLAAC needs a /64 prefix, not /" + std::to_string(a.prefix) +
                                                "; give ipv6.dhcp.ranges for stateful DHCPv6, or set ipv6.ra to "
                                                "false");
    if (v6.nat66 && n.mode != Mode::nat) throw invalid_field("ipv6.nat66", "only meaningful for nat networks");
}

}  // namespace

void validate(const Network& n)
{
    if (!valid_network_name(n.name)) throw invalid_field("name", "'" + n.name + "' is not a valid network name");
    // Ports: names and MACs unique within the network.
    std::set<std::string> port_names;
    std::map<Mac, std::string> port_macs;  // MAC -> port name
    for (std::size_t i = 0; i < n.ports.size(); ++i) {
        const Port& p = n.ports[i];
        const std::string f = item("ports", i);
        validate_port(p, f);
        if (!port_names.insert(p.name).second) throw invalid_field(f + ".name", "port " + p.name + " listed twice");
        if (p.mac && !port_macs.emplace(*p.mac, p.name).second)
            throw Error(ErrorKind::Conflict, f + ".mac: " + p.mac->str() + " is already used by port " +
                                                 port_macs[*p.mac] + " of this network");
        if (p.name == n.bridge || p.name == n.uplink)
            throw invalid_field(f + ".name",
                                p.name + " is the network's " + (p.name == n.bridge ? "bridge" : "uplink"));
    }
    validate_forwards(n);
    if (n.fast_path && n.mode != Mode::nat && n.mode != Mode::routed)
        throw invalid_field("fast_path", "only for nat and routed networks (their traffic is forwarded)");
    if (n.fast_path && n.uplink.empty())
        throw invalid_field("fast_path", "needs \"uplink\": the flowtable covers the bridge and the uplink");
    // The kernel only accepts 2-30 s while STP runs (and would silently clamp).
    if (n.stp && n.forward_delay < 2)
        throw invalid_field("forward_delay",
                            "must be between 2 and 30 seconds when stp is on (15 is the IEEE default)");
    if (n.mode == Mode::bridge) {
        // Guests take their addresses from the LAN: no subnet, no DHCP here.
        if (n.uplink.empty())
            throw invalid_field("uplink",
                                "required for bridge mode: the host interface towards the LAN (e.g. \"eth0\")");
        if (n.ipv4) throw invalid_field("ipv4", "not used in bridge mode: guests get addresses from the LAN");
        if (!n.dns.empty()) throw invalid_field("dns", "not used in bridge mode: guests use the LAN's DNS");
        if (n.ipv6) throw invalid_field("ipv6", "not used in bridge mode: guests get addresses from the LAN");
        if (n.uplink == n.bridge) throw invalid_field("uplink", "must differ from the bridge name");
        if (n.overlay) validate_overlay(n);
        return;
    }
    if (!n.ipv4) throw invalid_field("ipv4", std::string("required for mode ") + std::string(mode_name(n.mode)));
    if (!n.uplink.empty() && n.mode != Mode::nat && n.mode != Mode::routed)
        throw invalid_field("uplink", "only meaningful for nat and routed networks");
    if (!n.uplink.empty() && n.uplink == n.bridge)
        throw invalid_field("uplink",
                            "'" + n.uplink + "' is the network's own bridge; name the interface towards the outside");

    const Ipv4Interface& a = n.ipv4->address;
    if (a.prefix < 8 || a.prefix > 30)
        throw invalid_field("ipv4.address", "prefix /" + std::to_string(a.prefix) + " must be between /8 and /30");
    // Addresses no host may use as its own on a LAN: dnsmasq would serve
    // DHCP there, and guests would route through a gateway nobody reaches.
    const std::uint32_t gw = a.address.value;
    const char* special = (gw >> 24) == 0        ? "in 0.0.0.0/8 (\"this network\", never a source)"
                          : (gw >> 24) == 127    ? "a loopback address (127.0.0.0/8)"
                          : (gw >> 16) == 0xa9fe ? "link-local (169.254.0.0/16)"
                          : (gw >> 28) == 0xe    ? "a multicast address (224.0.0.0/4)"
                          : (gw >> 28) == 0xf    ? "in the reserved range 240.0.0.0/4 (255.255.255.255 included)"
                                                 : nullptr;
    if (special)
        throw invalid_field("ipv4.address", "gateway " + a.address.str() + " is " + special +
                                                "; use a private subnet such as 192.168.122.1/24");
    if (a.address == a.network() || a.address == a.broadcast())
        throw invalid_field("ipv4.address", "gateway " + a.address.str() + " is the network or broadcast address of " +
                                                a.network_str() + "; use a host address such as " +
                                                Ipv4{a.network().value + 1}.str());
    const auto usable = [&](Ipv4 ip) { return a.contains(ip) && ip != a.network() && ip != a.broadcast(); };

    for (std::size_t i = 0; i < n.ipv4->ranges.size(); ++i) {
        const auto& r = n.ipv4->ranges[i];
        const std::string f = item("ipv4.dhcp.ranges", i);
        if (!usable(r.first) || !usable(r.last))
            throw invalid_field(f, r.first.str() + "-" + r.last.str() + " is not inside " + a.network_str());
        if (r.last < r.first) throw invalid_field(f, r.first.str() + "-" + r.last.str() + " is reversed");
        if (a.address >= r.first && a.address <= r.last)
            throw invalid_field(f, "contains the gateway address " + a.address.str());
        for (std::size_t k = 0; k < i; ++k) {
            const auto& o = n.ipv4->ranges[k];
            if (!(r.last < o.first || o.last < r.first))
                throw invalid_field(f, "overlaps " + item("ipv4.dhcp.ranges", k));
        }
    }
    std::set<std::string> macs, names;
    std::set<Ipv4> ips;
    for (std::size_t i = 0; i < n.ipv4->hosts.size(); ++i) {
        const auto& h = n.ipv4->hosts[i];
        const std::string f = item("ipv4.dhcp.hosts", i);
        if (!usable(h.ip) || h.ip == a.address)
            throw invalid_field(f + ".ip", h.ip.str() + " is not a free host address inside " + a.network_str());
        if (!macs.insert(h.mac).second) throw invalid_field(f + ".mac", "duplicate MAC " + h.mac);
        if (!ips.insert(h.ip).second) throw invalid_field(f + ".ip", "duplicate address " + h.ip.str());
        // DNS names compare without regard to case.
        if (!h.name.empty() && !names.insert(lower(h.name)).second)
            throw invalid_field(f + ".name", "duplicate name " + h.name);
    }
    if (n.ipv6) validate_ipv6(n);
    if (n.overlay) validate_overlay(n);
    for (std::size_t i = 0; i < n.dns.forwarders.size(); ++i)
        if (n.dns.forwarders[i] == a.address.str() || (n.ipv6 && n.dns.forwarders[i] == n.ipv6->address.address.str()))
            throw invalid_field(item("dns.forwarders", i),
                                n.dns.forwarders[i] + " is this network's own DNS server (its gateway)");
}

void validate_against(const Network& n, const std::vector<Network>& others)
{
    for (const Network& o : others) {
        if (o.name == n.name)
            throw Error(ErrorKind::AlreadyExists, "name: a network named '" + n.name + "' already exists");
        if (!n.bridge.empty() && o.bridge == n.bridge)
            throw Error(ErrorKind::Conflict, "bridge: " + n.bridge + " is already used by network '" + o.name + "'");
        if (n.mode == Mode::bridge && o.mode == Mode::bridge && n.uplink == o.uplink)
            throw Error(ErrorKind::Conflict,
                        "uplink: " + n.uplink + " is already the uplink of network '" + o.name + "'");
        for (const Port& p : n.ports)
            for (const Port& q : o.ports) {
                if (p.name == q.name)
                    throw Error(ErrorKind::Conflict,
                                "ports: " + p.name + " is already a port of network '" + o.name + "'");
                if (p.mac && p.mac == q.mac)
                    throw Error(ErrorKind::Conflict, "ports: MAC " + p.mac->str() + " is already used by port " +
                                                         q.name + " of network '" + o.name + "'");
            }
        if (n.ipv4 && o.ipv4 && n.ipv4->address.overlaps(o.ipv4->address))
            throw Error(ErrorKind::Conflict, "ipv4.address: " + n.ipv4->address.network_str() + " overlaps " +
                                                 o.ipv4->address.network_str() + " of network '" + o.name + "'");
        if (n.ipv6 && o.ipv6 && n.ipv6->address.overlaps(o.ipv6->address))
            throw Error(ErrorKind::Conflict, "ipv6.address: " + n.ipv6->address.network_str() + " overlaps " +
                                                 o.ipv6->address.network_str() + " of network '" + o.name + "'");
        if (n.overlay && o.overlay && n.overlay->vni == o.overlay->vni)
            throw Error(ErrorKind::Conflict, "overlay.vni: VNI " + std::to_string(n.overlay->vni) +
                                                 " is already the overlay of network '" + o.name + "'");
    }
    validate_forwards_against(n, others);
}

}  // namespace kvmnet::model
