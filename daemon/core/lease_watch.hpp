// Watches dnsmasq's lease file of one network (a watch on the daemon's one
// inotify instance, core/dir_watch.hpp) and reports what changed as lease
// events (added, renewed, released, expired).
#pragma once

#include "core/dir_watch.hpp"
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
    // file in place, which is several IN_MODIFY events per change). Ending
    // the watch removes a watch from `watch`, which must outlive it: no
    // inotify instance is closed (that waits for an SRCU grace period).
    LeaseWatch(EventLoop& loop, DirectoryWatch& watch, const std::string& path, Callback on_change,
               std::uint64_t settle_usec = 100'000);
    ~LeaseWatch();
    LeaseWatch(const LeaseWatch&) = delete;
    LeaseWatch& operator=(const LeaseWatch&) = delete;

    // The leases of the file as last read: at the start, then each time the
    // watch settled (before on_change runs). A change not settled yet is not
    // in it.
    const std::vector<plan::Lease>& leases() const { return current_; }

private:
    void changed();
    void settle();

    EventLoop& loop_;
    DirectoryWatch& watch_;
    std::string path_;
    Callback on_change_;
    std::uint64_t settle_usec_;
    int watch_id_ = -1;
    std::unique_ptr<EventSource> timer_;
    std::vector<plan::Lease> current_;
};

}  // namespace kvmnet::core
