// kvmnetd: wires the event loop, kernel adapters, manager and D-Bus service
// together. Networks keep running when the daemon exits (unless
// --stop-networks-on-exit); they belong to the guests, and the next start
// adopts them.
#include "api/firewalld_bus.hpp"
#include "api/service.hpp"
#include "core/event_loop.hpp"
#include "core/kernel_conflicts.hpp"
#include "core/log.hpp"
#include "core/loop_trace.hpp"
#include "core/manager.hpp"
#include "core/phases.hpp"
#include "kernel/address_watch.hpp"
#include "kernel/link_monitor.hpp"
#include "kernel/netlink_links.hpp"
#include "kernel/nft_monitor.hpp"
#include "kernel/nftables.hpp"

#include <CLI/CLI.hpp>
#include <sdbus-c++/sdbus-c++.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <functional>
#include <iostream>
#include <limits>
#include <memory>
#include <string>
#include <sys/epoll.h>
#include <unistd.h>
#include <utility>

namespace {

using namespace kvmnet;

// Drives an sdbus-c++ 1.2 connection from sd-event: one io source and one
// timer, re-armed from the connection's poll data after every dispatch.
class BusDriver {
public:
    BusDriver(sd_event* event, sdbus::IConnection& connection) : connection_(connection)
    {
        const auto poll = connection_.getEventLoopPollData();
        check(sd_event_add_io(event, &io_, poll.fd, static_cast<std::uint32_t>(poll.events), on_io, this));
        check(sd_event_add_time(event, &timer_, CLOCK_MONOTONIC, UINT64_MAX, 0, on_timer, this));
        check(sd_event_add_post(event, &post_, on_post, this));
        sd_event_source_set_enabled(post_, SD_EVENT_ON);
        rearm();
    }
    ~BusDriver()
    {
        sd_event_source_disable_unref(io_);
        sd_event_source_disable_unref(timer_);
        sd_event_source_disable_unref(post_);
    }
    BusDriver(const BusDriver&) = delete;
    BusDriver& operator=(const BusDriver&) = delete;

    // A message whose handling throws (a reply that could not be sent or
    // built) costs that caller its answer and a log line; it must not end
    // the daemon. Only a connection the bus has closed does: it cannot
    // serve anyone then (replies are kept below what the bus accepts,
    // api::bounded, so no reply of ours makes the bus close it).
    //
    // At most dispatch_budget of messages per turn: callers that keep the
    // queue full (ten reads back to back) must not keep the loop from the
    // link monitor, the repair timers and dnsmasq. Messages left over make
    // sd-bus's timeout 0, so the timer brings us back on the next turn.
    void dispatch()
    {
        const core::TraceTurn turn("D-Bus");
        unsigned messages = 0;
        const auto deadline = std::chrono::steady_clock::now() + dispatch_budget;
        while (std::chrono::steady_clock::now() < deadline) {
            try {
                // Named by the handler that runs it (api/service.cpp).
                const core::TraceSpan message("D-Bus message");
                if (!connection_.processPendingRequest()) break;
                ++messages;
            } catch (const sdbus::Error& e) {
                if (e.getName() == "org.freedesktop.DBus.Error.Disconnected") throw;
                core::log_error(std::string("D-Bus: handling a message failed: ") + e.getName() + ": " +
                                e.getMessage());
                break;  // back to the event loop, which calls again while messages wait
            } catch (const std::exception& e) {
                core::log_error(std::string("D-Bus: handling a message failed: ") + e.what());
                break;
            }
        }
        if (core::loop_trace::enabled()) core::loop_trace::add_to_label(" (" + std::to_string(messages) + " messages)");
        rearm();
    }

private:
    static constexpr auto dispatch_budget = std::chrono::milliseconds(20);

    static void check(int r)
    {
        if (r < 0)
            throw Error(ErrorKind::Kernel, std::string("attaching the bus to the event loop: ") + std::strerror(-r));
    }
    void rearm()
    {
        const auto poll = connection_.getEventLoopPollData();
        sd_event_source_set_io_events(io_, static_cast<std::uint32_t>(poll.events));
        if (poll.timeout_usec == UINT64_MAX) {
            sd_event_source_set_enabled(timer_, SD_EVENT_OFF);
        } else {
            sd_event_source_set_time(timer_, poll.timeout_usec);
            sd_event_source_set_enabled(timer_, SD_EVENT_ONESHOT);
        }
    }
    static int on_io(sd_event_source*, int, std::uint32_t, void* self)
    {
        static_cast<BusDriver*>(self)->dispatch();
        return 0;
    }
    static int on_timer(sd_event_source*, std::uint64_t, void* self)
    {
        static_cast<BusDriver*>(self)->dispatch();
        return 0;
    }
    // Other sources (child exits, timers) may queue outgoing signals: make
    // sure the io source asks for POLLOUT when they do.
    static int on_post(sd_event_source*, void* self)
    {
        static_cast<BusDriver*>(self)->rearm();
        return 0;
    }

