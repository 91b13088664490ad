// CommittedTable pauses the nftables monitor around large element batches
// of its own (the kernel then builds no notification per element), and
// tells it when the ruleset generation shows that another process may have
// committed while nobody listened.
#include "core/committed_table.hpp"
#include "model/network.hpp"
#include "plan/planner.hpp"
#include "temp_dir.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <map>
#include <string>
#include <vector>

using namespace kvmnet;

namespace {

// A firewall whose every transaction raises the generation, as the kernel's;
// `racing` transactions of another process land during the next element batch.
class RacedFirewall : public plan::FirewallAdapter {
public:
    void replace_table(const plan::Table&) override { ++generation_; }
    void delete_table(const std::string&) override { ++generation_; }
    void change_elements(const std::string&, const std::vector<plan::ElementChange>&) override
    {
        generation_ += racing;
        racing = 0;
        if (fail) throw Error(ErrorKind::Kernel, "nftables: an element is already in the set");
        ++generation_;
    }
    std::vector<plan::ElementCounters> list_elements(const std::string&, const plan::Set&) override { return {}; }
    std::vector<plan::RuleCounter> rule_counters(const std::string&) override { return {}; }
    std::vector<plan::ChainInfo> list_chains() override { return {}; }
    std::optional<std::uint32_t> generation() override { return generation_; }

    std::uint32_t racing = 0;
    bool fail = false;

private:
    std::uint32_t generation_ = 7;
};

struct RecordingPause : core::NotificationPause {
    void pause() override { events.push_back("pause"); }
    void resume(bool maybe_lost) override { events.push_back(maybe_lost ? "resume, maybe lost" : "resume"); }
    std::vector<std::string> events;
};

model::Network network_with(int forwards)
{
    nlohmann::json list = nlohmann::json::array();
    for (int i = 0; i < forwards; ++i)
        list.push_back({{"proto", "tcp"}, {"host_port", 10000 + i}, {"guest", "10.5.0.10"}, {"guest_port", 22}});
    return model::parse_network(nlohmann::json{
        {"name", "web"},
        {"mode", "nat"},
        {"bridge", "kvmbr5"},
        {"ipv4", {{"address", "10.5.0.1/24"}}},
        {"forwards", list}}.dump());
}

std::vector<plan::ElementChange> adding(const std::vector<plan::Set>& sets, const model::Network& n)
{
    std::map<std::string, std::vector<plan::SetElement>> by_set;
    for (const model::PortForward& f : n.forwards)
        for (plan::SetElements& part : plan::forward_elements(f, n.name))
            by_set[part.set].insert(by_set[part.set].end(), part.elements.begin(), part.elements.end());
    std::vector<plan::ElementChange> changes;
    for (const plan::Set& set : sets)
        if (auto it = by_set.find(set.name); it != by_set.end()) changes.push_back({&set, it->second, true});
    return changes;
}

}  // namespace

TEST_CASE("CommittedTable pauses the nftables monitor around large element batches only", "[committed]")
{
    kvmnet::testing::TempDir tmp;
    RacedFirewall firewall;
    core::CommittedTable committed(firewall, tmp.path + "/nftables.committed");
    RecordingPause pause;
    committed.set_notification_pause(&pause, 20);
    CHECK(committed.apply(plan::build_ruleset({network_with(0)})));
    const auto sets = plan::forward_sets();

    SECTION("a few elements: notified as usual")
    {
        committed.change_elements(adding(sets, network_with(1)));
        CHECK(pause.events.empty());
    }
    SECTION("many elements: paused, and nothing lost when ours was the only commit")
    {
        committed.change_elements(adding(sets, network_with(30)));
        CHECK(pause.events == std::vector<std::string>{"pause", "resume"});
        CHECK(committed.unchanged_since_commit());
    }
    SECTION("another process's commit in the quiet window: maybe lost")
    {
        firewall.racing = 1;
        committed.change_elements(adding(sets, network_with(30)));
        CHECK(pause.events == std::vector<std::string>{"pause", "resume, maybe lost"});
        CHECK_FALSE(committed.unchanged_since_commit());
    }
    SECTION("a batch the kernel refuses resumes the monitor all the same")
    {
        firewall.fail = true;
        CHECK_THROWS_AS(committed.change_elements(adding(sets, network_with(30))), Error);
        CHECK(pause.events == std::vector<std::string>{"pause", "resume"});
    }
    SECTION("a refused batch while another process committed: maybe lost")
    {
        firewall.fail = true;
        firewall.racing = 2;
        CHECK_THROWS_AS(committed.change_elements(adding(sets, network_with(30))), Error);
        CHECK(pause.events == std::vector<std::string>{"pause", "resume, maybe lost"});
    }
}
