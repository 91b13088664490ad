// The record of a bridge takeover (RUNTIME/NAME/takeover.json): what moved
// from the uplink to the bridge, written before the first change so that
// stop, rollback and a daemon restarted in between put back exactly that.
#pragma once

#include "plan/kernel_view.hpp"

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <vector>

namespace kvmnet::plan {

// Addresses as text ("" for none), as records written before the observed
// state was typed have them: a daemon upgraded mid-takeover still reads its
// record. A record whose address does not parse does not load.
void to_json(nlohmann::json& j, const AddressInfo& a);
void from_json(const nlohmann::json& j, AddressInfo& a);
void to_json(nlohmann::json& j, const RouteInfo& r);
void from_json(const nlohmann::json& j, RouteInfo& r);

}  // namespace kvmnet::plan

namespace kvmnet::core {

struct TakeoverRecord {
    std::string uplink;
    std::string bridge;
    std::vector<plan::AddressInfo> addresses;
    std::vector<plan::RouteInfo> routes;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(TakeoverRecord, uplink, bridge, addresses, routes)

// In place when this returns (store::write_replace): a daemon that crashes
// right after finds it.
void write_takeover_record(const std::string& path, const TakeoverRecord& record);
// nullopt when there is no file; `problem` says why a file that exists does
// not load (and nullopt is returned then too).
std::optional<TakeoverRecord> read_takeover_record(const std::string& path, std::string& problem);

}  // namespace kvmnet::core
