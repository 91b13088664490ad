// Parsing, serialisation and validation of port forwards and limits.
#include "model/forward.hpp"
#include "model/forward_text.hpp"

#include "model/json_reader.hpp"
#include "model/json_text.hpp"

#include "model/network.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <functional>
#include <map>
#include <set>
#include <tuple>
#include <unordered_map>

namespace kvmnet::model {
namespace {

using json = nlohmann::json;
using detail::item;
using detail::lower;
using detail::ObjectReader;
using detail::type_name;
using detail::valid_host_name;

// A connection count or rate: 1 .. max_connection_limit.
std::optional<std::uint32_t> count(ObjectReader& r, const std::string& key)
{
    const auto n = r.unsigned_integer(key, 1, max_connection_limit);
    return n ? std::optional<std::uint32_t>(static_cast<std::uint32_t>(*n)) : std::nullopt;
}

// Why `ip` cannot be a host address to forward from, or nothing.
std::optional<std::string> unusable_host_address(Ipv4 ip)
{
    if (ip.value == 0) return "0.0.0.0 is not a host address (leave host_address out to forward on every address)";
    if (ip.value == 0xffffffffu) return "255.255.255.255 is the broadcast address";
    if ((ip.value >> 28) == 0xe) return ip.str() + " is a multicast address";
    if ((ip.value >> 28) == 0xf) return ip.str() + " is a reserved address (240.0.0.0/4)";
    return std::nullopt;
}

std::optional<std::string> unusable_host_address6(const Ipv6& ip)
{
    if (ip.is_unspecified()) return ":: is not a host address (leave host_address out to forward on every address)";
    if (ip.is_multicast()) return ip.str() + " is a multicast address";
    if (ip.is_link_local()) return ip.str() + " is a link-local address, which needs an interface";
    if (ip.is_v4_mapped()) return ip.str() + " is an IPv4-mapped address; give the IPv4 address itself";
    if (ip.is_loopback()) return "::1 cannot be forwarded: IPv6 never routes loopback traffic off the host";
    return std::nullopt;
}

// "80" or "8080-8090": 1-5 decimal digits without leading zeros.
std::optional<std::uint32_t> port_number(const std::string& text)
{
    if (text.empty() || text.size() > 5 || (text.size() > 1 && text[0] == '0')) return std::nullopt;
    if (!std::all_of(text.begin(), text.end(), [](unsigned char c) { return std::isdigit(c); })) return std::nullopt;
    return static_cast<std::uint32_t>(std::stoul(text));
}

struct PortRange {
    std::uint16_t first = 0;
    std::uint16_t last = 0;
    std::uint32_t count() const { return std::uint32_t{last} - first + 1; }
};

PortRange parse_port_range(const json& v, const std::string& field)
{
    const std::string range_error = "must be between 1 and 65535";
    if (v.is_number_integer()) {
        if (v.is_number_unsigned() || v.get<std::int64_t>() >= 0) {
            const auto n = v.get<std::uint64_t>();
            if (n >= 1 && n <= 65535) return {static_cast<std::uint16_t>(n), static_cast<std::uint16_t>(n)};
        }
        throw invalid_field(field, range_error);
    }
    if (!v.is_string())
        throw invalid_field(field, std::string("expected a port (80) or a range (\"8080-8090\"), got ") + type_name(v));
    const auto& text = v.get_ref<const std::string&>();
    const auto dash = text.find('-');
    const auto first = port_number(text.substr(0, dash));
    const auto last = dash == std::string::npos ? first : port_number(text.substr(dash + 1));
    if (!first || !last)
        throw invalid_field(field, "expected a port (80) or a range (\"8080-8090\"), got '" + text + "'");
    if (*first < 1 || *first > 65535 || *last < 1 || *last > 65535) throw invalid_field(field, range_error);
    if (*last < *first) throw invalid_field(field, "range '" + text + "' is reversed");
    return {static_cast<std::uint16_t>(*first), static_cast<std::uint16_t>(*last)};
}

std::string port_text(std::uint32_t first, std::uint32_t last)
{
    return first == last ? std::to_string(first) : std::to_string(first) + "-" + std::to_string(last);
}

// The host address (none: every address) and the guest (an address or a
// static host's name) of a forward, from their text; both families agree.
// `field(key)` names a member in an error; called only for one (the typed
// bulk path reads 100,000 forwards without building their names).
template <typename Field>
void set_addresses(PortForward& f, const std::string* address, const std::string& guest, const Field& field)
{
    bool host_v6 = false;
    if (address) {
        if (const auto ip = Ipv4::parse(*address)) {
            f.host_address = *ip;
        } else if (const auto ip6 = Ipv6::parse(*address)) {
            f.host_address6 = *ip6;
            host_v6 = true;
        } else {
            throw invalid_field(field("host_address"), "'" + *address + "' is not an IPv4 or IPv6 address");
        }
    }
    if (const auto ip = Ipv4::parse(guest)) {
        f.guest = *ip;
    } else if (const auto ip6 = Ipv6::parse(guest)) {
        f.ipv6 = true;
        f.guest6 = *ip6;
    } else if (valid_host_name(guest)) {
        f.guest_name = guest;
    } else if (guest.empty()) {
        throw invalid_field(field("guest"), "required (the guest's address or its static DHCP host name)");
    } else {
        throw invalid_field(field("guest"), "'" + guest + "' is neither an IP address nor a host name");
    }
    if ((f.host_address || f.host_address6) && host_v6 != f.ipv6)
        throw invalid_field(field("host_address"),
                            f.ipv6 ? "an IPv6 guest needs an IPv6 host address (or none: every host IPv6 address)"
                                   : "an IPv6 host address needs an IPv6 guest address");
}

json port_json(std::uint32_t first, std::uint32_t last)
{
    if (first == last) return first;
    return port_text(first, last);
}

std::string host_side(const PortForward& f)
{
    const std::string address = f.ipv6 ? (f.host_address6 ? "[" + f.host_address6->str() + "]" : "[::]")
                                       : (f.host_address ? f.host_address->str() : "*");
    return std::string(proto_name(f.proto)) + " " + address + ":" + port_text(f.host_port_first, f.host_port_last);
}

// Static DHCP host names (lower case) to addresses.
std::unordered_map<std::string, Ipv4> host_names(const Network& n)
{
    std::unordered_map<std::string, Ipv4> names;
    if (n.ipv4)
        for (const auto& h : n.ipv4->hosts)
            if (!h.name.empty()) names.emplace(lower(h.name), h.ip);
    return names;
}

// ---- Overlap detection without comparing every pair -----------------------
//
// A forward becomes one Span per protocol it covers (tcp = 0, udp = 1).
// Spans clash when protocol matches, addresses overlap (`any` overlaps every
// address) and port intervals intersect.

// IPv6 spans get protocols of their own (2, 3): the families never clash.
struct Span {
    int proto = 0;
    bool any = true;
    std::array<std::uint8_t, 16> address{};
    std::uint16_t first = 0;
    std::uint16_t last = 0;
    std::size_t owner = 0;  // index of the forward (and, across networks, of its network)
    std::size_t network = 0;

