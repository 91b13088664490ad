// Time and one-shot timers as the repairs see them: the event loop's in the
// daemon, one that a unit test moves by hand, so that debouncing, budgets
// and backoffs are tested without waiting and without test-only methods.
#pragma once

#include "core/event_loop.hpp"

#include <cstdint>
#include <functional>
#include <memory>

namespace kvmnet::core {

// A pending timer; destroying it cancels it.
class Timer {
public:
    virtual ~Timer() = default;
};

class Clock {
public:
    virtual ~Clock() = default;
    virtual std::uint64_t now_usec() const = 0;  // monotonic
    virtual std::unique_ptr<Timer> add_timer(std::uint64_t delay_usec, std::function<void()> handler) = 0;
};

// CLOCK_MONOTONIC and sd-event timers.
class LoopClock final : public Clock {
public:
    explicit LoopClock(EventLoop& loop) : loop_(loop) {}
    std::uint64_t now_usec() const override { return EventLoop::now_usec(); }
    std::unique_ptr<Timer> add_timer(std::uint64_t delay_usec, std::function<void()> handler) override;

private:
    EventLoop& loop_;
};

}  // namespace kvmnet::core