    sdbus::IConnection& connection_;
    sd_event_source* io_ = nullptr;
    sd_event_source* timer_ = nullptr;
    sd_event_source* post_ = nullptr;
};

// The bus service's listener, passed on to it; first it notes that a
// network came, went or changed state (Supervision's counts).
class CountingListener final : public core::ManagerListener {
public:
    CountingListener(core::Manager& manager, core::ManagerListener& next, bool& changed)
        : manager_(manager), next_(next), changed_(changed)
    {
        manager_.set_listener(this);
    }
    ~CountingListener() override { manager_.set_listener(&next_); }
    CountingListener(const CountingListener&) = delete;
    CountingListener& operator=(const CountingListener&) = delete;
    void network_added(const std::string& name) override
    {
        changed_ = true;
        next_.network_added(name);
    }
    void network_removed(const std::string& name) override
    {
        changed_ = true;
        next_.network_removed(name);
    }
    void network_changed(const std::string& name) override
    {
        changed_ = true;
        next_.network_changed(name);
    }
    void mac_conflict(const std::string& name, const std::string& mac, const std::vector<std::string>& ports) override
    {
        next_.mac_conflict(name, mac, ports);
    }
    void lease_changed(const std::string& name, const std::string& event, const std::string& mac, const std::string& ip,
                       const std::string& hostname) override
    {
        next_.lease_changed(name, event, mac, ip, hostname);
    }
    void network_repaired(const std::string& name, const std::string& what, const std::string& detail) override
    {
        next_.network_repaired(name, what, detail);
    }
    void overlay_changed(const std::string& name, const std::string& what, const std::string& detail) override
    {
        next_.overlay_changed(name, what, detail);
    }

private:
    core::Manager& manager_;
    core::ManagerListener& next_;
    bool& changed_;
};

// systemd integration beyond READY=1: WATCHDOG=1 from a timer of the event
// loop itself (a loop that hangs stops the pings, and systemd restarts the
// daemon), and a STATUS= line whenever the network counts change.
class Supervision {
public:
    // `changed`: set (CountingListener) when a network came, went or changed
    // state. The counts are taken only then: they walk every network (names()
    // and a lookup each), which after every event of the loop was 18 % of
    // the daemon's CPU over a start and stop at 1,000 networks.
    Supervision(core::EventLoop& loop, const core::Manager& manager, bool& changed)
        : loop_(loop), manager_(manager), changed_(changed)
    {
        std::uint64_t usec = 0;
        if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
            interval_ = usec / 2;
            core::log_info("watchdog: pinging every " + std::to_string(interval_ / 1000) + " ms");
            ping();
        }
        status_ = loop.add_post([this] {
            if (std::exchange(changed_, false)) update_status();
        });
        changed_ = false;
        update_status();
    }

private:
    void ping()
    {
        sd_notify(0, "WATCHDOG=1");
        timer_ = loop_.add_timer(interval_, [this] { ping(); });
    }
    void update_status()
    {
        std::size_t running = 0, degraded = 0, failed = 0;
        const auto names = manager_.names();
        for (const auto& name : names) {
            const auto state = manager_.state(name);
            running += core::is_running(state) ? 1 : 0;
            degraded += state == core::State::degraded ? 1 : 0;
            failed += state == core::State::failed ? 1 : 0;
        }
        std::string line = std::to_string(names.size()) + (names.size() == 1 ? " network, " : " networks, ") +
                           std::to_string(running) + " running";
        if (degraded > 0) line += ", " + std::to_string(degraded) + " degraded";
        if (failed > 0) line += ", " + std::to_string(failed) + " failed";
        if (line == last_) return;
        last_ = line;
        sd_notify(0, ("STATUS=" + line).c_str());
    }

    core::EventLoop& loop_;
    const core::Manager& manager_;
    bool& changed_;
    std::uint64_t interval_ = 0;
    std::unique_ptr<core::EventSource> timer_;
    std::unique_ptr<core::EventSource> status_;
    std::string last_;
};

