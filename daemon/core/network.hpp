// One network as the manager runs it: its document, its state and reason,
// and the run-time pieces that belong to it alone (dnsmasq supervision, a
// pending start, the confirmation deadline, the MAC watch, port problems,
// repair notes). What only concerns one network is a method here; what
// needs the kernel, the store or the other networks stays in core::Manager.
#pragma once

#include "core/confirmation.hpp"
#include "core/dnsmasq.hpp"
#include "core/event_loop.hpp"
#include "core/lease_watch.hpp"
#include "core/mac_watch.hpp"
#include "core/undo.hpp"
#include "model/network.hpp"
#include "plan/converge.hpp"

#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace kvmnet::core {

enum class State { inactive, activating, active, degraded, failed };

std::string_view state_name(State state);
// Up in the kernel, whether healthy or not.
inline bool is_running(State state) { return state == State::active || state == State::degraded; }

// The outcome of a change that waits for dnsmasq: nullptr, or the error.
using Done = std::function<void(std::exception_ptr)>;

class Network {
public:
    explicit Network(const Clock& clock) : mac_watch(clock) {}
    Network(const Network&) = delete;
    Network& operator=(const Network&) = delete;

    // A state without a reason, or with one and its machine-readable code
    // (the StateReasonCode property; each code is listed in
    // docs/dbus-api.md). Logs the change; false when nothing changed.
    bool set_state(State next, std::string code = "none", std::string reason = {});
    // The network counts as stopped: what only a run had goes (dnsmasq,
    // port problems, foreign ports, the MAC watch). The state is the
    // caller's to set.
    void forget_run();
    // A repair of `what` (firewall, bridge, ...) was made: it becomes the
    // last repair (the LastRepair property) and is logged.
    void repaired(const std::string& what, const std::string& detail);

    model::Network spec;
    State state = State::inactive;
    std::string reason;
    std::string reason_code = "none";  // StateReasonCode: reason for programs (docs/dbus-api.md)
    int bridge_index = 0;              // of the running bridge, kept current by link_changed
    std::unique_ptr<Dnsmasq> dnsmasq;  // while started, and after a failed start (its state says so)
    std::string dnsmasq_unreported;    // a restart while the bridge was missing: reported with its repair
    // A start waiting for dnsmasq to be ready: its undo journal, the step
    // it is at and everyone waiting for the outcome.
    struct PendingStart {
        Undo undo;
        std::string step;
        // The start's converge (plan::plan_converge from nothing) and
        // the next step to apply: dnsmasq's readiness resumes it.
        std::vector<plan::ConvergeStep> steps;
        std::size_t next = 0;
        std::uint32_t confirm_timeout_s = 0;
        std::vector<Done> waiters;
        // A start asked over the bus runs on a later turn of the loop
        // (Manager::start_queue_): the calls that came with it are answered
        // first. True until that turn.
        bool queued = false;
    };
    std::unique_ptr<PendingStart> starting;
    // A stop whose bridge deletion runs on the manager's worker thread
    // (Manager::stop): the network is inactive already, and the callers of
    // Stop (`waiters`) hear the outcome once the kernel is done; a Start,
    // Update or Delete asked meanwhile runs then (`after`).
    struct PendingStop {
        std::vector<Done> waiters;
        std::vector<std::function<void()>> after;
        // The stop of an Update's restart, or the bridge deletion of its
        // rollback: the network comes up again after it, so a Stop asked
        // meanwhile waits (`after`) instead of joining.
        bool comes_back = false;
    };
    std::unique_ptr<PendingStop> stopping;
    std::unique_ptr<ConfirmationDeadline> confirmation;  // made on first use (Manager::confirmation)
    std::map<std::string, std::string> port_problems;    // port name -> why it is not attached as asked
    MacWatch mac_watch;                                  // guest MACs behind the bridge's ports
    std::unique_ptr<LeaseWatch> lease_watch;             // while running with DHCP
    std::size_t journal_lines = 0;                       // forward changes since the document was written
    // The stored document does not load (a hand edit gone wrong): why.
    // The network keeps the configuration it had (or, adopted at start,
    // the last document the daemon stored) until the file is fixed and
    // reloaded; running, it shows degraded with this reason.
    std::string stored_problem;
    // Adopted at start from what ran under its name, without any
    // document: only stopping it is possible.
    bool without_document = false;
    // Self-healing (core/manager_repair.cpp).
    std::string firewall_problem;       // while a firewall repair is pending or failed
    std::string firewall_problem_code;  // its StateReasonCode
    std::string last_repair;
    std::string repair_wait;  // while its repair is deferred by the budget: why (part of the state reason)
    // The bridge's addresses and the routes through it as the last route
    // repair observed them, with the routes it added since, and why adding
    // one failed: what the state judges (plan::drift) between repairs.
    // nullopt: not observed since the bridge was last repaired.
    std::optional<plan::ConvergeObserved::Routes> routes_seen;
    std::string route_problem;
    // Interfaces someone else enslaved to the bridge (a libvirt tap), as
    // last observed while it existed: enslaved again when a repair
    // recreates it.
    std::set<std::string> foreign_ports;
};

}  // namespace kvmnet::core
