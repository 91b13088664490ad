// The host the unit tests of core::Manager run on (a fake kernel with a
// multi-homed uplink), a Manager over it, and a stand-in for dnsmasq.
#pragma once

#include "core/event_loop.hpp"
#include "core/kernel_conflicts.hpp"
#include "core/log.hpp"
#include "core/manager.hpp"
#include "fakes/fake_clock.hpp"
#include "fakes/fake_firewall.hpp"
#include "fakes/fake_links.hpp"
#include "fakes/recording_listener.hpp"
#include "temp_dir.hpp"

#include <catch2/catch.hpp>

#include <systemd/sd-event.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace kvmnet::test {

using core::Manager;
using core::State;
using kvmnet::testing::TempDir;

// ---- the host the tests run on ---------------------------------------------

inline const std::string eth0_mac = "52:54:00:aa:bb:01";

LinkInfo physical(const std::string& name, const std::string& mac, std::uint32_t mtu);

// A multi-homed host: eth0 (the uplink to take over) with a DHCP primary, a
// labelled static secondary, a SLAAC-like global IPv6 address and a
// link-local one; routes from DHCP, RA and static configuration in two
// tables, one onlink and one with a preferred source. eth1 has a default
// route of its own (another metric). wlan0 is wireless; eth2 is enslaved to
// someone else's bridge br-ext.
void populate_host(FakeLinks& k);

constexpr const char* lan_document = R"({"name": "lan", "mode": "bridge", "bridge": "lan0", "uplink": "eth0"})";

inline std::string lan_with_uplink(const std::string& uplink)
{
    return R"({"name": "lan", "mode": "bridge", "bridge": "lan0", "uplink": ")" + uplink + R"("})";
}

struct Harness {
    TempDir state_dir, runtime_dir;
    core::EventLoop loop;
    FakeLinks links;
    FakeFirewall firewall;
    RecordingListener listener;
    FakeClock clock;  // the repairs' timers: moved by hand (clock.advance)
    std::string dnsmasq = "/bin/false";
    // Documents synced on the store's thread (as kvmnetd does) through
    // `syncer` when set; it must outlive the harness.
    bool durable_in_background = false;
    kvmnet::store::Syncer* syncer = nullptr;
    // The worker thread's own kernel handle (ManagerOptions::worker_links);
    // null: stops tear down on the loop. It must outlive the harness.
    kvmnet::plan::LinkAdapter* worker_links = nullptr;
    // ManagerOptions::addresses; null: the conflict check dumps every address.
    core::AddressView* addresses = nullptr;
    std::unique_ptr<Manager> manager;  // last: destroyed first

    Harness()
    {
        core::set_log_level(core::LogLevel::error);
        populate_host(links);
        restart_manager();
    }
    // A new daemon instance over the same kernel and directories.
    void restart_manager()
    {
        manager.reset();
        core::ManagerOptions options;
        options.state_dir = state_dir.path;
        options.runtime_dir = runtime_dir.path;
        options.dnsmasq = dnsmasq;  // by default never started: most networks here have no ipv4
        options.dnsmasq_user = "nobody";
        options.nft = "";  // never the machine's own tables
        options.durable_writes_in_background = durable_in_background;
        options.syncer = syncer;
        options.worker_links = worker_links;
        options.addresses = addresses;
        manager = std::make_unique<Manager>(options, loop, links, firewall, &clock);
        manager->set_listener(&listener);
    }
    // Every network still up is stopped, so a (fake) dnsmasq a test started
    // is stopped by its pid even when the test failed half way.
    ~Harness()
    {
        if (!manager) return;
        for (const std::string& name : manager->names()) {
            try {
                if (manager->state(name) != State::inactive) manager->stop(name);
            } catch (const std::exception&) {
            }
        }
    }
    Harness(const Harness&) = delete;
    Harness& operator=(const Harness&) = delete;
    Manager& m() { return *manager; }
    // Lets the repairs' delay pass (at most 100 ms, core/repair_trigger.hpp):
    // what one burst of notifications scheduled runs.
    void let_repairs_run() { clock.advance(100'000); }
    bool runtime_file(const std::string& name) const { return fs::exists(runtime_dir.path + "/lan/" + name); }

    // Dispatches events until `done` holds or `max_usec` passed; returns the time spent.
    std::uint64_t run_loop(std::uint64_t max_usec, const std::function<bool()>& done = {})
    {
        const std::uint64_t start = core::EventLoop::now_usec();
        for (;;) {
            if (done && done()) break;
            const std::uint64_t spent = core::EventLoop::now_usec() - start;
            if (spent >= max_usec) break;
            REQUIRE(sd_event_run(loop.get(), max_usec - spent) >= 0);
        }
        return core::EventLoop::now_usec() - start;
    }
};

// A stand-in for dnsmasq: writes the pid file named by its --conf-file's
// directory, records every SIGHUP in RUNTIME/NAME/hups and runs until killed.
std::string write_fake_dnsmasq(const std::string& dir);

std::string read_text(const std::string& path);

// A Harness whose Stop deletes links on a worker kernel handle of its own
// (ManagerOptions::worker_links), with a (fake) dnsmasq stopped there too.
// The worker's FakeLinks is a base declared first, so it outlives the
// manager the Harness destroys.
struct WorkerKernel {
    FakeLinks worker_kernel;
};
struct WorkerHarness : WorkerKernel, Harness {
    WorkerHarness()
    {
        worker_links = &worker_kernel;
        dnsmasq = write_fake_dnsmasq(state_dir.path);
        restart_manager();
    }
};

// ---- self-healing (core/manager_repair.cpp) ----------------------------------

constexpr const char* healing_document =
    R"({"name": "iso", "mode": "nat", "bridge": "kvmbr9", "ipv4": {"address": "10.70.0.1/24"},
        "ipv6": {"address": "fd00:70::1/64"}, "forwards": [{"proto": "tcp", "host_port": 8080,
        "guest": "10.70.0.5", "guest_port": 80}]})";

// A running NAT network with a (fake) dnsmasq; the kernel calls so far forgotten.
struct HealingHarness : Harness {
    HealingHarness()
    {
        dnsmasq = write_fake_dnsmasq(state_dir.path);
        restart_manager();
        m().create(healing_document);
        m().start("iso");
        REQUIRE(m().state("iso") == State::active);
        links.reset_calls();
        listener.repairs.clear();
    }
    std::vector<std::string> bridge_addresses()
    {
        std::vector<std::string> result;
        for (const auto& a : links.addresses_on("kvmbr9"))
            result.push_back(a.address.str() + "/" + std::to_string(a.prefix_length));
        std::sort(result.begin(), result.end());
        return result;
    }
    // kvmbr9's prefix route of `family` (AF_INET, AF_INET6) in the main table.
    std::optional<RouteInfo> subnet_route(int family)
    {
        for (const RouteInfo& r : links.routes_on("kvmbr9"))
            if (r.family == family && r.table == 254) return r;
        return std::nullopt;
    }
    // Spends the network's repair budget: its IPv4 prefix route deleted
    // and repaired as often as the budget allows (20 times).
    void spend_route_budget()
    {
        const int index = links.link("kvmbr9").index;
        for (int i = 0; i < 20; ++i) {
            links.delete_route(*subnet_route(AF_INET));
            m().route_changed(index);
            let_repairs_run();
            REQUIRE(subnet_route(AF_INET));
            REQUIRE(m().state("iso") == State::active);
        }
    }
};

inline const std::vector<std::string> healthy_addresses{"10.70.0.1/24", "fd00:70::1/64"};

}  // namespace kvmnet::test