    auto group() const { return std::tuple(proto, !any, address); }
};

template <class Add>
void for_each_span(const PortForward& f, Add add)
{
    Span s;
    if (f.ipv6) {
        s.any = !f.host_address6;
        if (f.host_address6) s.address = f.host_address6->bytes;
    } else {
        s.any = !f.host_address;
        if (f.host_address)
            for (int i = 0; i < 4; ++i)
                s.address[static_cast<std::size_t>(i)] =
                    static_cast<std::uint8_t>(f.host_address->value >> (24 - 8 * i));
    }
    s.first = f.host_port_first;
    s.last = f.host_port_last;
    const int family = f.ipv6 ? 2 : 0;
    if (f.proto != Proto::udp) add(Span{s}, family + 0);
    if (f.proto != Proto::tcp) add(Span{s}, family + 1);
}

std::vector<Span> spans_of(const std::vector<PortForward>& forwards, std::size_t network)
{
    std::vector<Span> spans;
    spans.reserve(forwards.size());
    for (std::size_t i = 0; i < forwards.size(); ++i)
        for_each_span(forwards[i], [&](Span s, int proto) {
            s.proto = proto;
            s.owner = i;
            s.network = network;
            spans.push_back(s);
        });
    return spans;
}

// Some pair of clashing spans of one set (indices into `forwards`), smaller first.
std::optional<std::pair<std::size_t, std::size_t>> find_clash(const std::vector<PortForward>& forwards)
{
    std::vector<Span> spans = spans_of(forwards, 0);
    std::sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) {
        return std::tuple(a.group(), a.first, a.last) < std::tuple(b.group(), b.first, b.last);
    });
    const auto clash = [](const Span& a, const Span& b) {
        return std::pair(std::min(a.owner, b.owner), std::max(a.owner, b.owner));
    };
    // Within one (protocol, address) group: sorted by first port, the spans
    // so far are disjoint, so the previous one ends last.
    for (std::size_t i = 1; i < spans.size(); ++i)
        if (spans[i].group() == spans[i - 1].group() && spans[i].first <= spans[i - 1].last)
            return clash(spans[i - 1], spans[i]);
    // Every-address spans against specific-address spans of the same
    // protocol: the every-address spans of a protocol come first in its
    // part, disjoint, so their last ports are sorted too.
    for (std::size_t begin = 0; begin < spans.size();) {
        std::size_t end = begin;
        while (end < spans.size() && spans[end].proto == spans[begin].proto)
            ++end;
        std::size_t any_end = begin;
        while (any_end < end && spans[any_end].any)
            ++any_end;
        for (std::size_t i = any_end; i < end && any_end > begin; ++i) {
            const Span& s = spans[i];
            auto it = std::lower_bound(spans.begin() + static_cast<std::ptrdiff_t>(begin),
                                       spans.begin() + static_cast<std::ptrdiff_t>(any_end), s.first,
                                       [](const Span& a, std::uint16_t port) { return a.last < port; });
            if (it != spans.begin() + static_cast<std::ptrdiff_t>(any_end) && it->first <= s.last) return clash(*it, s);
        }
        begin = end;
    }
    return std::nullopt;
}

