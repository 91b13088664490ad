// A Stop whose bridge deletion runs on the worker thread
// (ManagerOptions::worker_links): a bridge that someone else deleted while
// the deletion waited in the worker's queue is what the Stop wanted, not a
// failure (the worker's kernel handle here is a second fake kernel in which
// the bridge does not exist, as if deleted in the meantime).
#include "manager_test_prelude.hpp"

#include <csignal>
#include <filesystem>
#include <string>

namespace unit_test_stop_worker {

TEST_CASE("A bridge gone before the worker deletes it does not fail the Stop", "[manager][stop]")
{
    WorkerHarness h;  // the bridge is not there: its deletion finds none; dnsmasq stopped on the worker too
    h.m().create(R"({"name": "lab", "mode": "isolated", "bridge": "kvmbr1", "ipv4": {"address": "10.10.0.1/24"}})");
    h.m().start("lab");
    REQUIRE(h.m().state("lab") == State::active);
    const std::string pid_file = h.runtime_dir.path + "/lab/dnsmasq.pid";
    const pid_t dnsmasq = static_cast<pid_t>(std::stol(read_text(pid_file)));
    REQUIRE(dnsmasq > 0);

    bool answered = false;
    std::exception_ptr outcome;
    h.m().stop("lab", [&](std::exception_ptr error) {
        outcome = error;
        answered = true;
    });
    h.run_loop(10'000'000, [&] { return answered; });
    REQUIRE(answered);
    std::string message;
    try {
        if (outcome) std::rethrow_exception(outcome);
    } catch (const std::exception& err) {
        message = err.what();
    }
    CHECK(message.empty());
    CHECK(h.m().state("lab") == State::inactive);
    CHECK_FALSE(std::filesystem::exists(h.runtime_dir.path + "/lab"));
    // Stopped (and reaped: it was our child) by the worker, through its pidfd.
    CHECK(::kill(dnsmasq, 0) != 0);
    // The worker asked its own kernel, not the loop's.
    CHECK(std::any_of(h.worker_kernel.calls().begin(), h.worker_kernel.calls().end(),
                      [](const Call& c) { return c.verb == "delete_link"; }));
}

}  // namespace unit_test_stop_worker
