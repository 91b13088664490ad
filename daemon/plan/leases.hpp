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

// One line of dnsmasq.leases. IPv4: "EXPIRY MAC IP HOSTNAME CLIENTID";
// DHCPv6 (after the server's "duid DUID" line): "EXPIRY IAID IPV6 HOSTNAME
// CLIENT-DUID", IAID in decimal with a "T" in front for a temporary address.
// HOSTNAME and CLIENTID/CLIENT-DUID are "*" when unknown; EXPIRY 0 means
// infinite.
struct Lease {
    std::int64_t expiry = 0;  // Unix time; 0 = never expires
    std::string mac;          // lower case; IPv6: from the client's DUID when it carries one, else empty
    std::string ip;           // IPv6 in canonical text
    std::string hostname;     // empty when dnsmasq wrote "*"
    std::string client_id;    // IPv4 only; empty when dnsmasq wrote "*"
    bool ipv6 = false;
    std::uint32_t iaid = 0;  // IPv6 only: the identity association
    std::string duid;        // IPv6 only: the client's DUID, lower case; empty when dnsmasq wrote "*"
    bool operator==(const Lease&) const = default;
};

// The leases of the file (IPv4 and DHCPv6), in file order. Lines that do not
// have one of the shapes above (the "duid" line, and host names or client ids
// that are not printable ASCII) are skipped.
std::vector<Lease> parse_leases(const std::string& text);

// {"family": "ipv4", "mac", "ip", "hostname"?, "client_id"?, "expiry",
// "expires_at"} or {"family": "ipv6", "mac"?, "ip", "iaid", "duid"?,
// "hostname"?, "expiry", "expires_at"}: the optional keys only when known;
// "expiry" is Unix time (0: never), "expires_at" the same time in RFC 3339
// UTC (null: never).
nlohmann::json to_json(const Lease& lease);
nlohmann::json to_json(const std::vector<Lease>& leases);

// "static" when a static DHCP host has the lease's MAC and address (dnsmasq
// gave it the reserved address), else "dynamic": a guest that took an
// address from a range before its host entry was added is still dynamic.
// A DHCPv6 lease is "static" when a static DHCPv6 host (hosts6) has its
// address and its DUID, or its MAC (as dnsmasq read it from the DUID).
std::string lease_type(const Lease& lease, const std::vector<model::DhcpHost>& hosts,
                       const std::vector<model::Dhcp6Host>& hosts6 = {});

// As to_json(leases), each with "type" (lease_type).
nlohmann::json to_json(const std::vector<Lease>& leases, const std::vector<model::DhcpHost>& hosts,
                       const std::vector<model::Dhcp6Host>& hosts6 = {});

struct LeaseEvent {
    std::string event;  // "added", "renewed", "released" or "expired"
    Lease lease;        // the new lease; for released/expired the one that went away
    bool operator==(const LeaseEvent&) const = default;
};

// What happened between two readings of the file. A lease is identified by
// MAC and IP (DHCPv6: DUID, IAID and IP): new → added; same with another expiry or host name → renewed;
// gone → expired when its expiry had passed at `now` (Unix time), else
// released. Events come removals first, then by the new file's order.
std::vector<LeaseEvent> diff_leases(const std::vector<Lease>& before, const std::vector<Lease>& after,
                                    std::int64_t now);

}  // namespace kvmnet::plan
