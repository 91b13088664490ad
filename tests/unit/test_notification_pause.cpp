// CommittedTable pauses the nftables monitor around large element batches
// of its own (the kernel then builds no notification per element), and
// tells it when the ruleset generation shows that another process may have
// committed while nobody listened.
#include "core/committed_table.hpp"
#include "fakes/committed_helpers.hpp"
#include "model/network.hpp"
#include "plan/planner.hpp"
#include "temp_dir.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <map>
#include <string>
#include <vector>

namespace unit_test_notification_pause {

using namespace kvmnet;

namespace {

// `racing` transactions of another process land during the next element
// batch; `fail`: the batch is refused.
class RacedFirewall : public kvmnet::testing::GenerationFirewall {
public:
    RacedFirewall() : GenerationFirewall(7) {}
    void change_elements(const std::string&, const std::vector<plan::ElementChange>&) override
    {
        generation_ += racing;
        racing = 0;
        if (fail) throw Error(ErrorKind::Kernel, "nftables: an element is already in the set");
        ++generation_;
    }

    std::uint32_t racing = 0;
    bool fail = false;
};

struct RecordingPause : core::NotificationPause {
    void pause() override { events.push_back("pause"); }
    void resume(bool maybe_lost) override { events.push_back(maybe_lost ? "resume, maybe lost" : "resume"); }
    std::vector<std::string> events;
};

model::Network network_with(int forwards)
{
    std::vector<int> ports;
    for (int i = 0; i < forwards; ++i)
        ports.push_back(10000 + i);
    return kvmnet::testing::web_forwarding(ports);
}

std::vector<plan::ElementChange> adding(const std::vector<plan::Set>& sets, const model::Network& n)
{
    return kvmnet::testing::forward_changes(sets, n, 0, true);
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

}  // namespace unit_test_notification_pause
