#include "fake_links.hpp"

#include "model/ipv4.hpp"

namespace kvmnet::test {

// ---- text forms: every field, so comparing texts compares whole structs ----

std::string text(const AddressInfo& a)
{
    std::ostringstream s;
    s << "address dev#" << a.link_index << " family " << a.family << " " << a.address << "/" << int(a.prefix_length)
      << " brd '" << a.broadcast << "' label '" << a.label << "' scope " << int(a.scope) << " flags " << a.flags
      << " valid " << a.valid_lifetime << " preferred " << a.preferred_lifetime;
    return s.str();
}

std::string text(const RouteInfo& r)
{
    std::ostringstream s;
    s << "route family " << r.family << " table " << r.table << " "
      << (r.destination.empty() ? std::string("default") : r.destination) << "/" << int(r.prefix_length) << " via '"
      << r.gateway << "' src '" << r.preferred_source << "' dev#" << r.link_index << " metric " << r.metric << " proto "
      << int(r.protocol) << " scope " << int(r.scope) << " type " << int(r.type) << " flags " << r.flags;
    return s.str();
}

// The manager's own wording of an address and a route in step names.
std::string address_step_text(const AddressInfo& a) { return a.address + "/" + std::to_string(a.prefix_length); }
std::string route_step_text(const RouteInfo& r)
{
    return (r.destination.empty() ? std::string("default") : r.destination + "/" + std::to_string(r.prefix_length)) +
           (r.gateway.empty() ? "" : " via " + r.gateway) + " metric " + std::to_string(r.metric) + " table " +
           std::to_string(r.table);
}

// The network an address belongs to, textual ("192.168.1.0", "2001:db8::").
std::string network_of(int family, const std::string& address, unsigned prefix)
{
    if (family == AF_INET) {
        const auto ip = model::Ipv4::parse(address.empty() ? "0.0.0.0" : address);
        REQUIRE(ip);
        return model::Ipv4Interface{*ip, static_cast<std::uint8_t>(prefix)}.network().str();
    }
    in6_addr a{};
    REQUIRE(::inet_pton(AF_INET6, address.empty() ? "::" : address.c_str(), &a) == 1);
    for (unsigned bit = prefix; bit < 128; ++bit)
        a.s6_addr[bit / 8] &= static_cast<std::uint8_t>(~(0x80u >> (bit % 8)));
    char buffer[INET6_ADDRSTRLEN];
    ::inet_ntop(AF_INET6, &a, buffer, sizeof buffer);
    return buffer;
}

bool route_covers(const RouteInfo& r, const std::string& ip)
{
    return network_of(r.family, r.destination, r.prefix_length) == network_of(r.family, ip, r.prefix_length);
}

// IPv4 labels follow the link they are on, as the real adapter rewrites them.
std::string label_for(const std::string& link, const std::string& label)
{
    if (label.empty() || label == link || label.rfind(link + ":", 0) == 0) return label.empty() ? link : label;
    const auto colon = label.find(':');
    return colon == std::string::npos ? link : link + label.substr(colon);
}

}  // namespace kvmnet::test
