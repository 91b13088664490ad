// kvmnet's bridges in firewalld's zone (core/firewalld.hpp), over a fake
// firewalld that records the calls.
#include "core/firewalld.hpp"
#include "plan/drift.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <deque>
#include <functional>
#include <map>
#include <stdexcept>

namespace unit_test_firewalld {

using namespace kvmnet;
using core::Firewalld;

namespace {
// Answers nothing until the test says so: answer(i) the i-th call still
// waiting (out of order), answer_all() in order. A call's effect happens when
// it is answered, as firewalld's happens when it handles the call.
struct FakeFirewalld final : core::FirewalldBus {
    bool up = true;
    std::map<std::string, std::string> zone;  // interface -> zone
    std::vector<std::string> calls;
    std::set<std::string> failing;  // interfaces whose change fails
    bool listing_fails = false;
    bool hung = false;  // Diagnose's calls end in a timeout
    std::vector<std::string> loaded = {"public", "trusted", "kvmnet"};
    std::deque<std::function<void()>> waiting;

    void answer(std::size_t i)
    {
        REQUIRE(i < waiting.size());
        auto reply = std::move(waiting[i]);
        waiting.erase(waiting.begin() + static_cast<std::ptrdiff_t>(i));
        reply();
    }
    void answer_all()
    {
        while (!waiting.empty())
            answer(0);
    }

