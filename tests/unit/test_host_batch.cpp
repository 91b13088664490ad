// Static host changes saved on the store's writer thread (core/manager_leases.cpp
// commit_hosts): the host changes of one batch are one document written and
// synced; a batch whose write fails answers each of its callers with the
// error and leaves neither change, in memory, on disk or in dnsmasq's files,
// and the network keeps running (revert_hosts: no restart).
#include "manager_test_prelude.hpp"

#include "model/forward_text.hpp"
#include "store/durable.hpp"

#include <atomic>
#include <cerrno>
#include <cstring>
#include <unistd.h>

namespace unit_test_host_batch {

namespace {

// Counts the syncs of each file; ENOSPC for every file while `full` is set.
class CountingSyncer final : public kvmnet::store::Syncer {
public:
    std::atomic<bool> full{false};
    std::map<std::string, int> file_syncs;  // only read once the writer is idle
    void sync_file(int fd, const std::string& path) override
    {
        if (full) throw Error(kvmnet::ErrorKind::Kernel, "cannot sync " + path + ": " + std::strerror(ENOSPC));
        ++file_syncs[path];
        ::fsync(fd);
    }
    void sync_directory(const std::string&) override {}
};

constexpr const char* dhcp_document =
    R"({"name": "dh", "mode": "nat", "bridge": "kvmbr7", "ipv4": {"address": "10.71.0.1/24",
        "dhcp": {"ranges": ["10.71.0.100-10.71.0.200"]}},
        "forwards": [{"proto": "tcp", "host_port": 8080, "guest": "10.71.0.5", "guest_port": 80}]})";

struct HostBatch {
    CountingSyncer syncer;
    Harness h;
    std::string doc_path, hosts_path, pid_path;

    HostBatch()
    {
        h.syncer = &syncer;
        h.durable_in_background = true;
        h.dnsmasq = write_fake_dnsmasq(h.state_dir.path);
        h.restart_manager();
        h.m().create(dhcp_document);
        h.m().start("dh");
        REQUIRE(h.m().state("dh") == State::active);
        doc_path = h.state_dir.path + "/networks/dh.json";
        hosts_path = h.runtime_dir.path + "/dh/dnsmasq.hosts";
        pid_path = h.runtime_dir.path + "/dh/dnsmasq.pid";
        settle();
    }
    // Runs the loop until everything changed so far is durable (or failed).
    void settle()
    {
        bool done = false;
        h.m().when_durable([&](std::exception_ptr) { done = true; });
        const auto turn = h.loop.add_timer(0, [] {});  // a turn, after which the batch is handed over
        h.run_loop(10'000'000, [&] { return done; });
        REQUIRE(done);
    }
    // What a changing call's reply carries (api/service.cpp reply_when_durable),
    // registered right after its body.
    std::shared_ptr<std::optional<std::exception_ptr>> outcome()
    {
        auto result = std::make_shared<std::optional<std::exception_ptr>>();
        h.m().when_durable([result](std::exception_ptr error) { *result = error; });
        return result;
    }
    nlohmann::json stored() const { return nlohmann::json::parse(*kvmnet::store::read_file(doc_path)); }
};

std::string host(int n)
{
    return R"({"mac": "52:54:00:00:07:0)" + std::to_string(n) + R"(", "ip": "10.71.0.)" + std::to_string(20 + n) +
           R"(", "name": "vm)" + std::to_string(n) + R"("})";
}

}  // namespace

TEST_CASE("Two host changes in one batch are one durable document, and both replies wait for it",
          "[manager][durable][dhcp]")
{
    HostBatch b;
    b.syncer.file_syncs.clear();
    const std::string document_before = read_text(b.doc_path);
    b.h.m().add_host("dh", host(1));
    const auto first = b.outcome();
    b.h.m().add_host("dh", host(2));
    const auto second = b.outcome();
    // Neither is answered before the document is durable.
    CHECK_FALSE(first->has_value());
    CHECK_FALSE(second->has_value());
    CHECK(read_text(b.doc_path) == document_before);
    b.settle();
    REQUIRE(first->has_value());
    REQUIRE(second->has_value());
    CHECK_FALSE(**first);
    CHECK_FALSE(**second);
    CHECK(b.syncer.file_syncs[b.doc_path] == 1);
    // The stored text is the document's text, byte for byte.
    CHECK(read_text(b.doc_path) == kvmnet::model::document_text(b.h.m().spec("dh")));
    CHECK(b.stored()["ipv4"]["dhcp"]["hosts"].size() == 2);
    CHECK_THAT(read_text(b.hosts_path), Contains("52:54:00:00:07:01") && Contains("52:54:00:00:07:02"));
}

TEST_CASE("A batch of host changes that cannot be written fails both callers and changes neither",
          "[manager][durable][dhcp]")
{
    HostBatch b;
    b.h.m().add_host("dh", host(1));
    b.settle();
    const std::string document_before = read_text(b.doc_path);
    const std::string hosts_before = read_text(b.hosts_path);
    const std::string pid_before = read_text(b.pid_path);
    const std::string revision_before = b.h.m().revision("dh");

    b.syncer.full = true;
    b.h.m().add_host("dh", host(2));
    const auto first = b.outcome();
    b.h.m().remove_host("dh", "52:54:00:00:07:01");
    const auto second = b.outcome();
    CHECK_THAT(read_text(b.hosts_path), Contains("52:54:00:00:07:02"));  // dnsmasq had both changes meanwhile
    b.settle();
    for (const auto& outcome : {first, second}) {
        REQUIRE(outcome->has_value());
        REQUIRE(**outcome);
        try {
            std::rethrow_exception(**outcome);
        } catch (const Error& e) {
            CHECK(e.kind() == ErrorKind::Kernel);
            CHECK_THAT(e.what(), Contains("dh.json") && Contains(std::strerror(ENOSPC)));
        }
    }
    const auto& hosts = b.h.m().spec("dh").ipv4->hosts;
    REQUIRE(hosts.size() == 1);
    CHECK(hosts[0].mac == "52:54:00:00:07:01");
    CHECK(b.h.m().revision("dh") == revision_before);
    CHECK(read_text(b.doc_path) == document_before);
    CHECK(read_text(b.hosts_path) == hosts_before);
    // Not restarted: the same dnsmasq serves on, the forwards stay.
    CHECK(b.h.m().state("dh") == State::active);
    CHECK(read_text(b.pid_path) == pid_before);
    CHECK(b.h.m().spec("dh").forwards.size() == 1);

    b.syncer.full = false;
    b.h.m().add_host("dh", host(2));
    const auto again = b.outcome();
    b.settle();
    REQUIRE(again->has_value());
    CHECK_FALSE(**again);
    CHECK(b.stored()["ipv4"]["dhcp"]["hosts"].size() == 2);
}

}  // namespace unit_test_host_batch
