// dnsmasq's lease file: parsing, the JSON that Leases() returns, lease events
// derived from two readings, and the inotify watch that produces them.
#include "core/event_loop.hpp"
#include "core/lease_watch.hpp"
#include "plan/leases.hpp"
#include "store/files.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <systemd/sd-event.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

namespace unit_test_leases {

using kvmnet::plan::diff_leases;
using kvmnet::plan::Lease;
using kvmnet::plan::LeaseEvent;
using kvmnet::plan::parse_leases;

namespace {

Lease v4_lease(std::int64_t expiry, std::string mac, std::string ip, std::string hostname, std::string client_id)
{
    Lease l;
    l.expiry = expiry;
    l.mac = std::move(mac);
    l.ip = std::move(ip);
    l.hostname = std::move(hostname);
    l.client_id = std::move(client_id);
    return l;
}

}  // namespace

TEST_CASE("Lease lines are parsed with unknown fields left empty", "[leases]")
{
    const auto leases = parse_leases("1718000000 52:54:00:12:34:56 192.168.122.100 web 01:52:54:00:12:34:56\n"
                                     "1718000100 52:54:00:AB:CD:EF 192.168.122.101 * *\n");
    REQUIRE(leases.size() == 2);
    CHECK(leases[0] == v4_lease(1718000000, "52:54:00:12:34:56", "192.168.122.100", "web", "01:52:54:00:12:34:56"));
    CHECK(leases[1] == v4_lease(1718000100, "52:54:00:ab:cd:ef", "192.168.122.101", "", ""));
}

TEST_CASE("An infinite lease has expiry 0", "[leases]")
{
    const auto leases = parse_leases("0 52:54:00:00:00:01 10.0.0.5 db *");
    REQUIRE(leases.size() == 1);
    CHECK(leases[0].expiry == 0);
    CHECK(leases[0].hostname == "db");
}

TEST_CASE("Malformed lines, the server's DUID line and blank lines are skipped", "[leases]")
{
    const auto leases = parse_leases("\n"
                                     "garbage\n"
                                     "1718000000 52:54:00:00:00:01 10.0.0.5 *\n"              // too few fields
                                     "1718000000 52:54:00:00:00:01 10.0.0.5 a b extra\n"      // too many
                                     "soon 52:54:00:00:00:01 10.0.0.5 * *\n"                  // expiry not a number
                                     "-5 52:54:00:00:00:01 10.0.0.5 * *\n"                    // negative expiry
                                     "1718000000 52:54:00:00:00 10.0.0.5 * *\n"               // short MAC
                                     "1718000000 52:54:00:00:00:01 10.0.0.500 * *\n"          // bad address
                                     "duid 00:01:00:01:2c:5d:aa:bb:52:54:00:00:00:01\n"       // DHCPv6 server DUID
                                     "1718000000 12x4 fd00::5 * 00:01:00:01:2c:5d:aa:bb\n"    // IAID not a number
                                     "1718000000 1234 fd00::5 * 00:01:0g\n"                   // DUID not hex
                                     "1718000000 1234 fd00::5 * 00:01:00:01:2c:5d:aa:bb x\n"  // too many
                                     "1718000000 52:54:00:00:00:01 fd00::5 * *\n"             // MAC where the IAID goes
                                     "1718000200 52:54:00:00:00:02 10.0.0.6 ok *\n");
    REQUIRE(leases.size() == 1);
    CHECK(leases[0].mac == "52:54:00:00:00:02");
    CHECK(parse_leases("").empty());
}

TEST_CASE("Lines with host names or client ids that are not printable ASCII are skipped", "[leases]")
{
    const auto leases = parse_leases("1718000000 52:54:00:00:00:01 10.0.0.5 w\xff"
                                     "b *\n"
                                     "1718000000 52:54:00:00:00:02 10.0.0.6 n\xc3\xa9t *\n"
                                     "1718000000 52:54:00:00:00:03 10.0.0.7 * 01:\x01\n"
                                     "1718000000 52:54:00:00:00:04 10.0.0.8 ok *\n");
    REQUIRE(leases.size() == 1);
    CHECK(leases[0].hostname == "ok");
    CHECK_NOTHROW(kvmnet::plan::to_json(leases).dump());
}

TEST_CASE("Lease JSON leaves out unknown host names and client ids", "[leases]")
{
    const auto leases = parse_leases("1718000000 52:54:00:12:34:56 192.168.122.100 web 01:aa\n"
                                     "0 52:54:00:12:34:57 192.168.122.101 * *\n");
    CHECK(kvmnet::plan::to_json(leases).dump() ==
          R"([{"client_id":"01:aa","expires_at":"2024-06-10T06:13:20Z","expiry":1718000000,"family":"ipv4",)"
          R"("hostname":"web","ip":"192.168.122.100","mac":"52:54:00:12:34:56"},)"
          R"({"expires_at":null,"expiry":0,"family":"ipv4","ip":"192.168.122.101","mac":"52:54:00:12:34:57"}])");
}

TEST_CASE("Two readings of the lease file give added, renewed, released and expired events", "[leases]")
{
    const Lease a = v4_lease(1000, "52:54:00:00:00:01", "10.0.0.5", "a", "");
    const Lease b = v4_lease(2000, "52:54:00:00:00:02", "10.0.0.6", "", "");
    const Lease c = v4_lease(500, "52:54:00:00:00:03", "10.0.0.7", "", "");
    const std::int64_t now = 900;

    CHECK(diff_leases({}, {a}, now) == std::vector<LeaseEvent>{{"added", a}});
    CHECK(diff_leases({a}, {a}, now).empty());
    Lease a2 = a;
    a2.expiry = 4600;
    CHECK(diff_leases({a}, {a2}, now) == std::vector<LeaseEvent>{{"renewed", a2}});
    Lease a3 = a;
    a3.hostname = "renamed";
    CHECK(diff_leases({a}, {a3}, now) == std::vector<LeaseEvent>{{"renewed", a3}});
    // Gone before its expiry: released; after it: expired.
    CHECK(diff_leases({a, b, c}, {b}, now) == std::vector<LeaseEvent>{{"released", a}, {"expired", c}});
    // An infinite lease that goes away was released.
    Lease forever = a;
    forever.expiry = 0;
    CHECK(diff_leases({forever}, {}, now) == std::vector<LeaseEvent>{{"released", forever}});
    // The same MAC with another address is a new lease, the old one went away.
    Lease moved = a;
    moved.ip = "10.0.0.9";
    CHECK(diff_leases({a}, {moved}, now) == std::vector<LeaseEvent>{{"released", a}, {"added", moved}});
}

TEST_CASE("The lease watch reports changes to the lease file, rewritten in place", "[leases]")
{
    char pattern[] = "/tmp/kvmnet-lease-test-XXXXXX";
    REQUIRE(::mkdtemp(pattern) != nullptr);
    const std::string dir = pattern;
    const std::string file = dir + "/dnsmasq.leases";
    kvmnet::store::write_atomic(file, "1718000000 52:54:00:00:00:01 10.0.0.5 a *\n");

    kvmnet::core::EventLoop loop;
    kvmnet::core::DirectoryWatch directory(loop);
    std::vector<LeaseEvent> seen;
    int batches = 0;
    kvmnet::core::LeaseWatch watch(
        loop, directory, file,
        [&](const std::vector<LeaseEvent>& events) {
            ++batches;
            seen.insert(seen.end(), events.begin(), events.end());
        },
        20'000);
    auto run_until = [&](const std::function<bool()>& done) {
        const auto start = kvmnet::core::EventLoop::now_usec();
        while (!done() && kvmnet::core::EventLoop::now_usec() - start < 2'000'000)
            REQUIRE(sd_event_run(loop.get(), 100'000) >= 0);
    };

    // As dnsmasq does it: the same open file, truncated and written in pieces.
    {
        std::FILE* f = std::fopen(file.c_str(), "r+");
        REQUIRE(f != nullptr);
        REQUIRE(::ftruncate(::fileno(f), 0) == 0);
        std::fputs("0 52:54:00:00:00:02 10.0.0.6 * *\n", f);
        std::fflush(f);
        std::fputs("1718003600 52:54:00:00:00:01 10.0.0.5 a *\n", f);
        std::fclose(f);
    }
    run_until([&] { return seen.size() >= 2; });
    REQUIRE(seen.size() == 2);
    CHECK(batches == 1);  // one burst, one reading
    CHECK(seen[0].event == "added");
    CHECK(seen[0].lease.mac == "52:54:00:00:00:02");
    CHECK(seen[1].event == "renewed");
    CHECK(seen[1].lease.expiry == 1718003600);

    seen.clear();
    kvmnet::store::write_atomic(file, "0 52:54:00:00:00:02 10.0.0.6 * *\n");  // by rename
    run_until([&] { return !seen.empty(); });
    REQUIRE(seen.size() == 1);
    CHECK(seen[0].event == "expired");  // its expiry (2024) is long past
    CHECK(seen[0].lease.mac == "52:54:00:00:00:01");

    // Other files in the directory are ignored.
    seen.clear();
    kvmnet::store::write_atomic(dir + "/dnsmasq.hosts", "x\n");
    const auto start = kvmnet::core::EventLoop::now_usec();
    while (kvmnet::core::EventLoop::now_usec() - start < 100'000)
        REQUIRE(sd_event_run(loop.get(), 50'000) >= 0);
    CHECK(seen.empty());
    std::filesystem::remove_all(dir);
}

TEST_CASE("A lease is static when a static host has its MAC and address", "[leases]")
{
    const auto leases = parse_leases("1718000000 52:54:00:00:00:01 10.0.0.5 web *\n"    // the host's reservation
                                     "1718000000 52:54:00:00:00:02 10.0.0.100 * *\n"    // no host entry
                                     "1718000000 52:54:00:00:00:03 10.0.0.101 * *\n");  // host reserved 10.0.0.7
    const std::vector<kvmnet::model::DhcpHost> hosts = {
        kvmnet::model::parse_dhcp_host(R"({"mac": "52:54:00:00:00:01", "ip": "10.0.0.5", "name": "web"})"),
        kvmnet::model::parse_dhcp_host(R"({"mac": "52:54:00:00:00:03", "ip": "10.0.0.7"})")};
    const auto j = kvmnet::plan::to_json(leases, hosts);
    REQUIRE(j.size() == 3);
    CHECK(j[0]["type"] == "static");
    CHECK(j[1]["type"] == "dynamic");
    CHECK(j[2]["type"] == "dynamic");
    CHECK(j[0]["mac"] == "52:54:00:00:00:01");
    CHECK(kvmnet::plan::to_json(leases, {})[0]["type"] == "dynamic");
}

TEST_CASE("DHCPv6 leases after the duid line carry IAID, DUID and the MAC inside the DUID", "[leases]")
{
    const auto leases = parse_leases("1718000200 52:54:00:00:00:02 10.0.0.6 ok *\n"
                                     "duid 00:01:00:01:2c:5d:aa:bb:52:54:00:00:00:01\n"
                                     "1718003600 1500 fd00:66::1AB guest2 00:01:00:01:2C:5D:AA:BB:52:54:00:AA:00:02\n"
                                     "0 T7 fd00:66:0:0::1ac * 00:03:00:01:52:54:00:aa:00:03\n"
                                     "1718003600 9 fd00:66::1ad * 00:02:00:00:ab:11:01:02\n"
                                     "1718003600 10 fd00:66::1ae * *\n");
    REQUIRE(leases.size() == 5);
    CHECK_FALSE(leases[0].ipv6);
    Lease v6;
    v6.expiry = 1718003600;
    v6.mac = "52:54:00:aa:00:02";
    v6.ip = "fd00:66::1ab";
    v6.hostname = "guest2";
    v6.ipv6 = true;
    v6.iaid = 1500;
    v6.duid = "00:01:00:01:2c:5d:aa:bb:52:54:00:aa:00:02";
    CHECK(leases[1] == v6);
    CHECK(leases[2].ip == "fd00:66::1ac");  // canonical text
    CHECK(leases[2].iaid == 7);
    CHECK(leases[2].mac == "52:54:00:aa:00:03");  // DUID-LL
    CHECK(leases[2].expiry == 0);
    CHECK(leases[3].mac.empty());  // DUID-EN carries no MAC
    CHECK(leases[3].duid == "00:02:00:00:ab:11:01:02");
    CHECK(leases[4].duid.empty());

    const auto j = kvmnet::plan::to_json(leases, {});
    CHECK(j[0]["family"] == "ipv4");
    CHECK_FALSE(j[0].contains("iaid"));
    CHECK(j[1] ==
          nlohmann::json::parse(
              R"({"family": "ipv6", "ip": "fd00:66::1ab", "expiry": 1718003600, "expires_at": "2024-06-10T07:13:20Z",
        "mac": "52:54:00:aa:00:02", "hostname": "guest2", "iaid": 1500, "type": "dynamic",
        "duid": "00:01:00:01:2c:5d:aa:bb:52:54:00:aa:00:02"})"));
    CHECK_FALSE(j[3].contains("mac"));
    CHECK_FALSE(j[4].contains("duid"));
}

TEST_CASE("DHCPv6 leases are told apart by DUID, IAID and address", "[leases]")
{
    const auto before = parse_leases("duid 00:01\n1718003600 1 fd00::10 * 00:03:00:01:52:54:00:aa:00:02\n"
                                     "1718003600 2 fd00::11 * 00:03:00:01:52:54:00:aa:00:02\n");
    const auto after = parse_leases("duid 00:01\n1718007200 1 fd00::10 * 00:03:00:01:52:54:00:aa:00:02\n"
                                    "1718003600 3 fd00::11 * 00:03:00:01:52:54:00:aa:00:02\n");
    const auto events = diff_leases(before, after, 0);
    REQUIRE(events.size() == 3);
    CHECK(events[0].event == "released");
    CHECK(events[0].lease.iaid == 2);
    CHECK(events[1].event == "renewed");
    CHECK(events[2].event == "added");
    CHECK(events[2].lease.iaid == 3);
}

}  // namespace unit_test_leases
