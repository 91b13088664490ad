// One worker thread with a queue, for kernel calls that wait off the CPU
// (a bridge's deletion waits ~35 ms in the kernel's rcu_barrier): the work
// runs on the thread, its outcome comes back to the event loop through an
// eventfd, and the loop serves every other caller meanwhile. The work must
// share nothing mutable with the loop: it gets what it needs by value and
// uses its own kernel handle (a second netlink socket, ManagerOptions::worker_links).
#pragma once

#include "core/event_loop.hpp"

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

namespace kvmnet::core {

class WorkQueue {
public:
    using Work = std::function<void()>;
    // On the loop, with the exception the work threw, or nullptr.
    using Done = std::function<void(std::exception_ptr)>;

    explicit WorkQueue(EventLoop& loop);
    // Runs the work still queued (each submitted work runs exactly once),
    // joins the thread; the Done of work not yet completed on the loop is
    // not called.
    ~WorkQueue();
    WorkQueue(const WorkQueue&) = delete;
    WorkQueue& operator=(const WorkQueue&) = delete;

    // Queues `work` (first in, first out); `done` runs on the loop once it ran.
    void submit(Work work, Done done);
    // Blocks until every submitted work ran and its Done was called here,
    // in order: for the rare caller that must see the kernel settled now (a
    // stop asked outside the loop's dispatch, the daemon's exit). Work a
    // Done submits meanwhile is waited for too (a stop's continuation that
    // stops again: the daemon must not exit with it half done). It loops,
    // it does not recurse; a Done that drains (nested) takes the same queue
    // of finished work, so every Done runs once.
    void drain();
    // Submitted and not yet completed on the loop.
    std::size_t pending() const { return pending_; }

private:
    struct Job {
        Work work;
        Done done;
        std::exception_ptr error;
    };
    void run();           // the thread
    void complete();      // the loop: the eventfd is readable
    void run_finished();  // the loop: the Done of each finished work, in order
    EventLoop& loop_;
    int eventfd_ = -1;
    std::unique_ptr<EventSource> source_;
    std::mutex mutex_;
    std::condition_variable wake_;  // the thread: work queued or exiting
    std::condition_variable idle_;  // drain(): a work finished
    std::deque<Job> queued_;        // under mutex_
    std::deque<Job> finished_;      // under mutex_
    std::deque<Job> ready_;         // the loop's: finished, its Done not yet called
    bool running_work_ = false;     // under mutex_
    bool exiting_ = false;          // under mutex_
    std::size_t pending_ = 0;       // the loop's count
    std::thread thread_;
};

}  // namespace kvmnet::core
