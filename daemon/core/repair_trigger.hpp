// The one trigger of every repair (kube-proxy's "mark dirty, one
// bounded-frequency sync"): notifications and polls only mark what may have
// drifted (links, addresses, ports, sysctls of a network; the shared
// firewall table), and one sync runs with everything marked by then. The
// first mark after a quiet spell is synced almost at once (first_delay:
// the rest of a burst the kernel is sending, `ip link del`'s port,
// address and link notifications, joins it); marks while syncs follow
// each other wait until min_interval after the last sync began, so a storm
// of notifications of any kinds costs one sync per interval. Each scope (a network, or the table) has a budget: a sync
// asks allow(scope) before its first change there; beyond the budget that
// scope's repair is deferred by a backoff, its marks kept, and runs then,
// so a fight with another program slows repairs down but never ends them,
// and never holds up the other scopes.
#pragma once

#include "core/clock.hpp"
#include "plan/converge.hpp"

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

namespace kvmnet::core {

class RepairTrigger {
public:
    struct Limits {
        // From the first mark after a quiet spell to its sync: long enough
        // for the rest of one burst of notifications to be read with it,
        // short next to the repair itself.
        std::uint64_t first_delay_usec = 5'000;
        // Between the starts of two syncs: a storm of notifications (or a
        // repair's own) costs one sync per interval, not one per event.
        std::uint64_t min_interval_usec = 100'000;
        unsigned budget = 20;  // repairs per window and scope that run at once
        std::uint64_t window_usec = 60'000'000;
        std::uint64_t first_backoff_usec = 1'000'000;  // doubling up to max_backoff_usec
        std::uint64_t max_backoff_usec = 30'000'000;
    };
    // Every scope that is due, with what was marked there.
    using Sync = std::function<void(const std::map<std::string, plan::DriftKinds>&)>;

    RepairTrigger(Clock& clock, Sync sync) : RepairTrigger(clock, std::move(sync), Limits{}) {}
    RepairTrigger(Clock& clock, Sync sync, Limits limits);
    RepairTrigger(const RepairTrigger&) = delete;
    RepairTrigger& operator=(const RepairTrigger&) = delete;

    // Marks `kinds` of `scope` dirty: synced with the next sync (first_delay
    // from now, or min_interval after the last sync began, whichever is
    // later), or with the deferred repair of the scope when one waits.
    void mark(const std::string& scope, plan::DriftKinds kinds);
    // Inside a sync, before the first change in `scope`: true within its
    // budget (one repair counted per sync and scope); false: the scope's
    // repair is deferred (its marks kept) and waiting(scope) says why.
    bool allow(const std::string& scope);
    // Why the scope's repair is deferred; empty when it is not.
    std::string waiting(const std::string& scope) const;
    // A scope that needs no repair any more (a stopped network): its marks
    // and deferral go; its budget stays, so a stop and start does not reset it.
    void forget(const std::string& scope);
    bool pending(const std::string& scope) const;

private:
    struct Scope {
        plan::DriftKinds dirty = 0;
        plan::DriftKinds syncing = 0;  // the kinds of the sync under way
        std::uint64_t due_usec = 0;    // 0: nothing scheduled
        bool deferred = false;
        bool granted = false;  // a deferred repair whose backoff passed: runs regardless of the budget
        bool charged = false;  // counted in this sync
        std::string waiting;
        std::uint64_t window_start_usec = 0;
        unsigned count = 0;
        unsigned deferrals = 0;  // in this window: the backoff's exponent
    };
    void arm();                            // for the earliest scope due: a walk of every scope
    void arm_for(std::uint64_t due_usec);  // no later than due_usec
    void fire();

    Clock& clock_;
    Sync sync_;
    Limits limits_;
    std::map<std::string, Scope> scopes_;
    std::unique_ptr<Timer> timer_;
    std::uint64_t timer_due_usec_ = 0;
    std::uint64_t next_sync_usec_ = 0;  // when the scopes marked now are synced
    std::uint64_t last_sync_usec_ = 0;  // when the last sync began
    bool synced_ = false;               // a sync has run: last_sync_usec_ holds
    bool in_sync_ = false;
};

}  // namespace kvmnet::core