// --stop-networks-on-exit: take every running network down before exiting.
void stop_all(core::Manager& manager)
{
    for (const auto& name : manager.names()) {
        if (manager.state(name) == core::State::inactive) continue;
        try {
            manager.stop(name);
            core::log_info("network " + name + ": stopped on exit (--stop-networks-on-exit)", name);
        } catch (const std::exception& e) {
            core::log_error("network " + name + ": stopping on exit: " + e.what(), name);
        }
    }
}

// Pauses the nftables monitor around the manager's large element batches
// (core::NotificationPause). Notifications the pause may have cost are
// handled as an overrun, a moment later on the loop (not inside the
// manager's commit).
class MonitorPause final : public core::NotificationPause {
public:
    static constexpr std::size_t from_elements = 256;

    MonitorPause(core::EventLoop& loop, kernel::NftMonitor& monitor, core::Manager& manager)
        : loop_(loop), monitor_(monitor), manager_(manager)
    {
    }
    ~MonitorPause() override { manager_.set_notification_pause(nullptr, 0); }
    MonitorPause(const MonitorPause&) = delete;
    MonitorPause& operator=(const MonitorPause&) = delete;

    void pause() override
    {
        try {
            monitor_.pause();
            paused_ = true;
        } catch (const std::exception& e) {
            core::log_warning(e.what());  // the batch's notifications come, and are dropped as ours
        }
    }
    void resume(bool maybe_lost) override
    {
        if (paused_) {
            paused_ = false;
            try {
                monitor_.resume();
            } catch (const std::exception& e) {
                core::log_error(e.what());
                maybe_lost = true;
            }
        }
        if (!maybe_lost || lost_) return;
        lost_ = loop_.add_timer(0, [this] {
            lost_.reset();
            core::log_info("nftables may have been changed by another process while the monitor was paused for a bulk "
                           "change; checking");
            manager_.foreign_firewall_changed();
            manager_.firewall_notifications_lost();
        });
    }

private:
    core::EventLoop& loop_;
    kernel::NftMonitor& monitor_;
    core::Manager& manager_;
    bool paused_ = false;
    std::unique_ptr<core::EventSource> lost_;
};

// Bench only (scripts/bench-bulk.sh): with KVMNET_PHASES=FILE each mark of
// core/phases.hpp is appended to FILE as "<CLOCK_MONOTONIC ns> <the
// thread's CPU time, ns> <phase>", so the benchmark's client can put the
// daemon's side of one call next to its own steady_clock times (the same
// clock) and tell the loop's work from its waiting.
int phases_fd = -1;
long long ns_of(clockid_t clock)
{
    timespec t{};
    clock_gettime(clock, &t);
    return static_cast<long long>(t.tv_sec) * 1000000000LL + t.tv_nsec;
}
void record_phase_time(const char* phase)
{
    char line[192];
    const int n = std::snprintf(line, sizeof line, "%lld %lld %s\n", ns_of(CLOCK_MONOTONIC),
                                ns_of(CLOCK_THREAD_CPUTIME_ID), phase);
    if (n > 0 && ::write(phases_fd, line, std::min<std::size_t>(static_cast<std::size_t>(n), sizeof line - 1)) < 0)
        core::phases::recorder = nullptr;  // gone: stop trying
}
void record_phases_if_asked()
{
    const char* path = std::getenv("KVMNET_PHASES");
    if (!path || !*path) return;
    phases_fd = ::open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (phases_fd < 0) {
        core::log_warning(std::string("KVMNET_PHASES: cannot open ") + path + ": " + std::strerror(errno));
        return;
    }
    core::phases::recorder = record_phase_time;
}

}  // namespace

