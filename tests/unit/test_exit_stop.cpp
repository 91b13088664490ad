// The daemon's exit with a Stop in flight on the worker thread
// (main.cpp: Manager::finish_stops() once the loop has ended): the stop
// finishes and its caller is answered, and so is a stop that the first
// one's continuation starts meanwhile, without the loop running again.
#include "manager_test_prelude.hpp"

#include <filesystem>
#include <string>
#include <vector>

namespace unit_test_exit_stop {

TEST_CASE("finish_stops() at exit finishes a stop in flight and the stop its caller starts", "[manager][stop]")
{
    WorkerHarness h;
    h.m().create(R"({"name": "one", "mode": "isolated", "bridge": "kvmbr1", "ipv4": {"address": "10.10.0.1/24"}})");
    h.m().create(R"({"name": "two", "mode": "isolated", "bridge": "kvmbr2", "ipv4": {"address": "10.10.1.1/24"}})");
    h.m().start("one");
    h.m().start("two");
    REQUIRE(h.m().state("one") == State::active);
    REQUIRE(h.m().state("two") == State::active);

    int answered = 0;
    std::vector<std::string> problems;
    const auto record = [&](std::exception_ptr error) {
        ++answered;
        try {
            if (error) std::rethrow_exception(error);
        } catch (const std::exception& err) {
            problems.push_back(err.what());
        }
    };
    // A caller that, once "one" is stopped, stops "two" (a client's script,
    // or a Stop deferred behind another): asked while the daemon exits.
    h.m().stop("one", [&](std::exception_ptr error) {
        record(error);
        h.m().stop("two", record);
    });
    // SIGTERM: the loop is not run again; main.cpp settles the worker.
    h.m().finish_stops();
    CHECK(answered == 2);
    CHECK(problems.empty());
    CHECK(h.m().state("one") == State::inactive);
    CHECK(h.m().state("two") == State::inactive);
    CHECK_FALSE(std::filesystem::exists(h.runtime_dir.path + "/one"));
    CHECK_FALSE(std::filesystem::exists(h.runtime_dir.path + "/two"));
}

}  // namespace unit_test_exit_stop
