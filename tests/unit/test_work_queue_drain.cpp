// Unit tests of WorkQueue::drain() at the daemon's exit: a Done that submits
// more work while draining (a stop's continuation that stops again) is
// waited for too, and a Done that drains itself (nested) runs no Done twice
// and does not hang.
#include "core/event_loop.hpp"
#include "core/work_queue.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <exception>
#include <string>
#include <vector>

namespace unit_test_work_queue_drain {

namespace core = kvmnet::core;

TEST_CASE("drain() waits for the work a Done submits while draining", "[work_queue]")
{
    core::EventLoop loop;
    core::WorkQueue queue(loop);
    std::atomic<int> ran{0};
    std::vector<std::string> done;
    queue.submit([&] { ++ran; },
                 [&](std::exception_ptr) {
                     done.push_back("first");
                     queue.submit([&] { ++ran; },
                                  [&](std::exception_ptr) {
                                      done.push_back("second");
                                      queue.submit([&] { ++ran; },
                                                   [&](std::exception_ptr) { done.push_back("third"); });
                                  });
                 });
    queue.drain();
    CHECK(ran == 3);
    CHECK(done == std::vector<std::string>{"first", "second", "third"});
    CHECK(queue.pending() == 0);
}

TEST_CASE("A Done that drains (nested) calls every Done once, in order", "[work_queue]")
{
    core::EventLoop loop;
    core::WorkQueue queue(loop);
    std::vector<std::string> done;
    queue.submit([] {},
                 [&](std::exception_ptr) {
                     done.push_back("a");
                     queue.submit([] {}, [&](std::exception_ptr) { done.push_back("c"); });
                     queue.drain();  // as settle_stop does inside a stop's continuation
                     done.push_back("a drained");
                 });
    queue.submit([] {}, [&](std::exception_ptr) { done.push_back("b"); });
    queue.drain();
    CHECK(done == std::vector<std::string>{"a", "b", "c", "a drained"});
    CHECK(queue.pending() == 0);
    queue.drain();  // nothing pending: returns at once
    CHECK(done.size() == 4);
}

}  // namespace unit_test_work_queue_drain