// The spans of other networks, grouped by (protocol, address) and sorted by
// first port, with the running maximum of last ports, so "does anything in
// this group intersect [first, last]" is a binary search even when the
// group's spans overlap each other.
class SpanIndex {
public:
    explicit SpanIndex(const std::vector<Network>& networks)
    {
        for (std::size_t n = 0; n < networks.size(); ++n)
            for (const Span& s : spans_of(networks[n].forwards, n))
                groups_[s.group()].spans.push_back(s);
        for (auto& [key, g] : groups_) {
            std::sort(g.spans.begin(), g.spans.end(), [](const Span& a, const Span& b) { return a.first < b.first; });
            g.longest.resize(g.spans.size());
            for (std::size_t i = 0; i < g.spans.size(); ++i)
                g.longest[i] = i == 0 || g.spans[i].last > g.spans[g.longest[i - 1]].last ? i : g.longest[i - 1];
        }
    }

    const Span* find(const Span& s) const
    {
        if (s.any) {
            // Every address: every group of the protocol.
            for (auto it = groups_.lower_bound(std::tuple(s.proto, false, std::array<std::uint8_t, 16>{}));
                 it != groups_.end() && std::get<0>(it->first) == s.proto; ++it)
                if (const Span* hit = find_in(it->second, s)) return hit;
            return nullptr;
        }
        for (const auto& key : {std::tuple(s.proto, false, std::array<std::uint8_t, 16>{}), s.group()}) {
            auto it = groups_.find(key);
            if (it == groups_.end()) continue;
            if (const Span* hit = find_in(it->second, s)) return hit;
        }
        return nullptr;
    }

private:
    struct Group {
        std::vector<Span> spans;
        std::vector<std::size_t> longest;  // longest[i]: the span with the greatest last port among 0..i
    };

    static const Span* find_in(const Group& g, const Span& s)
    {
        auto end = std::upper_bound(g.spans.begin(), g.spans.end(), s.last,
                                    [](std::uint16_t port, const Span& a) { return port < a.first; });
        if (end == g.spans.begin()) return nullptr;
        const Span& candidate = g.spans[g.longest[static_cast<std::size_t>(end - g.spans.begin()) - 1]];
        return candidate.last >= s.first ? &candidate : nullptr;
    }

    std::map<std::tuple<int, bool, std::array<std::uint8_t, 16>>, Group> groups_;
};

}  // namespace

ForwardIndex::ForwardIndex(const std::vector<PortForward>& forwards)
{
    for (const PortForward& f : forwards)
        insert(f);
}

void ForwardIndex::merge(ForwardIndex&& other)
{
    for (auto& [group, spans] : other.groups_) {
        auto [at, fresh] = groups_.try_emplace(group);
        if (fresh)
            at->second = std::move(spans);
        else
            at->second.merge(spans);
    }
    size_ += other.size_;
    other.groups_.clear();
    other.size_ = 0;
}

void ForwardIndex::insert(const PortForward& f)
{
    const ForwardKey key = forward_key(f);
    for_each_span(f, [&](Span s, int proto) {
        s.proto = proto;
        groups_[s.group()].insert_or_assign(s.first, Held{s.last, key});
    });
    ++size_;
}

void ForwardIndex::erase(const PortForward& f)
{
    const ForwardKey key = forward_key(f);
    bool found = false;
    for_each_span(f, [&](Span s, int proto) {
        s.proto = proto;
        const auto group = groups_.find(s.group());
        if (group == groups_.end()) return;
        const auto it = group->second.find(s.first);
        if (it == group->second.end() || it->second.key != key) return;
        group->second.erase(it);
        if (group->second.empty()) groups_.erase(group);
        found = true;
    });
    if (found) --size_;
}

std::optional<ForwardKey> ForwardIndex::find(const PortForward& f) const
{
    // Held spans of one group do not overlap, so the one starting last at
    // or before `last` is the only candidate.
    const auto in = [](const std::map<std::uint16_t, Held>& group, const Span& s) -> const Held* {
        auto it = group.upper_bound(s.last);
        if (it == group.begin()) return nullptr;
        --it;
        return it->second.last >= s.first ? &it->second : nullptr;
    };
    std::optional<ForwardKey> hit;
    for_each_span(f, [&](Span s, int proto) {
        if (hit) return;
        s.proto = proto;
        if (s.any) {
            // Every address: every group of the protocol.
            for (auto it = groups_.lower_bound(GroupKey(proto, false, {}));
                 it != groups_.end() && std::get<0>(it->first) == proto; ++it)
                if (const Held* h = in(it->second, s)) {
                    hit = h->key;
                    return;
                }
            return;
        }
        for (const GroupKey& key : {GroupKey(proto, false, {}), s.group()}) {
            const auto it = groups_.find(key);
            if (it == groups_.end()) continue;
            if (const Held* h = in(it->second, s)) {
                hit = h->key;
                return;
            }
        }
    });
    return hit;
}

std::string_view proto_name(Proto proto)
{
    switch (proto) {
    case Proto::tcp: return "tcp";
    case Proto::udp: return "udp";
    case Proto::both: return "both";
    }
    return "tcp";
}

