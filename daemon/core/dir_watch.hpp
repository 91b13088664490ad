// One inotify instance for every directory the daemon waits on (dnsmasq's
// pid file in each network's runtime directory): watches are added and
// removed per start. Closing an inotify instance waits in the kernel for an
// SRCU grace period (fsnotify_destroy_group: ~9 ms on the loop at every
// start, issue 12); removing a watch from a live instance does not.
#pragma once

#include "core/event_loop.hpp"

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

namespace kvmnet::core {

class DirectoryWatch {
public:
    // Called on the loop after something in the directory was closed after
    // writing or moved into it (IN_CLOSE_WRITE | IN_MOVED_TO), and after
    // events were lost (a queue overflow): a hint to look, not a promise.
    using Changed = std::function<void()>;

    explicit DirectoryWatch(EventLoop& loop);
    ~DirectoryWatch();
    DirectoryWatch(const DirectoryWatch&) = delete;
    DirectoryWatch& operator=(const DirectoryWatch&) = delete;

    // Watches `dir` until remove(); returns its id. Throws (Kernel) naming
    // the directory when inotify refuses it. One watch per directory: a
    // second add of the same directory replaces the first's callback.
    int add(const std::string& dir, Changed changed);
    // Stops watching; an id already gone (its directory was deleted) is fine.
    void remove(int id);
    std::size_t size() const { return watches_.size(); }

private:
    void dispatch();
    EventLoop& loop_;
    int fd_ = -1;
    std::unique_ptr<EventSource> source_;
    std::map<int, Changed> watches_;
};

}  // namespace kvmnet::core
