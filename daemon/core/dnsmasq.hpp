// dnsmasq supervision for one network: spawn (or adopt what an earlier
// daemon left running), readiness as an event, restart with backoff after an
// exit, stop. Nothing here waits on the event loop: readiness is dnsmasq's
// pid file appearing (it writes it once its sockets are bound), seen through
// inotify, and an exit is seen through a pidfd, so a network starting never
// delays the answer to anyone else's call.
#pragma once

#include "core/dir_watch.hpp"
#include "core/event_loop.hpp"
#include "core/process.hpp"
#include "plan/planner.hpp"

#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace kvmnet::core {

struct DnsmasqOptions {
    std::string binary = "/usr/sbin/dnsmasq";
    std::string user;     // the --user of its configuration
    std::string dir;      // the network's runtime directory
    std::string network;  // for log lines
    // How long a spawned dnsmasq may take to write its pid file.
    std::uint64_t ready_timeout_usec = 10'000'000;
    // The daemon's one inotify instance (the manager's); nullptr: one of
    // this supervisor's own, made at its first start.
    DirectoryWatch* watch = nullptr;
};

// The restart delay after the `restarts`-th consecutive quick exit: the
// first restart is immediate (guests wait for DHCP/DNS meanwhile), then
// 1, 2, 4, ... up to 30 s.
unsigned dnsmasq_restart_delay_s(unsigned restarts);

// The pid in a pid file's text, 0 when there is none.
pid_t parse_pid(const std::string& text);

class Dnsmasq {
public:
    // nullptr once dnsmasq serves, else why it does not.
    using Ready = std::function<void(std::exception_ptr)>;
    struct Events {
        // It exited while supervised (`problem` says so and when it restarts),
        // or a restart failed: the network is degraded until restarted().
        std::function<void(const std::string& problem)> exited;
        // A supervised restart serves again (`detail`: pid and why).
        std::function<void(const std::string& detail)> restarted;
    };

    Dnsmasq(EventLoop& loop, DnsmasqOptions options, Events events);
    // Forgets any pending start or restart; a running dnsmasq keeps running
    // (the next daemon adopts it).
    ~Dnsmasq();
    Dnsmasq(const Dnsmasq&) = delete;
    Dnsmasq& operator=(const Dnsmasq&) = delete;

    // Writes `files` and starts dnsmasq, or adopts one left running that
    // serves exactly this configuration. `ready` is called once, maybe
    // before start returns (adoption), never after stop() or destruction.
    // From then on an exit is restarted with backoff until stop().
    void start(const plan::DnsmasqFiles& files, Ready ready);
    // Cancels a pending start (its `ready` is not called) and stops the
    // process, or the one the pid file names when it runs our config.
    // Throws (Kernel) when it cannot be signalled (EPERM).
    void stop();
    // stop() but for the signal and the wait: returns the process that
    // stop() would stop (null: none), named by a pidfd opened now, for
    // stop_pid on another thread (Manager::stop's worker). Supervision ends
    // here, as in stop().
    std::shared_ptr<const PidFd> stop_later();
    // SIGTERM, SIGKILL after 2 s (stop_process), with the error naming the
    // pid when it may not be signalled; touches no supervisor's state, so it
    // may run on any thread.
    static void stop_pid(const PidFd& process);
    // New hosts files for a running dnsmasq, re-read on SIGHUP; without a
    // process (a restart is pending) they are read at its start. Throws
    // with the reason when the signal cannot be sent.
    void reload_hosts(const plan::DnsmasqFiles& files);
    // What kept a restart from serving is gone (its bridge is back): a
    // restart waiting out its backoff happens now, and the attempt that
    // failed for want of the bridge does not count towards the backoff.
    void restart_now();
    // Its bridge was recreated under the same name (a repair): dnsmasq's
    // DHCP socket is still bound to the old bridge's index until the next
    // turn of dnsmasq's loop binds it again by name (bind_dhcp_devices, every
    // turn). Address notifications used to cause that turn; a dnsmasq out of
    // those groups (quiet_netlink) gets it from SIGUSR2 (reopen the log
    // file: none here, it logs to stderr), now or once a start under way is
    // ready.
    void rebind();

    // "running", "starting" (its first start waits for readiness),
    // "restarting" (it exited; a restart is scheduled or under way), "failed"
    // (the last attempt to start it failed) or "stopped".
    std::string_view state() const;
    pid_t pid() const { return watch_ && ready_ ? watch_->pid() : 0; }
    // Why it does not serve, while a restart is pending; empty otherwise.
    const std::string& problem() const { return problem_; }
    void set_problem(std::string problem) { problem_ = std::move(problem); }

private:
    // The error for a dnsmasq that this daemon may not signal (EPERM).
    static std::string unstoppable(pid_t pid, const std::string& to_do);
    // Spawns or adopts; calls done (maybe at once) with the outcome.
    void launch(const plan::DnsmasqFiles& files, Ready done);
    void watch_ready(pid_t pid, Ready done);
    void stop_strays(const std::string& conf_arg);
    void check_ready();
    void finish_start(std::exception_ptr error);
    void on_exit(int status);
    void restart();
    void forget_pending();
    // Out of the address and route notifications, when files_ says so.
    void quiet_netlink(pid_t pid);

    EventLoop& loop_;
    DnsmasqOptions options_;
    Events events_;
    plan::DnsmasqFiles files_;             // what the last start wrote
    std::unique_ptr<ProcessWatch> watch_;  // the process, once spawned or adopted
    bool ready_ = false;                   // watch_ serves (pid file written)
    bool supervised_ = false;              // between a start and stop(): exits are restarted
    bool first_start_ = false;             // the pending start is the first, not a restart
    bool failed_ = false;                  // the last attempt to start it failed
    // dnsmasq's command line of the start in progress, and whether it was
    // spawned again after an early exit (on_exit).
    std::vector<std::string> argv_;
    bool respawned_ = false;
    bool rebind_when_ready_ = false;  // rebind() came while a start waited for readiness
    unsigned restarts_ = 0;
    std::uint64_t since_usec_ = 0;
    std::string problem_;
    // A start waiting for the pid file.
    Ready pending_;
    std::unique_ptr<DirectoryWatch> own_watch_;  // without options_.watch
    int watch_id_ = -1;                          // the runtime directory's, while a start waits
    std::unique_ptr<EventSource> timeout_;
    std::unique_ptr<EventSource> restart_timer_;
};

}  // namespace kvmnet::core
