// kernel::FeatureProbe, the memory of the flowtable probe behind fast_path:
// the kernel's "not there" is kept, a failure of the moment is asked again.
// Before it, Nftables::flowtables_missing kept any failed probe as "no
// flowtables" until the daemon restarted.
#include "kernel/feature_probe.hpp"
#include "model/error.hpp"

#include <catch2/catch.hpp>

#include <cerrno>
#include <string>
#include <vector>

namespace unit_test_feature_probe {

using kvmnet::kernel::FeatureProbe;

namespace {

// A probe answering `answers` in turn, counting the calls.
struct ScriptedProbe {
    std::vector<int> answers;
    std::size_t calls = 0;
    FeatureProbe::Result operator()()
    {
        const int error = answers.at(calls++);
        return {error, error == 0 ? "" : "adding a flowtable"};
    }
};

std::string ask(FeatureProbe& probe, ScriptedProbe& script)
{
    return probe.missing([&] { return script(); });
}

}  // namespace

TEST_CASE("A feature the kernel has is probed once", "[kernel][probe]")
{
    FeatureProbe probe("flowtables (test)");
    ScriptedProbe script{{0}};
    CHECK(ask(probe, script).empty());
    CHECK(ask(probe, script).empty());
    CHECK(script.calls == 1);
}

TEST_CASE("The kernel's 'not there' is kept until restart", "[kernel][probe]")
{
    for (const int error : {ENOENT, EOPNOTSUPP}) {
        INFO("errno " << error);
        FeatureProbe probe("flowtables (test)");
        ScriptedProbe script{{error, 0}};
        const std::string first = ask(probe, script);
        CHECK(first.find("this kernel lacks flowtables (test): adding a flowtable failed") == 0);
        CHECK(ask(probe, script) == first);
        CHECK(script.calls == 1);
    }
}

TEST_CASE("A failure of the moment is an error and is asked again", "[kernel][probe]")
{
    for (const int error : {ENOMEM, ENOBUFS, EPERM, EINTR, EBUSY}) {
        INFO("errno " << error);
        FeatureProbe probe("flowtables (test)");
        ScriptedProbe script{{error, 0}};
        try {
            ask(probe, script);
            FAIL("no error for errno " << error);
        } catch (const kvmnet::Error& err) {
            CHECK(err.kind() == kvmnet::ErrorKind::Kernel);
            CHECK(std::string(err.what()).find("probing the kernel for flowtables (test)") != std::string::npos);
        }
        // The next start asks the kernel again, which now has the feature.
        CHECK(ask(probe, script).empty());
        CHECK(script.calls == 2);
        CHECK(ask(probe, script).empty());
        CHECK(script.calls == 2);
    }
}

}  // namespace unit_test_feature_probe
