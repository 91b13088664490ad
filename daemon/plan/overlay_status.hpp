// `kvmnetctl overlay status NET` and the OverlayStatus method
// (docs/dbus-api.md, "OverlayStatus JSON"): an overlay network's tunnel as
// the kernel and FRR see it, per remote host (VTEP): whether broadcast
// reaches it (its flood entry), whether the underlay answers it (the kernel's
// ARP entry for it: no probe of our own leaves the underlay), and the guest
// MACs behind it (the VXLAN device's FDB); with EVPN the BGP sessions.
// Pure: the caller observes.
#pragma once

#include "model/network.hpp"
#include "plan/kernel_view.hpp"

#include <nlohmann/json.hpp>

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace kvmnet::plan {

struct OverlayObserved {
    bool device = false;  // the VXLAN device exists
    std::string local;    // this host's underlay address ("" unknown)
    std::optional<Vxlans::VxlanPortFlags> port_flags;
    std::vector<model::Ipv4> flood;                 // VTEPs of the all-zeros entries
    std::vector<Vxlans::VxlanFdbEntry> fdb;         // remote MACs
    std::map<std::string, std::string> neighbours;  // VTEP -> kernel neighbour state ("" none)
    nlohmann::json evpn;                            // plan::evpn_status_json, null without EVPN
};

// The VTEPs to report: the static peers, or with EVPN the BGP neighbours and
// every VTEP FRR installed (flood entries, remote MACs), sorted.
std::vector<std::string> overlay_vteps(const model::Network& n, const OverlayObserved& o);

// "reachable", "stale" (answered once, not confirmed lately), "unreachable"
// or "unknown" (no ARP entry: no traffic to it yet) from the kernel's state.
std::string vtep_reachability(const std::string& neighbour_state);

nlohmann::json overlay_status_json(const model::Network& n, const OverlayObserved& o);

// What changed between two OverlayStatus objects of one network, for the
// OverlayChanged signal: ("session", "10.99.0.2: Active -> Established"),
// ("peer", "10.99.0.3: unknown -> reachable"), ("peer", "10.99.0.4 added").
// Remote MACs are not compared (FdbChanged territory: they move with guests).
std::vector<std::pair<std::string, std::string>> overlay_changes(const nlohmann::json& before,
                                                                 const nlohmann::json& after);

}  // namespace kvmnet::plan
