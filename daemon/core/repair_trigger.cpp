#include "core/repair_trigger.hpp"

#include <algorithm>
#include <utility>

namespace kvmnet::core {

RepairTrigger::RepairTrigger(Clock& clock, Sync sync, Limits limits)
    : clock_(clock), sync_(std::move(sync)), limits_(limits)
{
}

void RepairTrigger::mark(const std::string& scope, plan::DriftKinds kinds)
{
    if (kinds == 0) return;
    Scope& s = scopes_[scope];
    s.dirty |= kinds;
    // A deferred repair keeps its time: it looks at the kernel as it is then.
    // Otherwise the scope joins the next sync (kube-proxy's bounded
    // frequency): first_delay after the first mark since the last sync,
    // but not before min_interval after the last sync began; marks of any
    // scope and kind until then are one sync.
    if (s.due_usec == 0) {
        const std::uint64_t now = clock_.now_usec();
        if (next_sync_usec_ <= now) {
            next_sync_usec_ = now + limits_.first_delay_usec;
            if (synced_) next_sync_usec_ = std::max(next_sync_usec_, last_sync_usec_ + limits_.min_interval_usec);
        }
        s.due_usec = next_sync_usec_;
    }
    if (!in_sync_) arm_for(s.due_usec);
}

// A mark needs the timer no later than its scope's time: one comparison,
// not a walk of every scope (arm). The forwarding poll marks every running
// network every 2 s: with a walk per mark that was 1,000 x 1,000 steps per
// poll at 1,000 networks (a tenth of kvmnetd's CPU while one more network
// started and stopped). An earlier timer finds this scope due later: fire
// walks the scopes once and arms for the rest.
void RepairTrigger::arm_for(std::uint64_t due_usec)
{
    if (due_usec == 0 || (timer_ && timer_due_usec_ <= due_usec)) return;
    const std::uint64_t now = clock_.now_usec();
    timer_due_usec_ = due_usec;
    timer_ = clock_.add_timer(due_usec > now ? due_usec - now : 0, [this] { fire(); });
}

bool RepairTrigger::allow(const std::string& scope)
{
    Scope& s = scopes_[scope];
    if (s.charged) return true;
    if (s.deferred) return false;  // asked again in the sync that deferred it
    const std::uint64_t now = clock_.now_usec();
    if (now - s.window_start_usec > limits_.window_usec) {
        s.window_start_usec = now;
        s.count = 0;
        s.deferrals = 0;
    }
    if (std::exchange(s.granted, false) || s.count < limits_.budget) {
        ++s.count;
        return s.charged = true;
    }
    const std::uint64_t delay =
        std::min(limits_.first_backoff_usec << std::min(s.deferrals, 5u), limits_.max_backoff_usec);
    ++s.deferrals;
    s.deferred = true;
    s.dirty |= s.syncing;
    s.due_usec = now + delay;
    // Named by what waits: a deferred sysctl repair is not a link repair.
    s.waiting = "repair of " + plan::drift_kinds_text(s.dirty);
    s.waiting.append(" over the repair budget of ")
        .append(std::to_string(limits_.budget))
        .append(" repairs per minute; retrying in ")
        .append(std::to_string(delay / 1'000'000))
        .append(" s");
    return false;
}

std::string RepairTrigger::waiting(const std::string& scope) const
{
    const auto it = scopes_.find(scope);
    return it == scopes_.end() ? std::string() : it->second.waiting;
}

bool RepairTrigger::pending(const std::string& scope) const
{
    const auto it = scopes_.find(scope);
    return it != scopes_.end() && it->second.due_usec != 0;
}

void RepairTrigger::forget(const std::string& scope)
{
    const auto it = scopes_.find(scope);
    if (it == scopes_.end()) return;
    Scope& s = it->second;
    s.dirty = 0;
    s.syncing = 0;
    s.due_usec = 0;
    s.deferred = false;
    s.granted = false;
    s.waiting.clear();
}

void RepairTrigger::arm()
{
    std::uint64_t next = 0;
    for (const auto& [name, s] : scopes_)
        if (s.due_usec != 0 && (next == 0 || s.due_usec < next)) next = s.due_usec;
    if (next == 0) {
        timer_.reset();
        return;
    }
    if (timer_ && timer_due_usec_ == next) return;
    const std::uint64_t now = clock_.now_usec();
    timer_due_usec_ = next;
    timer_ = clock_.add_timer(next > now ? next - now : 0, [this] { fire(); });
}

void RepairTrigger::fire()
{
    // The timer's own cell is replaced by arm() below, after the handler's
    // work: keep it alive until then.
    auto self = std::move(timer_);
    const std::uint64_t now = clock_.now_usec();
    std::map<std::string, plan::DriftKinds> due;
    for (auto& [name, s] : scopes_) {
        if (s.due_usec == 0 || s.due_usec > now) continue;
        s.granted = s.deferred;
        s.deferred = false;
        s.waiting.clear();
        s.charged = false;
        s.syncing = std::exchange(s.dirty, 0);
        s.due_usec = 0;
        due.emplace(name, s.syncing);
    }
    if (!due.empty()) {
        last_sync_usec_ = now;
        synced_ = true;
    }
    in_sync_ = true;
    try {
        if (!due.empty()) sync_(due);
    } catch (...) {
        in_sync_ = false;
        throw;
    }
    in_sync_ = false;
    for (const auto& [name, kinds] : due) {
        const auto it = scopes_.find(name);
        if (it == scopes_.end()) continue;
        it->second.granted = false;
        it->second.charged = false;
        it->second.syncing = 0;
    }
    arm();
    (void)self;
}

}  // namespace kvmnet::core
