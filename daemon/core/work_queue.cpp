// core/work_queue.hpp: one worker thread, its queue, and the eventfd back to the loop.
#include "core/work_queue.hpp"

#include "model/error.hpp"
#include "store/quiet_thread.hpp"

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <utility>

namespace kvmnet::core {

WorkQueue::WorkQueue(EventLoop& loop) : loop_(loop)
{
    eventfd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (eventfd_ < 0)
        throw Error(ErrorKind::Kernel, std::string("eventfd for the work queue: ") + std::strerror(errno));
    try {
        source_ = loop_.add_io(eventfd_, EPOLLIN, [this](std::uint32_t) { complete(); });
        // No signal may land on the worker (SIGHUP would end the daemon).
        thread_ = store::quiet_thread([this] { run(); });
    } catch (...) {
        source_.reset();
        ::close(eventfd_);
        throw;
    }
}

WorkQueue::~WorkQueue()
{
    {
        const std::lock_guard lock(mutex_);
        exiting_ = true;
    }
    wake_.notify_one();
    thread_.join();
    source_.reset();
    ::close(eventfd_);
}

void WorkQueue::submit(Work work, Done done)
{
    {
        const std::lock_guard lock(mutex_);
        queued_.push_back(Job{std::move(work), std::move(done), nullptr});
    }
    ++pending_;
    wake_.notify_one();
}

void WorkQueue::run()
{
    std::unique_lock lock(mutex_);
    for (;;) {
        wake_.wait(lock, [&] { return exiting_ || !queued_.empty(); });
        if (queued_.empty()) return;  // exiting, and everything ran
        Job job = std::move(queued_.front());
        queued_.pop_front();
        running_work_ = true;
        lock.unlock();
        try {
            job.work();
        } catch (...) {
            job.error = std::current_exception();
        }
        job.work = nullptr;  // what it captured goes here, on the thread
        lock.lock();
        running_work_ = false;
        finished_.push_back(std::move(job));
        idle_.notify_all();
        // Written under the mutex: drain() reads the eventfd empty once the
        // queue is idle, and finds every wake-up before it.
        const std::uint64_t one = 1;
        [[maybe_unused]] const auto written = ::write(eventfd_, &one, sizeof one);
    }
}

void WorkQueue::complete()
{
    std::uint64_t count = 0;
    [[maybe_unused]] const auto got = ::read(eventfd_, &count, sizeof count);
    run_finished();
}

void WorkQueue::run_finished()
{
    {
        const std::lock_guard lock(mutex_);
        for (auto& job : finished_)
            ready_.push_back(std::move(job));
        finished_.clear();
    }
    // A Done may submit more work, or drain(): each is taken off before it
    // runs, so a nested drain() never calls it again.
    while (!ready_.empty()) {
        Job job = std::move(ready_.front());
        ready_.pop_front();
        --pending_;
        if (job.done) job.done(job.error);
    }
}

void WorkQueue::drain()
{
    while (pending_ > 0) {
        {
            std::unique_lock lock(mutex_);
            idle_.wait(lock, [&] { return !finished_.empty() || (queued_.empty() && !running_work_); });
        }
        complete();
    }
}

}  // namespace kvmnet::core
