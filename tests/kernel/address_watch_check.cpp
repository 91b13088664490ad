// Standalone check of kernel::AddressWatch against a real kernel: the address
// notifications it reads on demand (core::AddressView's feed) say what
// `ip addr` did, in order, for IPv4 and IPv6, including the removals a link
// deletion brings; a buffer too small for what queued is reported as lost.
// It creates links, so it refuses to run in the host's network namespace
// (tests/kernel/run-in-netns.sh). Exit status: 0 passed, 1 failed, 77 skipped.
#include "check_util.hpp"
#include "kernel/address_watch.hpp"
#include "netns_guard.hpp"

#include <iostream>
#include <string>
#include <vector>

namespace {

using namespace kvmnet::test;
using kvmnet::kernel::AddressWatch;

struct Seen {
    bool added;
    int link;
    std::string address;
};

std::vector<Seen> drain(AddressWatch& watch, bool& complete)
{
    std::vector<Seen> seen;
    complete = watch.read([&](bool added, const kvmnet::plan::AddressInfo& a) {
        seen.push_back({added, a.link_index, a.address.str() + "/" + std::to_string(a.prefix_length)});
    });
    return seen;
}

bool has(const std::vector<Seen>& seen, bool added, const std::string& address)
{
    for (const Seen& s : seen)
        if (s.added == added && s.address == address) return true;
    return false;
}

int ifindex(const std::string& name)
{
    const Output out = run("cat /sys/class/net/" + name + "/ifindex");
    return out.status == 0 ? std::stoi(out.text) : -1;
}

}  // namespace

int main()
{
    if (std::string why; !in_safe_netns(why)) {
        std::cerr << "refusing to run outside a throwaway network namespace (" << why << "); use ip netns exec\n";
        return 77;
    }
    try {
        AddressWatch watch;
        bool complete = false;
        check(drain(watch, complete).empty() && complete, "nothing queued at first");
        check(run("ip link add kvaw0 type bridge && ip link set kvaw0 up && ip addr add 10.91.0.1/24 dev kvaw0 && "
                  "ip addr add fd00:91::1/64 dev kvaw0 nodad")
                      .status == 0,
              "ip link add / addr add");
        const int index = ifindex("kvaw0");
        auto seen = drain(watch, complete);
        check(complete, "nothing lost");
        check(has(seen, true, "10.91.0.1/24"), "the IPv4 address added is read");
        check(has(seen, true, "fd00:91::1/64"), "the IPv6 address added is read");
        bool right_link = !seen.empty();
        for (const Seen& s : seen)
            right_link = right_link && s.link == index;
        check(right_link, "each names kvaw0's index");
        check(drain(watch, complete).empty(), "read once only");

        check(run("ip addr del 10.91.0.1/24 dev kvaw0").status == 0, "ip addr del");
        seen = drain(watch, complete);
        check(seen.size() == 1 && has(seen, false, "10.91.0.1/24"), "the removal is read");

        check(run("ip addr add 10.91.0.1/24 dev kvaw0 && ip link del kvaw0").status == 0, "ip link del");
        seen = drain(watch, complete);
        check(has(seen, false, "10.91.0.1/24") && has(seen, false, "fd00:91::1/64"),
              "a link's deletion removes its addresses");
        check(!seen.empty() && !seen.back().added, "the last word on them is their removal");

        // A buffer for a few notifications only, then many: some are lost, and it says so.
        AddressWatch small(1);
        check(run("ip link add kvaw1 type bridge && for i in $(seq 1 200); do echo addr add 10.92.0.$i/32 dev kvaw1; "
                  "done | ip -batch -")
                      .status == 0,
              "200 addresses added");
        drain(small, complete);
        check(!complete, "an overrun is reported");
        drain(small, complete);
        check(complete, "then reading goes on");
        run("ip link del kvaw1");
    } catch (const std::exception& e) {
        check(false, std::string("unexpected exception: ") + e.what());
    }
    std::cout << checks << " checks, " << failures << " failed\n";
    return failures == 0 ? 0 : 1;
}