std::optional<Proto> parse_proto(std::string_view text)
{
    if (text == "tcp") return Proto::tcp;
    if (text == "udp") return Proto::udp;
    if (text == "both") return Proto::both;
    return std::nullopt;
}

ForwardKey forward_key(const PortForward& f)
{
    if (f.ipv6) return {f.proto, std::nullopt, f.host_port_first, true, f.host_address6};
    return {f.proto, f.host_address, f.host_port_first, false, std::nullopt};
}

bool same_forward(const PortForward& a, const PortForward& b) { return forward_key(a) == forward_key(b); }

ForwardKey make_forward_key(const std::string& proto, const std::string& host_address, std::uint32_t host_port)
{
    ForwardKey key;
    const auto p = parse_proto(proto);
    if (!p) throw invalid_field("proto", "unknown protocol '" + proto + "' (expected tcp, udp or both)");
    key.proto = *p;
    if (host_address == "::") {
        key.ipv6 = true;
    } else if (const auto ip6 = Ipv6::parse(host_address); ip6 && host_address.find(':') != std::string::npos) {
        if (auto why = unusable_host_address6(*ip6)) throw invalid_field("host_address", *why);
        key.ipv6 = true;
        key.host_address6 = *ip6;
    } else if (!host_address.empty()) {
        const auto ip = Ipv4::parse(host_address);
        if (!ip) throw invalid_field("host_address", "'" + host_address + "' is not an IPv4 or IPv6 address");
        if (auto why = unusable_host_address(*ip)) throw invalid_field("host_address", *why);
        key.host_address = *ip;
    }
    if (host_port < 1 || host_port > 65535) throw invalid_field("host_port", "must be between 1 and 65535");
    key.host_port = static_cast<std::uint16_t>(host_port);
    return key;
}

std::string describe(const ForwardKey& key)
{
    const std::string address = key.ipv6 ? (key.host_address6 ? "[" + key.host_address6->str() + "]" : "[::]")
                                         : (key.host_address ? key.host_address->str() : "*");
    return std::string(proto_name(key.proto)) + " " + address + ":" + std::to_string(key.host_port);
}

std::string describe(const PortForward& f)
{
    // append, not "[" + std::string&&: GCC 12's -Wrestrict false positive at -O3 (bug 105329).
    const std::string guest = f.ipv6                 ? std::string("[").append(f.guest6.str()).append("]")
                              : f.guest_name.empty() ? f.guest.str()
                                                     : f.guest_name;
    return host_side(f) + " -> " + guest + ":" + port_text(f.guest_port_first, f.guest_port_last());
}

bool forwards_overlap(const PortForward& a, const PortForward& b)
{
    const bool proto = a.proto == Proto::both || b.proto == Proto::both || a.proto == b.proto;
    if (a.ipv6 != b.ipv6) return false;
    const bool address = a.ipv6 ? !a.host_address6 || !b.host_address6 || *a.host_address6 == *b.host_address6
                                : !a.host_address || !b.host_address || *a.host_address == *b.host_address;
    return proto && address && a.host_port_first <= b.host_port_last && b.host_port_first <= a.host_port_last;
}

PortForward parse_forward(const json& j, const std::string& field)
{
    ObjectReader r(j, field);
    PortForward f;

    const auto proto = r.string("proto");
    if (!proto) throw invalid_field(r.field("proto"), "required (tcp, udp or both)");
    const auto p = parse_proto(*proto);
    if (!p) throw invalid_field(r.field("proto"), "unknown protocol '" + *proto + "' (expected tcp, udp or both)");
    f.proto = *p;

    const json* host_port = r.get("host_port");
    if (!host_port)
        throw invalid_field(r.field("host_port"), "required (a port such as 8080 or a range \"8080-8090\")");
    const PortRange host = parse_port_range(*host_port, r.field("host_port"));
    f.host_port_first = host.first;
    f.host_port_last = host.last;

    const auto address = r.string("host_address");
    const auto guest = r.string("guest");
    if (!guest) throw invalid_field(r.field("guest"), "required (the guest's address or its static DHCP host name)");
    set_addresses(f, address ? &*address : nullptr, *guest, [&r](const char* key) { return r.field(key); });

    const json* guest_port = r.get("guest_port");
    if (!guest_port) throw invalid_field(r.field("guest_port"), "required (a port such as 80 or a range \"80-90\")");
    const PortRange target = parse_port_range(*guest_port, r.field("guest_port"));
    if (target.count() != host.count())
        throw invalid_field(r.field("guest_port"),
                            "guest ports " + port_text(target.first, target.last) + " (" +
                                std::to_string(target.count()) + ") must be as many as host ports " +
                                port_text(host.first, host.last) + " (" + std::to_string(host.count()) + ")");
    f.guest_port_first = target.first;

    f.description = r.string("description").value_or("");
    f.rate = count(r, "rate");
    r.finish();
    validate_forward(f, field);
    return f;
}

