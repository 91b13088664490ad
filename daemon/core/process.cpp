// Process spawning and supervision helpers.
#include "core/process.hpp"

#include "model/error.hpp"
#include "store/files.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <memory>
#include <poll.h>
#include <spawn.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <systemd/sd-event.h>
#include <thread>
#include <unistd.h>

namespace kvmnet::core {

pid_t spawn_process(const std::vector<std::string>& argv, const std::string& log_path)
{
    int log = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (log < 0) throw Error(ErrorKind::Kernel, "cannot open " + log_path + ": " + std::strerror(errno));
    std::vector<char*> args;
    for (const auto& a : argv)
        args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);

    // posix_spawn, not fork: glibc's clone(CLONE_VM | CLONE_VFORK) copies
    // none of the daemon's page tables on the loop. The loop still waits
    // until the child has exec'd, which on a loaded machine is the wait for
    // a CPU: the loop trace measured 'spawning dnsmasq' at 1-16 ms with fork
    // and p50 6.9 ms with this at load ~6, mostly off the CPU either way
    // (docs/performance.md §8). The child gets its own session, every
    // signal's default action, an empty mask (glibc blocks signals in the
    // child until these are set, so none of the parent's handlers runs
    // there), stdin on /dev/null, stdout and stderr on the log and no other
    // descriptor.
    posix_spawnattr_t attr;
    posix_spawn_file_actions_t actions;
    ::posix_spawnattr_init(&attr);
    ::posix_spawn_file_actions_init(&actions);
    sigset_t all, none;
    sigfillset(&all);
    sigemptyset(&none);
    ::posix_spawnattr_setsigdefault(&attr, &all);
    ::posix_spawnattr_setsigmask(&attr, &none);
    ::posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
    ::posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    ::posix_spawn_file_actions_adddup2(&actions, log, 1);
    ::posix_spawn_file_actions_adddup2(&actions, log, 2);
    ::posix_spawn_file_actions_addclosefrom_np(&actions, 3);
    pid_t pid = 0;
    const int r = ::posix_spawn(&pid, args[0], &actions, &attr, args.data(), environ);
    ::posix_spawn_file_actions_destroy(&actions);
    ::posix_spawnattr_destroy(&attr);
    ::close(log);
    if (r != 0) throw Error(ErrorKind::Kernel, "cannot start " + argv[0] + ": " + std::strerror(r));
    return pid;
}

std::vector<std::string> process_cmdline(pid_t pid)
{
    std::vector<std::string> result;
    auto text = store::read_file("/proc/" + std::to_string(pid) + "/cmdline");
    if (!text) return result;
    std::size_t start = 0;
    while (start < text->size()) {
        std::size_t end = text->find('\0', start);
        if (end == std::string::npos) end = text->size();
        result.push_back(text->substr(start, end - start));
        start = end + 1;
    }
    return result;
}

std::vector<pid_t> processes_with_argument(const std::string& argument)
{
    std::vector<pid_t> found;
    std::unique_ptr<DIR, int (*)(DIR*)> proc(::opendir("/proc"), ::closedir);
    if (!proc) return found;
    while (const dirent* entry = ::readdir(proc.get())) {
        char* end = nullptr;
        const long pid = std::strtol(entry->d_name, &end, 10);
        if (pid <= 0 || *end != '\0' || pid == ::getpid()) continue;
        const auto cmd = process_cmdline(static_cast<pid_t>(pid));
        if (std::find(cmd.begin(), cmd.end(), argument) != cmd.end() && process_alive(static_cast<pid_t>(pid)))
            found.push_back(static_cast<pid_t>(pid));
    }
    return found;
}

bool process_alive(pid_t pid)
{
    if (pid <= 0 || (::kill(pid, 0) != 0 && errno != EPERM)) return false;
    // A zombie still answers kill(0); it is not alive for our purposes.
    auto stat = store::read_file("/proc/" + std::to_string(pid) + "/stat");
    if (!stat) return false;
    auto close = stat->rfind(')');
    return close == std::string::npos || close + 2 >= stat->size() || (*stat)[close + 2] != 'Z';
}

