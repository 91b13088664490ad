// A thin RAII layer over sd-event: the daemon's one event loop, which drives
// the bus connection, child-process watches, signals and timers.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <source_location>

struct sd_event;
struct sd_event_source;

namespace kvmnet::core {

class EventSource {
public:
    explicit EventSource(sd_event_source* source) : source_(source) {}
    ~EventSource();
    EventSource(const EventSource&) = delete;
    EventSource& operator=(const EventSource&) = delete;
    sd_event_source* get() const { return source_; }

private:
    sd_event_source* source_;
};

class EventLoop {
public:
    using IoHandler = std::function<void(std::uint32_t revents)>;
    using Handler = std::function<void()>;

    EventLoop();
    ~EventLoop();
    EventLoop(const EventLoop&) = delete;
    EventLoop& operator=(const EventLoop&) = delete;

    sd_event* get() const { return event_; }

    // `where` names the handler in the loop-turn trace (core/loop_trace.hpp).
    std::unique_ptr<EventSource> add_io(int fd, std::uint32_t events, IoHandler handler,
                                        std::source_location where = std::source_location::current());
    // One-shot timer `delay_usec` from now (CLOCK_MONOTONIC).
    std::unique_ptr<EventSource> add_timer(std::uint64_t delay_usec, Handler handler,
                                           std::source_location where = std::source_location::current());
    // Blocks `signal` for the process and delivers it here.
    std::unique_ptr<EventSource> add_signal(int signal, Handler handler,
                                            std::source_location where = std::source_location::current());
    // Runs `handler` after every loop iteration's dispatch (used to flush the bus).
    std::unique_ptr<EventSource> add_post(Handler handler,
                                          std::source_location where = std::source_location::current());

    int run();
    void exit(int code);
    static std::uint64_t now_usec();

private:
    sd_event* event_ = nullptr;
};

}  // namespace kvmnet::core
