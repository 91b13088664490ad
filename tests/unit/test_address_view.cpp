// Issue 17 item 3: the conflict check of a create, update or start asks an
// address view kept from rtnetlink's notifications which links may hold an
// overlapping address, and dumps only those links' addresses, so that its
// cost does not grow with the host's addresses (one or more per running
// network). The errors stay exactly as with a dump of every address.
#include "core/kernel_conflicts.hpp"
#include "manager_harness.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

namespace unit_test_address_view {

using Catch::Matchers::Contains;
using kvmnet::core::AddressView;
using kvmnet::core::State;
using namespace kvmnet;
using namespace kvmnet::test;

namespace {

// What kernel::AddressWatch would read: notifications queued by the test.
struct Feed {
    std::vector<std::pair<bool, plan::AddressInfo>> queued;
    bool lost = false;
    int lists = 0;
    std::vector<plan::AddressInfo> kernel;  // what a full listing returns

    AddressView view()
    {
        return AddressView(
            [this](const AddressView::Change& changed) {
                for (const auto& [added, a] : std::exchange(queued, {}))
                    changed(added, a);
                return !std::exchange(lost, false);
            },
            [this] {
                ++lists;
                return kernel;
            });
    }
};

plan::AddressInfo address(int link, const std::string& text, std::uint8_t prefix)
{
    plan::AddressInfo a;
    a.link_index = link;
    a.address = ip(text);
    a.prefix_length = prefix;
    return a;
}

model::Network network(const std::string& v4, const std::string& v6 = "")
{
    std::string doc = R"({"name": "n", "mode": "nat", "bridge": "kvn", "ipv4": {"address": ")" + v4 + R"("})";
    if (!v6.empty()) doc += R"(, "ipv6": {"address": ")" + v6 + R"("})";
    return model::parse_network(doc + "}");
}

std::string nat_document(int i, const std::string& subnet)
{
    return R"({"name": "n)" + std::to_string(i) + R"(", "mode": "nat", "bridge": "kvn)" + std::to_string(i) +
           R"(", "ipv4": {"address": ")" + subnet + R"("}})";
}

// The dumps of the addresses of link `index` alone.
int dumps_of(const FakeLinks& links, const std::string& index)
{
    return static_cast<int>(std::count_if(links.calls().begin(), links.calls().end(), [&](const Call& c) {
        return c.verb == "list_addresses_of" && c.detail == index;
    }));
}

}  // namespace

TEST_CASE("Address view: listed once, then kept by notifications", "[conflicts]")
{
    Feed feed;
    feed.kernel = {address(5, "10.1.0.1", 24), address(6, "fd00:1::1", 64)};
    AddressView view = feed.view();
    CHECK(feed.lists == 1);
    CHECK(view.links_overlapping(network("10.1.0.1/16")) == std::vector<int>{5});
    CHECK(view.links_overlapping(network("10.1.0.129/25")) == std::vector<int>{5});
    CHECK(view.links_overlapping(network("10.2.0.1/24")).empty());
    CHECK(view.links_overlapping(network("10.2.0.1/24", "fd00:1::9/64")) == std::vector<int>{6});
    // Added, then removed: as the notifications say, in order.
    feed.queued = {{true, address(7, "10.2.0.5", 24)}, {true, address(3, "10.2.0.6", 28)}};
    CHECK(view.links_overlapping(network("10.2.0.1/24")) == std::vector<int>{3, 7});
    feed.queued = {
        {false, address(7, "10.2.0.5", 24)}, {true, address(7, "10.2.0.5", 24)}, {false, address(3, "10.2.0.6", 28)}};
    CHECK(view.links_overlapping(network("10.2.0.1/24")) == std::vector<int>{7});
    // One the listing had already: no second entry, and its removal is one.
    feed.queued = {{true, address(5, "10.1.0.1", 24)}, {false, address(5, "10.1.0.1", 24)}};
    CHECK(view.links_overlapping(network("10.1.0.1/24")).empty());
    CHECK(feed.lists == 1);
    // Notifications lost: listed again, whatever was read.
    feed.kernel = {address(9, "10.3.0.1", 24)};
    feed.queued = {{true, address(8, "10.4.0.1", 24)}};
    feed.lost = true;
    CHECK(view.links_overlapping(network("10.3.0.1/16")) == std::vector<int>{9});
    CHECK(feed.lists == 2);
    CHECK(view.size() == 1);
}

TEST_CASE("Address view: a start dumps no address of the host, a conflict is named as before", "[conflicts][scale]")
{
    HealingHarness h;  // a stand-in dnsmasq for the NAT networks ("iso" running)
    plan::LinkInfo theirs;
    theirs.name = "eth7";
    const std::string eth7 = std::to_string(h.links.add_link(theirs));
    h.links.add_address("eth7", ip("10.80.1.9"), 24);
    Feed feed;
    feed.kernel = h.links.list_addresses();
    AddressView view = feed.view();
    h.addresses = &view;
    h.m().stop("iso");  // the manager made anew here does not know it: its dnsmasq would be left running
    h.restart_manager();

    h.links.reset_calls();
    h.m().create(nat_document(2, "10.80.2.1/24"));
    h.m().start("n2");
    REQUIRE(h.m().state("n2") == State::active);
    CHECK(h.links.count("list_addresses") == 0);
    CHECK(dumps_of(h.links, eth7) == 0);  // no link overlaps

    // A conflict: the one link the view names is asked, and the error is the dump's.
    h.links.reset_calls();
    try {
        h.m().create(nat_document(1, "10.80.1.1/24"));
        FAIL("no conflict");
    } catch (const Error& e) {
        CHECK(e.kind() == ErrorKind::Conflict);
        CHECK(std::string(e.what()) == "ipv4.address: 10.80.1.0/24 overlaps 10.80.1.9/24 on interface eth7, which "
                                       "kvmnet does not manage; choose another subnet");
    }
    CHECK(h.links.count("list_addresses") == 0);
    CHECK(dumps_of(h.links, eth7) == 1);

    // The view still holds an address the kernel removed a moment ago
    // (its notification not read yet is the same as one queued here after
    // the removal): the link's own dump says there is no conflict.
    h.links.delete_address("eth7", ip("10.80.1.9"), 24);
    h.m().create(nat_document(1, "10.80.1.1/24"));
    h.m().start("n1");
    CHECK(h.m().state("n1") == State::active);
    // Stopped here, their (fake) dnsmasq by pid: the manager made anew below
    // (the view goes before the harness) does not know them, so the
    // harness's own stop at its end left them running.
    for (const char* name : {"n1", "n2"})
        h.m().stop(name);
    h.addresses = nullptr;  // the view goes before the harness
    h.restart_manager();
}

}  // namespace unit_test_address_view
