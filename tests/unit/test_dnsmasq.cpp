// core::Dnsmasq: the pure parts (restart backoff, pid file parsing) and the
// supervisor's events with a stand-in process on a real event loop:
// readiness from the pid file, a stop while a start waits, a restart after
// an exit.
#include "core/dnsmasq.hpp"
#include "core/event_loop.hpp"
#include "temp_dir.hpp"

#include <catch2/catch.hpp>
#include <systemd/sd-event.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <functional>

namespace unit_test_dnsmasq {

using namespace kvmnet;
namespace fs = std::filesystem;

namespace {

// Holds while DIR/hold exists, then writes its pid file as dnsmasq does
// once its sockets are bound, and runs until killed.
std::string write_stand_in(const std::string& dir)
{
    const std::string path = dir + "/stand-in";
    std::ofstream(path) << "#!/bin/sh\n"
                           "dir=$(dirname \"${2#--conf-file=}\")\n"
                           "while [ -e \"$dir/hold\" ]; do sleep 0.01; done\n"
                           "echo $$ >\"$dir/dnsmasq.pid\"\n"
                           "while :; do sleep 0.02; done\n";
    fs::permissions(path, fs::perms::owner_all);
    return path;
}

// Runs the loop until `done` holds (or 10 s pass: a failure, not a hang).
void run_until(core::EventLoop& loop, const std::function<bool()>& done)
{
    const std::uint64_t start = core::EventLoop::now_usec();
    while (!done()) {
        REQUIRE(core::EventLoop::now_usec() - start < 10'000'000);
        REQUIRE(sd_event_run(loop.get(), 100'000) >= 0);
    }
}

plan::DnsmasqFiles files() { return {"# config\n", "", ""}; }

// A supervisor's surroundings with the stand-in held before its pid file.
struct Held {
    testing::TempDir dir;
    core::EventLoop loop;
    core::DnsmasqOptions options;
    Held()
    {
        options.binary = write_stand_in(dir.path);
        options.dir = dir.path + "/run";
        options.network = "lan";
        fs::create_directories(options.dir);
        std::ofstream(options.dir + "/hold") << "";
    }
};

}  // namespace

TEST_CASE("dnsmasq restarts back off: at once, then 1, 2, 4 ... 30 s", "[dnsmasq]")
{
    CHECK(core::dnsmasq_restart_delay_s(0) == 0);
    CHECK(core::dnsmasq_restart_delay_s(1) == 1);
    CHECK(core::dnsmasq_restart_delay_s(2) == 2);
    CHECK(core::dnsmasq_restart_delay_s(5) == 16);
    CHECK(core::dnsmasq_restart_delay_s(6) == 30);
    CHECK(core::dnsmasq_restart_delay_s(100) == 30);
}

TEST_CASE("A pid file's pid", "[dnsmasq]")
{
    CHECK(core::parse_pid("1234\n") == 1234);
    CHECK(core::parse_pid("  77") == 77);
    CHECK(core::parse_pid("") == 0);
    CHECK(core::parse_pid("x") == 0);
    CHECK(core::parse_pid("-5") == 0);
    CHECK(core::parse_pid("0") == 0);
}

TEST_CASE("A start is ready when the pid file appears, and the loop runs meanwhile", "[dnsmasq]")
{
    Held held;
    auto& [dir, loop, options] = held;
    std::string exited, restarted;
    core::Dnsmasq dnsmasq(loop, options,
                          {[&](const std::string& p) { exited = p; }, [&](const std::string& d) { restarted = d; }});
    bool ready = false;
    std::exception_ptr error;
    dnsmasq.start(files(), [&](std::exception_ptr e) {
        ready = true;
        error = e;
    });
    CHECK_FALSE(ready);
    CHECK(dnsmasq.state() == "starting");
    CHECK(dnsmasq.pid() == 0);
    // Other work of the loop goes on while the start waits.
    bool timer = false;
    auto tick = loop.add_timer(1000, [&] { timer = true; });
    run_until(loop, [&] { return timer; });
    CHECK_FALSE(ready);
    fs::remove(options.dir + "/hold");
    run_until(loop, [&] { return ready; });
    CHECK_FALSE(error);
    CHECK(dnsmasq.state() == "running");
    const pid_t first = dnsmasq.pid();
    REQUIRE(first > 0);

    SECTION("an exit is restarted at once, and reported")
    {
        REQUIRE(::kill(first, SIGKILL) == 0);
        run_until(loop, [&] { return !restarted.empty(); });
        CHECK(exited.find("dnsmasq exited") == 0);
        CHECK(dnsmasq.state() == "running");
        CHECK(dnsmasq.pid() != first);
        CHECK(dnsmasq.problem().empty());
    }
    SECTION("stop ends it")
    {
        dnsmasq.stop();
        CHECK(dnsmasq.state() == "stopped");
        CHECK_FALSE(fs::exists(options.dir + "/dnsmasq.pid"));
        CHECK(::kill(first, 0) != 0);
    }
    dnsmasq.stop();
}

TEST_CASE("A stop while a start waits ends the process, and the start is never reported", "[dnsmasq]")
{
    Held held;
    auto& [dir, loop, options] = held;
    core::Dnsmasq dnsmasq(loop, options, {});
    bool called = false;
    dnsmasq.start(files(), [&](std::exception_ptr) { called = true; });
    REQUIRE(dnsmasq.state() == "starting");
    dnsmasq.stop();
    CHECK(dnsmasq.state() == "stopped");
    fs::remove(options.dir + "/hold");
    bool timer = false;
    auto tick = loop.add_timer(100'000, [&] { timer = true; });
    run_until(loop, [&] { return timer; });
    CHECK_FALSE(called);
    CHECK_FALSE(fs::exists(options.dir + "/dnsmasq.pid"));
}

TEST_CASE("A dnsmasq that exits at start fails the start with its log", "[dnsmasq]")
{
    testing::TempDir dir;
    core::EventLoop loop;
    const std::string script = dir.path + "/failing";
    std::ofstream(script) << "#!/bin/sh\necho 'dnsmasq: failed to create listening socket' >&2\nexit 2\n";
    fs::permissions(script, fs::perms::owner_all);
    core::DnsmasqOptions options;
    options.binary = script;
    options.dir = dir.path + "/run";
    options.network = "lan";
    core::Dnsmasq dnsmasq(loop, options, {});
    bool called = false;
    std::string message;
    dnsmasq.start(files(), [&](std::exception_ptr e) {
        called = true;
        try {
            if (e) std::rethrow_exception(e);
        } catch (const std::exception& err) {
            message = err.what();
        }
    });
    run_until(loop, [&] { return called; });
    CHECK(message == "dnsmasq exited at start (status 2): dnsmasq: failed to create listening socket");
    CHECK(dnsmasq.state() == "failed");
}

}  // namespace unit_test_dnsmasq
