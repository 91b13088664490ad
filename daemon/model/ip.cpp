#include "model/ip.hpp"

namespace kvmnet::model {

std::string IpAddress::str() const
{
    if (const Ipv4* ip = v4()) return ip->str();
    return std::get<Ipv6>(value_).str();
}

std::optional<IpAddress> IpAddress::parse(const std::string& text)
{
    if (text.find(':') == std::string::npos) {
        if (const auto ip = Ipv4::parse(text)) return IpAddress(*ip);
        return std::nullopt;
    }
    if (const auto ip = Ipv6::parse(text)) return IpAddress(*ip);
    return std::nullopt;
}

}  // namespace kvmnet::model
