// kvmnet's rules in Docker's DOCKER-USER chain (plan/docker_user.hpp) and
// the monitor noticing changes of table ip/ip6 filter.
#include "kernel/nft_monitor.hpp"
#include "plan/docker_user.hpp"

#include <catch2/catch.hpp>

namespace unit_test_docker_user {

using namespace kvmnet::plan;

namespace {
// `iptables-nft -S DOCKER-USER` as iptables-nft 1.8.9 prints it.
const std::string docker_only = "-N DOCKER-USER\n-A DOCKER-USER -j RETURN\n";
const std::string with_nat1 = "-N DOCKER-USER\n"
                              "-A DOCKER-USER -o kvbr1 -m comment --comment \"kvmnet:nat1\" -j ACCEPT\n"
                              "-A DOCKER-USER -i kvbr1 -m comment --comment \"kvmnet:nat1\" -j ACCEPT\n"
                              "-A DOCKER-USER -j RETURN\n";
}  // namespace

TEST_CASE("DOCKER-USER: a running network gets an accept in and out of its bridge, marked as kvmnet's")
{
    const auto plan = plan_docker_user(docker_only, {{"nat1", "kvbr1"}});
    CHECK(plan.remove.empty());
    REQUIRE(plan.insert.size() == 2);
    CHECK(plan.insert[0].spec() ==
          std::vector<std::string>{"-i", "kvbr1", "-m", "comment", "--comment", "kvmnet:nat1", "-j", "ACCEPT"});
    CHECK(plan.insert[1].spec() ==
          std::vector<std::string>{"-o", "kvbr1", "-m", "comment", "--comment", "kvmnet:nat1", "-j", "ACCEPT"});
}

TEST_CASE("DOCKER-USER: rules already there are not added again (no churn, no loop)")
{
    CHECK(plan_docker_user(with_nat1, {{"nat1", "kvbr1"}}).empty());
}

TEST_CASE("DOCKER-USER: a stopped network's rules go, nobody else's")
{
    const std::string listing = "-N DOCKER-USER\n"
                                "-A DOCKER-USER -i eth9 -j DROP\n"
                                "-A DOCKER-USER -o kvbr1 -m comment --comment \"kvmnet:nat1\" -j ACCEPT\n"
                                "-A DOCKER-USER -s 10.0.0.0/8 -m comment --comment \"kvmnet:nat1\" -j ACCEPT\n"
                                "-A DOCKER-USER -i kvbr1 -m comment --comment \"admin rule\" -j ACCEPT\n"
                                "-A DOCKER-USER -i kvbr1 -m comment --comment \"kvmnet:nat1\" -j ACCEPT\n"
                                "-A DOCKER-USER -j RETURN\n";
    const auto plan = plan_docker_user(listing, {});
    CHECK(plan.insert.empty());
    REQUIRE(plan.remove.size() == 2);
    CHECK(plan.remove[0] == DockerUserRule{"nat1", "-o", "kvbr1"});
    CHECK(plan.remove[1] == DockerUserRule{"nat1", "-i", "kvbr1"});
}

TEST_CASE("DOCKER-USER: a renamed bridge's old rules go and the new ones come; duplicates go")
{
    const std::string listing = with_nat1 + "-A DOCKER-USER -i kvbr1 -m comment --comment kvmnet:nat1 -j ACCEPT\n";
    auto plan = plan_docker_user(listing, {{"nat1", "kvbr1"}});
    CHECK(plan.insert.empty());
    REQUIRE(plan.remove.size() == 1);
    CHECK(plan.remove[0] == DockerUserRule{"nat1", "-i", "kvbr1"});
    plan = plan_docker_user(with_nat1, {{"nat1", "kvbr2"}});
    CHECK(plan.remove.size() == 2);
    CHECK(plan.insert.size() == 2);
}

TEST_CASE("nft monitor: a change of another table by another process is reported once")
{
    kvmnet::kernel::NftChangeFilter filter("kvmnet", 100, 7);
    filter.object(2, "filter");  // dockerd: table ip filter
    CHECK_FALSE(filter.end_of_transaction(200, "dockerd"));
    CHECK(filter.take_foreign_changed());
    CHECK_FALSE(filter.take_foreign_changed());
    filter.object(10, "filter");
    filter.end_of_transaction(200, "dockerd");
    CHECK(filter.take_foreign_changed());
    filter.object(2, "nat");  // not where DOCKER-USER lives, but may drop guests' traffic
    filter.end_of_transaction(200, "dockerd");
    CHECK(filter.take_foreign_changed());
    filter.object(1, "kvmnet");  // our own table: a repair, not another program's table
    filter.end_of_transaction(200, "nft");
    CHECK_FALSE(filter.take_foreign_changed());
    filter.object(2, "filter");  // never ours, but were it: not reported
    filter.end_of_transaction(100, "kvmnetd");
    CHECK_FALSE(filter.take_foreign_changed());
}

}  // namespace unit_test_docker_user
