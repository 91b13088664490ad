// nft's value spelling, as plan::render writes it and `nft list` shows it:
// addresses as inet_pton/inet_ntop text, MACs as model::Mac, protocols by
// name where nft has one, ports as numbers, interface names zero-padded.
#include "kernel/nft_codec.hpp"

#include "kernel/nft_common.hpp"
#include "model/mac.hpp"

#include <arpa/inet.h>
#include <linux/netfilter/nf_tables.h>
#include <net/if.h>

#include <algorithm>
#include <cstring>
#include <optional>

namespace kvmnet::kernel::nft {
namespace {

// nft's datatype numbers (src/datatype.h: TYPE_IPADDR, ...); a concatenation
// is the types shifted in 6 bits at a time, first type highest.
constexpr unsigned concat_type_bits = 6;

std::uint32_t type_id(plan::SetType t)
{
    switch (t) {
    case plan::SetType::ipv4_addr: return 7;
    case plan::SetType::ipv6_addr: return 8;
    case plan::SetType::ether_addr: return 9;
    case plan::SetType::inet_proto: return 12;
    case plan::SetType::inet_service: return 13;
    case plan::SetType::ifname: return 41;
    case plan::SetType::verdict: return NFT_DATA_VERDICT;
    }
    throw invalid_plan("unknown set type");
}

constexpr std::uint32_t round4(std::uint32_t n) { return (n + 3) / 4 * 4; }
struct Protocol {
    std::uint8_t number;
    const char* name;
};
constexpr Protocol protocols[] = {{1, "icmp"},       {6, "tcp"},    {17, "udp"},     {33, "dccp"},
                                  {58, "ipv6-icmp"}, {132, "sctp"}, {136, "udplite"}};

std::optional<unsigned long> parse_number(const std::string& text, unsigned long max)
{
    if (text.empty() || text.size() > 10 || text.find_first_not_of("0123456789") != std::string::npos) return {};
    const unsigned long n = std::stoul(text);
    if (n > max) return {};
    return n;
}

// Writes the value `text` of type `t` at `out` (type_length(t) bytes, zeroed).
void encode_value(plan::SetType t, const std::string& text, unsigned char* out)
{
    const auto bad = [&](const std::string& why) {
        return invalid_plan("\"" + text + "\" is not a valid " + plan::set_type_text(t) + why);
    };
    switch (t) {
    case plan::SetType::ipv4_addr:
        if (inet_pton(AF_INET, text.c_str(), out) != 1) throw bad("");
        return;
    case plan::SetType::ipv6_addr:
        if (inet_pton(AF_INET6, text.c_str(), out) != 1) throw bad("");
        return;
    case plan::SetType::ether_addr: {
        const auto mac = model::Mac::parse(text);
        if (!mac) throw bad(" (six hex bytes separated by colons)");
        std::memcpy(out, mac->bytes.data(), mac->bytes.size());
        return;
    }
    case plan::SetType::inet_proto: {
        for (const Protocol& p : protocols) {
            if (text == p.name) {
                out[0] = p.number;
                return;
            }
        }
        const auto n = parse_number(text, 255);
        if (!n) throw bad(" (a protocol name or 0 to 255)");
        out[0] = static_cast<unsigned char>(*n);
        return;
    }
    case plan::SetType::inet_service: {
        const auto n = parse_number(text, 65535);
        if (!n) throw bad(" (0 to 65535)");
        const std::uint16_t port = htons(static_cast<std::uint16_t>(*n));
        std::memcpy(out, &port, sizeof port);
        return;
    }
    case plan::SetType::ifname:
        if (text.empty() || text.size() >= IFNAMSIZ || text.find('\0') != std::string::npos) {
            throw bad(" (1 to " + std::to_string(IFNAMSIZ - 1) + " bytes)");
        }
        std::memcpy(out, text.data(), text.size());
        return;
    case plan::SetType::verdict: throw bad(" (a verdict is not a value)");
    }
    throw bad("");
}

std::string decode_value(plan::SetType t, const unsigned char* in)
{
    char buffer[INET6_ADDRSTRLEN] = {};
    switch (t) {
    case plan::SetType::ipv4_addr: return inet_ntop(AF_INET, in, buffer, sizeof buffer);
    case plan::SetType::ipv6_addr: return inet_ntop(AF_INET6, in, buffer, sizeof buffer);
    case plan::SetType::ether_addr: return model::Mac::from_bytes(in).str();
    case plan::SetType::inet_proto:
        for (const Protocol& p : protocols) {
            if (p.number == in[0]) return p.name;
        }
        return std::to_string(in[0]);
    case plan::SetType::inet_service: {
        std::uint16_t port = 0;
        std::memcpy(&port, in, sizeof port);
        return std::to_string(ntohs(port));
    }
    case plan::SetType::ifname:
        return std::string(reinterpret_cast<const char*>(in), strnlen(reinterpret_cast<const char*>(in), IFNAMSIZ));
    case plan::SetType::verdict: return {};
    }
    return {};
}

}  // namespace

std::uint32_t type_length(plan::SetType t)
{
    switch (t) {
    case plan::SetType::ipv4_addr: return 4;
    case plan::SetType::ipv6_addr: return 16;
    case plan::SetType::ether_addr: return 6;
    case plan::SetType::inet_proto: return 1;
    case plan::SetType::inet_service: return 2;
    case plan::SetType::ifname: return IFNAMSIZ;
    case plan::SetType::verdict: return 0;  // not a value: the kernel's struct nft_verdict
    }
    throw invalid_plan("unknown set type");
}

std::uint32_t type_byteorder(plan::SetType t)
{
    switch (t) {
    case plan::SetType::inet_proto: return 0;
    case plan::SetType::ifname: return 1;
    case plan::SetType::verdict: return 0;
    default: return 2;
    }
}

Layout layout(const std::vector<plan::SetType>& types, const std::string& what)
{
    if (types.empty()) throw invalid_plan(what + " has no type");
    if (types.size() == 1 && types[0] == plan::SetType::verdict) return Layout{NFT_DATA_VERDICT, 0, {0}};
    if (std::find(types.begin(), types.end(), plan::SetType::verdict) != types.end())
        throw invalid_plan(what + " concatenates a verdict");
    if (types.size() > 1 && types.size() * concat_type_bits > 32)
        throw invalid_plan(what + " concatenates too many types");
    Layout l;
    for (plan::SetType t : types) {
        l.id = (l.id << concat_type_bits) | type_id(t);
        l.offsets.push_back(l.length);
        l.length += types.size() == 1 ? type_length(t) : round4(type_length(t));
    }
    if (l.length > NFT_DATA_VALUE_MAXLEN) {
        throw invalid_plan(what + " is " + std::to_string(l.length) + " bytes, more than " +
                           std::to_string(NFT_DATA_VALUE_MAXLEN));
    }
    return l;
}

std::vector<unsigned char> encode(const std::vector<plan::SetType>& types, const Layout& l,
                                  const std::vector<std::string>& values, const std::string& what)
{
    if (values.size() != types.size()) {
        throw invalid_plan(what + " has " + std::to_string(values.size()) + " values for " +
                           std::to_string(types.size()) + " types");
    }
    std::vector<unsigned char> bytes(l.length, 0);
    for (std::size_t i = 0; i < types.size(); ++i)
        encode_value(types[i], values[i], bytes.data() + l.offsets[i]);
    return bytes;
}

std::vector<std::string> decode(const std::vector<plan::SetType>& types, const Layout& l, const void* data,
                                std::uint32_t length)
{
    std::vector<std::string> values;
    if (data == nullptr || length != l.length) return values;
    for (std::size_t i = 0; i < types.size(); ++i)
        values.push_back(decode_value(types[i], static_cast<const unsigned char*>(data) + l.offsets[i]));
    return values;
}

Range encode_range(const std::vector<plan::SetType>& types, const Layout& l, const std::vector<std::string>& values,
                   const std::string& what)
{
    if (values.size() != types.size()) {
        throw invalid_plan(what + " has " + std::to_string(values.size()) + " values for " +
                           std::to_string(types.size()) + " types");
    }
    Range r{std::vector<unsigned char>(l.length, 0), std::vector<unsigned char>(l.length, 0)};
    for (std::size_t i = 0; i < types.size(); ++i) {
        const plan::SetType t = types[i];
        const std::string& text = values[i];
        const auto slash = text.find('/');
        unsigned char* first = r.first.data() + l.offsets[i];
        unsigned char* last = r.last.data() + l.offsets[i];
        const bool address = t == plan::SetType::ipv4_addr || t == plan::SetType::ipv6_addr;
        if (slash == std::string::npos || !address) {
            encode_value(t, text, first);
            std::memcpy(last, first, type_length(t));
            continue;
        }
        const std::uint32_t bytes = type_length(t);
        const auto length = parse_number(text.substr(slash + 1), bytes * 8);
        if (!length) {
            throw invalid_plan(what + ": \"" + text + "\" has no prefix length from 0 to " + std::to_string(bytes * 8));
        }
        encode_value(t, text.substr(0, slash), first);
        for (std::uint32_t b = 0; b < bytes; ++b) {
            const std::uint32_t bits = *length > b * 8 ? std::min<std::uint32_t>(8, *length - b * 8) : 0;
            const auto host = static_cast<unsigned char>(bits == 8 ? 0 : 0xff >> bits);
            if ((first[b] & host) != 0) throw invalid_plan(what + ": \"" + text + "\" has host bits set");
            last[b] = first[b] | host;
        }
    }
    return r;
}

std::vector<std::string> decode_range(const std::vector<plan::SetType>& types, const Layout& l, const void* first,
                                      std::uint32_t first_length, const void* last, std::uint32_t last_length)
{
    std::vector<std::string> values;
    if (first == nullptr || first_length != l.length) return values;
    if (last == nullptr || last_length != l.length) last = first;  // no end: a single value
    for (std::size_t i = 0; i < types.size(); ++i) {
        const auto* a = static_cast<const unsigned char*>(first) + l.offsets[i];
        const auto* b = static_cast<const unsigned char*>(last) + l.offsets[i];
        const std::uint32_t bytes = type_length(types[i]);
        std::string text = decode_value(types[i], a);
        if (std::memcmp(a, b, bytes) == 0) {
            values.push_back(std::move(text));
            continue;
        }
        // A prefix: a run of equal bits, then host bits 0 in `a` and 1 in `b`.
        std::uint32_t length = 0;
        bool prefix = true;
        for (std::uint32_t bit = 0; bit < bytes * 8; ++bit) {
            const int x = (a[bit / 8] >> (7 - bit % 8)) & 1, y = (b[bit / 8] >> (7 - bit % 8)) & 1;
            if (length == bit && x == y) {
                ++length;
                continue;
            }
            if (x != 0 || y != 1) prefix = false;
        }
        values.push_back(prefix ? text + "/" + std::to_string(length) : text + "-" + decode_value(types[i], b));
    }
    return values;
}

std::string element_text(const plan::SetElement& e)
{
    std::string text;
    for (const std::string& v : e.key)
        text += (text.empty() ? "" : " . ") + v;
    return text;
}

std::string keys_text(const std::vector<plan::Field>& keys)
{
    std::string text;
    for (plan::Field f : keys)
        text += (text.empty() ? "" : " . ") + std::string(plan::field_text(f));
    return text;
}

std::vector<plan::SetType> key_types(const std::vector<plan::Field>& keys)
{
    std::vector<plan::SetType> types;
    for (plan::Field f : keys)
        types.push_back(plan::field_type(f));
    return types;
}

std::string udata_comment(const void* udata, std::uint32_t length, unsigned type)
{
    const auto* p = static_cast<const unsigned char*>(udata);
    for (std::uint32_t at = 0; at + 2 <= length && at + 2 + p[at + 1] <= length; at += 2 + p[at + 1]) {
        if (p[at] == type && p[at + 1] > 0)
            return {reinterpret_cast<const char*>(p + at + 2),
                    strnlen(reinterpret_cast<const char*>(p + at + 2), p[at + 1])};
    }
    return {};
}
}  // namespace kvmnet::kernel::nft
