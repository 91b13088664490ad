// Unit tests of core/dir_watch shared by dnsmasq's readiness and the lease
// watch (core/lease_watch.hpp): both watch a network's runtime directory on
// the daemon's one inotify instance, each hears its own events, and ending
// one (a network's stop) leaves the other's events flowing.
#include "core/dir_watch.hpp"
#include "core/event_loop.hpp"
#include "core/lease_watch.hpp"
#include "temp_dir.hpp"

#include <catch2/catch.hpp>

#include <sys/inotify.h>
#include <systemd/sd-event.h>

#include <cstdio>
#include <ctime>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <unistd.h>

namespace unit_test_dir_watch_shared {

namespace core = kvmnet::core;

namespace {

void settle(core::EventLoop& loop)
{
    while (sd_event_run(loop.get(), 50'000) > 0) {
    }
}

// As dnsmasq rewrites its lease file: the same open file, no close.
void modify_in_place(const std::string& path, const std::string& text)
{
    std::FILE* f = std::fopen(path.c_str(), "r+");
    REQUIRE(f != nullptr);
    REQUIRE(::ftruncate(::fileno(f), 0) == 0);
    std::fputs(text.c_str(), f);
    std::fclose(f);
}

}  // namespace

TEST_CASE("Two watches of one directory each hear their own events; removing one keeps the other", "[dir_watch]")
{
    kvmnet::testing::TempDir tmp;
    core::EventLoop loop;
    core::DirectoryWatch watch(loop);
    int any = 0, leases = 0;
    const int readiness = watch.add(tmp.path, [&] { ++any; });
    const int lease = watch.add(tmp.path, IN_MODIFY | IN_CREATE, "dnsmasq.leases", [&] { ++leases; });
    CHECK(readiness != lease);
    CHECK(watch.size() == 2);

    std::ofstream(tmp.path + "/dnsmasq.pid") << "1\n";
    settle(loop);
    CHECK(any == 1);
    CHECK(leases == 0);  // another file

    std::ofstream(tmp.path + "/dnsmasq.leases") << "x\n";  // created, written, closed
    settle(loop);
    CHECK(leases == 1);
    CHECK(any == 2);

    // A stop of readiness (a start that finished) leaves the lease watch's
    // IN_MODIFY in the kernel's watch of the directory.
    watch.remove(readiness);
    {
        const int fd = ::open((tmp.path + "/dnsmasq.leases").c_str(), O_WRONLY);
        REQUIRE(fd >= 0);
        REQUIRE(::write(fd, "y\n", 2) == 2);  // IN_MODIFY, heard before the close
        settle(loop);
        CHECK(leases == 2);
        ::close(fd);
    }
    settle(loop);
    CHECK(any == 2);  // removed: silent
    CHECK(watch.size() == 1);

    watch.remove(lease);
    CHECK(watch.size() == 0);
    std::ofstream(tmp.path + "/dnsmasq.leases") << "z\n";
    settle(loop);
    CHECK(leases == 2);
}

TEST_CASE("A lease watch ends without closing the shared instance; the other networks' watches go on",
          "[dir_watch][leases]")
{
    kvmnet::testing::TempDir tmp;
    const std::string a = tmp.path + "/a", b = tmp.path + "/b";
    std::filesystem::create_directory(a);
    std::filesystem::create_directory(b);
    std::ofstream(a + "/dnsmasq.leases") << "";
    std::ofstream(b + "/dnsmasq.leases") << "";
    core::EventLoop loop;
    core::DirectoryWatch watch(loop);
    int heard_a = 0, heard_b = 0;
    auto lease_a = std::make_unique<core::LeaseWatch>(
        loop, watch, a + "/dnsmasq.leases", [&](const auto&) { ++heard_a; }, 1'000);
    core::LeaseWatch lease_b(
        loop, watch, b + "/dnsmasq.leases", [&](const auto&) { ++heard_b; }, 1'000);
    CHECK(watch.size() == 2);

    lease_a.reset();  // network a stops
    CHECK(watch.size() == 1);
    const std::string lease = std::to_string(::time(nullptr) + 3600) + " 52:54:00:00:00:01 10.0.0.5 a *\n";
    modify_in_place(a + "/dnsmasq.leases", lease);
    modify_in_place(b + "/dnsmasq.leases", lease);
    const auto start = core::EventLoop::now_usec();
    while (heard_b == 0 && core::EventLoop::now_usec() - start < 2'000'000)
        REQUIRE(sd_event_run(loop.get(), 50'000) >= 0);
    CHECK(heard_b == 1);
    CHECK(heard_a == 0);
}

}  // namespace unit_test_dir_watch_shared
