// How an observed address or route is named in messages: "10.0.0.1/24",
// "10.0.0.0/24" or "default" (one spelling for the kernel layer, the
// drivers and the repairs).
#pragma once
#include "plan/kernel_view.hpp"

#include <string>

namespace kvmnet::plan {

inline std::string address_text(const AddressInfo& a)
{
    return a.address.str().append("/").append(std::to_string(a.prefix_length));
}

inline std::string destination_text(const RouteInfo& r)
{
    if (!r.destination) return "default";
    return r.destination->str().append("/").append(std::to_string(r.prefix_length));
}

}  // namespace kvmnet::plan
