// The nftables monitor's per-transaction decision (kernel/nft_monitor.hpp,
// header-only): a transaction is reported when it touched table inet kvmnet
// and was committed by another process; the daemon's own never are.
#include "kernel/nft_monitor.hpp"

#include <catch2/catch.hpp>

namespace unit_test_nft_filter {

using kvmnet::kernel::NftChangeFilter;

namespace {
constexpr std::uint8_t inet = 1, ip = 2;  // NFPROTO_INET, NFPROTO_IPV4
constexpr pid_t own = 100, other = 200;
}  // namespace

TEST_CASE("nftables transactions are reported only when foreign and touching our table", "[nft-monitor]")
{
    NftChangeFilter filter("kvmnet", own);

    filter.object(inet, "kvmnet");
    filter.object(inet, "kvmnet");
    CHECK_FALSE(filter.end_of_transaction(own, "kvmnetd"));

    filter.object(inet, "kvmnet");
    CHECK(filter.end_of_transaction(other, "nft"));
    CHECK(filter.who() == "nft (pid 200)");

    // Each transaction stands alone: a foreign one after ours is judged by itself.
    CHECK_FALSE(filter.end_of_transaction(other, "nft"));

    filter.object(inet, "filter");
    filter.object(ip, "kvmnet");
    CHECK_FALSE(filter.end_of_transaction(other, "firewalld"));

    // A flush ruleset touches every table, ours among them.
    filter.object(inet, "filter");
    filter.object(inet, "kvmnet");
    filter.object(ip, "nat");
    CHECK(filter.end_of_transaction(other, ""));
    CHECK(filter.who() == "process (pid 200)");

    // Our netlink port, whatever the pid says (a PID namespace).
    NftChangeFilter by_port("kvmnet", own, 77);
    by_port.object(inet, "kvmnet");
    CHECK_FALSE(by_port.end_of_transaction(other, "kvmnetd", 77));
    by_port.object(inet, "kvmnet");
    CHECK(by_port.end_of_transaction(other, "nft", 78));

    // Lost notifications drop what was buffered.
    filter.object(inet, "kvmnet");
    filter.reset();
    CHECK_FALSE(filter.end_of_transaction(other, "nft"));
}

}  // namespace unit_test_nft_filter