std::vector<PortForward> parse_forwards(const json& j)
{
    if (j.is_object()) return {parse_forward(j, "forward")};
    if (!j.is_array())
        throw invalid_field("forwards",
                            std::string("expected a forward object or an array of them, got ") + type_name(j));
    if (j.empty()) throw invalid_field("forwards", "no forwards given");
    if (j.size() > max_forwards)
        throw invalid_field("forwards", "more than " + std::to_string(max_forwards) + " entries");
    std::vector<PortForward> forwards;
    forwards.reserve(j.size());
    for (std::size_t i = 0; i < j.size(); ++i)
        forwards.push_back(parse_forward(j[i], item("forwards", i)));
    return forwards;
}

std::vector<PortForward> parse_forwards(const std::string& text)
{
    return parse_forwards(parse_json_text(text, "forwards", "forward"));
}

PortForward forward_from_fields(const ForwardFields& t, const std::string& field)
{
    PortForward f;
    const auto p = parse_proto(t.proto);
    if (!p) throw invalid_field(field + ".proto", "unknown protocol '" + t.proto + "' (expected tcp, udp or both)");
    f.proto = *p;
    if (t.host_port == 0) throw invalid_field(field + ".host_port", "must be between 1 and 65535");
    f.host_port_first = t.host_port;
    f.host_port_last = t.host_port_end == 0 ? t.host_port : t.host_port_end;
    set_addresses(f, t.host_address.empty() ? nullptr : &t.host_address, t.guest,
                  [&field](const char* key) { return std::string(field).append(".").append(key); });
    f.guest_port_first = t.guest_port;
    f.description = t.description;
    if (t.rate != 0) f.rate = t.rate;
    validate_forward(f, field);
    return f;
}

ForwardFields fields_of(const PortForward& f)
{
    ForwardFields t;
    t.proto = proto_name(f.proto);
    t.host_port = f.host_port_first;
    t.host_port_end = f.host_port_last;
    if (f.ipv6) {
        if (f.host_address6) t.host_address = f.host_address6->str();
        t.guest = f.guest6.str();
    } else {
        if (f.host_address) t.host_address = f.host_address->str();
        t.guest = f.guest_name.empty() ? f.guest.str() : f.guest_name;
    }
    t.guest_port = f.guest_port_first;
    t.description = f.description;
    t.rate = f.rate.value_or(0);
    return t;
}

std::vector<PortForward> forwards_from_fields(const std::vector<ForwardFields>& fields)
{
    if (fields.empty()) throw invalid_field("forwards", "no forwards given");
    if (fields.size() > max_forwards)
        throw invalid_field("forwards", "more than " + std::to_string(max_forwards) + " entries");
    std::vector<PortForward> forwards;
    forwards.reserve(fields.size());
    for (std::size_t i = 0; i < fields.size(); ++i)
        forwards.push_back(forward_from_fields(fields[i], item("forwards", i)));
    return forwards;
}

json to_json(const PortForward& f)
{
    json j = {{"proto", proto_name(f.proto)}, {"host_port", port_json(f.host_port_first, f.host_port_last)}};
    if (f.ipv6) {
        if (f.host_address6) j["host_address"] = f.host_address6->str();
        j["guest"] = f.guest6.str();
    } else {
        if (f.host_address) j["host_address"] = f.host_address->str();
        j["guest"] = f.guest_name.empty() ? f.guest.str() : f.guest_name;
    }
    j["guest_port"] = port_json(f.guest_port_first, f.guest_port_last());
    if (!f.description.empty()) j["description"] = f.description;
    if (f.rate) j["rate"] = *f.rate;
    return j;
}

namespace {

// A number, without a temporary string.
void append_number(std::string& out, std::uint64_t n)
{
    char buffer[24];
    const auto r = std::to_chars(buffer, buffer + sizeof buffer, n);
    out.append(buffer, r.ptr);
}

// A port range as port_json writes it: one number, or "first-last".
void append_ports(std::string& out, std::uint32_t first, std::uint32_t last)
{
    if (first == last) return append_number(out, first);
    out += '"';
    append_number(out, first);
    out += '-';
    append_number(out, last);
    out += '"';
}

}  // namespace

void append_json(std::string& out, const PortForward& f)
{
    // No temporary strings: numbers and IPv4 addresses are written digit by
    // digit (100,000 forwards are one journal line).
    const auto number = [&out](std::uint32_t n) { append_number(out, n); };
    const auto ports = [&out](std::uint32_t first, std::uint32_t last) { append_ports(out, first, last); };
    // Addresses and host names need no escaping; a description may.
    const auto ipv4 = [&out](Ipv4 ip) { append_json_ipv4(out, ip); };
    const auto text = [&out](const std::string& s) {
        out += '"';
        out += s;
        out += '"';
    };
    out += R"({"proto":")";
    out += proto_name(f.proto);
    out += R"(","host_port":)";
    ports(f.host_port_first, f.host_port_last);
    if (f.ipv6 ? f.host_address6.has_value() : f.host_address.has_value()) {
        out += R"(,"host_address":)";
        if (f.ipv6)
            text(f.host_address6->str());
        else
            ipv4(*f.host_address);
    }
    out += R"(,"guest":)";
    if (f.ipv6)
        text(f.guest6.str());
    else if (!f.guest_name.empty())
        text(f.guest_name);
    else
        ipv4(f.guest);
    out += R"(,"guest_port":)";
    ports(f.guest_port_first, f.guest_port_last());
    if (!f.description.empty()) {
        out += R"(,"description":)";
        out += json(f.description).dump();
    }
    if (f.rate) {
        out += R"(,"rate":)";
        number(*f.rate);
    }
    out += '}';
}

