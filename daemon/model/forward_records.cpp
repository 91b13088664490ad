#include "model/forward_records.hpp"

#include "model/error.hpp"

#include <cstring>
#include <limits>

namespace kvmnet::model {

namespace {

std::string index_field(std::size_t i) { return std::string("forwards[").append(std::to_string(i)).append("]"); }

void put16(std::string& out, std::uint16_t v)
{
    out += static_cast<char>(v & 0xff);
    out += static_cast<char>(v >> 8);
}

void put32(std::string& out, std::uint32_t v)
{
    for (int shift = 0; shift < 32; shift += 8)
        out += static_cast<char>((v >> shift) & 0xff);
}

std::uint16_t get16(const unsigned char* p) { return static_cast<std::uint16_t>(p[0] | (p[1] << 8)); }

std::uint32_t get32(const unsigned char* p)
{
    return static_cast<std::uint32_t>(p[0]) | (static_cast<std::uint32_t>(p[1]) << 8) |
           (static_cast<std::uint32_t>(p[2]) << 16) | (static_cast<std::uint32_t>(p[3]) << 24);
}

std::size_t checked_length(const std::string& value, std::size_t limit, std::size_t i, const char* name)
{
    if (value.size() > limit)
        throw invalid_field(index_field(i).append(".").append(name),
                            std::string("longer than ").append(std::to_string(limit)).append(" bytes"));
    return value.size();
}

}  // namespace

std::string encode_forward_records(const std::vector<ForwardFields>& forwards)
{
    if (forwards.size() > max_forwards)
        throw invalid_field("forwards",
                            std::string("more than ").append(std::to_string(max_forwards)).append(" entries"));
    std::size_t size = forward_records_header_size;
    for (const ForwardFields& f : forwards)
        size +=
            forward_record_fixed_size + f.proto.size() + f.host_address.size() + f.guest.size() + f.description.size();
    std::string out;
    out.reserve(size);
    out.append(forward_records_magic);
    put32(out, forward_records_version);
    put32(out, static_cast<std::uint32_t>(forwards.size()));
    constexpr std::size_t byte = std::numeric_limits<std::uint8_t>::max();
    constexpr std::size_t word = std::numeric_limits<std::uint16_t>::max();
    for (std::size_t i = 0; i < forwards.size(); ++i) {
        const ForwardFields& f = forwards[i];
        const std::size_t proto = checked_length(f.proto, byte, i, "proto");
        const std::size_t address = checked_length(f.host_address, byte, i, "host_address");
        const std::size_t guest = checked_length(f.guest, byte, i, "guest");
        const std::size_t description = checked_length(f.description, word, i, "description");
        put16(out, f.host_port);
        put16(out, f.host_port_end);
        put16(out, f.guest_port);
        out += static_cast<char>(proto);
        out += static_cast<char>(address);
        out += static_cast<char>(guest);
        out += '\0';
        put16(out, static_cast<std::uint16_t>(description));
        put32(out, f.rate);
        out += f.proto;
        out += f.host_address;
        out += f.guest;
        out += f.description;
    }
    return out;
}

std::vector<ForwardFields> decode_forward_records(std::string_view bytes)
{
    if (bytes.size() < forward_records_header_size)
        throw invalid_field(
            "records",
            std::string("truncated header (").append(std::to_string(bytes.size())).append(" bytes, a header is 16)"));
    const auto* data = reinterpret_cast<const unsigned char*>(bytes.data());
    if (bytes.substr(0, forward_records_magic.size()) != forward_records_magic)
        throw invalid_field("records", "not forward records (the magic \"KVFWDREC\" is missing)");
    const std::uint32_t version = get32(data + 8);
    if (version != forward_records_version)
        throw invalid_field(
            "records", std::string("version ").append(std::to_string(version)).append(" is not supported (only 1 is)"));
    const std::uint32_t count = get32(data + 12);
    if (count > max_forwards)
        throw invalid_field("records", std::string("count ")
                                           .append(std::to_string(count))
                                           .append(" is more than ")
                                           .append(std::to_string(max_forwards)));
    std::size_t at = forward_records_header_size;
    // Every record takes at least its fixed part: a count the bytes cannot
    // hold is refused before anything is reserved.
    if ((bytes.size() - at) / forward_record_fixed_size < count)
        throw invalid_field("records", std::string("count ")
                                           .append(std::to_string(count))
                                           .append(" does not fit in ")
                                           .append(std::to_string(bytes.size()))
                                           .append(" bytes"));
    std::vector<ForwardFields> forwards(count);
    for (std::size_t i = 0; i < count; ++i) {
        if (bytes.size() - at < forward_record_fixed_size)
            throw invalid_field(index_field(i), "truncated (the record's fixed part runs past the end)");
        const unsigned char* p = data + at;
        ForwardFields& f = forwards[i];
        f.host_port = get16(p);
        f.host_port_end = get16(p + 2);
        f.guest_port = get16(p + 4);
        const std::size_t lengths[4] = {p[6], p[7], p[8], get16(p + 10)};
        if (p[9] != 0) throw invalid_field(index_field(i), "reserved byte is not 0");
        f.rate = get32(p + 12);
        at += forward_record_fixed_size;
        std::string* const strings[4] = {&f.proto, &f.host_address, &f.guest, &f.description};
        static constexpr const char* names[4] = {"proto", "host_address", "guest", "description"};
        for (int s = 0; s < 4; ++s) {
            if (bytes.size() - at < lengths[s])
                throw invalid_field(index_field(i).append(".").append(names[s]),
                                    std::string("truncated (")
                                        .append(std::to_string(lengths[s]))
                                        .append(" bytes, ")
                                        .append(std::to_string(bytes.size() - at))
                                        .append(" left)"));
            const std::string_view value = bytes.substr(at, lengths[s]);
            if (value.find('\0') != std::string_view::npos)
                throw invalid_field(index_field(i).append(".").append(names[s]), "contains a NUL byte");
            strings[s]->assign(value);
            at += lengths[s];
        }
    }
    if (at != bytes.size())
        throw invalid_field("records", std::to_string(bytes.size() - at).append(" bytes after the last record"));
    return forwards;
}

}  // namespace kvmnet::model
