// A hung FRR must not hold the daemon: vtysh (run on the event loop) is
// killed after core::Evpn's timeout, with everything it started. The fake
// vtysh is a real script that never answers.
#include "core/evpn.hpp"
#include "core/foreign_firewall.hpp"
#include "temp_dir.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <sys/types.h>
#include <thread>

namespace unit_test_vtysh_timeout {

using namespace kvmnet;

namespace {

// A zombie (reparented, not yet reaped by init) counts as gone.
bool running(pid_t pid)
{
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string stat;
    if (!std::getline(in, stat)) return false;
    const auto close = stat.rfind(')');
    return close != std::string::npos && close + 2 < stat.size() && stat[close + 2] != 'Z';
}

// SIGKILL to another process's group is delivered, not waited for: the
// grandchild (not ours to reap) may take a moment to go. Bounded, not timed.
bool gone(pid_t pid)
{
    for (int i = 0; i < 500 && running(pid); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return !running(pid);
}

pid_t read_pid(const std::string& path)
{
    std::ifstream in(path);
    long pid = 0;
    in >> pid;
    return static_cast<pid_t>(pid);
}

// Writes its own PID and its child's, then waits for the child forever (as
// far as the test is concerned).
std::string hung_vtysh(const std::string& dir)
{
    const std::string path = dir + "/vtysh";
    std::ofstream(path) << "#!/bin/sh\necho $$ > " << dir << "/pid\nsleep 60 &\necho $! > " << dir << "/child\nwait\n";
    std::filesystem::permissions(path, std::filesystem::perms::owner_all);
    return path;
}

}  // namespace

TEST_CASE("run_command_timeout kills a command that does not finish, and what it started", "[evpn][process]")
{
    testing::TempDir dir;
    const core::CommandResult r = core::run_command_timeout({hung_vtysh(dir.path)}, 300);
    CHECK(r.timed_out);
    REQUIRE(read_pid(dir.path + "/pid") > 0);
    REQUIRE(read_pid(dir.path + "/child") > 0);
    CHECK_FALSE(running(read_pid(dir.path + "/pid")));
    CHECK(gone(read_pid(dir.path + "/child")));
}

TEST_CASE("run_command_timeout leaves a command that finishes in time alone", "[evpn][process]")
{
    const core::CommandResult r = core::run_command_timeout({"/bin/sh", "-c", "echo answer; exit 3"}, 5000);
    CHECK_FALSE(r.timed_out);
    CHECK(r.status == 3);
    CHECK(r.output == "answer\n");
}

TEST_CASE("Evpn with a hung FRR: vtysh is killed and the problem says so", "[evpn]")
{
    testing::TempDir dir;
    core::Evpn evpn(hung_vtysh(dir.path), "", dir.path + "/frr-evpn.conf", {}, 300);
    const plan::EvpnNetwork red{"red", 100,          "kbr-red", "kvx-100", kvmnet::model::Ipv4::parse("10.99.0.1"),
                                65000, {"10.99.0.2"}};
    CHECK_NOTHROW(evpn.check({red}));
    evpn.sync({red});
    CHECK(evpn.problem() == "FRR does not answer (timeout)");
    evpn.refresh();
    CHECK_FALSE(evpn.status().reachable);
    CHECK(evpn.status().error == "FRR does not answer (timeout)");
    CHECK_FALSE(running(read_pid(dir.path + "/pid")));
    CHECK(gone(read_pid(dir.path + "/child")));
}

}  // namespace unit_test_vtysh_timeout
