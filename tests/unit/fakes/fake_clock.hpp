// A core::Clock that only moves when the test says so: advance() runs the
// timers that fall due, in order, including those they arm meanwhile.
#pragma once

#include "core/clock.hpp"

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <utility>

namespace kvmnet::test {

class FakeClock final : public core::Clock {
public:
    std::uint64_t now_usec() const override { return now_; }

    std::unique_ptr<core::Timer> add_timer(std::uint64_t delay_usec, std::function<void()> handler) override
    {
        const std::uint64_t id = ++last_id_;
        pending_->emplace(std::make_pair(now_ + delay_usec, id), std::move(handler));
        return std::make_unique<Handle>(pending_, now_ + delay_usec, id);
    }

    void advance(std::uint64_t usec)
    {
        const std::uint64_t until = now_ + usec;
        while (!pending_->empty() && pending_->begin()->first.first <= until) {
            auto due = pending_->begin();
            now_ = due->first.first;
            auto handler = std::move(due->second);
            pending_->erase(due);  // its handle may be dropped by the handler itself
            handler();
        }
        now_ = until;
    }

    std::size_t pending() const { return pending_->size(); }

private:
    using Pending = std::map<std::pair<std::uint64_t, std::uint64_t>, std::function<void()>>;

    struct Handle final : core::Timer {
        Handle(std::shared_ptr<Pending> pending, std::uint64_t due, std::uint64_t id)
            : pending(std::move(pending)), key(due, id)
        {
        }
        ~Handle() override { pending->erase(key); }
        std::shared_ptr<Pending> pending;
        std::pair<std::uint64_t, std::uint64_t> key;
    };

    // Starts well past zero: budgets measure windows from their first use.
    std::uint64_t now_ = 1'000'000'000'000;
    std::uint64_t last_id_ = 0;
    std::shared_ptr<Pending> pending_ = std::make_shared<Pending>();
};

}  // namespace kvmnet::test
