#include "core/lease_watch.hpp"

#include "core/log.hpp"
#include "store/files.hpp"

#include <ctime>
#include <filesystem>
#include <sys/inotify.h>

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

LeaseWatch::LeaseWatch(EventLoop& loop, DirectoryWatch& watch, const std::string& path, Callback on_change,
                       std::uint64_t settle_usec)
    : loop_(loop), watch_(watch), path_(path), on_change_(std::move(on_change)), settle_usec_(settle_usec)
{
    const std::filesystem::path file(path);
    watch_id_ = watch_.add(file.parent_path().string(), watch_mask, file.filename().string(), [this] { changed(); });
    current_ = read_leases(path_);
}

LeaseWatch::~LeaseWatch()
{
    timer_.reset();
    watch_.remove(watch_id_);
}

void LeaseWatch::changed()
{
    if (!timer_) timer_ = loop_.add_timer(settle_usec_, [this] { settle(); });
}

void LeaseWatch::settle()
{
    log_debug("lease file " + path_ + " changed");
    auto next = read_leases(path_);
    auto events = plan::diff_leases(current_, next, static_cast<std::int64_t>(::time(nullptr)));
    current_ = std::move(next);
    // The handler runs inside this source's callback; dropping the source
    // here is safe (its cell lives until sd-event destroys it).
    timer_.reset();
    if (!events.empty()) on_change_(events);
}

}  // namespace kvmnet::core
