// The writer of durable.hpp: one thread, batches synced in the order they were queued.
#include "store/durable.hpp"

#include "model/error.hpp"
#include "store/files.hpp"
#include "store/quiet_thread.hpp"

#include <fcntl.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>

namespace kvmnet::store {
namespace {

class Fsync final : public Syncer {
public:
    void sync_file(int fd, const std::string& path) override
    {
        if (::fsync(fd) != 0) throw Error(ErrorKind::Kernel, "cannot sync " + path + ": " + std::strerror(errno));
    }
    void sync_directory(const std::string& dir) override
    {
        const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0) return;  // as write_atomic: the rename happened, only its durability is unknown
        const int r = ::fsync(fd);
        const int error = errno;
        ::close(fd);
        if (r != 0) throw Error(ErrorKind::Kernel, "cannot sync the directory " + dir + ": " + std::strerror(error));
    }
};

std::string directory_of(const std::string& path)
{
    const std::string dir = std::filesystem::path(path).parent_path().string();
    return dir.empty() ? "." : dir;
}

}  // namespace

DurableWriter::DurableWriter(Syncer* syncer) : syncer_(syncer)
{
    if (!syncer_) {
        own_syncer_ = std::make_unique<Fsync>();
        syncer_ = own_syncer_.get();
    }
}

DurableWriter::~DurableWriter()
{
    if (thread_.joinable()) {
        flush();
        {
            std::lock_guard lock(mutex_);
            stopping_ = true;
        }
        wake_.notify_all();
        thread_.join();
    }
    if (event_fd_ >= 0) ::close(event_fd_);
}

void DurableWriter::start_thread()
{
    if (thread_.joinable()) return;
    event_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (event_fd_ < 0) throw Error(ErrorKind::Kernel, std::string("eventfd: ") + std::strerror(errno));
    thread_ = quiet_thread([this] { thread_main(); });
}

void DurableWriter::replace(int fd, std::string tmp, std::string path, std::vector<std::string> remove_after, Then then)
{
    queue(Replace{fd, {}, std::move(tmp), std::move(path), std::move(remove_after), std::move(then)});
}

void DurableWriter::replace_made(Make make, std::string tmp, std::string path, std::vector<std::string> remove_after,
                                 Then then)
{
    queue(Replace{-1, std::move(make), std::move(tmp), std::move(path), std::move(remove_after), std::move(then)});
}

void DurableWriter::queue(Replace replace)
{
    const std::uint64_t number = ++sequence_;
    last_of_[replace.path] = number;
    open_.replaces.push_back(std::move(replace));
    open_.last = number;
    if (threaded()) return;
    Batch batch = std::move(open_);
    open_ = Batch{};
    run_batch(batch);
    {
        std::lock_guard lock(mutex_);
        durable_ = batch.last;
    }
    if (batch.error) std::rethrow_exception(batch.error);
}

void DurableWriter::when_durable(Done done)
{
    if (!open_.replaces.empty()) {
        open_.done.push_back(std::move(done));
        return;
    }
    {
        std::lock_guard lock(mutex_);
        // Batches finish in order: waiting for the last one handed over
        // waits for all of them.
        if (!queued_.empty()) {
            queued_.back().done.push_back(std::move(done));
            return;
        }
        if (busy_) {
            // The batch being synced belongs to the thread now: wait for
            // an empty batch queued behind it.
            Batch empty;
            empty.last = durable_;
            empty.done.push_back(std::move(done));
            queued_.push_back(std::move(empty));
            return;
        }
    }
    done(nullptr);
}

bool DurableWriter::pending(const std::string& path) const
{
    const auto it = last_of_.find(path);
    if (it == last_of_.end()) return false;
    std::lock_guard lock(mutex_);
    return it->second > durable_;
}

void DurableWriter::hand_over()
{
    if (open_.replaces.empty() && open_.done.empty()) return;
    queued_.push_back(std::move(open_));
    open_ = Batch{};
    wake_.notify_all();
}

void DurableWriter::submit()
{
    if (!threaded()) return;
    std::lock_guard lock(mutex_);
    if (!busy_ && queued_.empty()) hand_over();
}

