#include "fake_links.hpp"

#include "model/ipv4.hpp"

namespace kvmnet::test {

// ---- text forms: every field, so comparing texts compares whole structs ----

namespace {

std::string text_of(const std::optional<model::IpAddress>& ip) { return ip ? ip->str() : std::string(); }

}  // namespace

std::string text(const AddressInfo& a)
{
    std::ostringstream s;
    s << "address dev#" << a.link_index << " family " << a.family() << " " << a.address.str() << "/"
      << int(a.prefix_length) << " brd '" << (a.broadcast ? a.broadcast->str() : std::string()) << "' label '"
      << a.label << "' scope " << int(a.scope) << " flags " << a.flags << " valid " << a.valid_lifetime << " preferred "
      << a.preferred_lifetime;
    return s.str();
}

std::string text(const RouteInfo& r)
{
    std::ostringstream s;
    s << "route family " << r.family << " table " << r.table << " "
      << (r.destination ? r.destination->str() : std::string("default")) << "/" << int(r.prefix_length) << " via '"
      << (r.unreproducible ? std::string("multipath") : text_of(r.gateway)) << "' src '" << text_of(r.preferred_source)
      << "' dev#" << r.link_index << " metric " << r.metric << " proto " << int(r.protocol) << " scope " << int(r.scope)
      << " type " << int(r.type) << " flags " << r.flags;
    return s.str();
}

// The manager's own wording of an address and a route in step names.
std::string address_step_text(const AddressInfo& a) { return a.address.str() + "/" + std::to_string(a.prefix_length); }
std::string route_step_text(const RouteInfo& r)
{
    return (r.destination ? r.destination->str() + "/" + std::to_string(r.prefix_length) : std::string("default")) +
           (r.gateway ? " via " + r.gateway->str() : "") + " metric " + std::to_string(r.metric) + " table " +
           std::to_string(r.table);
}

model::IpAddress network_of(const model::IpAddress& address, unsigned prefix)
{
    if (const model::Ipv4* v4 = address.v4())
        return model::Ipv4Interface{*v4, static_cast<std::uint8_t>(prefix)}.network();
    return model::ipv6_masked(*address.v6(), prefix);
}

bool route_covers(const RouteInfo& r, const model::IpAddress& ip)
{
    const model::IpAddress destination =
        r.destination ? *r.destination
                      : (r.family == AF_INET ? model::IpAddress(model::Ipv4{}) : model::IpAddress(model::Ipv6{}));
    return ip.family() == destination.family() &&
           network_of(destination, r.prefix_length) == network_of(ip, r.prefix_length);
}

model::IpAddress ip(const std::string& text)
{
    const auto parsed = model::IpAddress::parse(text);
    REQUIRE(parsed);
    return *parsed;
}

// IPv4 labels follow the link they are on, as the real adapter rewrites them.
std::string label_for(const std::string& link, const std::string& label)
{
    if (label.empty() || label == link || label.rfind(link + ":", 0) == 0) return label.empty() ? link : label;
    const auto colon = label.find(':');
    return colon == std::string::npos ? link : link + label.substr(colon);
}

}  // namespace kvmnet::test
