// core/dir_watch.hpp: the daemon's one inotify instance.
#include "core/dir_watch.hpp"

#include "model/error.hpp"

#include <array>
#include <cerrno>
#include <cstring>
#include <set>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <unistd.h>
#include <utility>

namespace kvmnet::core {

DirectoryWatch::DirectoryWatch(EventLoop& loop) : loop_(loop)
{
    fd_ = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd_ < 0) throw Error(ErrorKind::Kernel, std::string("inotify: ") + std::strerror(errno));
    try {
        source_ = loop_.add_io(fd_, EPOLLIN, [this](std::uint32_t) { dispatch(); });
    } catch (...) {
        ::close(fd_);
        throw;
    }
}

DirectoryWatch::~DirectoryWatch()
{
    source_.reset();
    ::close(fd_);
}

int DirectoryWatch::add(const std::string& dir, Changed changed)
{
    const int id = ::inotify_add_watch(fd_, dir.c_str(), IN_CLOSE_WRITE | IN_MOVED_TO);
    if (id < 0) throw Error(ErrorKind::Kernel, "watching " + dir + ": " + std::strerror(errno));
    watches_[id] = std::move(changed);
    return id;
}

void DirectoryWatch::remove(int id)
{
    if (watches_.erase(id) == 0) return;
    ::inotify_rm_watch(fd_, id);  // EINVAL: the kernel dropped it with its directory
}

void DirectoryWatch::dispatch()
{
    alignas(inotify_event) std::array<char, 4096> buffer{};
    std::set<int> changed;
    for (;;) {
        const ssize_t got = ::read(fd_, buffer.data(), buffer.size());
        if (got <= 0) break;
        for (ssize_t at = 0; at < got;) {
            const auto* event = reinterpret_cast<const inotify_event*>(buffer.data() + at);
            if (event->mask & IN_Q_OVERFLOW) {
                // Events were lost (every start shares this queue): each
                // watcher looks again, as a callback is only a hint to.
                for (const auto& [id, callback] : watches_)
                    changed.insert(id);
            } else if (event->mask & IN_IGNORED)
                watches_.erase(event->wd);  // its directory went: the id is free again
            else
                changed.insert(event->wd);
            at += static_cast<ssize_t>(sizeof(inotify_event) + event->len);
        }
    }
    // A callback may add or remove watches: each is looked up as it comes.
    for (const int id : changed)
        if (const auto it = watches_.find(id); it != watches_.end()) {
            const Changed callback = it->second;
            callback();
        }
}

}  // namespace kvmnet::core
