// An Update that restarts the network (dns.domain) with a worker thread
// (ManagerOptions::worker_links): the old run stops as a Stop does, on the
// worker, and the call is answered once the new run is up; the loop is
// free meanwhile. The leases outlive the restart; a Stop asked while the
// restart's stop runs waits for it and then stops the network.
#include "manager_test_prelude.hpp"

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <string>

namespace unit_test_update_worker {

namespace {

constexpr const char* dhcp_document =
    R"({"name": "lab", "mode": "nat", "bridge": "kvmbr1", "ipv4": {"address": "10.10.0.1/24",
        "dhcp": {"ranges": ["10.10.0.100-10.10.0.200"]}}})";
constexpr const char* with_domain =
    R"({"name": "lab", "mode": "nat", "bridge": "kvmbr1", "ipv4": {"address": "10.10.0.1/24",
        "dhcp": {"ranges": ["10.10.0.100-10.10.0.200"]}}, "dns": {"domain": "kvm.lan"}})";

struct Outcome {
    bool answered = false;
    std::string error;
    Manager::Done done()
    {
        return [this](std::exception_ptr e) {
            answered = true;
            try {
                if (e) std::rethrow_exception(e);
            } catch (const std::exception& err) {
                error = err.what();
            }
        };
    }
};

// "lab" running with a (fake) dnsmasq. The worker's kernel handle is the
// same fake kernel: the new run must find the old bridge gone. The loop does
// not touch it while the worker runs (no link monitor here, the repairs'
// clock is the test's).
struct WorkerHarness : Harness {
    WorkerHarness()
    {
        worker_links = &links;
        dnsmasq = write_fake_dnsmasq(state_dir.path);
        restart_manager();
        m().create(dhcp_document);
        m().start("lab");
        REQUIRE(m().state("lab") == State::active);
    }
};

}  // namespace

TEST_CASE("A restarting Update stops the old run on the worker and answers once the new one is up", "[manager][update]")
{
    WorkerHarness h;
    const std::string leases = h.runtime_dir.path + "/lab/dnsmasq.leases";
    const std::string lease = "4102444800 52:54:00:00:00:01 10.10.0.150 guest *\n";
    kvmnet::store::write_atomic(leases, lease);
    const pid_t old_dnsmasq = static_cast<pid_t>(std::stol(read_text(h.runtime_dir.path + "/lab/dnsmasq.pid")));

    Outcome update;
    h.m().update("lab", with_domain, update.done());
    // Returned with the old run's stop on the worker: not answered yet, the
    // network stopped meanwhile (calls on it wait), the loop free.
    CHECK_FALSE(update.answered);
    CHECK(h.m().state("lab") == State::inactive);
    h.run_loop(10'000'000, [&] { return update.answered; });
    REQUIRE(update.answered);
    CHECK(update.error.empty());
    CHECK(h.m().state("lab") == State::active);
    CHECK(h.m().spec("lab").dns.domain == "kvm.lan");
    // The worker stopped the old dnsmasq; the bridge was deleted and made again.
    CHECK(::kill(old_dnsmasq, 0) != 0);
    CHECK(std::any_of(h.links.calls().begin(), h.links.calls().end(),
                      [](const Call& c) { return c.verb == "delete_link"; }));
    CHECK(h.links.find_link("kvmbr1").has_value());
    CHECK(read_text(leases) == lease);  // kept across the restart
}

TEST_CASE("A Stop asked while a restarting Update stops the old run waits for it, then stops", "[manager][update]")
{
    WorkerHarness h;

    Outcome update, stop;
    h.m().update("lab", with_domain, update.done());
    h.m().stop("lab", stop.done());
    CHECK_FALSE(stop.answered);  // waits (it does not join the restart's stop)
    h.run_loop(10'000'000, [&] { return update.answered && stop.answered; });
    REQUIRE(stop.answered);
    REQUIRE(update.answered);
    CHECK(stop.error.empty());
    CHECK(update.error.find("stopped before it became active") != std::string::npos);
    CHECK(h.m().state("lab") == State::inactive);
    CHECK(h.m().spec("lab").dns.domain == "kvm.lan");  // the Update's document stays
    CHECK_FALSE(std::filesystem::exists(h.runtime_dir.path + "/lab"));
}

TEST_CASE("Changes other than Start/Stop/Update/Delete are refused while a restart's stop runs", "[manager][update]")
{
    // The restart stores the new document first and takes it into memory
    // only once the old run has stopped: a change accepted meanwhile would
    // start from the old document, overwrite the new one on disk, and be
    // dropped from memory when the restart goes on (the Update lost at the
    // next daemon start).
    WorkerHarness h;
    Outcome update;
    h.m().update("lab", with_domain, update.done());
    REQUIRE_FALSE(update.answered);
    try {
        h.m().set_autostart("lab", true);
        FAIL("SetAutostart was accepted during the restart");
    } catch (const kvmnet::Error& e) {
        CHECK(e.kind() == kvmnet::ErrorKind::Busy);
        CHECK(std::string(e.what()).find("restarting") != std::string::npos);
    }
    h.run_loop(10'000'000, [&] { return update.answered; });
    REQUIRE(update.answered);
    CHECK(update.error.empty());
    CHECK(h.m().spec("lab").dns.domain == "kvm.lan");
    CHECK_FALSE(h.m().spec("lab").autostart);
    bool durable = false;
    h.m().when_durable([&](std::exception_ptr) { durable = true; });
    h.run_loop(5'000'000, [&] { return durable; });
    const std::string stored = read_text(h.state_dir.path + "/networks/lab.json");
    CHECK(stored.find("kvm.lan") != std::string::npos);
    // Active again: the change is taken now.
    h.m().set_autostart("lab", true);
    CHECK(h.m().spec("lab").autostart);
}

}  // namespace unit_test_update_worker