    bool running() override { return up; }
    void zones(ListDone done) override
    {
        calls.push_back("zones");
        waiting.push_back([this, done = std::move(done)] {
            if (hung) return done({}, "org.freedesktop.DBus.Error.NoReply: Method call timed out");
            done(loaded, "");
        });
    }
    void zone_of(const std::string& i, ZoneDone done) override
    {
        calls.push_back("zone of " + i);
        waiting.push_back([this, i, done = std::move(done)] {
            if (hung) return done("", "org.freedesktop.DBus.Error.NoReply: Method call timed out");
            const auto it = zone.find(i);
            done(it == zone.end() ? "" : it->second, "");
        });
    }
    void interfaces_of(const std::string& z, ListDone done) override
    {
        calls.push_back("list " + z);
        waiting.push_back([this, z, done = std::move(done)] {
            if (listing_fails) return done({}, "org.freedesktop.DBus.Error.NoReply: timed out");
            std::vector<std::string> out;
            for (const auto& [i, iz] : zone)
                if (iz == z) out.push_back(i);
            done(out, "");
        });
    }
    void change_zone(const std::string& z, const std::string& i, Done done) override
    {
        calls.push_back("change " + z + " " + i);
        waiting.push_back([this, z, i, done = std::move(done)] {
            if (failing.count(i)) return done("org.fedoraproject.FirewallD1.Exception: INVALID_ZONE: kvmnet");
            zone[i] = z;
            done("");
        });
    }
    void remove_interface(const std::string& z, const std::string& i, Done done) override
    {
        calls.push_back("remove " + z + " " + i);
        waiting.push_back([this, i, done = std::move(done)] {
            zone.erase(i);
            done("");
        });
    }
};

model::Network net(const std::string& name, const std::string& bridge, model::Mode mode = model::Mode::nat)
{
    model::Network n;
    n.name = name;
    n.bridge = bridge;
    n.mode = mode;
    return n;
}

// Diagnose's check, with every call firewalld gets answered.
std::optional<core::FirewalldCheck> ask(Firewalld& f, FakeFirewalld& fw, const model::Network& n, bool running)
{
    std::optional<std::optional<core::FirewalldCheck>> result;
    f.check(n, running, [&](std::optional<core::FirewalldCheck> c) { result = std::move(c); });
    fw.answer_all();
    REQUIRE(result);
    return *result;
}
}  // namespace

TEST_CASE(
    "firewalld: running NAT, routed and isolated bridges go into zone kvmnet; bridge mode and opted-out ones do not")
{
    FakeFirewalld fw;
    Firewalld f(fw);
    auto manual = net("manual", "kvbr4");
    manual.firewall_integration = false;
    const std::vector<model::Network> running = {net("nat", "kvbr1"), net("routed", "kvbr2", model::Mode::routed),
                                                 net("iso", "kvbr3", model::Mode::isolated),
                                                 net("lan", "br0", model::Mode::bridge), manual};
    f.sync(running, {"kvbr1", "kvbr2", "kvbr3", "kvbr4", "br0"}, false);
    fw.answer_all();
    CHECK(fw.zone == std::map<std::string, std::string>{{"kvbr1", "kvmnet"}, {"kvbr2", "kvmnet"}, {"kvbr3", "kvmnet"}});
    CHECK(f.zone_of_last_sync("kvbr1") == "kvmnet");
    CHECK(f.zone_of_last_sync("br0").empty());
}

TEST_CASE("firewalld: a stopped network's bridge leaves the zone; interfaces kvmnet does not know stay")
{
    FakeFirewalld fw;
    fw.zone = {{"kvbr1", "kvmnet"}, {"kvbr2", "kvmnet"}, {"eth7", "kvmnet"}, {"kvbr9", "public"}};
    Firewalld f(fw);
    f.sync({net("nat", "kvbr1")}, {"kvbr1", "kvbr2", "kvbr9"}, false);
    fw.answer_all();
    CHECK(fw.zone == std::map<std::string, std::string>{{"kvbr1", "kvmnet"}, {"eth7", "kvmnet"}, {"kvbr9", "public"}});
}

TEST_CASE("firewalld: a bridge renamed by an update leaves the zone although no network has it any more")
{
    FakeFirewalld fw;
    Firewalld f(fw);
    f.sync({net("nat", "kvbr1")}, {"kvbr1"}, false);
    fw.answer_all();
    f.sync({net("nat", "kvbr7")}, {"kvbr7"}, false);
    fw.answer_all();
    CHECK(fw.zone == std::map<std::string, std::string>{{"kvbr7", "kvmnet"}});
}

TEST_CASE("firewalld: an unchanged set of bridges asks firewalld nothing until it reloads or restarts")
{
    FakeFirewalld fw;
    Firewalld f(fw);
    const std::vector<model::Network> running = {net("nat", "kvbr1")};
    f.sync(running, {"kvbr1"}, false);
    fw.answer_all();
    const auto after_first = fw.calls.size();
    f.sync(running, {"kvbr1"}, false);  // e.g. a port forward added
    fw.answer_all();
    CHECK(fw.calls.size() == after_first);
    fw.zone.clear();  // firewalld reloaded with FlushAllOnReload=yes
    f.sync(running, {"kvbr1"}, true);
    fw.answer_all();
    CHECK(fw.zone.at("kvbr1") == "kvmnet");
}

TEST_CASE("firewalld: not running, nothing is asked; once it appears (forced), the bridges go in")
{
    FakeFirewalld fw;
    fw.up = false;
    Firewalld f(fw);
    const std::vector<model::Network> running = {net("nat", "kvbr1")};
    f.sync(running, {"kvbr1"}, false);
    fw.answer_all();
    CHECK(fw.calls.empty());
    CHECK(f.zone_of_last_sync("kvbr1").empty());
    f.sync({net("nat", "kvbr1"), net("nat2", "kvbr2")}, {"kvbr1", "kvbr2"}, false);  // still absent
    fw.answer_all();
    CHECK(fw.calls.empty());
    fw.up = true;
    f.sync(running, {"kvbr1"}, true);
    fw.answer_all();
    CHECK(fw.zone.at("kvbr1") == "kvmnet");
    CHECK(f.zone_of_last_sync("kvbr1") == "kvmnet");
}

TEST_CASE("firewalld: a failed call is retried by the next sync, the others still happen")
{
    FakeFirewalld fw;
    fw.failing = {"kvbr1"};
    Firewalld f(fw);
    const std::vector<model::Network> running = {net("a", "kvbr1"), net("b", "kvbr2")};
    f.sync(running, {"kvbr1", "kvbr2"}, false);
    fw.answer_all();
    CHECK(fw.zone == std::map<std::string, std::string>{{"kvbr2", "kvmnet"}});
    CHECK(f.zone_of_last_sync("kvbr1").empty());
    fw.failing.clear();
    f.sync(running, {"kvbr1", "kvbr2"}, false);
    fw.answer_all();
    CHECK(fw.zone.at("kvbr1") == "kvmnet");
}

TEST_CASE("firewalld: diagnose says whether the bridge is in the zone and what to type when not")
{
    FakeFirewalld fw;
    Firewalld f(fw);
    auto n = net("nat", "kvbr1");
    fw.zone = {{"kvbr1", "kvmnet"}};
    auto check = ask(f, fw, n, true);
    REQUIRE(check);
    CHECK(check->ok);
    CHECK(check->detail == "firewalld runs; bridge kvbr1 is in its zone kvmnet");

    fw.zone.clear();
    n.firewall_integration = false;
    check = ask(f, fw, n, true);
    REQUIRE(check);
    CHECK_FALSE(check->ok);
    CHECK(check->detail == "firewalld runs and bridge kvbr1 is in no zone: firewalld's default zone applies, which "
                           "rejects guests' DHCP and DNS and does not forward their traffic (firewall integration "
                           "is off); let them through with: firewall-cmd --zone=kvmnet --change-interface=kvbr1");

    fw.zone = {{"kvbr1", "trusted"}};
    n.firewall_integration = true;
    check = ask(f, fw, n, true);
    REQUIRE(check);
    CHECK(check->detail == "firewalld runs and bridge kvbr1 is in zone trusted, not kvmnet: that zone decides what "
                           "guests may do; let them through with: firewall-cmd --zone=kvmnet --change-interface=kvbr1");

    fw.zone.clear();
    fw.loaded = {"public"};  // kvmnet's zone file not installed
    check = ask(f, fw, n, true);
    REQUIRE(check);
    CHECK(check->detail == "firewalld runs and bridge kvbr1 is in no zone: firewalld's default zone applies, which "
                           "rejects guests' DHCP and DNS and does not forward their traffic; firewalld has no zone "
                           "kvmnet: install kvmnet's zone and policies (firewalld/*.xml in the source; meson install "
                           "puts them under /usr/lib/firewalld) and run firewall-cmd --reload");

    CHECK_FALSE(ask(f, fw, n, false));                                      // stopped
    CHECK_FALSE(ask(f, fw, net("lan", "br0", model::Mode::bridge), true));  // firewalld's own zones
    fw.up = false;
    CHECK_FALSE(ask(f, fw, n, true));
}

TEST_CASE("firewalld: a sync returns before firewalld answers; the bridge goes in when it does")
{
    FakeFirewalld fw;
    Firewalld f(fw);
    f.sync({net("nat", "kvbr1")}, {"kvbr1"}, false);
    CHECK(!fw.waiting.empty());
    CHECK(fw.zone.empty());
    CHECK(fw.calls == std::vector<std::string>{"list kvmnet"});
    fw.answer_all();
    CHECK(fw.waiting.empty());
    CHECK(fw.zone == std::map<std::string, std::string>{{"kvbr1", "kvmnet"}});
    CHECK(f.zone_of_last_sync("kvbr1") == "kvmnet");
}

TEST_CASE("firewalld: a network stopped while its bridge's changeZoneOfInterface is in flight ends out of the zone")
{
    FakeFirewalld fw;
    Firewalld f(fw);
    f.sync({net("nat", "kvbr1")}, {"kvbr1"}, false);
    fw.answer(0);  // the listing; the change is in flight
    REQUIRE(fw.calls == std::vector<std::string>{"list kvmnet", "change kvmnet kvbr1"});
    f.sync(std::vector<model::Network>{}, {"kvbr1"}, false);  // stopped
    CHECK(fw.calls.size() == 2);                              // waits for the change's reply
    fw.answer_all();
    CHECK(fw.calls ==
          std::vector<std::string>{"list kvmnet", "change kvmnet kvbr1", "list kvmnet", "remove kvmnet kvbr1"});
    CHECK(fw.zone.empty());
    CHECK(f.zone_of_last_sync("kvbr1").empty());
    CHECK(fw.waiting.empty());
}

TEST_CASE("firewalld: the newest sync supersedes older ones still waiting for their listing")
{
    FakeFirewalld fw;
    Firewalld f(fw);
    f.sync({net("a", "kvbr1")}, {"kvbr1", "kvbr2", "kvbr3"}, false);
    f.sync({net("b", "kvbr2")}, {"kvbr1", "kvbr2", "kvbr3"}, false);
    f.sync({net("c", "kvbr3")}, {"kvbr1", "kvbr2", "kvbr3"}, false);
    fw.answer_all();
    CHECK(fw.calls == std::vector<std::string>{"list kvmnet", "list kvmnet", "change kvmnet kvbr3"});
    CHECK(fw.zone == std::map<std::string, std::string>{{"kvbr3", "kvmnet"}});
    // The same set again asks nothing.
    f.sync({net("c", "kvbr3")}, {"kvbr1", "kvbr2", "kvbr3"}, false);
    CHECK(fw.waiting.empty());
}

TEST_CASE("firewalld: replies out of order complete the sync")
{
    FakeFirewalld fw;
    std::vector<std::uint64_t> retries;
    Firewalld f(fw, [&](std::uint64_t d) { retries.push_back(d); });
    fw.zone = {{"kvbr9", "kvmnet"}};
    f.sync({net("a", "kvbr1"), net("b", "kvbr2")}, {"kvbr1", "kvbr2", "kvbr9"}, false);
    fw.answer(0);
    REQUIRE(fw.waiting.size() == 3);  // remove kvbr9, change kvbr1, change kvbr2
    fw.answer(2);
    fw.answer(1);
    CHECK(!fw.waiting.empty());
    fw.answer(0);
    CHECK(fw.waiting.empty());
    CHECK(fw.zone == std::map<std::string, std::string>{{"kvbr1", "kvmnet"}, {"kvbr2", "kvmnet"}});
    CHECK(retries.empty());
    const auto calls = fw.calls.size();
    f.sync({net("a", "kvbr1"), net("b", "kvbr2")}, {"kvbr1", "kvbr2"}, false);
    CHECK(fw.calls.size() == calls);  // complete: nothing to ask
}

TEST_CASE("firewalld: a failed sync asks for a retry, with a backoff that doubles up to a limit and resets")
{
    FakeFirewalld fw;
    fw.failing = {"kvbr1"};
    std::vector<std::uint64_t> retries;
    Firewalld f(fw, [&](std::uint64_t d) { retries.push_back(d); });
    const std::vector<model::Network> running = {net("a", "kvbr1")};
    for (int i = 0; i < 9; ++i) {
        f.sync(running, {"kvbr1"}, true);  // what the owner's retry timer does
        fw.answer_all();
    }
    CHECK(retries == std::vector<std::uint64_t>{1'000'000, 2'000'000, 4'000'000, 8'000'000, 16'000'000, 32'000'000,
                                                60'000'000, 60'000'000, 60'000'000});
    fw.failing.clear();
    f.sync(running, {"kvbr1"}, true);
    fw.answer_all();
    CHECK(retries.size() == 9);
    CHECK(fw.zone.at("kvbr1") == "kvmnet");
    fw.listing_fails = true;  // a listing that times out fails the sync too
    f.sync(running, {"kvbr1"}, true);
    fw.answer_all();
    REQUIRE(retries.size() == 10);
    CHECK(retries.back() == 1'000'000);
}

TEST_CASE("firewalld: replies after the object is gone do nothing")
{
    FakeFirewalld fw;
    {
        Firewalld f(fw);
        f.sync({net("a", "kvbr1")}, {"kvbr1"}, false);
    }
    fw.answer_all();
    CHECK(fw.calls == std::vector<std::string>{"list kvmnet"});
}

TEST_CASE("firewalld: diagnose's check does not wait for firewalld, and says when it does not answer")
{
    FakeFirewalld fw;
    Firewalld f(fw);
    const auto n = net("nat", "kvbr1");
    std::optional<std::optional<core::FirewalldCheck>> result;
    f.check(n, true, [&](std::optional<core::FirewalldCheck> c) { result = std::move(c); });
    CHECK_FALSE(result);  // returned before firewalld answered
    CHECK(fw.calls == std::vector<std::string>{"zone of kvbr1"});
    fw.answer_all();
    REQUIRE(result);
    REQUIRE(*result);
    CHECK((*result)->detail == "firewalld runs and bridge kvbr1 is in no zone: firewalld's default zone applies, which "
                               "rejects guests' DHCP and DNS and does not forward their traffic; let them through "
                               "with: firewall-cmd --zone=kvmnet --change-interface=kvbr1");

    fw.hung = true;
    const auto check = ask(f, fw, n, true);
    REQUIRE(check);
    CHECK_FALSE(check->ok);
    CHECK(check->detail == "firewalld does not answer: no reply within 3 s when asked for bridge kvbr1's zone");
}

TEST_CASE("firewalld: a bridge firewalld refuses is a problem until a sync puts it into the zone")
{
    FakeFirewalld fw;
    int changes = 0;
    Firewalld f(fw, {}, [&] { ++changes; });
    fw.failing = {"kvbr1"};  // zone kvmnet missing: firewalld answers INVALID_ZONE
    f.sync({net("nat", "kvbr1"), net("other", "kvbr2")}, {"kvbr1", "kvbr2"}, false);
    fw.answer_all();
    CHECK(f.problem_of("kvbr1") ==
          "firewalld could not put bridge kvbr1 into its zone kvmnet (org.fedoraproject.FirewallD1.Exception: "
          "INVALID_ZONE: kvmnet): firewalld has no zone kvmnet, install kvmnet's zone files and run firewall-cmd "
          "--reload; its default zone rejects the guests' DHCP and DNS and does not forward their traffic");
    CHECK(f.problem_of("kvbr2").empty());
    CHECK(changes == 1);
    f.sync({net("nat", "kvbr1"), net("other", "kvbr2")}, {"kvbr1", "kvbr2"}, true);  // the retry, still refused
    fw.answer_all();
    CHECK(changes == 1);  // the same problem: no new judgement

    fw.failing.clear();  // the zone is back (firewall-cmd --reload)
    f.sync({net("nat", "kvbr1"), net("other", "kvbr2")}, {"kvbr1", "kvbr2"}, true);
    fw.answer_all();
    CHECK(f.problem_of("kvbr1").empty());
    CHECK(changes == 2);

    SECTION("a stopped network's bridge has no problem")
    {
        fw.failing = {"kvbr1"};
        f.sync({net("nat", "kvbr1")}, {"kvbr1", "kvbr2"}, true);
        fw.answer_all();
        CHECK_FALSE(f.problem_of("kvbr1").empty());
        f.sync(std::vector<model::Network>{}, {"kvbr1", "kvbr2"}, false);
        fw.answer_all();
        CHECK(f.problem_of("kvbr1").empty());
    }
    SECTION("nor one while firewalld is gone")
    {
        fw.failing = {"kvbr1"};
        f.sync({net("nat", "kvbr1")}, {"kvbr1", "kvbr2"}, true);
        fw.answer_all();
        CHECK_FALSE(f.problem_of("kvbr1").empty());
        fw.up = false;
        f.sync({net("nat", "kvbr1")}, {"kvbr1", "kvbr2"}, true);
        CHECK(f.problem_of("kvbr1").empty());
    }
    SECTION("nor one while firewalld hangs: it did not refuse")
    {
        Firewalld g(fw);
        g.sync({net("nat", "kvbr3")}, {"kvbr3"}, false);
        fw.listing_fails = true;
        fw.answer_all();
        CHECK(g.problem_of("kvbr3").empty());
    }
}

TEST_CASE("firewalld: its refusal degrades a running network with reason code firewalld")
{
    auto n = net("nat", "kvbr1");
    plan::Observed o;
    o.running = true;
    o.firewalld_problem = "firewalld could not put bridge kvbr1 into its zone kvmnet (...)";
    const auto drift = plan::drift(n, o);
    const auto it = std::find_if(drift.findings.begin(), drift.findings.end(),
                                 [](const plan::Finding& f) { return f.code == "firewalld"; });
    REQUIRE(it != drift.findings.end());
    CHECK(it->reason == o.firewalld_problem);
    CHECK(it->check.empty());  // diagnose's own firewalld check asks firewalld
    // Outranked by what cuts guests off first (here: no bridge at all).
    CHECK(drift.state().code == "bridge-deleted");

    plan::LinkInfo bridge;
    bridge.index = 7;
    bridge.name = "kvbr1";
    bridge.kind = "bridge";
    bridge.alias = "kvmnet:nat";
    bridge.up = true;
    o.bridge = bridge;
    CHECK(plan::drift(n, o).state().code == "firewalld");
    CHECK(plan::drift(n, o).state().reason == o.firewalld_problem);
    o.firewalld_problem.clear();
    CHECK(plan::drift(n, o).state().code.empty());  // active
}

}  // namespace unit_test_firewalld