long process_uid(pid_t pid)
{
    const auto status = store::read_file("/proc/" + std::to_string(pid) + "/status");
    if (!status) return -1;
    const auto at = status->find("\nUid:");
    if (at == std::string::npos) return -1;
    try {
        return std::stol(status->substr(at + 5));
    } catch (const std::exception&) {
        return -1;
    }
}

PidFd::PidFd(pid_t pid) : pid_(pid)
{
    if (pid > 0) fd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
}

PidFd::~PidFd()
{
    if (fd_ >= 0) ::close(fd_);
}

void stop_process(pid_t pid, int grace_ms) { stop_process(PidFd(pid), grace_ms); }

void stop_process(const PidFd& process, int grace_ms)
{
    const pid_t pid = process.pid();
    if (pid <= 0) return;
    auto reap = [pid] {
        int status = 0;
        return ::waitpid(pid, &status, WNOHANG) == pid;
    };
    const int pidfd = process.fd();
    // Through the pidfd when there is one: the pid may name another process
    // by now (the process exited and was reaped by someone else, an adopted
    // dnsmasq that is not our child), the pidfd never does.
    const auto send = [&](int signal) {
        if (pidfd >= 0) return ::syscall(SYS_pidfd_send_signal, pidfd, signal, nullptr, 0) == 0;
        return ::kill(pid, signal) == 0;
    };
    // A pidfd becomes readable the moment the process exits: no polling
    // interval between the exit and our return.
    const auto wait_exit = [&](int ms) {
        if (pidfd >= 0) {
            pollfd p{pidfd, POLLIN, 0};
            const bool exited = ::poll(&p, 1, ms) == 1;
            if (exited) reap();
            return exited;
        }
        if (reap() || !process_alive(pid)) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(std::min(ms, 5)));
        return reap() || !process_alive(pid);
    };
    if (!send(SIGTERM)) {
        if (errno == ESRCH) return;
        throw Error(ErrorKind::Kernel, "cannot stop pid " + std::to_string(pid) + " (uid " +
                                           std::to_string(process_uid(pid)) + "): " + std::strerror(errno));
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(grace_ms);
    while (std::chrono::steady_clock::now() < deadline) {
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (wait_exit(static_cast<int>(std::max<long>(1, left.count())))) return;
    }
    send(SIGKILL);
    for (int i = 0; i < 200; ++i)
        if (wait_exit(5)) return;
    throw Error(ErrorKind::Kernel, "pid " + std::to_string(pid) + " survived SIGKILL");
}

ProcessWatch::ProcessWatch(EventLoop& loop, pid_t pid, std::function<void(int)> on_exit) : pid_(pid)
{
    pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
    if (pidfd_ < 0)
        throw Error(ErrorKind::Kernel, "cannot watch process " + std::to_string(pid) + ": " + std::strerror(errno));
    source_ = loop.add_io(pidfd_, EPOLLIN, [this, on_exit = std::move(on_exit)](std::uint32_t) {
        // Copied first: on_exit may destroy this watch, and its handler with it.
        auto notify = on_exit;
        int status = -1;  // unknown for adopted processes, which are not our children
        siginfo_t info{};
        // Reap our own children; adopted processes are reaped by their parent.
        if (::waitid(P_PIDFD, static_cast<id_t>(pidfd_), &info, WEXITED | WNOHANG) == 0)
            status = info.si_code == CLD_EXITED ? info.si_status : 128 + info.si_status;
        sd_event_source_set_enabled(source_->get(), SD_EVENT_OFF);
        notify(status);
    });
}

int ProcessWatch::send_signal(int signal) const
{
    return ::syscall(SYS_pidfd_send_signal, pidfd_, signal, nullptr, 0) == 0 ? 0 : errno;
}

ProcessWatch::~ProcessWatch()
{
    source_.reset();
    if (pidfd_ >= 0) ::close(pidfd_);
}

}  // namespace kvmnet::core
