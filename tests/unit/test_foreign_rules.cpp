// plan/foreign_rules: other programs' chains read from `nft -j list table`
// and judged for one network's guests, and the state and Diagnose lines
// plan::drift makes of the judgement. tests/data/nft/ufw-*.json are ufw
// 0.36's tables (ip and ip6 filter, iptables-nft) as nft 1.0.6 printed
// them in a namespace: with its default policies, and after the four
// commands Diagnose prints for bridge kvmbr0.
#include "model/network.hpp"
#include "plan/drift.hpp"
#include "plan/foreign_rules.hpp"

#include <catch2/catch.hpp>

#include <fstream>
#include <sstream>

namespace unit_test_foreign_rules {

using namespace kvmnet;
using Catch::Matchers::Contains;

namespace {

std::string data(const std::string& name)
{
    std::ifstream in(std::string(SOURCE_DIR) + "/tests/data/nft/" + name);
    REQUIRE(in);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

model::Network nat(const std::string& extra = {})
{
    return model::parse_network(R"({"name": "default", "mode": "nat", "bridge": "kvmbr0", "ipv4": {"address":
        "192.168.122.1/24", "dhcp": {"ranges": ["192.168.122.100-192.168.122.254"]}})" +
                                extra + "}");
}

const plan::ChainJudgement& chain(const std::vector<plan::ChainJudgement>& all, const std::string& family,
                                  const std::string& name)
{
    for (const auto& j : all)
        if (j.family == family && j.name == name) return j;
    FAIL("no judgement of " << family << " " << name);
    return all.front();
}

// One table of nft's JSON with one base chain and these rules (nft -j's
// "expr" arrays).
std::string table(const std::string& hook, const std::string& policy, const std::vector<std::string>& rules,
                  const std::string& more_chains = {})
{
    std::string out = R"({"nftables": [{"table": {"family": "ip", "name": "mine", "handle": 1}},
        {"chain": {"family": "ip", "table": "mine", "name": "c", "handle": 1, "type": "filter", "hook": ")" +
                      hook + R"(", "prio": 0, "policy": ")" + policy + R"("}})" + more_chains;
    int handle = 10;
    for (const auto& r : rules)
        out += R"(, {"rule": {"family": "ip", "table": "mine", "chain": "c", "handle": )" + std::to_string(handle++) +
               R"(, "expr": )" + r + "}}";
    return out + "]}";
}

const std::string iif_bridge = R"({"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "kvmbr0"}})";
const std::string oif_bridge = R"({"match": {"op": "==", "left": {"meta": {"key": "oifname"}}, "right": "kvmbr0"}})";
std::string counter(int packets)
{
    return R"({"counter": {"packets": )" + std::to_string(packets) + R"(, "bytes": )" + std::to_string(packets * 60) +
           "}}";
}

}  // namespace

TEST_CASE("ufw's default policies cut a NAT network's guests off, and its policy drops", "[foreign]")
{
    const auto chains = plan::parse_nft_json(data("ufw-default.json"));
    const auto judged = plan::judge_foreign_chains(chains, nat(), "kvmnet");
    const auto& forward = chain(judged, "ip", "FORWARD");
    CHECK(forward.judged);
    CHECK(forward.cut == std::vector<std::string>{"outgoing forwarded traffic",
                                                  "incoming forwarded traffic (replies, port forwards)"});
    CHECK_FALSE(forward.dropper);
    CHECK(forward.drop_detail() == "; dropped by its policy");
    const auto& input = chain(judged, "ip", "INPUT");
    CHECK(input.cut == std::vector<std::string>{"DHCP", "DNS"});
    // DHCP goes to ufw-skip-to-policy-input's drop; its "not local" drop
    // applies only to packets for other hosts, which a match on fib tells.
    REQUIRE(input.dropper);
    CHECK(input.dropper->str() == "ip filter ufw-skip-to-policy-input handle 47: counter packets 0 bytes 0 drop");
    // ip6 filter only for networks with IPv6.
    CHECK(std::none_of(judged.begin(), judged.end(), [](const auto& j) { return j.family == "ip6"; }));
}

