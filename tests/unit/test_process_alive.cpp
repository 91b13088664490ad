// core::process_alive, which dnsmasq adoption asks about the pid in its pid
// file: EPERM from kill(pid, 0) means the process exists (a dnsmasq that
// dropped to its own user, asked by a daemon that is not root); a zombie
// and a reaped pid are not alive.
#include "core/process.hpp"

#include <catch2/catch.hpp>

#include <sys/wait.h>
#include <unistd.h>

namespace unit_test_process_alive {

using kvmnet::core::process_alive;

TEST_CASE("process_alive: running, zombie and reaped processes", "[process]")
{
    CHECK(process_alive(::getpid()));
    CHECK_FALSE(process_alive(0));
    CHECK_FALSE(process_alive(-1));

    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) ::_exit(0);
    // Exited, not yet reaped (WNOWAIT): a zombie still answers kill(0).
    siginfo_t info{};
    REQUIRE(::waitid(P_PID, static_cast<id_t>(child), &info, WEXITED | WNOWAIT) == 0);
    CHECK_FALSE(process_alive(child));
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    CHECK_FALSE(process_alive(child));
}

TEST_CASE("process_alive: another user's process (kill gives EPERM) is alive", "[process]")
{
    if (::geteuid() != 0) {
        WARN("skipped: needs root to run a child as another user");
        return;
    }
    const pid_t parent = ::getpid();
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        // As nobody, signalling the root test process is not permitted.
        if (::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(2);
        ::_exit(process_alive(parent) ? 0 : 1);
    }
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
}

}  // namespace unit_test_process_alive
