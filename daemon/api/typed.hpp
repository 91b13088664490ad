// The typed (a{sv}) forms of the JSON reads, for applets that have a D-Bus
// binding but no JSON parser. Built from the very JSON the JSON reads send,
// so both forms always say the same; each key has one fixed D-Bus type
// (docs/dbus-api.md, "Typed reads"), whatever JSON shape the value has.
#pragma once

#include <nlohmann/json.hpp>
#include <sdbus-c++/sdbus-c++.h>

#include <map>
#include <string>

namespace kvmnet::api {

using VarDict = std::map<std::string, sdbus::Variant>;

// static_host: the lease's MAC has a static DHCP host (its type when the
// lease JSON does not say).
VarDict typed_lease(const nlohmann::json& lease, bool static_host);
VarDict typed_port(const nlohmann::json& port);
VarDict typed_forward(const nlohmann::json& forward);
VarDict typed_statistics(const nlohmann::json& statistics);

}  // namespace kvmnet::api
