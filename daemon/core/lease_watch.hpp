// Watches dnsmasq's lease file of one network with inotify and reports what
// changed as lease events (added, renewed, released, expired).
#pragma once

#include "core/event_loop.hpp"
#include "plan/leases.hpp"

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace kvmnet::core {

class LeaseWatch {
public:
    using Callback = std::function<void(const std::vector<plan::LeaseEvent>&)>;

    // Watches the directory of `path` for changes to the lease file `path`
    // (dnsmasq replaces it, so the file itself cannot be watched). The file as it is
    // now is the baseline: it produces no events. Events come `settle_usec`
    // after the first change of a burst (dnsmasq truncates and rewrites the
    // file in place, which is several IN_MODIFY events per change).
    LeaseWatch(EventLoop& loop, const std::string& path, Callback on_change, std::uint64_t settle_usec = 100'000);
    ~LeaseWatch();
    LeaseWatch(const LeaseWatch&) = delete;
    LeaseWatch& operator=(const LeaseWatch&) = delete;

private:
    void readable();
    void settle();

    EventLoop& loop_;
    std::string path_;
    std::string file_name_;
    Callback on_change_;
    std::uint64_t settle_usec_;
    int fd_ = -1;
    std::unique_ptr<EventSource> io_;
    std::unique_ptr<EventSource> timer_;
    std::vector<plan::Lease> current_;
    std::uint32_t seen_mask_ = 0;  // inotify events since the last reading (logged)
};

}  // namespace kvmnet::core