TEST_CASE("ufw's rule that counted the dropped packets is named", "[foreign]")
{
    auto chains = plan::parse_nft_json(data("ufw-default.json"));
    // ufw-after-logging-forward's "[UFW BLOCK]" rule sees every forwarded
    // packet the policy is about to drop (its text stays as nft printed it).
    for (auto& c : chains)
        if (c.family == "ip" && c.name == "ufw-after-logging-forward") c.rules.at(0).packets = 7;
    const auto judged = plan::judge_foreign_chains(chains, nat(), "kvmnet");
    const auto& forward = chain(judged, "ip", "FORWARD");
    REQUIRE(forward.counted);
    CHECK(forward.counted->chain == "ufw-after-logging-forward");
    CHECK(forward.counted->handle == 100);
    CHECK_THAT(forward.drop_detail(),
               Contains("dropped by its policy (rule ip filter ufw-after-logging-forward handle 100: limit rate "
                        "3/minute burst 10 packets counter packets 0 bytes 0 xt target \"LOG\" counted 7 packets)"));
}

TEST_CASE("ufw with the printed commands lets the guests through", "[foreign]")
{
    const auto chains = plan::parse_nft_json(data("ufw-allowed.json"));
    const auto judged = plan::judge_foreign_chains(chains, nat(R"(, "ipv6": {"address": "fd00:1::1/64"})"), "kvmnet");
    for (const auto& j : judged) {
        INFO(j.family << " " << j.name << ": " << (j.cut.empty() ? "" : j.cut.front()));
        CHECK(j.judged);
        CHECK_FALSE(j.cuts_off());
    }
    CHECK(judged.size() == 4);  // ip and ip6 filter, FORWARD and INPUT
    // Another bridge is not let through by kvmbr0's rules.
    auto other = nat();
    other.bridge = "kvmbr1";
    CHECK(chain(plan::judge_foreign_chains(chains, other, "kvmnet"), "ip", "FORWARD").cuts_off());
}

TEST_CASE("a rule that certainly drops the guests' packets is named with its counter", "[foreign]")
{
    const auto chains = plan::parse_nft_json(
        table("forward", "accept", {"[" + iif_bridge + ", " + counter(3) + R"(, {"drop": null}])"}));
    const auto judged = plan::judge_foreign_chains(chains, nat(), "kvmnet");
    REQUIRE(judged.size() == 1);
    CHECK(judged[0].cut == std::vector<std::string>{"outgoing forwarded traffic"});
    REQUIRE(judged[0].dropper);
    CHECK(judged[0].drop_detail() == "; dropped by rule ip mine c handle 10: iifname \"kvmbr0\" counter packets 3 "
                                     "bytes 180 drop (3 packets so far)");
}

