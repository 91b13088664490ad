// firewalld (issue 14, item 1): while it runs, the bridge of every running
// NAT, routed and isolated network with firewall_integration is in
// firewalld's zone "kvmnet" (firewalld/kvmnet.xml, installed by meson), at
// run time only, and out of it once the network stops. firewalld otherwise
// puts an unknown bridge into its default zone, which rejects the guests'
// DHCP and DNS and does not forward their traffic. Bridge mode is left to
// firewalld's own zones: the bridge carries the host's address.
//
// The calls go through FirewalldBus (api/firewalld_bus.cpp over the system
// bus; a fake in unit tests). The daemon re-syncs when firewalld reloads or
// (re)appears on the bus: a restart drops run-time bindings, and so does a
// reload with FlushAllOnReload=yes (Debian's default).
//
// A sync never waits for firewalld (issue 12: the loop never blocks):
// firewalld answers only once it has loaded its rules, a second or two
// after it takes its bus name, and a hung one not before the call's
// timeout. The calls are asynchronous; one sync is in flight at a time, and
// a newer one waits for its replies, so its listing of the zone sees what
// the older one did (a network stopped while its bridge was being put into
// the zone ends with the bridge out of it). A failed sync is retried after
// a bounded backoff.
#pragma once

#include "model/network.hpp"

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace kvmnet::core {

inline constexpr const char* firewalld_zone = "kvmnet";
// How long Diagnose waits for firewalld's answers (someone waits for the
// reply; a sync's calls wait D-Bus's usual 25 s).
inline constexpr int firewalld_diagnose_timeout_seconds = 3;
// An error of FirewalldBus that says firewalld did not answer in time.
bool firewalld_no_reply(const std::string& error);

// The firewalld D-Bus methods kvmnet uses (org.fedoraproject.FirewallD1.zone).
// Each returns at once and calls `done` later, from the event loop, with ""
// or the error; a call firewalld does not answer in time ends with an error
// that no_reply() recognises.
class FirewalldBus {
public:
    using ListDone = std::function<void(std::vector<std::string> interfaces, std::string error)>;
    using ZoneDone = std::function<void(std::string zone, std::string error)>;
    using Done = std::function<void(std::string error)>;

    virtual ~FirewalldBus() = default;
    // firewalld owns its bus name (asked of the bus daemon, which answers
    // even while firewalld hangs, and without activating firewalld).
    virtual bool running() = 0;
    // Diagnose's two: the zones firewalld has loaded, and the zone the
    // interface is bound to ("" when none: firewalld's default zone then
    // applies to it). A shorter timeout than a sync's: someone waits.
    virtual void zones(ListDone done) = 0;
    virtual void zone_of(const std::string& interface, ZoneDone done) = 0;
    virtual void interfaces_of(const std::string& zone, ListDone done) = 0;
    virtual void change_zone(const std::string& zone, const std::string& interface, Done done) = 0;
    virtual void remove_interface(const std::string& zone, const std::string& interface, Done done) = 0;
};

// What diagnose says about firewalld for one network; nullopt: nothing to
// say (firewalld not running, or a bridge-mode network).
struct FirewalldCheck {
    bool ok = false;
    std::string detail;
};

class Firewalld {
public:
    // `retry(delay_usec)`: a sync failed; the owner syncs again (forced) after
    // that delay. It doubles with every failure in a row, up to a limit.
    using Retry = std::function<void(std::uint64_t delay_usec)>;
    static constexpr std::uint64_t retry_first_usec = 1'000'000;
    static constexpr std::uint64_t retry_max_usec = 60'000'000;

    // `problems_changed`: problem_of() changed for some bridge (the owner
    // judges its networks' state again).
    explicit Firewalld(FirewalldBus& bus, Retry retry = {}, std::function<void()> problems_changed = {})
        : bus_(bus), retry_(std::move(retry)), problems_changed_(std::move(problems_changed))
    {
    }

    static bool wanted(const model::Network& n) { return n.mode != model::Mode::bridge && n.firewall_integration; }

    // Puts the bridges of the wanted networks of `running` into the zone and
    // takes every other bridge of `known` (all of kvmnet's networks), or of
    // the last sync, out of it; interfaces someone else put there are left
    // alone. Nothing when
    // firewalld does not run. Never throws: a failure is logged, the network
    // stays up, and diagnose shows the bridge outside the zone.
    // Without `force` it makes no bus call when the wanted bridges are those
    // of the last complete sync, or firewalld was absent then: adding a port
    // forward must not wait for firewalld. Forced: after firewalld reloaded,
    // appeared or vanished. Returns before firewalld answers; while a sync
    // is in flight, the newest request waits for it and then runs.
    void sync(const std::vector<const model::Network*>& running, const std::set<std::string>& known, bool force);
    void sync(const std::vector<model::Network>& running, const std::set<std::string>& known, bool force);

    // Whether a sync put the bridge into the zone (for Describe; no bus
    // call): "kvmnet" when one did, "" otherwise or without firewalld.
    std::string zone_of_last_sync(const std::string& bridge) const;

    // Why the last sync could not put the bridge into the zone (firewalld's
    // error, e.g. no zone kvmnet), as a StateReason; "" when it could, or
    // the bridge is not wanted there, or firewalld does not run.
    std::string problem_of(const std::string& bridge) const;

    // Asks firewalld now (Diagnose), without waiting: `done` gets the
    // answer from the event loop (at once when there is nothing to ask),
    // and a firewalld that does not answer makes a check saying so.
    // `running`: the network is up; the sentence says when
    // n.firewall_integration is off.
    using CheckDone = std::function<void(std::optional<FirewalldCheck>)>;
    void check(const model::Network& n, bool running, CheckDone done);

private:
    struct Request {
        std::set<std::string> wanted;
        std::set<std::string> known;
    };
    struct Run {
        Request request;
        std::set<std::string> previous;  // in_zone_ when it started
        std::optional<std::set<std::string>> listed;
        std::set<std::string> changed;  // put into the zone by this run
        int outstanding = 0;            // calls without a reply yet
        bool complete = true;
    };

    void start(Request request);
    void listed(std::vector<std::string> interfaces, const std::string& error);
    void replied();
    void finish();
    void set_problem(const std::string& bridge, std::string problem);

    FirewalldBus& bus_;
    Retry retry_;
    std::function<void()> problems_changed_;
    std::map<std::string, std::string> problems_;  // bridge -> why it is not in the zone
    std::set<std::string> in_zone_;                // bridges put there by a sync, and not taken out since
    std::unique_ptr<Run> run_;                     // the sync in flight
    std::optional<Request> next_;                  // the newest sync asked for while one was in flight
    unsigned failures_ = 0;                        // syncs failed in a row
    // Replies that come after this object is gone do nothing.
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
    // The wanted bridges of the last sync that made every call it needed.
    std::optional<std::set<std::string>> synced_;
    bool absent_ = false;  // firewalld did not run at the last sync
};

}  // namespace kvmnet::core
