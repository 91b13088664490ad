#include "core/takeover_record.hpp"

#include "store/files.hpp"

#include <stdexcept>

namespace kvmnet::plan {
namespace {

std::string text(const std::optional<model::IpAddress>& ip) { return ip ? ip->str() : std::string(); }

std::optional<model::IpAddress> address_at(const nlohmann::json& j, const char* key)
{
    const std::string text = j.at(key).get<std::string>();
    if (text.empty()) return std::nullopt;
    auto ip = model::IpAddress::parse(text);
    if (!ip) throw std::invalid_argument(std::string(key) + ": not an address: \"" + text + "\"");
    return ip;
}

}  // namespace

void to_json(nlohmann::json& j, const AddressInfo& a)
{
    j = {{"family", a.family()},
         {"address", a.address.str()},
         {"prefix_length", a.prefix_length},
         {"broadcast", a.broadcast ? a.broadcast->str() : std::string()},
         {"label", a.label},
         {"scope", a.scope},
         {"flags", a.flags},
         {"valid_lifetime", a.valid_lifetime},
         {"preferred_lifetime", a.preferred_lifetime}};
}

void from_json(const nlohmann::json& j, AddressInfo& a)
{
    const auto address = address_at(j, "address");
    if (!address || address->family() != j.at("family").get<int>())
        throw std::invalid_argument("address: not an address of family " + j.at("family").dump());
    a.address = *address;
    a.prefix_length = j.at("prefix_length").get<std::uint8_t>();
    const auto broadcast = address_at(j, "broadcast");
    if (broadcast && !broadcast->v4()) throw std::invalid_argument("broadcast: not an IPv4 address");
    a.broadcast = broadcast ? std::optional<model::Ipv4>(*broadcast->v4()) : std::nullopt;
    j.at("label").get_to(a.label);
    j.at("scope").get_to(a.scope);
    j.at("flags").get_to(a.flags);
    j.at("valid_lifetime").get_to(a.valid_lifetime);
    j.at("preferred_lifetime").get_to(a.preferred_lifetime);
}

void to_json(nlohmann::json& j, const RouteInfo& r)
{
    j = {{"family", r.family},
         {"destination", text(r.destination)},
         {"prefix_length", r.prefix_length},
         {"gateway", r.unreproducible ? std::string("multipath") : text(r.gateway)},
         {"preferred_source", text(r.preferred_source)},
         {"table", r.table},
         {"metric", r.metric},
         {"protocol", r.protocol},
         {"scope", r.scope},
         {"type", r.type},
         {"flags", r.flags}};
}

void from_json(const nlohmann::json& j, RouteInfo& r)
{
    j.at("family").get_to(r.family);
    r.destination = address_at(j, "destination");
    j.at("prefix_length").get_to(r.prefix_length);
    // The marker the adapter once used for a route it cannot recreate.
    r.unreproducible = j.at("gateway") == "multipath";
    r.gateway = r.unreproducible ? std::nullopt : address_at(j, "gateway");
    r.preferred_source = address_at(j, "preferred_source");
    j.at("table").get_to(r.table);
    j.at("metric").get_to(r.metric);
    j.at("protocol").get_to(r.protocol);
    j.at("scope").get_to(r.scope);
    j.at("type").get_to(r.type);
    j.at("flags").get_to(r.flags);
}

}  // namespace kvmnet::plan

namespace kvmnet::core {

void write_takeover_record(const std::string& path, const TakeoverRecord& record)
{
    store::write_replace(path, nlohmann::json(record).dump(2) + "\n");
}

std::optional<TakeoverRecord> read_takeover_record(const std::string& path, std::string& problem)
{
    const auto text = store::read_file(path);
    if (!text) return std::nullopt;
    try {
        return nlohmann::json::parse(*text).get<TakeoverRecord>();
    } catch (const std::exception& err) {
        problem = path + ": " + err.what();
        return std::nullopt;
    }
}

}  // namespace kvmnet::core
