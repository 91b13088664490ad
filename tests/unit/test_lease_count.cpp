// Unit tests of core::Manager::lease_count (the LeaseCount property): the
// lease watch's last reading of dnsmasq's file, not a read per call.
#include "manager_test_prelude.hpp"

namespace unit_test_lease_count {

TEST_CASE("LeaseCount is the lease watch's reading, refreshed when the watch fires", "[manager][dhcp]")
{
    Harness h;
    h.dnsmasq = write_fake_dnsmasq(h.state_dir.path);
    h.restart_manager();
    h.m().create(R"({"name": "iso", "mode": "isolated", "bridge": "kvmbr9", "ipv4": {"address": "10.70.0.1/24",
        "dhcp": {"ranges": ["10.70.0.100-10.70.0.200"]}}})");
    CHECK(h.m().lease_count("iso") == 0);  // stopped
    h.m().start("iso");
    REQUIRE(h.m().state("iso") == State::active);
    const std::string run = h.runtime_dir.path + "/iso";
    CHECK(h.m().lease_count("iso") == 0);

    kvmnet::store::write_atomic(run + "/dnsmasq.leases", "4000000000 52:54:00:00:00:09 10.70.0.120 vm9 *\n"
                                                         "4000000000 52:54:00:00:00:0a 10.70.0.121 * *\n");
    // Not read again until the watch fires: the file is not read per call.
    CHECK(h.m().lease_count("iso") == 0);
    h.run_loop(2'000'000, [&] { return h.listener.lease_events.size() == 2; });
    CHECK(h.m().lease_count("iso") == 2);
    CHECK(h.m().lease_count("iso") == h.m().leases("iso", false).size());

    kvmnet::store::write_atomic(run + "/dnsmasq.leases", "4000000000 52:54:00:00:00:0a 10.70.0.121 * *\n");
    h.run_loop(2'000'000, [&] { return h.listener.lease_events.size() == 3; });
    CHECK(h.m().lease_count("iso") == 1);

    h.m().stop("iso");
    CHECK(h.m().lease_count("iso") == 0);
}

TEST_CASE("LeaseCount of a network without DHCP is 0", "[manager][dhcp]")
{
    Harness h;
    h.dnsmasq = write_fake_dnsmasq(h.state_dir.path);
    h.restart_manager();
    h.m().create(R"({"name": "web", "mode": "nat", "bridge": "kvmbr5", "ipv4": {"address": "10.5.0.1/24"}})");
    h.m().start("web");
    CHECK(h.m().lease_count("web") == 0);
}

}  // namespace unit_test_lease_count
