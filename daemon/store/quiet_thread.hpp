// A thread that takes no signal. The event loop blocks the signals it
// handles (SIGHUP, SIGTERM, ...) in its own thread and reads them from a
// signalfd; the kernel delivers a process-wide signal to any thread that
// does not block it, and its default action there (SIGHUP: terminate)
// would end the daemon. A thread inherits the mask it is created with.
#pragma once

#include <csignal>
#include <pthread.h>
#include <thread>
#include <utility>

namespace kvmnet::store {

template <class Function>
std::thread quiet_thread(Function&& function)
{
    sigset_t all;
    sigset_t previous;
    ::sigfillset(&all);
    ::pthread_sigmask(SIG_SETMASK, &all, &previous);
    struct Restore {
        const sigset_t* mask;
        ~Restore() { ::pthread_sigmask(SIG_SETMASK, mask, nullptr); }
    } restore{&previous};
    return std::thread(std::forward<Function>(function));
}

}  // namespace kvmnet::store
