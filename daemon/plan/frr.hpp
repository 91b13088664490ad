// BGP EVPN through FRR (issue 15, docs/overlay.md "EVPN"): the FRR
// configuration kvmnet wants for its EVPN networks, what of it a running
// FRR already has, and FRR's view of the sessions and remote guests. Pure:
// the texts come from and go to `vtysh` (core/frr.cpp).
//
// kvmnet's part of FRR's configuration is a peer group named "kvmnet" in the
// one `router bgp ASN` of the default VRF: its neighbours, activated for
// `address-family l2vpn evpn` only, plus `advertise-all-vni` (FRR then
// learns the VNIs from the kernel: each VXLAN device enslaved to a bridge).
// The peer group is the mark: what is in it is kvmnet's and may be removed,
// everything else in FRR is the administrator's and is never touched.
#pragma once

#include "model/ipv4.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace kvmnet::plan {

inline constexpr const char* frr_peer_group = "kvmnet";

// FRR's duplicate-address detection (RFC 7432 section 15.1: a MAC that
// moves N times in M seconds) at FRR's default, N=5 M=180, flags a guest
// live-migrated back and forth a few times (an evacuation and its return,
// a maintenance round) as a duplicate: a warning and a DUPLICATE mark in
// `show evpn mac`, and with the administrator's `dup-addr-detection freeze`
// its routes frozen, cutting it off. A real duplicate or an L2 loop moves a
// MAC at frame rate, far beyond 20 moves in 180 s; a guest that migrates
// every 10 s stays below. Detection stays on and the action FRR's (warning
// only unless `freeze` is set), as in Proxmox VE's EVPN zones and Cumulus
// Linux, which keep it on at the default threshold.
inline constexpr const char* frr_dad_line = "dup-addr-detection max-moves 20 time 180";

// One running network's EVPN side.
struct EvpnNetwork {
    std::string network;
    std::uint32_t vni = 0;
    std::string bridge;
    std::string vxlan;                 // the VXLAN device
    std::optional<model::Ipv4> local;  // this host's underlay address (nothing when not known)
    std::uint32_t asn = 0;
    std::vector<std::string> neighbors;  // the neighbours and the route reflector
};

// What kvmnet wants in FRR: every EVPN network's neighbours in one peer
// group (FRR has one BGP instance per VRF, so one ASN for all of them).
struct FrrConfig {
    std::uint32_t asn = 0;
    std::string update_source;           // the first network's local address, "" for FRR's choice
    std::vector<std::string> neighbors;  // sorted, unique
    std::vector<std::string> networks;   // "NAME (VNI N)", for the fragment's comment
    bool operator==(const FrrConfig&) const = default;
};

// nullopt when no network uses EVPN. Throws Conflict when two networks ask
// for different ASNs.
std::optional<FrrConfig> frr_config(const std::vector<EvpnNetwork>& networks);

// kvmnet's fragment, in the form `vtysh -f` applies (and `show
// running-config` prints back). With `dad`, frr_dad_line too (left out when
// the administrator set a threshold of their own: see FrrRunning::dad).
std::string render_frr_fragment(const FrrConfig& config, bool dad = true);

// What FRR's running configuration (`show running-config`) holds.
struct FrrRunning {
    std::optional<std::uint32_t> asn;            // its `router bgp ASN` (default VRF)
    bool group = false;                          // kvmnet's peer group exists
    std::vector<std::string> group_neighbors;    // the neighbours in it
    std::vector<std::string> other_neighbors;    // neighbours (and groups) that are not kvmnet's
    std::vector<std::string> other_evpn_active;  // of those, the ones activated for l2vpn evpn
    bool advertise_all_vni = false;
    // The duplicate-address threshold line of `address-family l2vpn evpn`
    // ("dup-addr-detection max-moves N time S" or "no dup-addr-detection"),
    // "" at FRR's default. Not frr_dad_line: the administrator's, kept.
    std::string dad;
    bool dad_is_ours() const { return dad.empty() || dad == frr_dad_line; }
};
FrrRunning parse_frr_running(const std::string& text);

// Refuses (Conflict, naming what is in the way) a configuration that would
// disturb the administrator's: another ASN, or a neighbour of ours that FRR
// already has outside kvmnet's peer group.
void check_frr_conflicts(const FrrRunning& running, const FrrConfig& wanted);

// The commands (for `vtysh -f`) that remove what kvmnet has in FRR and no
// longer wants: every neighbour of the group not in `wanted`, and with
// nothing wanted the group itself, `advertise-all-vni` and kvmnet's
// duplicate-address threshold (unless a neighbour not of kvmnet's still
// uses l2vpn evpn). "" when nothing is to go.
std::string render_frr_removal(const FrrRunning& running, const std::optional<FrrConfig>& wanted);

// FRR's view, from `show bgp l2vpn evpn summary json`, `show evpn vni json`
// and `show evpn arp-cache vni all json` / `show evpn mac vni all json`.
struct BgpPeer {
    std::string neighbor;
    std::string state;  // FRR's words: Established, Active, Connect, Idle, ...
    std::uint64_t prefixes_received = 0;
    std::string uptime;
    bool established() const { return state == "Established"; }
};
struct EvpnRemote {
    std::string mac;
    std::string ip;  // "" when only the MAC is known
    std::string vtep;
};
struct EvpnVniState {
    std::uint32_t vni = 0;
    std::string vxlan;
    std::uint64_t macs = 0;
    std::vector<std::string> remote_vteps;
    std::vector<EvpnRemote> remotes;  // remote guests: MAC, IP, the host (VTEP) they are on
};
struct FrrStatus {
    bool reachable = false;
    std::string error;  // why FRR could not be asked
    std::vector<BgpPeer> peers;
    std::map<std::uint32_t, EvpnVniState> vnis;
};

// Each throws nothing: output that does not parse leaves the part empty.
std::vector<BgpPeer> parse_bgp_evpn_summary(const std::string& json_text);
std::map<std::uint32_t, EvpnVniState> parse_evpn_vnis(const std::string& json_text);
// Adds the remote entries of `show evpn mac vni all json` and `show evpn
// arp-cache vni all json` to `vnis` (an IP joins its MAC's entry).
void add_evpn_remotes(std::map<std::uint32_t, EvpnVniState>& vnis, const std::string& macs_json,
                      const std::string& arp_json);

// One network's EVPN status: the "evpn" object of Describe (docs/dbus-api.md)
// and the EvpnState property: "established" (every wanted session up),
// "partial", "down" (none up), "frr-unreachable".
std::string evpn_state(const FrrStatus& status, const EvpnNetwork& network);
nlohmann::json evpn_status_json(const FrrStatus& status, const EvpnNetwork& network);
// Leases() of an EVPN network (docs/dbus-api.md, Leases JSON): a lease of
// this host's dnsmasq whose MAC FRR places on another host (the guest moved)
// gets that host's `vtep`; a remote guest FRR knows with an IPv4 address
// (a type-2 MAC/IP route) and no lease here is added as an entry of type
// "remote" with its `vtep` (expiry 0: the lease is the other host's).
void add_evpn_lease_hosts(nlohmann::json& leases, const FrrStatus& status, std::uint32_t vni);
// The remote guest with this MAC on the network's VNI: its VTEP, "" if none.
std::string evpn_vtep_of(const FrrStatus& status, std::uint32_t vni, const std::string& mac);

}  // namespace kvmnet::plan
