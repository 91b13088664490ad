// One inotify instance for every directory the daemon watches (dnsmasq's
// pid file in each network's runtime directory while it starts, its lease
// file while the network runs): watches are added and removed per network. Closing an inotify instance waits in the
// kernel for an SRCU grace period (fsnotify_destroy_group: ~9 ms on the loop at every start, issue 12); removing a
// watch from a live instance does not.
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
    // the directory when inotify refuses it. Several watches of one
    // directory each hear their own events (the kernel's watch of the
    // directory carries the union of their masks).
    int add(const std::string& dir, Changed changed);
    // The same for the events in `mask` (IN_MODIFY, IN_CREATE, ...) about
    // the entry named `file` in `dir`; overflows are heard too.
    int add(const std::string& dir, std::uint32_t mask, const std::string& file, Changed changed);
    // Stops watching; an id already gone (its directory was deleted) is fine.
    void remove(int id);
    std::size_t size() const { return watches_.size(); }

private:
    struct Watch {
        int wd = -1;  // the kernel's watch of the directory, shared
        std::string dir;
        std::uint32_t mask = 0;
        std::string file;  // empty: any entry
        Changed changed;
    };
    void dispatch();
    std::uint32_t mask_of(int wd) const;
    EventLoop& loop_;
    int fd_ = -1;
    std::unique_ptr<EventSource> source_;
    std::map<int, Watch> watches_;  // by id
    int next_id_ = 1;
};

}  // namespace kvmnet::core
