// Unit tests of core/work_queue: the worker thread of the bridge deletions.
// Work runs on the thread, first in first out; its outcome comes back on the
// event loop's thread; drain() settles everything; the destructor runs what
// is still queued.
#include "core/event_loop.hpp"
#include "core/work_queue.hpp"
#include "model/error.hpp"

#include <catch2/catch.hpp>

#include <systemd/sd-event.h>

#include <atomic>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace unit_test_work_queue {

namespace core = kvmnet::core;

namespace {

// Runs the loop until `done` holds.
template <typename Pred>
void run_until(core::EventLoop& loop, Pred done)
{
    while (!done())
        REQUIRE(sd_event_run(loop.get(), 5'000'000) >= 0);
}

// A gate the worker's work waits at until the test opens it.
struct Gate {
    std::mutex mutex;
    std::condition_variable cv;
    bool open = false;
    void wait()
    {
        std::unique_lock lock(mutex);
        cv.wait(lock, [&] { return open; });
    }
    void release()
    {
        {
            const std::lock_guard lock(mutex);
            open = true;
        }
        cv.notify_all();
    }
};

}  // namespace

TEST_CASE("Work runs on the worker thread in order; its Done on the loop's", "[work_queue]")
{
    core::EventLoop loop;
    core::WorkQueue queue(loop);
    const auto loop_thread = std::this_thread::get_id();
    std::mutex mutex;
    std::vector<int> ran;  // under mutex, by the worker
    std::vector<int> completed;
    std::atomic<bool> worker_was_other{true};
    for (int i = 0; i < 5; ++i)
        queue.submit(
            [&, i] {
                if (std::this_thread::get_id() == loop_thread) worker_was_other = false;
                const std::lock_guard lock(mutex);
                ran.push_back(i);
            },
            [&, i](std::exception_ptr error) {
                CHECK(std::this_thread::get_id() == loop_thread);
                CHECK_FALSE(error);
                completed.push_back(i);
            });
    CHECK(queue.pending() == 5);
    run_until(loop, [&] { return completed.size() == 5; });
    CHECK(worker_was_other);
    CHECK(ran == std::vector<int>{0, 1, 2, 3, 4});
    CHECK(completed == std::vector<int>{0, 1, 2, 3, 4});
    CHECK(queue.pending() == 0);
}

TEST_CASE("The loop serves other events while a work waits; its Done comes after", "[work_queue]")
{
    core::EventLoop loop;
    core::WorkQueue queue(loop);
    Gate gate;
    std::vector<std::string> order;
    queue.submit([&] { gate.wait(); }, [&](std::exception_ptr) { order.push_back("work done"); });
    // A timer (another caller) is served while the work waits at the gate.
    auto timer = loop.add_timer(0, [&] {
        order.push_back("timer");
        gate.release();
    });
    run_until(loop, [&] { return order.size() == 2; });
    CHECK(order == std::vector<std::string>{"timer", "work done"});
}

TEST_CASE("A work's exception is its Done's error; the next work still runs", "[work_queue]")
{
    core::EventLoop loop;
    core::WorkQueue queue(loop);
    std::vector<std::string> outcomes;
    queue.submit([] { throw kvmnet::Error(kvmnet::ErrorKind::NotFound, "no such interface br9"); },
                 [&](std::exception_ptr error) {
                     REQUIRE(error);
                     try {
                         std::rethrow_exception(error);
                     } catch (const kvmnet::Error& e) {
                         CHECK(e.kind() == kvmnet::ErrorKind::NotFound);
                         outcomes.push_back(e.what());
                     }
                 });
    queue.submit([] {}, [&](std::exception_ptr error) { outcomes.push_back(error ? "error" : "ok"); });
    run_until(loop, [&] { return outcomes.size() == 2; });
    CHECK(outcomes[0].find("no such interface br9") != std::string::npos);
    CHECK(outcomes[1] == "ok");
}

TEST_CASE("drain() waits for every work and calls the Dones before it returns", "[work_queue]")
{
    core::EventLoop loop;
    core::WorkQueue queue(loop);
    std::atomic<int> ran{0};
    std::vector<int> completed;
    for (int i = 0; i < 3; ++i)
        queue.submit(
            [&] {
                std::this_thread::yield();
                ++ran;
            },
            [&, i](std::exception_ptr) { completed.push_back(i); });
    queue.drain();
    CHECK(ran == 3);
    CHECK(completed == std::vector<int>{0, 1, 2});
    CHECK(queue.pending() == 0);
    // Nothing is delivered twice: the loop's later wake-up finds no work.
    REQUIRE(sd_event_run(loop.get(), 0) >= 0);
    CHECK(completed.size() == 3);
}

TEST_CASE("A Done may submit more work", "[work_queue]")
{
    core::EventLoop loop;
    core::WorkQueue queue(loop);
    std::vector<std::string> order;
    queue.submit([] {},
                 [&](std::exception_ptr) {
                     order.push_back("first");
                     queue.submit([] {}, [&](std::exception_ptr) { order.push_back("second"); });
                 });
    run_until(loop, [&] { return order.size() == 2; });
    CHECK(order == std::vector<std::string>{"first", "second"});
}

TEST_CASE("Destroyed with work queued: every work runs, no Done is called", "[work_queue]")
{
    core::EventLoop loop;
    std::atomic<int> ran{0};
    bool done_called = false;
    {
        core::WorkQueue queue(loop);
        Gate gate;
        queue.submit(
            [&] {
                gate.wait();
                ++ran;
            },
            [&](std::exception_ptr) { done_called = true; });
        queue.submit([&] { ++ran; }, [&](std::exception_ptr) { done_called = true; });
        gate.release();
    }
    CHECK(ran == 2);
    CHECK_FALSE(done_called);
}

}  // namespace unit_test_work_queue
