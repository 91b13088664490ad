// Regression: the forwards journal's "remove" line named only an IPv4 host
// address, so an IPv6 forward removed through the journal came back when the
// journal was replayed (a restart before the next save of the document).
#include "model/forward.hpp"
#include "model/network.hpp"
#include "store/store.hpp"
#include "store_util.hpp"
#include "temp_dir.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace unit_test_journal_ipv6 {

namespace {

std::vector<std::string> forwards_after_replay(kvmnet::store::Store& store)
{
    std::vector<std::string> problems;
    const auto loaded = kvmnet::test::load_all(store, problems);
    REQUIRE(problems.empty());
    REQUIRE(loaded.size() == 1);
    std::vector<std::string> out;
    for (const auto& f : loaded[0].forwards)
        out.push_back(kvmnet::model::describe(f));
    return out;
}

}  // namespace

TEST_CASE("The journal removes IPv6 forwards, by any and by a given host address", "[store][journal]")
{
    kvmnet::testing::TempDir tmp;
    kvmnet::store::Store store(kvmnet::store::Layout(tmp.path, ""));
    store.save(kvmnet::model::parse_network(R"({"name": "six", "mode": "nat", "bridge": "kvmbr6",
        "ipv4": {"address": "10.6.0.1/24"}, "ipv6": {"address": "fd00:6::1/64"},
        "forwards": [{"proto": "tcp", "host_port": 8080, "guest": "fd00:6::10", "guest_port": 80},
                     {"proto": "tcp", "host_port": 8081, "host_address": "2001:db8::7", "guest": "fd00:6::11",
                      "guest_port": 80},
                     {"proto": "tcp", "host_port": 8080, "guest": "10.6.0.10", "guest_port": 80}]})"));
    const auto before = forwards_after_replay(store);
    REQUIRE(before.size() == 3);

    store.journal_remove("six", kvmnet::model::make_forward_key("tcp", "::", 8080));
    store.journal_remove("six", kvmnet::model::make_forward_key("tcp", "2001:db8::7", 8081));
    // Only the IPv4 forward on 8080 is left: neither IPv6 forward comes back.
    const auto after = forwards_after_replay(store);
    REQUIRE(after.size() == 1);
    CHECK(after[0] == before[2]);
}

}  // namespace unit_test_journal_ipv6
