#include "core/clock.hpp"

namespace kvmnet::core {
namespace {

struct SourceTimer final : Timer {
    std::unique_ptr<EventSource> source;
};

}  // namespace

std::unique_ptr<Timer> LoopClock::add_timer(std::uint64_t delay_usec, std::function<void()> handler)
{
    auto timer = std::make_unique<SourceTimer>();
    timer->source = loop_.add_timer(delay_usec, std::move(handler));
    return timer;
}

}  // namespace kvmnet::core
