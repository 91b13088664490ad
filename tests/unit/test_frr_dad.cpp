// Unit tests of FRR's duplicate-address detection in kvmnet's EVPN fragment
// (plan/frr, issue 15): the threshold kvmnet sets so live migrations back
// and forth are no duplicate, left alone when the administrator set one of
// their own, and put back to FRR's default when kvmnet's part goes.
#include "plan/frr.hpp"

#include <catch2/catch.hpp>

#include <string>

namespace unit_test_frr_dad {

namespace plan = kvmnet::plan;

namespace {

plan::FrrConfig config()
{
    const auto c = plan::frr_config({plan::EvpnNetwork{
        "red", 100, "kbr-red", "kvx-100", kvmnet::model::Ipv4::parse("10.99.0.1"), 65000, {"10.99.0.2", "10.99.0.3"}}});
    REQUIRE(c);
    return *c;
}

// FRR 8.4's `show running-config` with this inside `address-family l2vpn evpn`.
std::string running_with(const std::string& evpn_lines)
{
    return "Current configuration:\n!\nhostname h1\n!\nrouter bgp 65000\n"
           " neighbor kvmnet peer-group\n neighbor kvmnet remote-as 65000\n"
           " neighbor 10.99.0.2 peer-group kvmnet\n !\n address-family l2vpn evpn\n"
           "  neighbor kvmnet activate\n  advertise-all-vni\n" +
           evpn_lines + " exit-address-family\nexit\n!\nend\n";
}

}  // namespace

TEST_CASE("kvmnet's fragment raises FRR's duplicate-address threshold, detection stays on", "[frr]")
{
    const std::string text = plan::render_frr_fragment(config());
    const std::string evpn = text.substr(text.find(" address-family l2vpn evpn\n"));
    CHECK(evpn.find("  dup-addr-detection max-moves 20 time 180\n exit-address-family\n") != std::string::npos);
    CHECK(text.find("freeze") == std::string::npos);
    CHECK(text.find("no dup-addr-detection") == std::string::npos);
    // Read back, it is kvmnet's own.
    const plan::FrrRunning r = plan::parse_frr_running(text);
    CHECK(r.dad == plan::frr_dad_line);
    CHECK(r.dad_is_ours());
    CHECK(plan::render_frr_removal(r, config()).empty());
}

TEST_CASE("The administrator's duplicate-address threshold is theirs", "[frr]")
{
    SECTION("FRR's default: none in the running configuration")
    {
        const plan::FrrRunning r = plan::parse_frr_running(running_with(""));
        CHECK(r.dad.empty());
        CHECK(r.dad_is_ours());
    }
    SECTION("a threshold of their own is kept, the fragment leaves it out")
    {
        const plan::FrrRunning r = plan::parse_frr_running(running_with("  dup-addr-detection max-moves 7 time 30\n"));
        CHECK(r.dad == "dup-addr-detection max-moves 7 time 30");
        CHECK_FALSE(r.dad_is_ours());
        CHECK(plan::render_frr_fragment(config(), r.dad_is_ours()).find("dup-addr-detection") == std::string::npos);
        CHECK(plan::render_frr_removal(r, std::nullopt).find("dup-addr-detection") == std::string::npos);
    }
    SECTION("detection turned off is kept off")
    {
        const plan::FrrRunning r = plan::parse_frr_running(running_with("  no dup-addr-detection\n"));
        CHECK(r.dad == "no dup-addr-detection");
        CHECK_FALSE(r.dad_is_ours());
    }
    SECTION("their freeze is another setting: kvmnet's threshold still applies")
    {
        const plan::FrrRunning r = plan::parse_frr_running(running_with("  dup-addr-detection freeze 300\n"));
        CHECK(r.dad.empty());
        CHECK(r.dad_is_ours());
    }
}

TEST_CASE("kvmnet's threshold leaves FRR with kvmnet's part", "[frr]")
{
    SECTION("back to FRR's default with `no` and the values (FRR refuses other values)")
    {
        const plan::FrrRunning r = plan::parse_frr_running(plan::render_frr_fragment(config()));
        CHECK(plan::render_frr_removal(r, std::nullopt) ==
              "router bgp 65000\n no neighbor 10.99.0.2\n no neighbor 10.99.0.3\n no neighbor kvmnet peer-group\n"
              " address-family l2vpn evpn\n  no dup-addr-detection max-moves 20 time 180\n  no advertise-all-vni\n"
              " exit-address-family\nexit\n");
    }
    SECTION("kept while another neighbour of the administrator's uses EVPN")
    {
        const plan::FrrRunning r = plan::parse_frr_running(
            running_with("  neighbor 192.0.2.7 activate\n  dup-addr-detection max-moves 20 time 180\n"));
        CHECK(r.other_evpn_active.size() == 1);
        CHECK(plan::render_frr_removal(r, std::nullopt).find("dup-addr-detection") == std::string::npos);
    }
}

}  // namespace unit_test_frr_dad
