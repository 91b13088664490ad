// Unit tests of core/dir_watch: the one inotify instance of every network's
// dnsmasq readiness. Each directory's callback hears its own writes only; a
// removed watch is silent; a watched directory that is deleted frees its id.
#include "core/dir_watch.hpp"
#include "core/event_loop.hpp"
#include "model/error.hpp"
#include "temp_dir.hpp"

#include <catch2/catch.hpp>

#include <systemd/sd-event.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace unit_test_dir_watch {

namespace core = kvmnet::core;

namespace {

void write(const std::string& path) { std::ofstream(path) << "1\n"; }

// Runs the loop until nothing is pending.
void settle(core::EventLoop& loop)
{
    while (sd_event_run(loop.get(), 50'000) > 0) {
    }
}

}  // namespace

TEST_CASE("One instance, a callback per directory, each hears its own writes", "[dir_watch]")
{
    kvmnet::testing::TempDir tmp;
    const std::string a = tmp.path + "/a", b = tmp.path + "/b";
    std::filesystem::create_directory(a);
    std::filesystem::create_directory(b);
    core::EventLoop loop;
    core::DirectoryWatch watch(loop);
    int heard_a = 0, heard_b = 0;
    const int id_a = watch.add(a, [&] { ++heard_a; });
    const int id_b = watch.add(b, [&] { ++heard_b; });
    CHECK(id_a != id_b);
    CHECK(watch.size() == 2);
    write(a + "/dnsmasq.pid");
    settle(loop);
    CHECK(heard_a == 1);
    CHECK(heard_b == 0);

    watch.remove(id_a);
    CHECK(watch.size() == 1);
    write(a + "/dnsmasq.pid");
    write(b + "/dnsmasq.pid");
    settle(loop);
    CHECK(heard_a == 1);  // removed: silent
    CHECK(heard_b == 1);
    watch.remove(id_a);  // twice: nothing
}

TEST_CASE("A watched directory that is deleted frees its watch; removing it later is fine", "[dir_watch]")
{
    kvmnet::testing::TempDir tmp;
    const std::string a = tmp.path + "/a";
    std::filesystem::create_directory(a);
    core::EventLoop loop;
    core::DirectoryWatch watch(loop);
    int heard = 0;
    const int id = watch.add(a, [&] { ++heard; });
    std::filesystem::remove_all(a);
    settle(loop);
    CHECK(watch.size() == 0);
    watch.remove(id);
    CHECK(heard == 0);
}

TEST_CASE("A directory inotify cannot watch is a Kernel error naming it", "[dir_watch]")
{
    kvmnet::testing::TempDir tmp;
    core::EventLoop loop;
    core::DirectoryWatch watch(loop);
    try {
        watch.add(tmp.path + "/missing", [] {});
        FAIL("no error");
    } catch (const kvmnet::Error& e) {
        CHECK(e.kind() == kvmnet::ErrorKind::Kernel);
        CHECK(std::string(e.what()).find(tmp.path + "/missing") != std::string::npos);
    }
    CHECK(watch.size() == 0);
}

}  // namespace unit_test_dir_watch
