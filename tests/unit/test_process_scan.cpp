// core::processes_with_argument: a child whose pid nobody wrote down is
// found by one word of its command line (what stops a dnsmasq that a killed
// daemon spawned before its pid file was written), and no longer once it is
// gone.
#include "core/process.hpp"
#include "temp_dir.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <csignal>
#include <string>
#include <unistd.h>
#include <vector>

namespace unit_test_process_scan {

using namespace kvmnet;

TEST_CASE("processes_with_argument finds a process by one word of its command line", "[process]")
{
    testing::TempDir dir;
    // Unique to this run: `sh -c CMD NAME` puts NAME into the command line.
    const std::string word = "--conf-file=" + dir.path + "/dnsmasq.conf";
    const pid_t pid = core::spawn_process({"/bin/sh", "-c", "sleep 30; :", word}, dir.path + "/log");
    // Found once the child has exec'd sh, which keeps NAME as its $0 (and,
    // with a command after the sleep, stays).
    std::vector<pid_t> found;
    for (int i = 0; i < 200 && found.empty(); ++i) {
        found = core::processes_with_argument(word);
        if (found.empty()) ::usleep(10'000);
    }
    // sh's child for `sleep` carries the same command line until its exec.
    CHECK(std::count(found.begin(), found.end(), pid) == 1);
    CHECK(core::processes_with_argument(word + "x").empty());
    CHECK(core::processes_with_argument(dir.path).empty());  // whole words only
    // Its own session (spawn_process): the group's `sleep` goes with it.
    ::kill(-pid, SIGTERM);
    core::stop_process(pid);
    CHECK(core::processes_with_argument(word).empty());
}

}  // namespace unit_test_process_scan
