// sd-event wrapper. Handlers live in heap cells owned by their source (freed
// through the source's destroy callback), so a source can be dropped from
// inside its own handler.
#include "core/event_loop.hpp"

#include "core/loop_trace.hpp"
#include "model/error.hpp"

#include <csignal>
#include <cstring>
#include <systemd/sd-event.h>
#include <time.h>

namespace kvmnet::core {
namespace {

void check(int r, const char* what)
{
    if (r < 0) throw Error(ErrorKind::Kernel, std::string("event loop: ") + what + ": " + std::strerror(-r));
}

// A handler with the place that registered it, for the loop-turn trace.
template <typename H>
struct Cell {
    H handler;
    std::source_location where;
    template <typename... A>
    void operator()(A... args)
    {
        const TraceTurn turn(where);
        handler(args...);
    }
};
using IoCell = Cell<EventLoop::IoHandler>;
using HandlerCell = Cell<EventLoop::Handler>;

template <typename H>
void attach(sd_event_source* s, H* cell)
{
    sd_event_source_set_userdata(s, cell);
    sd_event_source_set_destroy_callback(s, [](void* p) { delete static_cast<H*>(p); });
}

}  // namespace

EventSource::~EventSource()
{
    if (source_) {
        sd_event_source_disable_unref(source_);
    }
}

EventLoop::EventLoop() { check(sd_event_new(&event_), "creating"); }

EventLoop::~EventLoop() { sd_event_unref(event_); }

std::unique_ptr<EventSource> EventLoop::add_io(int fd, std::uint32_t events, IoHandler handler,
                                               std::source_location where)
{
    auto* cell = new IoCell{std::move(handler), where};
    sd_event_source* s = nullptr;
    int r = sd_event_add_io(
        event_, &s, fd, events,
        [](sd_event_source*, int, std::uint32_t revents, void* p) {
            (*static_cast<IoCell*>(p))(revents);
            return 0;
        },
        cell);
    if (r < 0) delete cell;
    check(r, "watching a file descriptor");
    attach(s, cell);
    return std::make_unique<EventSource>(s);
}

std::unique_ptr<EventSource> EventLoop::add_timer(std::uint64_t delay_usec, Handler handler, std::source_location where)
{
    auto* cell = new HandlerCell{std::move(handler), where};
    sd_event_source* s = nullptr;
    int r = sd_event_add_time_relative(
        event_, &s, CLOCK_MONOTONIC, delay_usec, 1000,
        [](sd_event_source*, std::uint64_t, void* p) {
            (*static_cast<HandlerCell*>(p))();
            return 0;
        },
        cell);
    if (r < 0) delete cell;
    check(r, "adding a timer");
    attach(s, cell);
    return std::make_unique<EventSource>(s);
}

std::unique_ptr<EventSource> EventLoop::add_signal(int signal, Handler handler, std::source_location where)
{
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, signal);
    sigprocmask(SIG_BLOCK, &mask, nullptr);
    auto* cell = new HandlerCell{std::move(handler), where};
    sd_event_source* s = nullptr;
    int r = sd_event_add_signal(
        event_, &s, signal,
        [](sd_event_source*, const signalfd_siginfo*, void* p) {
            (*static_cast<HandlerCell*>(p))();
            return 0;
        },
        cell);
    if (r < 0) delete cell;
    check(r, "watching a signal");
    attach(s, cell);
    return std::make_unique<EventSource>(s);
}

std::unique_ptr<EventSource> EventLoop::add_post(Handler handler, std::source_location where)
{
    auto* cell = new HandlerCell{std::move(handler), where};
    sd_event_source* s = nullptr;
    int r = sd_event_add_post(
        event_, &s,
        [](sd_event_source*, void* p) {
            (*static_cast<HandlerCell*>(p))();
            return 0;
        },
        cell);
    if (r < 0) delete cell;
    check(r, "adding a post handler");
    sd_event_source_set_enabled(s, SD_EVENT_ON);
    attach(s, cell);
    return std::make_unique<EventSource>(s);
}

int EventLoop::run() { return sd_event_loop(event_); }

void EventLoop::exit(int code) { sd_event_exit(event_, code); }

std::uint64_t EventLoop::now_usec()
{
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1000000u + static_cast<std::uint64_t>(ts.tv_nsec) / 1000u;
}

}  // namespace kvmnet::core
