// dnsmasq that exits at start because an interface went away while it
// listed them ("failed to find list of interfaces": other networks' bridges
// deleted meanwhile) is spawned once more within the same start; any other
// early exit, or a second one, fails the start as before.
#include "manager_test_prelude.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>

namespace unit_test_dnsmasq_respawn {

namespace {

constexpr const char* document =
    R"({"name": "lab", "mode": "nat", "bridge": "kvmbr1", "ipv4": {"address": "10.10.0.1/24"}})";

// A fake dnsmasq that fails the first `failures` runs with `message` (each
// run appends a line to DIR/runs), then serves as write_fake_dnsmasq's does.
std::string write_failing_dnsmasq(const std::string& dir, int failures, const std::string& message)
{
    const std::string path = dir + "/failing-dnsmasq";
    std::ofstream(path) << "#!/bin/sh\n"
                           "dir=$(dirname \"${2#--conf-file=}\")\n"
                           "echo run >>\""
                        << dir << "/runs\"\n"
                        << "if [ $(wc -l <\"" << dir << "/runs\") -le " << failures << " ]; then\n"
                        << "  echo 'dnsmasq: " << message << "' >&2\n"
                        << "  exit 5\n"
                           "fi\n"
                           "echo $$ >\"$dir/dnsmasq.pid\"\n"
                           "while :; do sleep 0.02; done\n";
    std::filesystem::permissions(path, std::filesystem::perms::owner_all);
    return path;
}

int runs(const Harness& h)
{
    const std::string text = read_text(h.state_dir.path + "/runs");
    return static_cast<int>(std::count(text.begin(), text.end(), '\n'));
}

}  // namespace

TEST_CASE("dnsmasq that lost an interface while listing them at start is spawned once more", "[dnsmasq]")
{
    Harness h;
    h.dnsmasq = write_failing_dnsmasq(h.state_dir.path, 1, "failed to find list of interfaces: No such device");
    h.restart_manager();
    h.m().create(document);
    h.m().start("lab");
    CHECK(h.m().state("lab") == State::active);
    CHECK(runs(h) == 2);
}

TEST_CASE("A second such exit, or another early exit, fails the start", "[dnsmasq]")
{
    SECTION("twice")
    {
        Harness h;
        h.dnsmasq =
            write_failing_dnsmasq(h.state_dir.path, 2, "failed to find list of interfaces: Bad file descriptor");
        h.restart_manager();
        h.m().create(document);
        CHECK_THROWS_WITH(h.m().start("lab"), Catch::Contains("failed to find list of interfaces"));
        CHECK(h.m().state("lab") != State::active);
        CHECK(runs(h) == 2);
    }
    SECTION("another reason")
    {
        Harness h;
        h.dnsmasq = write_failing_dnsmasq(h.state_dir.path, 1, "failed to create listening socket: Address in use");
        h.restart_manager();
        h.m().create(document);
        CHECK_THROWS_WITH(h.m().start("lab"), Catch::Contains("exited at start"));
        CHECK(runs(h) == 1);
    }
}

}  // namespace unit_test_dnsmasq_respawn
