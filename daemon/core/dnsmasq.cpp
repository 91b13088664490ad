// dnsmasq supervision: see dnsmasq.hpp.
#include "core/dnsmasq.hpp"

#include "core/log.hpp"
#include "core/netlink_quiet.hpp"
#include "model/error.hpp"
#include "store/files.hpp"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <sys/epoll.h>
#include <unistd.h>
#include <utility>

namespace kvmnet::core {
namespace {

std::string last_lines(const std::string& path, std::size_t count)
{
    auto text = store::read_file(path).value_or("");
    while (!text.empty() && (text.back() == '\n' || text.back() == ' '))
        text.pop_back();
    std::size_t pos = text.size();
    for (std::size_t i = 0; i < count && pos != std::string::npos && pos > 0; ++i)
        pos = text.rfind('\n', pos - 1);
    std::string tail = pos == std::string::npos || pos == 0 ? text : text.substr(pos + 1);
    std::replace(tail.begin(), tail.end(), '\n', ' ');
    return tail.substr(std::min(tail.find_first_not_of(' '), tail.size()));
}

pid_t read_pid(const std::string& path) { return parse_pid(store::read_file(path).value_or("")); }

}  // namespace

unsigned dnsmasq_restart_delay_s(unsigned restarts)
{
    return restarts == 0 ? 0 : std::min(1u << std::min(restarts - 1, 5u), 30u);
}

pid_t parse_pid(const std::string& text)
{
    try {
        std::size_t end = 0;
        const long pid = std::stol(text, &end);
        return pid > 0 && pid <= 0x3fffffff ? static_cast<pid_t>(pid) : 0;
    } catch (const std::exception&) {
        return 0;
    }
}

Dnsmasq::Dnsmasq(EventLoop& loop, DnsmasqOptions options, Events events)
    : loop_(loop), options_(std::move(options)), events_(std::move(events))
{
}

Dnsmasq::~Dnsmasq() { forget_pending(); }

std::string Dnsmasq::unstoppable(pid_t pid, const std::string& to_do)
{
    const std::string p = std::to_string(pid);
    return "dnsmasq pid " + p + " runs as uid " + std::to_string(process_uid(pid)) + " and kvmnetd (uid " +
           std::to_string(::getuid()) + ") cannot " + to_do +
           " (a dnsmasq started by kvmnetd running as root?): run `kill " + p + "` as root";
}

std::string_view Dnsmasq::state() const
{
    if (watch_ && ready_) return "running";
    if (failed_) return "failed";
    if (restart_timer_ || (pending_ && !first_start_)) return "restarting";
    if (pending_) return "starting";
    return "stopped";
}

void Dnsmasq::start(const plan::DnsmasqFiles& files, Ready ready)
{
    // Not stop(): a dnsmasq left running by an earlier daemon is adopted.
    forget_pending();
    pending_ = nullptr;
    restart_timer_.reset();
    watch_.reset();
    ready_ = false;
    problem_.clear();
    failed_ = false;
    restarts_ = 0;
    supervised_ = true;
    first_start_ = true;
    try {
        launch(files, std::move(ready));
    } catch (...) {
        supervised_ = false;
        failed_ = true;
        throw;
    }
}

void Dnsmasq::launch(const plan::DnsmasqFiles& files, Ready done)
{
    const std::string& dir = options_.dir;
    store::make_directories(dir, 0755);
    const plan::DnsmasqPaths paths = plan::dnsmasq_paths(dir);
    const std::string& conf = paths.conf;
    const std::string& pidfile = paths.pid;
    const std::string conf_arg = "--conf-file=" + conf;
    files_ = files;

    // Adopt a dnsmasq left running by an earlier instance of the daemon when
    // it serves exactly this configuration: guests keep their DHCP/DNS. One
    // that runs as another user (started by a daemon that ran as root, now
    // running as user dnsmasq) is adopted too, as long as it need not be
    // signalled: it can be watched (pidfd), not stopped, which stop reports.
    if (pid_t old = read_pid(pidfile); old > 0 && process_alive(old)) {
        const auto cmd = process_cmdline(old);
        const bool ours = std::find(cmd.begin(), cmd.end(), conf_arg) != cmd.end();
        if (ours && store::read_file(conf) == files.config) {
            if (store::read_file(paths.hosts) != files.hosts || store::read_file(paths.names) != files.names) {
                // Runtime files: a reboot drops them, so no fsync.
                store::write_replace(paths.hosts, files.hosts, 0644);
                store::write_replace(paths.names, files.names, 0644);
                if (::kill(old, SIGHUP) != 0)
                    throw Error(ErrorKind::Kernel,
                                unstoppable(old, "make it re-read its hosts") + ", then start the network again");
            }
            log_info("network " + options_.network + ": adopted dnsmasq pid " + std::to_string(old), options_.network);
            watch_ = std::make_unique<ProcessWatch>(loop_, old, [this](int status) { on_exit(status); });
            quiet_netlink(old);
            ready_ = true;
            since_usec_ = EventLoop::now_usec();
            done(nullptr);
            return;
        }
        // Never a second dnsmasq next to one that cannot be stopped: it
        // would fail on the addresses the old one holds.
        if (ours) try {
                stop_process(old);
            } catch (const std::exception&) {
                throw Error(ErrorKind::Kernel, unstoppable(old, "stop it (it serves another configuration)") +
                                                   ", then start the network again");
            }
    }

    // A configuration left behind: a daemon may have spawned a dnsmasq for
    // it and died before that dnsmasq wrote its pid file.
    if (::access(conf.c_str(), F_OK) == 0) stop_strays(conf_arg);

    store::write_replace(conf, files.config, 0644);
    store::write_replace(paths.hosts, files.hosts, 0644);
    store::write_replace(paths.names, files.names, 0644);
    store::remove_file(pidfile);
    // dnsmasq writes its pid file only once its sockets are bound, which
    // makes the file a readiness signal; watched before the spawn so that
    // no write can come before the watch.
    if (!options_.watch && !own_watch_) own_watch_ = std::make_unique<DirectoryWatch>(loop_);
    DirectoryWatch& watch = options_.watch ? *options_.watch : *own_watch_;
    watch_id_ = watch.add(dir, [this] { check_ready(); });
    pid_t pid = 0;
    try {
        argv_ = {options_.binary, "--keep-in-foreground", conf_arg};
        respawned_ = false;
        pid = spawn_process(argv_, paths.log);
        watch_ = std::make_unique<ProcessWatch>(loop_, pid, [this](int status) { on_exit(status); });
    } catch (...) {
        forget_pending();
        if (pid > 0) stop_process(pid);
        throw;
    }
    ready_ = false;
    pending_ = std::move(done);
    timeout_ = loop_.add_timer(options_.ready_timeout_usec, [this] {
        const pid_t stuck = watch_ ? watch_->pid() : 0;
        watch_.reset();
        try {
            stop_process(stuck);
        } catch (const std::exception& err) {
            log_error("network " + options_.network + ": " + err.what(), options_.network);
        }
        finish_start(std::make_exception_ptr(
            Error(ErrorKind::Kernel, "dnsmasq did not become ready within " +
                                         (options_.ready_timeout_usec % 1'000'000 == 0
                                              ? std::to_string(options_.ready_timeout_usec / 1'000'000) + " s"
                                              : std::to_string(options_.ready_timeout_usec / 1'000) + " ms"))));
    });
    check_ready();
}

void Dnsmasq::check_ready()
{
    if (!pending_ || !watch_) return;
    if (read_pid(plan::dnsmasq_paths(options_.dir).pid) != watch_->pid()) return;
    finish_start(nullptr);
}

void Dnsmasq::quiet_netlink(pid_t pid)
{
    if (!files_.quiet_netlink) return;
    try {
        quiet_route_notifications(pid);
    } catch (const std::exception& err) {
        // The network works as before; only every route change of the host
        // keeps waking this dnsmasq. Said once per daemon.
        static bool said = false;
        if (!std::exchange(said, true))
            log_warning(std::string{err.what()} += " (said once; dnsmasq keeps hearing of every route change)",
                        options_.network);
    }
}

void Dnsmasq::forget_pending()
{
    if (watch_id_ >= 0) (options_.watch ? *options_.watch : *own_watch_).remove(watch_id_);
    watch_id_ = -1;
    timeout_.reset();
}

void Dnsmasq::finish_start(std::exception_ptr error)
{
    forget_pending();
    Ready done = std::move(pending_);
    pending_ = nullptr;
    const bool rebind_now = std::exchange(rebind_when_ready_, false);
    if (error) {
        failed_ = true;
        watch_.reset();
    } else {
        ready_ = true;
        failed_ = false;
        since_usec_ = EventLoop::now_usec();
        log_info("network " + options_.network + ": dnsmasq running as pid " + std::to_string(watch_->pid()),
                 options_.network);
        quiet_netlink(watch_->pid());
        if (rebind_now) rebind();
    }
    // Last: done may stop or destroy this object.
    if (done) done(error);
}

void Dnsmasq::on_exit(int status)
{
    if (pending_) {
        // The reason of an early exit is in its log.
        watch_.reset();
        const std::string log = plan::dnsmasq_paths(options_.dir).log;
        const std::string why = last_lines(log, 2);
        // dnsmasq lists the host's interfaces at start and gives up when one
        // goes away meanwhile (ENODEV, EBADF: other networks' bridges being
        // deleted while this one starts, seen in test_load): that is worth
        // one more try, within the same readiness timeout.
        if (!respawned_ && why.find("failed to find list of interfaces") != std::string::npos) {
            respawned_ = true;
            log_warning("network " + options_.network + ": dnsmasq exited at start (" + why + "); starting it again",
                        options_.network);
            try {
                watch_ = std::make_unique<ProcessWatch>(loop_, spawn_process(argv_, log),
                                                        [this](int again) { on_exit(again); });
                return;
            } catch (...) {
                finish_start(std::current_exception());
                return;
            }
        }
        finish_start(std::make_exception_ptr(
            Error(ErrorKind::Kernel, "dnsmasq exited at start (status " + std::to_string(status) + "): " + why)));
        return;
    }
    watch_.reset();
    ready_ = false;
    if (!supervised_) return;
    // A dnsmasq that ran for a while before dying starts the backoff afresh.
    if (EventLoop::now_usec() - since_usec_ > 60'000'000ull) restarts_ = 0;
    const unsigned delay_s = dnsmasq_restart_delay_s(restarts_);
    ++restarts_;
    problem_ = "dnsmasq exited" + (status >= 0 ? " (status " + std::to_string(status) + ")" : std::string()) +
               (delay_s == 0 ? std::string("; restarting now") : "; restarting in " + std::to_string(delay_s) + " s");
    log_warning("network " + options_.network + ": " + problem_, options_.network);
    restart_timer_ = loop_.add_timer(delay_s * 1'000'000ull, [this] { restart(); });
    if (events_.exited) events_.exited(problem_);
}

void Dnsmasq::restart()
{
    restart_timer_.reset();
    first_start_ = false;
    const std::string problem = problem_;
    auto outcome = [this, problem](std::exception_ptr error) {
        if (!error) {
            problem_.clear();
            const std::string detail =
                "restarted dnsmasq as pid " + std::to_string(pid()) + " (" + problem.substr(0, problem.find(';')) + ")";
            if (events_.restarted) events_.restarted(detail);
            return;
        }
        try {
            std::rethrow_exception(error);
        } catch (const std::exception& err) {
            log_error("network " + options_.network + ": restarting dnsmasq failed: " + err.what(), options_.network);
        }
        failed_ = true;
        on_exit(-1);
    };
    try {
        launch(files_, outcome);
    } catch (...) {
        outcome(std::current_exception());
    }
}

void Dnsmasq::restart_now()
{
    if (!supervised_ || !restart_timer_ || pending_) return;
    if (restarts_ > 0) --restarts_;
    restart();
}

void Dnsmasq::rebind()
{
    if (pending_) {
        rebind_when_ready_ = true;
        return;
    }
    if (!watch_ || !ready_) return;  // a restart binds afresh
    // ESRCH: it exited meanwhile, and its restart binds afresh.
    if (watch_->send_signal(SIGUSR2) == EPERM)
        log_warning("network " + options_.network + ": " +
                        unstoppable(watch_->pid(), "make it bind DHCP to the recreated bridge") +
                        " (DHCP may not serve until it restarts)",
                    options_.network);
}

void Dnsmasq::stop_strays(const std::string& conf_arg)
{
    // Only its command line names such a process: it was killed with the
    // daemon that spawned it or it would serve beside the next one's.
    for (const pid_t pid : processes_with_argument(conf_arg)) {
        if (watch_ && watch_->pid() == pid) continue;
        log_warning("network " + options_.network + ": stopping dnsmasq pid " + std::to_string(pid) +
                        ", spawned by an earlier kvmnetd that died before it was ready",
                    options_.network);
        try {
            stop_process(pid);
        } catch (const std::exception&) {
            throw Error(ErrorKind::Kernel, unstoppable(pid, "stop it (it never became ready)"));
        }
    }
}

void Dnsmasq::stop_pid(const PidFd& process)
{
    try {
        stop_process(process);
    } catch (const std::exception&) {
        throw Error(ErrorKind::Kernel, unstoppable(process.pid(), "stop it"));
    }
}

void Dnsmasq::stop()
{
    if (const auto process = stop_later()) stop_pid(*process);
    store::remove_file(plan::dnsmasq_paths(options_.dir).pid);
}

std::shared_ptr<const PidFd> Dnsmasq::stop_later()
{
    forget_pending();
    pending_ = nullptr;
    rebind_when_ready_ = false;
    restart_timer_.reset();
    supervised_ = false;
    problem_.clear();
    const plan::DnsmasqPaths paths = plan::dnsmasq_paths(options_.dir);
    // The process we watch is ours whatever its command line says (it may
    // not have reached exec yet); one named only by the pid file is ours
    // when it runs our configuration (a pid file outlives its process).
    const bool watched = watch_ != nullptr;
    const pid_t pid = watched ? watch_->pid() : read_pid(paths.pid);
    watch_.reset();
    ready_ = false;
    const std::string conf_arg = "--conf-file=" + paths.conf;
    std::shared_ptr<const PidFd> ours;
    if (pid > 0) {
        // The pidfd first, then the checks: they are of the process it names.
        auto process = std::make_shared<const PidFd>(pid);
        if (process_alive(pid)) {
            const auto cmd = process_cmdline(pid);
            if (watched || std::find(cmd.begin(), cmd.end(), conf_arg) != cmd.end()) ours = std::move(process);
        }
    }
    // Not ours to watch (an earlier daemon's start, cut off): one it spawned
    // may not have written the pid file yet.
    if (!watched && ::access(paths.conf.c_str(), F_OK) == 0) stop_strays(conf_arg);
    return ours;
}

void Dnsmasq::reload_hosts(const plan::DnsmasqFiles& files)
{
    files_.hosts = files.hosts;
    files_.names = files.names;
    // In place, no new inode per host change (a temporary and a rename each
    // were a fifth of an AddHost's time on the loop). dnsmasq reads them only
    // at the SIGHUP below, which comes after the write; a crash between the
    // write and the cut leaves a tail that the adoption above finds (it
    // compares the whole files) and rewrites.
    const plan::DnsmasqPaths paths = plan::dnsmasq_paths(options_.dir);
    store::overwrite(paths.hosts, files.hosts, 0644);
    store::overwrite(paths.names, files.names, 0644);
    // Without a serving process (a restart is pending or under way) the new
    // files are read at its start.
    if (!watch_ || !ready_) return;
    if (::kill(watch_->pid(), SIGHUP) != 0)
        throw Error(ErrorKind::Kernel, errno == EPERM ? unstoppable(watch_->pid(), "make it re-read its hosts")
                                                      : "signalling dnsmasq to re-read its hosts failed");
}

}  // namespace kvmnet::core
