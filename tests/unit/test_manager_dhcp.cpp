// Unit tests of core::Manager against fake kernel adapters (manager_harness.hpp):
// static DHCP hosts without a dnsmasq restart, and leases.
#include "manager_test_prelude.hpp"

namespace unit_test_manager_dhcp {

// ---- DHCP: static hosts without a dnsmasq restart, leases -------------------

TEST_CASE("Static hosts are added and removed on a running network without restarting dnsmasq", "[manager][dhcp]")
{
    Harness h;
    h.dnsmasq = write_fake_dnsmasq(h.state_dir.path);
    h.restart_manager();
    h.m().create(R"({"name": "iso", "mode": "isolated", "bridge": "kvmbr9", "ipv4": {"address": "10.70.0.1/24",
        "dhcp": {"ranges": ["10.70.0.100-10.70.0.200"], "hosts": [{"mac": "52:54:00:00:00:01", "ip": "10.70.0.10"}]}}})");
    h.m().start("iso");
    REQUIRE(h.m().state("iso") == State::active);
    const std::string run = h.runtime_dir.path + "/iso";
    const std::string pid = read_text(run + "/dnsmasq.pid");
    const std::string config = read_text(run + "/dnsmasq.conf");
    const auto hups = [&] {
        h.run_loop(100'000);  // the fake handles SIGHUP between two sleeps
        return read_text(run + "/hups");
    };

    h.m().add_host("iso", R"({"mac": "52:54:00:00:00:02", "ip": "10.70.0.50", "name": "web2"})");
    CHECK(read_text(run + "/dnsmasq.hosts") == "52:54:00:00:00:01,10.70.0.10\n52:54:00:00:00:02,10.70.0.50,web2\n");
    CHECK(hups() == "hup\n");
    CHECK(read_text(run + "/dnsmasq.pid") == pid);
    CHECK(read_text(run + "/dnsmasq.conf") == config);
    CHECK(h.m().spec("iso").ipv4->hosts.size() == 2);
    CHECK(read_text(h.state_dir.path + "/networks/iso.json").find("10.70.0.50") != std::string::npos);

    const auto refused = [&](const std::string& doc, ErrorKind kind, const std::string& text) {
        const auto before = h.m().spec("iso");
        try {
            h.m().add_host("iso", doc);
            FAIL("accepted " << doc);
        } catch (const Error& e) {
            CHECK(e.kind() == kind);
            CHECK_THAT(e.what(), Contains(text));
        }
        CHECK(h.m().spec("iso") == before);
    };
    refused(R"({"mac": "52:54:00:00:00:02", "ip": "10.70.0.51"})", ErrorKind::Conflict, "host.mac:");
    refused(R"({"mac": "52:54:00:00:00:03", "ip": "10.70.0.10"})", ErrorKind::Conflict, "host.ip:");
    refused(R"({"mac": "52:54:00:00:00:03", "ip": "10.70.0.52", "name": "WEB2"})", ErrorKind::Conflict, "host.name:");
    refused(R"({"mac": "52:54:00:00:00:03", "ip": "10.71.0.5"})", ErrorKind::InvalidArgument, "host.ip:");
    refused(R"({"mac": "52:54:00:00:00:03", "ip": "10.70.0.1"})", ErrorKind::InvalidArgument, "host.ip:");
    refused(R"({"mac": "nope", "ip": "10.70.0.52"})", ErrorKind::InvalidArgument, "host.mac:");
    refused(R"({"mac": "52:54:00:00:00:03"})", ErrorKind::InvalidArgument, "host.ip: required");
    refused(R"({"mac": "52:54:00:00:00:03", "ip": "10.70.0.52", "color": "red"})", ErrorKind::InvalidArgument,
            "host.color: unknown field");
    refused("{", ErrorKind::InvalidArgument, "host: not valid JSON");
    // An address that dnsmasq has leased to another guest.
    kvmnet::store::write_atomic(run + "/dnsmasq.leases", "0 52:54:00:00:00:09 10.70.0.120 * *\n");
    refused(R"({"mac": "52:54:00:00:00:03", "ip": "10.70.0.120"})", ErrorKind::Conflict, "leased to 52:54:00:00:00:09");

    try {
        h.m().remove_host("iso", "52:54:00:00:00:77");
        FAIL("removed an unknown host");
    } catch (const Error& e) {
        CHECK(e.kind() == ErrorKind::NotFound);
    }
    h.m().remove_host("iso", "52:54:00:00:00:02");
    CHECK(read_text(run + "/dnsmasq.hosts") == "52:54:00:00:00:01,10.70.0.10\n");
    CHECK(hups() == "hup\nhup\n");
    CHECK(read_text(run + "/dnsmasq.pid") == pid);

    // Update with only the hosts changed takes the same path.
    auto doc = h.m().describe("iso");
    doc.erase("state");
    doc.erase("state_reason");
    doc["ipv4"]["dhcp"]["hosts"] = nlohmann::json::array();
    h.m().update("iso", doc.dump());
    CHECK(read_text(run + "/dnsmasq.hosts").empty());
    CHECK(hups() == "hup\nhup\nhup\n");
    CHECK(read_text(run + "/dnsmasq.pid") == pid);
    h.m().stop("iso");

    // Stopped: stored, nothing to signal.
    h.m().add_host("iso", R"({"mac": "52:54:00:00:00:02", "ip": "10.70.0.50"})");
    CHECK(h.m().spec("iso").ipv4->hosts.size() == 1);
    CHECK(h.m().leases("iso").empty());
}

TEST_CASE("Leases are read from dnsmasq's file and changes reach the listener", "[manager][dhcp]")
{
    Harness h;
    h.dnsmasq = write_fake_dnsmasq(h.state_dir.path);
    h.restart_manager();
    h.m().create(R"({"name": "iso", "mode": "isolated", "bridge": "kvmbr9", "ipv4": {"address": "10.70.0.1/24",
        "dhcp": {"ranges": ["10.70.0.100-10.70.0.200"]}}})");
    h.m().start("iso");
    const std::string run = h.runtime_dir.path + "/iso";
    CHECK(h.m().leases("iso").empty());
    kvmnet::store::write_atomic(run + "/dnsmasq.leases", "4000000000 52:54:00:00:00:09 10.70.0.120 vm9 *\n");
    h.run_loop(2'000'000, [&] { return !h.listener.lease_events.empty(); });
    CHECK(h.listener.lease_events == std::vector<std::string>{"iso added 52:54:00:00:00:09 10.70.0.120 vm9"});
    CHECK(h.m().leases("iso").dump() ==
          R"([{"expires_at":"2096-10-02T07:06:40Z","expiry":4000000000,"family":"ipv4","hostname":"vm9",)"
          R"("ip":"10.70.0.120","mac":"52:54:00:00:00:09","type":"dynamic"}])");
    kvmnet::store::write_atomic(run + "/dnsmasq.leases", "");
    h.run_loop(2'000'000, [&] { return h.listener.lease_events.size() == 2; });
    CHECK(h.listener.lease_events.back() == "iso released 52:54:00:00:00:09 10.70.0.120 vm9");
    h.m().stop("iso");
    CHECK(h.m().leases("iso").empty());
}

}  // namespace unit_test_manager_dhcp