// A JSON string as nlohmann dumps it: text that needs no escaping as it
// is; anything else (quotes, backslashes, control characters, non-ASCII
// bytes) through nlohmann itself.
void append_json_string(std::string& out, std::string_view s)
{
    const bool plain = std::all_of(s.begin(), s.end(), [](char c) {
        const auto u = static_cast<unsigned char>(c);
        return u >= 0x20 && u < 0x80 && c != '"' && c != '\\';
    });
    if (!plain) {
        out += json(std::string(s)).dump();
        return;
    }
    out += '"';
    out += s;
    out += '"';
}

namespace {

// A forward's object as dump() (indent < 0) or as dump(2) at `indent`
// writes it (see append_pretty_json_text).
void write_forward(std::string& out, const PortForward& f, const ForwardListing& listing, int indent, int step)
{
    const auto number = [&out](std::uint64_t n) { append_number(out, n); };
    const auto ports = [&out](std::uint32_t first, std::uint32_t last) { append_ports(out, first, last); };
    const bool pretty = indent >= 0;
    const auto members = static_cast<std::size_t>(pretty ? indent + step : 0);
    bool first = true;
    const auto key = [&](const char* name) {
        out += first ? '{' : ',';
        first = false;
        if (pretty) {
            out += '\n';
            out.append(members, ' ');
        }
        out += '"';
        out += name;
        out += pretty ? "\": " : "\":";
    };
    // The members in nlohmann's (alphabetical) order.
    if (listing.counters) {
        key("connections");
        number(listing.connections);
    }
    if (!f.description.empty()) {
        key("description");
        append_json_string(out, f.description);
    }
    if (listing.counters) {
        key("dropped");
        number(listing.dropped);
        key("first_packet_bytes");
        number(listing.first_packet_bytes);
    }
    key("guest");
    if (f.ipv6)
        append_json_string(out, f.guest6.str());
    else if (f.guest_name.empty())
        append_json_ipv4(out, f.guest);
    else
        append_json_string(out, f.guest_name);
    if (listing.guest_address) {
        key("guest_address");
        append_json_ipv4(out, f.guest);
    }
    key("guest_port");
    ports(f.guest_port_first, f.guest_port_last());
    if (f.ipv6 ? f.host_address6.has_value() : f.host_address.has_value()) {
        key("host_address");
        if (f.ipv6)
            append_json_string(out, f.host_address6->str());
        else
            append_json_ipv4(out, *f.host_address);
    }
    key("host_port");
    ports(f.host_port_first, f.host_port_last);
    if (listing.counters && listing.missing != 0) {
        key("problem");
        out += '"';
        number(listing.missing);
        out += " element(s) missing from the kernel\"";
    }
    key("proto");
    append_json_string(out, proto_name(f.proto));
    if (f.rate) {
        key("rate");
        number(*f.rate);
    }
    if (pretty) {
        out += '\n';
        out.append(static_cast<std::size_t>(indent), ' ');
    }
    out += '}';
}

}  // namespace

void append_json_text(std::string& out, const PortForward& f, const ForwardListing& listing)
{
    write_forward(out, f, listing, -1, 0);
}

void append_pretty_json_text(std::string& out, const PortForward& f, int indent, int step)
{
    write_forward(out, f, {}, indent, step);
}

void append_json_ipv4(std::string& out, Ipv4 ip)
{
    out += '"';
    for (int shift = 24; shift >= 0; shift -= 8) {
        const unsigned octet = (ip.value >> shift) & 0xffu;
        if (octet >= 100) out += static_cast<char>('0' + octet / 100);
        if (octet >= 10) out += static_cast<char>('0' + octet / 10 % 10);
        out += static_cast<char>('0' + octet % 10);
        if (shift != 0) out += '.';
    }
    out += '"';
}

Limits parse_limits(const json& j, const std::string& field)
{
    ObjectReader r(j, field);
    Limits limits;
    limits.new_connections_per_second = count(r, "new_connections_per_second");
    limits.connections_per_source = count(r, "connections_per_source");
    r.finish();
    return limits;
}

json to_json(const Limits& limits)
{
    json j = json::object();
    if (limits.new_connections_per_second) j["new_connections_per_second"] = *limits.new_connections_per_second;
    if (limits.connections_per_source) j["connections_per_source"] = *limits.connections_per_source;
    return j;
}

