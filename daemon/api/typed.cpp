#include "api/typed.hpp"
#include <algorithm>

#include <charconv>
#include <cstdint>
#include <utility>
#include <vector>

namespace kvmnet::api {
namespace {

using nlohmann::json;

std::string text(const json& j, const char* key)
{
    const auto it = j.find(key);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

template <typename T>
T number(const json& j, const char* key)
{
    const auto it = j.find(key);
    return it != j.end() && it->is_number() ? it->get<T>() : T{};
}

bool flag(const json& j, const char* key)
{
    const auto it = j.find(key);
    return it != j.end() && it->is_boolean() && it->get<bool>();
}

// A port in the document's JSON is a number, or "FIRST-LAST" for a range.
std::pair<std::uint16_t, std::uint16_t> port_range(const json& j, const char* key)
{
    const auto it = j.find(key);
    if (it == j.end()) return {0, 0};
    if (it->is_number()) {
        const auto port = it->get<std::uint16_t>();
        return {port, port};
    }
    if (!it->is_string()) return {0, 0};
    const std::string s = it->get<std::string>();
    std::uint16_t first = 0, last = 0;
    const auto dash = s.find('-');
    std::from_chars(s.data(), s.data() + (dash == std::string::npos ? s.size() : dash), first);
    if (dash == std::string::npos) return {first, first};
    std::from_chars(s.data() + dash + 1, s.data() + s.size(), last);
    return {first, last};
}

}  // namespace

VarDict typed_lease(const json& l, bool static_host)
{
    const std::string address = text(l, "ip");
    std::string family = text(l, "family");
    if (family.empty()) family = address.find(':') == std::string::npos ? "ipv4" : "ipv6";
    std::string type = text(l, "type");
    if (type.empty()) type = static_host ? "static" : "dynamic";
    return {{"mac", sdbus::Variant(text(l, "mac"))},
            {"address", sdbus::Variant(address)},
            {"hostname", sdbus::Variant(text(l, "hostname"))},
            {"client_id", sdbus::Variant(text(l, "client_id"))},
            {"expires", sdbus::Variant(number<std::int64_t>(l, "expiry"))},
            {"family", sdbus::Variant(family)},
            {"type", sdbus::Variant(type)},
            {"vtep", sdbus::Variant(text(l, "vtep"))}};
}

VarDict typed_port(const json& p)
{
    return {{"name", sdbus::Variant(text(p, "name"))},
            {"tap", sdbus::Variant(flag(p, "tap"))},
            {"owner", sdbus::Variant(number<std::uint32_t>(p, "owner"))},
            {"group", sdbus::Variant(number<std::uint32_t>(p, "group"))},
            // The document leaves out a tap's single queue.
            {"queues", sdbus::Variant(flag(p, "tap") ? std::max(number<std::uint32_t>(p, "queues"), 1u) : 0u)},
            {"multi_queue", sdbus::Variant(flag(p, "multi_queue"))},
            {"open_queues", sdbus::Variant(number<std::uint32_t>(p, "open_queues"))},
            {"mac", sdbus::Variant(text(p, "mac"))},
            {"isolated", sdbus::Variant(flag(p, "isolated"))},
            {"state", sdbus::Variant(text(p, "state"))},
            {"problem", sdbus::Variant(text(p, "problem"))},
            {"host_mac", sdbus::Variant(text(p, "host_mac"))},
            {"rx_bytes", sdbus::Variant(number<std::uint64_t>(p, "rx_bytes"))},
            {"tx_bytes", sdbus::Variant(number<std::uint64_t>(p, "tx_bytes"))},
            {"rx_packets", sdbus::Variant(number<std::uint64_t>(p, "rx_packets"))},
            {"tx_packets", sdbus::Variant(number<std::uint64_t>(p, "tx_packets"))}};
}

VarDict typed_forward(const json& f)
{
    const auto [host_first, host_last] = port_range(f, "host_port");
    const auto [guest_first, guest_last] = port_range(f, "guest_port");
    std::string guest_address = text(f, "guest_address");
    if (guest_address.empty()) guest_address = text(f, "guest");
    return {{"proto", sdbus::Variant(text(f, "proto"))},
            {"host_address", sdbus::Variant(text(f, "host_address"))},
            {"host_port", sdbus::Variant(host_first)},
            {"host_port_end", sdbus::Variant(host_last)},
            {"guest", sdbus::Variant(text(f, "guest"))},
            {"guest_address", sdbus::Variant(guest_address)},
            {"guest_port", sdbus::Variant(guest_first)},
            {"guest_port_end", sdbus::Variant(guest_last)},
            {"description", sdbus::Variant(text(f, "description"))},
            {"rate", sdbus::Variant(number<std::uint32_t>(f, "rate"))},
            {"connections", sdbus::Variant(number<std::uint64_t>(f, "connections"))},
            {"first_packet_bytes", sdbus::Variant(number<std::uint64_t>(f, "first_packet_bytes"))},
            {"dropped", sdbus::Variant(number<std::uint64_t>(f, "dropped"))},
            {"problem", sdbus::Variant(text(f, "problem"))}};
}

VarDict typed_statistics(const json& s)
{
    std::vector<VarDict> drops;
    if (const auto it = s.find("drops"); it != s.end() && it->is_array())
        for (const json& d : *it)
            drops.push_back({{"rule", sdbus::Variant(text(d, "rule"))},
                             {"chain", sdbus::Variant(text(d, "chain"))},
                             {"packets", sdbus::Variant(number<std::uint64_t>(d, "packets"))},
                             {"bytes", sdbus::Variant(number<std::uint64_t>(d, "bytes"))}});
    const json forwards = s.value("forwards", json::object());
    return {{"running", sdbus::Variant(flag(s, "running"))},
            {"drops", sdbus::Variant(drops)},
            {"forward_count", sdbus::Variant(number<std::uint64_t>(forwards, "count"))},
            {"forward_connections", sdbus::Variant(number<std::uint64_t>(forwards, "connections"))},
            {"forward_dropped", sdbus::Variant(number<std::uint64_t>(forwards, "dropped"))}};
}

}  // namespace kvmnet::api
