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
    return add(dir, IN_CLOSE_WRITE | IN_MOVED_TO, {}, std::move(changed));
}

int DirectoryWatch::add(const std::string& dir, std::uint32_t mask, const std::string& file, Changed changed)
{
    // IN_MASK_ADD: the directory's other watches keep their events.
    const int wd = ::inotify_add_watch(fd_, dir.c_str(), mask | IN_ONLYDIR | IN_MASK_ADD);
    if (wd < 0) throw Error(ErrorKind::Kernel, "watching " + dir + ": " + std::strerror(errno));
    const int id = next_id_++;
    watches_[id] = Watch{wd, dir, mask, file, std::move(changed)};
    return id;
}

std::uint32_t DirectoryWatch::mask_of(int wd) const
{
    std::uint32_t mask = 0;
    for (const auto& [id, watch] : watches_)
        if (watch.wd == wd) mask |= watch.mask;
    return mask;
}

void DirectoryWatch::remove(int id)
{
    const auto it = watches_.find(id);
    if (it == watches_.end()) return;
    const Watch gone = std::move(it->second);
    watches_.erase(it);
    // The last watch of its directory removes the kernel's (EINVAL: the
    // kernel dropped it with its directory); otherwise the directory's
    // watch narrows to what the others still want (a directory replaced
    // meanwhile is a new watch, which IN_IGNORED of the old one ends).
    if (const std::uint32_t rest = mask_of(gone.wd); rest == 0)
        ::inotify_rm_watch(fd_, gone.wd);
    else if (const int wd = ::inotify_add_watch(fd_, gone.dir.c_str(), rest | IN_ONLYDIR); wd >= 0 && wd != gone.wd)
        ::inotify_rm_watch(fd_, wd);  // another directory under that name now: not ours to watch
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
            at += static_cast<ssize_t>(sizeof(inotify_event) + event->len);
            if (event->mask & IN_Q_OVERFLOW) {
                // Events were lost (every network shares this queue): each
                // watcher looks again, as a callback is only a hint to.
                for (const auto& [id, watch] : watches_)
                    changed.insert(id);
                continue;
            }
            if (event->mask & IN_IGNORED) {  // its directory went: the ids are free again
                std::erase_if(watches_, [&](const auto& item) { return item.second.wd == event->wd; });
                continue;
            }
            for (const auto& [id, watch] : watches_)
                if (watch.wd == event->wd && (event->mask & watch.mask) &&
                    (watch.file.empty() || (event->len > 0 && watch.file == event->name)))
                    changed.insert(id);
        }
    }
    // A callback may add or remove watches: each is looked up as it comes.
    for (const int id : changed)
        if (const auto it = watches_.find(id); it != watches_.end()) {
            const Changed callback = it->second.changed;
            callback();
        }
}

}  // namespace kvmnet::core