void validate_forward(const PortForward& f, const std::string& field)
{
    if (f.host_port_first < 1) throw invalid_field(field + ".host_port", "must be between 1 and 65535");
    if (f.host_port_last < f.host_port_first)
        throw invalid_field(field + ".host_port", "range " + std::to_string(f.host_port_first) + "-" +
                                                      std::to_string(f.host_port_last) + " is reversed");
    if (f.host_address)
        if (auto why = unusable_host_address(*f.host_address)) throw invalid_field(field + ".host_address", *why);
    if (f.ipv6) {
        if (f.host_address6)
            if (auto why = unusable_host_address6(*f.host_address6)) throw invalid_field(field + ".host_address", *why);
        if (f.guest6.is_unspecified() || f.guest6.is_loopback() || f.guest6.is_multicast() ||
            f.guest6.is_link_local() || f.guest6.is_v4_mapped())
            throw invalid_field(field + ".guest", f.guest6.str() + " is not a usable guest address");
    } else if (f.guest_name.empty() && f.guest.value == 0)
        throw invalid_field(field + ".guest",
                            "0.0.0.0 is not a guest address; give the guest's address or its static DHCP host name");
    if (!f.guest_name.empty() && !valid_host_name(f.guest_name))
        throw invalid_field(field + ".guest", "'" + f.guest_name + "' is not a valid host name");
    if (f.guest_port_first < 1 || f.guest_port_last() > 65535)
        throw invalid_field(field + ".guest_port", "guest ports " + port_text(f.guest_port_first, f.guest_port_last()) +
                                                       " must be between 1 and 65535");
    if (f.description.size() > max_forward_description)
        throw invalid_field(field + ".description",
                            "longer than " + std::to_string(max_forward_description) + " bytes");
    if (!printable_utf8(f.description))
        throw invalid_field(field + ".description", "must be printable text (UTF-8, no control characters)");
    if (f.rate && (*f.rate < 1 || *f.rate > max_connection_limit))
        throw invalid_field(field + ".rate", "must be between 1 and " + std::to_string(max_connection_limit));
}

void validate_limits(const Limits& limits, const std::string& field)
{
    const auto check = [&](const std::optional<std::uint32_t>& v, const char* key) {
        if (v && (*v < 1 || *v > max_connection_limit))
            throw invalid_field(field + "." + key, "must be between 1 and " + std::to_string(max_connection_limit));
    };
    check(limits.new_connections_per_second, "new_connections_per_second");
    check(limits.connections_per_source, "connections_per_source");
}

void resolve_forward_guests(Network& n)
{
    if (n.forwards.empty()) return;
    const auto names = host_names(n);
    for (PortForward& f : n.forwards) {
        if (f.guest_name.empty()) continue;
        auto it = names.find(lower(f.guest_name));
        f.guest = it == names.end() ? Ipv4{} : it->second;
    }
}

namespace {

// validate_forward, and the guest inside the network's subnet (a named
// guest at its static host's address).
void check_in_network(const Network& n, const std::unordered_map<std::string, Ipv4>& names, const PortForward& f,
                      const std::string& field)
{
    validate_forward(f, field);
    if (f.ipv6) {
        if (!n.ipv6)
            throw invalid_field(field + ".guest", f.guest6.str() + " is an IPv6 address, and the network has no ipv6 "
                                                                   "subnet");
        const Ipv6Interface& a6 = n.ipv6->address;
        if (!a6.contains(f.guest6))
            throw invalid_field(field + ".guest",
                                f.guest6.str() + " is not inside the network's IPv6 subnet " + a6.network_str());
        if (f.guest6 == a6.network())
            throw invalid_field(field + ".guest",
                                f.guest6.str() + " is the subnet-router anycast address of " + a6.network_str());
        if (f.guest6 == a6.address)
            throw invalid_field(field + ".guest", f.guest6.str() + " is the gateway (the host's own address)");
        return;
    }
    const Ipv4Interface& a = n.ipv4->address;
    Ipv4 guest = f.guest;
    if (!f.guest_name.empty()) {
        auto it = names.find(lower(f.guest_name));
        if (it == names.end())
            throw invalid_field(field + ".guest",
                                "no static DHCP host named '" + f.guest_name + "' in this network (ipv4.dhcp.hosts)");
        guest = it->second;
    }
    if (!a.contains(guest))
        throw invalid_field(field + ".guest", guest.str() + " is not inside the network's subnet " + a.network_str());
    if (guest == a.network() || guest == a.broadcast())
        throw invalid_field(field + ".guest",
                            guest.str() + " is the network or broadcast address of " + a.network_str());
    if (guest == a.address)
        throw invalid_field(field + ".guest", guest.str() + " is the gateway (the host's own address)");
}

}  // namespace

void check_added_forwards(const Network& n, std::vector<PortForward>& added,
                          const std::function<std::string(std::size_t)>& field)
{
    if (added.empty()) throw invalid_field("forwards", "no forward given");
    if (n.mode != Mode::nat)
        throw invalid_field("forwards",
                            "port forwards need a nat network, not a " + std::string(mode_name(n.mode)) + " network");
    if (!n.ipv4) throw invalid_field("forwards", "port forwards need the network's ipv4 subnet");
    if (n.forwards.size() + added.size() > max_forwards)
        throw invalid_field("forwards", "a network holds at most " + std::to_string(max_forwards) + " forwards (" +
                                            std::to_string(n.forwards.size()) + " exist)");
    const auto names = host_names(n);
    for (std::size_t i = 0; i < added.size(); ++i) {
        PortForward& f = added[i];
        check_in_network(n, names, f, field(i));
        if (!f.guest_name.empty()) f.guest = names.at(lower(f.guest_name));
        check_overlay_forward(n, f, field(i));
    }
}

