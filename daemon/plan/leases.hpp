// dnsmasq's DHCP lease file as data: parsing it, and the difference between
// two readings as lease events. Pure, so the daemon's lease watch and the
// Leases() method share one tested reading of the format.
#pragma once

#include "model/network.hpp"

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace kvmnet::plan {

// One line of dnsmasq.leases: "EXPIRY MAC IP HOSTNAME CLIENTID", where
// HOSTNAME and CLIENTID are "*" when unknown and EXPIRY 0 means infinite.
struct Lease {
    std::int64_t expiry = 0;  // Unix time; 0 = never expires
    std::string mac;          // lower case
    std::string ip;
    std::string hostname;   // empty when dnsmasq wrote "*"
    std::string client_id;  // empty when dnsmasq wrote "*"
    bool operator==(const Lease&) const = default;
};

// The IPv4 leases of the file, in file order. Lines that do not have the
// shape above (DHCPv6 "duid" lines and IPv6 leases included, and host names
// or client ids that are not printable ASCII) are skipped.
std::vector<Lease> parse_leases(const std::string& text);

// {"mac", "ip", "hostname"?, "client_id"?, "expiry"}: the optional keys only
// when known.
nlohmann::json to_json(const Lease& lease);
nlohmann::json to_json(const std::vector<Lease>& leases);

// "static" when a static DHCP host has the lease's MAC and address (dnsmasq
// gave it the reserved address), else "dynamic": a guest that took an
// address from a range before its host entry was added is still dynamic.
std::string lease_type(const Lease& lease, const std::vector<model::DhcpHost>& hosts);

// As to_json(leases), each with "type" (lease_type).
nlohmann::json to_json(const std::vector<Lease>& leases, const std::vector<model::DhcpHost>& hosts);

struct LeaseEvent {
    std::string event;  // "added", "renewed", "released" or "expired"
    Lease lease;        // the new lease; for released/expired the one that went away
    bool operator==(const LeaseEvent&) const = default;
};

// What happened between two readings of the file. A lease is identified by
// MAC and IP: new → added; same with another expiry or host name → renewed;
// gone → expired when its expiry had passed at `now` (Unix time), else
// released. Events come removals first, then by the new file's order.
std::vector<LeaseEvent> diff_leases(const std::vector<Lease>& before, const std::vector<Lease>& after,
                                    std::int64_t now);

}  // namespace kvmnet::plan
