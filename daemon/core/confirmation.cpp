#include "core/confirmation.hpp"

#include "store/files.hpp"

#include <algorithm>
#include <ctime>

namespace kvmnet::core {

ConfirmationDeadline::ConfirmationDeadline(EventLoop& loop, std::string file, std::function<void()> expired)
    : loop_(loop), file_(std::move(file)), expired_(std::move(expired))
{
}

void ConfirmationDeadline::arm(std::int64_t deadline)
{
    store::write_replace(file_, std::to_string(deadline) + "\n");
    const std::int64_t left = std::max<std::int64_t>(0, deadline - static_cast<std::int64_t>(::time(nullptr)));
    timer_ = loop_.add_timer(static_cast<std::uint64_t>(left) * 1000000ull, [this] {
        timer_.reset();
        expired_();
    });
}

std::optional<std::int64_t> ConfirmationDeadline::recorded() const
{
    const auto text = store::read_file(file_);
    if (!text) return std::nullopt;
    try {
        return std::stoll(*text);
    } catch (const std::exception&) {
        return 0;
    }
}

void ConfirmationDeadline::confirm()
{
    timer_.reset();
    store::remove_file(file_);
}

}  // namespace kvmnet::core