void DurableWriter::complete()
{
    if (!threaded()) return;
    std::uint64_t ignored = 0;
    [[maybe_unused]] const ssize_t n = ::read(event_fd_, &ignored, sizeof ignored);
    std::deque<Batch> done;
    {
        std::lock_guard lock(mutex_);
        done.swap(finished_);
        if (!busy_ && queued_.empty()) hand_over();
    }
    for (Batch& batch : done) {
        std::vector<Done> calls = std::move(batch.done);
        // The callers whose changes an earlier failed batch left to this one.
        for (auto it = carried_.begin(); it != carried_.end() && it->first <= batch.last; it = carried_.erase(it))
            calls.push_back(std::move(it->second));
        // Memory goes back to what the disk holds before a caller hears of it.
        // Unless the path was replaced again after this batch: that replace
        // decides (and is reported by its own batch should it fail too).
        bool reverted = false;
        std::uint64_t carried_by = 0;
        for (const std::string& path : batch.lost) {
            const std::uint64_t newest = last_of_[path];
            if (newest > batch.last) {
                carried_by = std::max(carried_by, newest);
            } else {
                reverted = true;
                if (lost_) lost_(path, batch.error);
            }
        }
        // Every file the error left old is replaced again later, with
        // contents that include this batch's changes (a document is saved
        // whole): its callers hear how that write ends, not of this error,
        // which would tell them their change failed while it becomes durable.
        if (batch.error && !reverted && carried_by != 0) {
            for (Done& call : calls)
                carried_.emplace(carried_by, std::move(call));
            continue;
        }
        for (Done& call : calls)
            call(batch.error);
    }
}

void DurableWriter::flush()
{
    if (!threaded()) return;
    std::unique_lock lock(mutex_);
    hand_over();
    wake_.wait(lock, [&] { return queued_.empty() && !busy_; });
}

void DurableWriter::thread_main()
{
    std::unique_lock lock(mutex_);
    for (;;) {
        wake_.wait(lock, [&] { return stopping_ || !queued_.empty(); });
        if (queued_.empty()) return;  // stopping, nothing left
        Batch batch = std::move(queued_.front());
        queued_.pop_front();
        busy_ = true;
        lock.unlock();
        run_batch(batch);
        lock.lock();
        busy_ = false;
        if (batch.last > durable_) durable_ = batch.last;
        finished_.push_back(std::move(batch));
        // Woken by the eventfd, the loop takes the mutex at once (complete()):
        // holding it across the write made the loop wait for this thread
        // whenever the thread lost its CPU in between (3 ms under the load test).
        lock.unlock();
        const std::uint64_t one = 1;
        [[maybe_unused]] const ssize_t n = ::write(event_fd_, &one, sizeof one);
        wake_.notify_all();  // flush() waits for this
        lock.lock();
    }
}

void DurableWriter::run_batch(Batch& batch)
{
    auto& replaces = batch.replaces;
    // A path replaced several times in the batch: only its last contents
    // are synced and renamed, the others are dropped unseen.
    std::map<std::string, std::size_t> last;
    for (std::size_t i = 0; i < replaces.size(); ++i)
        last[replaces[i].path] = i;
    std::vector<std::size_t> kept;
    for (std::size_t i = 0; i < replaces.size(); ++i) {
        if (last[replaces[i].path] == i) {
            kept.push_back(i);
        } else if (replaces[i].fd >= 0) {
            ::close(replaces[i].fd);
            ::unlink(replaces[i].tmp.c_str());
        }
    }
    std::size_t renamed = 0;
    try {
        for (const std::size_t i : kept) {
            Replace& r = replaces[i];
            if (r.fd < 0 && r.make) r.fd = write_temp(r.tmp, r.make(), 0644, true);
            syncer_->sync_file(r.fd, r.path);  // its error names the file, not the temporary
        }
        std::set<std::string> directories;
        for (; renamed < kept.size(); ++renamed) {
            Replace& r = replaces[kept[renamed]];
            ::close(r.fd);
            r.fd = -1;
            if (::rename(r.tmp.c_str(), r.path.c_str()) != 0)
                throw Error(ErrorKind::Kernel, "cannot rename into place " + r.path + ": " + std::strerror(errno));
            directories.insert(directory_of(r.path));
        }
        for (const std::string& dir : directories)
            syncer_->sync_directory(dir);
        for (const std::size_t i : kept)
            for (const std::string& file : replaces[i].remove_after)
                if (::unlink(file.c_str()) != 0 && errno != ENOENT)
                    throw Error(ErrorKind::Kernel, "cannot remove " + file + ": " + std::strerror(errno));
        for (const std::size_t i : kept) {
            if (!replaces[i].then) continue;
            try {
                replaces[i].then();
            } catch (...) {
            }
        }
    } catch (...) {
        batch.error = std::current_exception();
        for (std::size_t k = renamed; k < kept.size(); ++k) {
            Replace& r = replaces[kept[k]];
            if (r.fd >= 0) ::close(r.fd);
            ::unlink(r.tmp.c_str());  // absent when its contents were never made
            batch.lost.push_back(r.path);
        }
    }
}

}  // namespace kvmnet::store
