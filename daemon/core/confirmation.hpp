// The deadline of a start that must be confirmed (StartWithConfirmation):
// wall-clock time kept in the runtime directory, so that a daemon restarted
// before it expires still rolls the start back in time.
#pragma once

#include "core/event_loop.hpp"

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace kvmnet::core {

class ConfirmationDeadline {
public:
    // `file`: where the deadline is recorded; `expired` runs when it passes
    // unconfirmed (the deadline is no longer pending by then).
    ConfirmationDeadline(EventLoop& loop, std::string file, std::function<void()> expired);
    ConfirmationDeadline(const ConfirmationDeadline&) = delete;
    ConfirmationDeadline& operator=(const ConfirmationDeadline&) = delete;

    // Records `deadline` (Unix time) and arms its timer; one that has passed fires at once.
    void arm(std::int64_t deadline);
    // The deadline a running network recorded; an unreadable one is 0
    // (expired: rolling back is the safe side). nullopt when none.
    std::optional<std::int64_t> recorded() const;
    bool pending() const { return timer_ != nullptr; }
    // Confirmed: the timer and the record go.
    void confirm();
    // The network stops: the timer goes (the record goes with the runtime directory).
    void cancel() { timer_.reset(); }

private:
    EventLoop& loop_;
    std::string file_;
    std::function<void()> expired_;
    std::unique_ptr<EventSource> timer_;
};

}  // namespace kvmnet::core