int main(int argc, char** argv)
{
    core::log_to_journal_if_connected();
    record_phases_if_asked();
    core::ManagerOptions options;
    bool stop_networks_on_exit = false;
    int nft_monitor_rcvbuf = kernel::NftMonitor::default_receive_buffer;
    int link_monitor_rcvbuf = kernel::LinkMonitor::default_receive_buffer;
    // The flags on CLI11, as kvmnetctl's: typed, a usage error is exit 2.
    CLI::App app("Owns kvmnet virtual networks and serves org.kvmnet1 on the system bus\n"
                 "(DBUS_SYSTEM_BUS_ADDRESS selects another bus).",
                 "kvmnetd");
    app.set_version_flag("--version", std::string("kvmnetd ") + KVMNET_VERSION, "print the version and exit");
    app.add_option("--state-dir", options.state_dir, "persistent configuration (default /var/lib/kvmnet)")
        ->type_name("DIR");
    app.add_option("--runtime-dir", options.runtime_dir, "runtime files: dnsmasq config, leases (default /run/kvmnet)")
        ->type_name("DIR");
    app.add_option("--dnsmasq", options.dnsmasq, "dnsmasq binary (default /usr/sbin/dnsmasq)")->type_name("PATH");
    double dnsmasq_ready_timeout = 10;
    app.add_option("--dnsmasq-ready-timeout", dnsmasq_ready_timeout,
                   "seconds a network's dnsmasq may take to become ready before its start fails (default 10; "
                   "slow machines, e.g. emulated ones, need more)")
        ->type_name("SECONDS")
        ->check(CLI::Range(0.1, 3600.0));
    std::string log_level;
    app.add_option("--log-level", log_level, "debug, info, warning or error (default info)")
        ->type_name("LEVEL")
        ->check([](const std::string& text) {
            core::LogLevel level{};
            return core::parse_log_level(text, level) ? std::string() : "unknown log level '" + text + "'";
        });
    app.add_option("--nft-monitor-rcvbuf", nft_monitor_rcvbuf,
                   "receive buffer of the nftables change monitor (default 8 MiB; tests shrink it to provoke lost "
                   "notifications)")
        ->type_name("BYTES")
        ->check(CLI::Range(1, std::numeric_limits<int>::max()));
    app.add_option("--link-monitor-rcvbuf", link_monitor_rcvbuf,
                   "receive buffer of the rtnetlink (link, address, netconf) change monitor (default 8 MiB; tests "
                   "shrink it to provoke lost notifications)")
        ->type_name("BYTES")
        ->check(CLI::Range(1, std::numeric_limits<int>::max()));
    bool no_firewall_integration = false;
    app.add_flag("--no-firewall-integration", no_firewall_integration,
                 "add no rules to other firewalls' chains (Docker's DOCKER-USER) and put no bridge into "
                 "firewalld's zone kvmnet, for any network; see docs/firewalls.md");
    app.add_option("--iptables", options.iptables,
                   "iptables-nft binary for Docker's DOCKER-USER chain (default /usr/sbin/iptables-nft)")
        ->type_name("PATH");
    app.add_option("--ip6tables", options.ip6tables,
                   "ip6tables-nft binary for Docker's DOCKER-USER chain (default /usr/sbin/ip6tables-nft)")
        ->type_name("PATH");
    app.add_option("--nft", options.nft,
                   "nft binary that reads other programs' firewall tables, to tell when they drop guests' traffic "
                   "(default /usr/sbin/nft; empty: never read)")
        ->type_name("PATH");
    app.add_option("--vtysh", options.vtysh,
                   "FRR's vtysh, through which EVPN networks configure and read FRR (default /usr/bin/vtysh); see "
                   "docs/overlay.md")
        ->type_name("PATH");
    app.add_option("--frr-vty-socket", options.frr_vty_socket,
                   "directory of FRR's vty sockets, passed to vtysh as --vty_socket (default: FRR's own, "
                   "/var/run/frr)")
        ->type_name("DIR");
    app.add_flag("--stop-networks-on-exit", stop_networks_on_exit,
                 "stop every running network on SIGTERM/SIGINT (by default they keep running for their guests and "
                 "are adopted later)");
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        if (e.get_exit_code() == 0) return app.exit(e);
        std::cerr << "kvmnetd: " << e.what() << " (see kvmnetd --help)\n";
        return 2;
    }
    options.firewall_integration = !no_firewall_integration;
    options.dnsmasq_ready_timeout_usec = static_cast<std::uint64_t>(dnsmasq_ready_timeout * 1e6);
    options.durable_writes_in_background = true;
    if (!log_level.empty()) {
        core::LogLevel level{};
        core::parse_log_level(log_level, level);
        core::set_log_level(level);
    }

    try {
        core::EventLoop loop;
        auto stop = [&] { loop.exit(0); };
        auto sigterm = loop.add_signal(SIGTERM, stop);
        auto sigint = loop.add_signal(SIGINT, stop);
        // Children are watched through pidfds; SIGCHLD must stay deliverable
        // for waitid() but needs no handler.
        kernel::NetlinkLinks links;
        // Its own netlink socket for the manager's worker thread, which
        // deletes a stopping network's bridge off the loop.
        kernel::NetlinkLinks worker_links;
        options.worker_links = &worker_links;
        // Subscribed before the view lists every address once: what changes
        // meanwhile is read at the first check.
        kernel::AddressWatch address_watch;
        core::AddressView addresses(
            [&](const core::AddressView::Change& changed) { return address_watch.read(changed); },
            [&] { return links.list_addresses(); });
        options.addresses = &addresses;
        kernel::Nftables firewall;
        core::Manager manager(options, loop, links, firewall);

        auto connection = sdbus::createSystemBusConnection();
        api::Service service(*connection, manager, &loop);
        // Supervision's STATUS= counts, taken when a network came, went or changed state.
        bool networks_changed = true;
        const CountingListener counting(manager, service, networks_changed);
        api::FirewalldBusClient firewalld(*connection, [&] { manager.firewalld_changed(); });
        manager.set_firewalld_bus(firewalld);
        auto sighup = loop.add_signal(SIGHUP, [&] {
            core::log_info("SIGHUP: reloading the desired state");
            try {
                manager.reload();
            } catch (const std::exception& e) {
                core::log_error(e.what());  // reload logged each problem; the daemon keeps running
            }
        });
        kernel::LinkMonitor link_monitor(link_monitor_rcvbuf);
        const std::function<void(const kernel::LinkEvent&)> on_link = [&](const kernel::LinkEvent& event) {
            manager.link_changed(event.name, event.removed, event.index);
        };
        const std::function<void(const kernel::FdbEvent&)> on_fdb = [&](const kernel::FdbEvent& event) {
            manager.fdb_learned(event.bridge_index, event.mac.str(), event.port_index);
        };
        link_monitor.set_address_handler([&](int index) { manager.address_changed(index); });
        link_monitor.set_netconf_handler([&](int link_index) { manager.sysctl_changed(link_index); });
        link_monitor.set_route_handler([&](int link_index, bool added) { manager.route_changed(link_index, added); });
        auto link_source = loop.add_io(link_monitor.fd(), EPOLLIN, [&](std::uint32_t) {
            link_monitor.dispatch(on_link, on_fdb);
            if (link_monitor.take_overrun()) {
                // Marks only: the repair trigger's next sync re-checks each
                // running network once, however many overruns came before it.
                core::log_warning("link notifications were lost (ENOBUFS); re-checking every running network");
                manager.recheck_links();
                manager.sysctl_changed();
            }
        });
        // Self-healing of table inet kvmnet: changes by other processes
        // (nft flush ruleset, ...) are repaired; our own are filtered out.
        kernel::NftMonitor nft_monitor(plan::table_name, ::getpid(), firewall.port_id(), nft_monitor_rcvbuf);
        manager.watch_foreign_tables();
        auto nft_source = loop.add_io(nft_monitor.fd(), EPOLLIN, [&](std::uint32_t) {
            const auto result = nft_monitor.dispatch();
            if (result.foreign_changed || result.overrun) manager.foreign_firewall_changed();
            if (result.changed)
                manager.firewall_changed("by " + result.who);
            else if (result.overrun)
                manager.firewall_notifications_lost();
        });
        MonitorPause monitor_pause(loop, nft_monitor, manager);
        manager.set_notification_pause(&monitor_pause, MonitorPause::from_elements);
        manager.load();
        // Take the name only once autostart networks are up, so that bus
        // activation and sd_notify readiness mean "networks are there".
        connection->requestName(api::bus_name);
        BusDriver bus(loop.get(), *connection);
        sd_notify(0, "READY=1");
        core::log_info("kvmnetd " KVMNET_VERSION " ready on the bus as org.kvmnet1");
        Supervision supervision(loop, manager, networks_changed);
        const int code = loop.run();
        sd_notify(0, "STOPPING=1");
        manager.finish_stops();  // a Stop's bridge deletion in flight ends before the networks are left
        if (stop_networks_on_exit) {
            core::log_info("kvmnetd stopping; stopping running networks (--stop-networks-on-exit)");
            stop_all(manager);
        } else {
            core::log_info("kvmnetd stopping; running networks are left in place");
            manager.cancel_starts();
        }
        return code < 0 ? 1 : code;
    } catch (const sdbus::Error& e) {
        core::log_error(std::string("D-Bus: ") + e.getName() + ": " + e.getMessage());
        return 1;
    } catch (const std::exception& e) {
        core::log_error(e.what());
        return 1;
    }
}
