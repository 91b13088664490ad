// The network document: the one description of a virtual network that is
// stored on disk, sent over D-Bus and accepted by `kvmnetctl create --file`.
// Parsing is strict (unknown fields and wrong types are errors naming the
// field) and validation is pure, so both are exhaustively unit-tested.
#pragma once

#include "model/error.hpp"
#include "model/ipv4.hpp"

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace kvmnet::model {

enum class Mode { nat, bridge, isolated, routed };

std::string_view mode_name(Mode mode);

struct DhcpRange {
    Ipv4 first;
    Ipv4 last;
    bool operator==(const DhcpRange&) const = default;
};

struct DhcpHost {
    std::string mac;  // normalised lower case "52:54:00:12:34:56"
    Ipv4 ip;
    std::string name;  // optional host name
    bool operator==(const DhcpHost&) const = default;
};

struct Ipv4Config {
    Ipv4Interface address;  // the gateway address on the bridge and its prefix
    bool dhcp = false;      // true when a "dhcp" object is present
    std::vector<DhcpRange> ranges;
    std::vector<DhcpHost> hosts;
    bool operator==(const Ipv4Config&) const = default;
};

struct Network {
    std::string name;
    Mode mode = Mode::nat;
    std::string bridge;
    bool autostart = false;
    std::optional<Ipv4Config> ipv4;
    std::string uplink;  // NAT: masquerade only out of this interface; empty: any other interface
    bool stp = false;
    std::uint32_t forward_delay = 0;  // seconds
    std::uint32_t mtu = 0;            // 0: kernel default

    bool operator==(const Network&) const = default;
};

// Strict parsing of the JSON document. Throws kvmnet::Error(InvalidArgument)
// naming the field ("ipv4.dhcp.ranges[1]: ...") for syntax, type, unknown
// field and per-field value errors; Unsupported for features this version
// cannot provide.
Network parse_network(const nlohmann::json& document);
Network parse_network(const std::string& text);

nlohmann::json to_json(const Network& network);

// Cross-field rules that need only the document itself: gateway inside its
// subnet, DHCP ranges inside and ordered, static hosts unique, etc. Applied
// by parse_network too; exposed for documents built in code.
void validate(const Network& network);

// Rules against the other configured networks (name, bridge, subnet overlap).
// `others` must not contain `network` itself.
void validate_against(const Network& network, const std::vector<Network>& others);

bool valid_network_name(const std::string& name);
bool valid_interface_name(const std::string& name);

}  // namespace kvmnet::model