void check_added_overlaps(const Network& n, const ForwardIndex& own, const std::vector<PortForward>& added,
                          const std::function<std::string(std::size_t)>& field,
                          const std::vector<IndexedForwards>& others, ForwardIndex* added_index)
{
    const auto clash = [&](std::size_t i, const std::string& what, const PortForward& other) {
        return Error(ErrorKind::Conflict,
                     field(i) + ": " + host_side(added[i]) + " " + what + " (" + host_side(other) + ")");
    };
    // Only a refusal looks for the forward's position, to name it.
    const auto position = [](const std::vector<PortForward>& forwards, const ForwardKey& key) {
        std::size_t k = 0;
        while (k + 1 < forwards.size() && forward_key(forwards[k]) != key)
            ++k;
        return k;
    };
    // The added ones so far, for the clashes among them (one index: they
    // are checked one by one, so the ones it holds never overlap).
    ForwardIndex earlier;
    for (std::size_t i = 0; i < added.size(); ++i) {
        const PortForward& f = added[i];
        if (const auto hit = earlier.find(f)) {
            const std::size_t j = position(added, *hit);
            throw clash(i, "overlaps " + field(j), added[j]);
        }
        if (const auto hit = own.find(f)) {
            const std::size_t k = position(n.forwards, *hit);
            throw clash(i, "is already forwarded by this network, " + item("forwards", k), n.forwards[k]);
        }
        for (const IndexedForwards& o : others)
            if (const auto hit = o.index->find(f)) {
                const std::size_t k = position(o.network->forwards, *hit);
                throw clash(i, "is already forwarded by network '" + o.network->name + "', " + item("forwards", k),
                            o.network->forwards[k]);
            }
        if (i + 1 < added.size() || added_index) earlier.insert(f);
    }
    if (added_index) *added_index = std::move(earlier);
}

void validate_added_forwards(const Network& n, std::vector<PortForward>& added,
                             const std::function<std::string(std::size_t)>& field,
                             const std::vector<const Network*>& others)
{
    check_added_forwards(n, added, field);
    std::vector<ForwardIndex> indexes;
    indexes.reserve(others.size());
    std::vector<IndexedForwards> indexed;
    for (const Network* o : others) {
        if (o->forwards.empty()) continue;
        indexes.emplace_back(o->forwards);
        indexed.push_back({o, &indexes.back()});
    }
    check_added_overlaps(n, ForwardIndex(n.forwards), added, field, indexed);
}

void validate_forwards(const Network& n)
{
    if (!n.limits.empty()) {
        if (n.mode != Mode::nat && n.mode != Mode::routed)
            throw invalid_field("limits", "connection limits apply to nat and routed networks, not to " +
                                              std::string(mode_name(n.mode)) + " networks");
        validate_limits(n.limits);
    }
    if (n.forwards.empty()) return;
    if (n.mode != Mode::nat)
        throw invalid_field("forwards",
                            "port forwards need a nat network, not a " + std::string(mode_name(n.mode)) + " network");
    if (n.forwards.size() > max_forwards)
        throw invalid_field("forwards", "more than " + std::to_string(max_forwards) + " entries");
    if (!n.ipv4) return;  // validate() names the missing subnet

    const auto names = host_names(n);
    for (std::size_t i = 0; i < n.forwards.size(); ++i)
        check_in_network(n, names, n.forwards[i], item("forwards", i));
    if (auto clash = find_clash(n.forwards)) {
        const auto [earlier, later] = *clash;
        throw Error(ErrorKind::Conflict, item("forwards", later) + ": " + host_side(n.forwards[later]) + " overlaps " +
                                             item("forwards", earlier) + " (" + host_side(n.forwards[earlier]) + ")");
    }
}

void validate_forwards_against(const Network& n, const std::vector<Network>& others)
{
    if (n.forwards.empty()) return;
    const auto conflict = [&](std::size_t i, std::size_t network, std::size_t k) {
        const Network& o = others[network];
        return Error(ErrorKind::Conflict, item("forwards", i) + ": " + host_side(n.forwards[i]) +
                                              " is already forwarded by network '" + o.name + "' (" +
                                              item("forwards", k) + ": " + host_side(o.forwards[k]) + ")");
    };
    // A few new forwards (the usual AddForwards): compare directly, linear
    // in the existing forwards. Many: index the others once.
    if (n.forwards.size() <= 8) {
        for (std::size_t i = 0; i < n.forwards.size(); ++i)
            for (std::size_t o = 0; o < others.size(); ++o)
                for (std::size_t k = 0; k < others[o].forwards.size(); ++k)
                    if (forwards_overlap(n.forwards[i], others[o].forwards[k])) throw conflict(i, o, k);
        return;
    }
    const SpanIndex index(others);
    for (const Span& s : spans_of(n.forwards, 0))
        if (const Span* hit = index.find(s)) throw conflict(s.owner, hit->network, hit->owner);
}

}  // namespace kvmnet::model
