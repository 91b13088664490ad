#include "core/lease_watch.hpp"

#include "core/log.hpp"
#include "model/error.hpp"
#include "store/files.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <unistd.h>

namespace kvmnet::core {
namespace {

// dnsmasq keeps the file open and rewrites it in place (truncate, write,
// fsync): IN_MODIFY. The rest covers the file being created, or replaced
// by rename or by a writer that closes it.
constexpr std::uint32_t watch_mask = IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE;

std::vector<plan::Lease> read_leases(const std::string& path)
{
    return plan::parse_leases(store::read_file(path).value_or(""));
}

}  // namespace

LeaseWatch::LeaseWatch(EventLoop& loop, const std::string& path, Callback on_change, std::uint64_t settle_usec)
    : loop_(loop), path_(path), file_name_(std::filesystem::path(path).filename().string()),
      on_change_(std::move(on_change)), settle_usec_(settle_usec)
{
    fd_ = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd_ < 0) throw Error(ErrorKind::Kernel, std::string("inotify: ") + std::strerror(errno));
    const std::string dir = std::filesystem::path(path).parent_path().string();
    if (::inotify_add_watch(fd_, dir.c_str(), watch_mask | IN_ONLYDIR) < 0) {
        const int err = errno;
        ::close(fd_);
        throw Error(ErrorKind::Kernel, "inotify: watching " + dir + ": " + std::strerror(err));
    }
    current_ = read_leases(path_);
    try {
        io_ = loop_.add_io(fd_, EPOLLIN, [this](std::uint32_t) { readable(); });
    } catch (...) {
        ::close(fd_);
        throw;
    }
}

LeaseWatch::~LeaseWatch()
{
    timer_.reset();
    io_.reset();
    if (fd_ >= 0) ::close(fd_);
}

void LeaseWatch::readable()
{
    alignas(inotify_event) char buffer[4096];
    bool ours = false;
    for (;;) {
        const ssize_t n = ::read(fd_, buffer, sizeof buffer);
        if (n <= 0) break;
        for (ssize_t off = 0; off < n;) {
            const auto* ev = reinterpret_cast<const inotify_event*>(buffer + off);
            // An overflow lost events: re-read to be safe.
            if ((ev->mask & IN_Q_OVERFLOW) || (ev->len > 0 && ev->name == file_name_)) {
                ours = true;
                seen_mask_ |= ev->mask;
            }
            off += static_cast<ssize_t>(sizeof(inotify_event) + ev->len);
        }
    }
    if (ours && !timer_) timer_ = loop_.add_timer(settle_usec_, [this] { settle(); });
}

void LeaseWatch::settle()
{
    log_debug("lease file " + path_ + " changed (inotify mask 0x" + [this] {
        char hex[16];
        std::snprintf(hex, sizeof hex, "%x", seen_mask_);
        return std::string(hex);
    }() + ")");
    seen_mask_ = 0;
    auto next = read_leases(path_);
    auto events = plan::diff_leases(current_, next, static_cast<std::int64_t>(::time(nullptr)));
    current_ = std::move(next);
    // The handler runs inside this source's callback; dropping the source
    // here is safe (its cell lives until sd-event destroys it).
    timer_.reset();
    if (!events.empty()) on_change_(events);
}

}  // namespace kvmnet::core
