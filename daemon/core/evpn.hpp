// BGP EVPN through FRR (docs/overlay.md, "EVPN"): keeps kvmnet's part of a
// running FRR's configuration equal to what the running EVPN networks want,
// and reads FRR's view of the sessions and remote guests back.
//
// Through vtysh, not a file included from frr.conf plus a reload: FRR 8.4's
// frr.conf has no include, and frr-reload.py replaces the whole running
// configuration with the file's, so kvmnet would have to own (or rewrite)
// the administrator's file. vtysh changes only the lines it is given:
// kvmnet's fragment (plan::render_frr_fragment, kept in
// RUNTIME/frr-evpn.conf for people to read) and, on stop, `no` lines for
// what is in kvmnet's peer group only. The running configuration is not
// written to FRR's own file (no `write memory`): a restarted FRR comes up
// without kvmnet's part, and the poll below puts it back.
//
// FRR stays FRR's: kvmnet never starts or stops it. FRR not running is not
// an error of a start: the network runs, its EVPN state says
// "frr-unreachable", and the configuration is applied once FRR answers.
// Best effort like core/foreign_firewall: failures are logged and shown by
// Diagnose. vtysh runs on the event loop (about 0.1 s a call, killed after
// vtysh_timeout_ms so a hung FRR cannot hold the daemon): only at
// start/stop, on Describe/Diagnose (at most once a second) and every
// poll_interval_s while an EVPN network runs.
#pragma once

#include "core/foreign_firewall.hpp"
#include "model/network.hpp"
#include "plan/frr.hpp"

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace kvmnet::core {

// The EVPN side of a running network, nullopt when it has none. `local`
// resolves a local_interface to its (first IPv4) address, nothing when it has none.
std::optional<plan::EvpnNetwork>
evpn_network(const model::Network& n, const std::function<std::optional<model::Ipv4>(const std::string&)>& local);

class Evpn {
public:
    static constexpr int poll_interval_s = 5;
    // vtysh runs on the event loop: a hung FRR must not hold the daemon.
    static constexpr int vtysh_timeout_ms = 5000;

    // Without `run`, vtysh runs for real, killed after `timeout_ms`.
    Evpn(std::string vtysh, std::string vty_socket, std::string fragment_path, CommandRunner run = {},
         int timeout_ms = vtysh_timeout_ms);

    // Refuses (Conflict) a start whose EVPN settings FRR cannot take without
    // disturbing its own configuration (another ASN, a neighbour outside
    // kvmnet's peer group) or that differ from another EVPN network's ASN.
    // FRR not answering is no refusal.
    void check(const std::vector<plan::EvpnNetwork>& running);

    // Brings kvmnet's part of FRR to `running` (every running network's EVPN
    // side). Only when it changed since the last successful sync, unless
    // `force`. Never throws; the problem is kept (problem()).
    void sync(const std::vector<plan::EvpnNetwork>& running, bool force = false);

    // Reads FRR's state now (a failure leaves status().reachable false), and
    // applies the configuration again when FRR lost it (restarted) or the
    // last sync failed.
    void refresh();
    // refresh() unless the last one is younger than a second.
    void refresh_if_stale();
    const plan::FrrStatus& status() const { return status_; }
    // Whether status() was ever read from FRR.
    bool asked() const { return refreshed_ != std::chrono::steady_clock::time_point{}; }
    // The last sync's failure, "" when it worked.
    const std::string& problem() const { return problem_; }
    bool wanted() const { return wanted_.has_value(); }

private:
    CommandResult vtysh(const std::vector<std::string>& args);
    // Splits `vtysh -E -c A -c B` output at the echoed commands.
    std::vector<std::string> show(const std::vector<std::string>& commands, std::string& error);
    void apply(const std::string& text);

    std::string vtysh_;
    std::string vty_socket_;
    std::string fragment_path_;
    CommandRunner run_;
    std::vector<plan::EvpnNetwork> running_;
    std::optional<plan::FrrConfig> wanted_;
    std::optional<plan::FrrConfig> applied_;
    bool ever_synced_ = false;
    std::string problem_;
    plan::FrrStatus status_;
    std::chrono::steady_clock::time_point refreshed_{};
};

}  // namespace kvmnet::core
