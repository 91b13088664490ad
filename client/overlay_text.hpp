// kvmnetctl's text for networks that span hosts: `overlay status NET`, and
// the overlay rows of `show`. Pure, from the daemon's JSON (OverlayStatus
// JSON and the document's overlay section, docs/dbus-api.md).
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace kvmnet::client {

// The document's overlay section in one line: "VNI 100 over 10.99.0.1:4789,
// peers 10.99.0.2 10.99.0.3" or "... EVPN AS 65000 with 10.99.0.2 10.99.0.3".
std::string overlay_config_text(const nlohmann::json& overlay);

// `show`'s status rows: the tunnel's peers and sessions in a line or two.
std::vector<std::string> overlay_summary_lines(const nlohmann::json& status);

// `overlay status NET`: a header, the port flags, one block per VTEP
// (flood entry, reachability, remote MACs) and with EVPN the BGP sessions.
std::string overlay_status_text(const nlohmann::json& status);

}  // namespace kvmnet::client
