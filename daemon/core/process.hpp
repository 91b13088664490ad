// Child processes the daemon supervises (dnsmasq): spawning them detached
// from our session so they outlive a daemon restart, watching them through a
// pidfd (which works for adopted processes too, not only our children), and
// stopping them by PID.
#pragma once

#include "core/event_loop.hpp"

#include <functional>
#include <memory>
#include <string>
#include <sys/types.h>
#include <vector>

namespace kvmnet::core {

// posix_spawn (vfork + exec) with stdin on /dev/null and stdout/stderr
// appended to `log_path`, in a new session, with a clean signal mask.
// Throws (Kernel) when the program cannot be executed.
pid_t spawn_process(const std::vector<std::string>& argv, const std::string& log_path);

// The process's command line as argv, empty when it does not exist.
std::vector<std::string> process_cmdline(pid_t pid);

// The live processes whose command line holds `argument` as one word (a scan
// of /proc): what finds a child whose pid was never written anywhere.
std::vector<pid_t> processes_with_argument(const std::string& argument);

// kill(pid, 0) failing with EPERM counts as alive: a process of another
// user (a dnsmasq started by a daemon that ran as root) exists all the same.
bool process_alive(pid_t pid);

// The real uid of a process (from /proc), -1 when unknown.
long process_uid(pid_t pid);

// A process named by a pidfd opened while its pid was known to be the
// process meant: signals sent through it never reach a process that reused
// the pid later (a stop handed to another thread may run seconds after).
// Without pidfds (or when the process is gone already) it holds the pid only.
class PidFd {
public:
    explicit PidFd(pid_t pid);
    ~PidFd();
    PidFd(const PidFd&) = delete;
    PidFd& operator=(const PidFd&) = delete;
    pid_t pid() const { return pid_; }
    int fd() const { return fd_; }

private:
    pid_t pid_;
    int fd_ = -1;
};

// SIGTERM, wait up to `grace_ms`, then SIGKILL; reaps it when it is our
// child. Throws (Kernel) when it cannot be signalled (EPERM) or survives.
void stop_process(pid_t pid, int grace_ms = 2000);
void stop_process(const PidFd& process, int grace_ms = 2000);

// Calls `on_exit` once when `pid` exits (reaping it when it is our child), with
// its exit status, 128+signal, or -1 when unknown (not our child).
class ProcessWatch {
public:
    ProcessWatch(EventLoop& loop, pid_t pid, std::function<void(int status)> on_exit);
    ~ProcessWatch();
    ProcessWatch(const ProcessWatch&) = delete;
    ProcessWatch& operator=(const ProcessWatch&) = delete;
    pid_t pid() const { return pid_; }
    // `signal` through the watch's pidfd, which never names another process
    // after this one exited and its pid was reused. 0 or the errno.
    int send_signal(int signal) const;

private:
    pid_t pid_;
    int pidfd_ = -1;
    std::unique_ptr<EventSource> source_;
};

}  // namespace kvmnet::core