TEST_CASE("only what is known of the guests' packets decides", "[foreign]")
{
    const std::string saddr =
        R"({"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": {"prefix": {"addr": "10.0.0.0", "len": 8}}}})";
    const std::string established =
        R"({"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": ["established", "related"]}})";
    SECTION("a drop for some addresses does not cut them off")
    {
        const auto chains = plan::parse_nft_json(table("forward", "accept", {"[" + saddr + R"(, {"drop": null}])"}));
        const auto judged = plan::judge_foreign_chains(chains, nat(), "kvmnet");
        CHECK(judged.at(0).judged);
        CHECK_FALSE(judged.at(0).cuts_off());
    }
    SECTION("accepting established connections does not let new ones through")
    {
        const auto chains =
            plan::parse_nft_json(table("forward", "drop", {"[" + established + R"(, {"accept": null}])"}));
        CHECK(plan::judge_foreign_chains(chains, nat(), "kvmnet").at(0).cut.size() == 2);
    }
    SECTION("accepting the bridge both ways lets them through")
    {
        const auto chains = plan::parse_nft_json(
            table("forward", "drop",
                  {"[" + iif_bridge + R"(, {"accept": null}])", "[" + oif_bridge + R"(, {"accept": null}])"}));
        CHECK_FALSE(plan::judge_foreign_chains(chains, nat(), "kvmnet").at(0).cuts_off());
    }
    SECTION("accepting one way only cuts the other")
    {
        const auto chains =
            plan::parse_nft_json(table("forward", "drop", {"[" + iif_bridge + R"(, {"accept": null}])"}));
        CHECK(plan::judge_foreign_chains(chains, nat(), "kvmnet").at(0).cut ==
              std::vector<std::string>{"incoming forwarded traffic (replies, port forwards)"});
    }
    SECTION("a return that may apply is followed both ways")
    {
        const std::string sub = R"(, {"chain": {"family": "ip", "table": "mine", "name": "sub", "handle": 2}},
            {"rule": {"family": "ip", "table": "mine", "chain": "sub", "handle": 3, "expr": [)" +
                                saddr + R"(, {"return": null}]}},
            {"rule": {"family": "ip", "table": "mine", "chain": "sub", "handle": 4, "expr": [{"drop": null}]}})";
        const auto chains = plan::parse_nft_json(table("forward", "accept", {R"([{"jump": {"target": "sub"}}])"}, sub));
        const auto j = plan::judge_foreign_chains(chains, nat(), "kvmnet").at(0);
        CHECK(j.judged);
        CHECK_FALSE(j.cuts_off());  // from 10/8 it returns and is accepted
    }
    SECTION("a jump to a chain that is not there: not judged")
    {
        const auto chains = plan::parse_nft_json(table("forward", "drop", {R"([{"jump": {"target": "gone"}}])"}));
        const auto j = plan::judge_foreign_chains(chains, nat(), "kvmnet").at(0);
        CHECK_FALSE(j.judged);
        CHECK_FALSE(j.cuts_off());
    }
    SECTION("DHCP and DNS on the input hook, by port")
    {
        const std::string dns =
            R"({"match": {"op": "==", "left": {"payload": {"protocol": "udp", "field": "dport"}}, "right": {"set": [53, 5353]}}})";
        const auto chains =
            plan::parse_nft_json(table("input", "drop", {"[" + iif_bridge + ", " + dns + R"(, {"accept": null}])"}));
        CHECK(plan::judge_foreign_chains(chains, nat(), "kvmnet").at(0).cut == std::vector<std::string>{"DHCP"});
    }
}

TEST_CASE("bridge-mode networks and our own table are not judged", "[foreign]")
{
    const auto chains = plan::parse_nft_json(data("ufw-default.json"));
    CHECK(plan::judge_foreign_chains(
              chains, model::parse_network(R"({"name": "lan", "mode": "bridge", "bridge": "lan0", "uplink": "eth0"})"),
              "kvmnet")
              .empty());
    CHECK(plan::judge_foreign_chains(chains, nat(), "filter").size() ==
          2);  // "inet filter" would be ours; these are ip
}

TEST_CASE("drift: a network whose guests another table cuts off is degraded, with the chain as reason", "[foreign]")
{
    plan::Observed o;
    o.running = true;
    plan::LinkInfo bridge;
    bridge.index = 5;
    bridge.name = "kvmbr0";
    bridge.alias = "kvmnet:default";
    bridge.up = true;
    o.bridge = bridge;
    o.foreign_rules = plan::parse_nft_json(data("ufw-default.json"));
    auto reason = plan::drift(nat(), o).state();
    CHECK(reason.code == "foreign-firewall");
    CHECK(reason.reason ==
          "chain ip filter INPUT (hook input, policy drop) of another program drops the guests' DHCP and DNS; "
          "kvmnetctl diagnose default says what to type");
    o.foreign_rules = plan::parse_nft_json(data("ufw-allowed.json"));
    CHECK(plan::drift(nat(), o).state().code.empty());
    o.foreign_rules.reset();  // not read: not judged
    CHECK(plan::drift(nat(), o).state().code.empty());
}

TEST_CASE("foreign rules: firewalld's tables are left to its own check, the reload's drop table too")
{
    std::vector<plan::ForeignChain> chains;
    for (const std::string table : {"firewalld", "firewalld_policy_drop"})
        chains.push_back({"inet", table, "filter_FORWARD", true, "forward", "drop", {}});
    CHECK(plan::judge_foreign_chains(chains, nat(), "kvmnet").empty());
    chains.push_back({"inet", "other", "forward", true, "forward", "drop", {}});
    CHECK(plan::judge_foreign_chains(chains, nat(), "kvmnet").size() == 1);
}

}  // namespace unit_test_foreign_rules
