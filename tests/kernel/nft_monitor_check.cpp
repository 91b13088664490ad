// Kernel check for kernel::NftMonitor, inside a throwaway network namespace:
// the daemon's own transactions (kernel::Nftables, this process) are never
// reported; nft(8) changing table inet kvmnet is, once per transaction and
// naming nft; changes to other tables are not.
#include "check_util.hpp"
#include "kernel/nft_monitor.hpp"
#include "kernel/nftables.hpp"
#include "model/network.hpp"
#include "netns_guard.hpp"
#include "plan/planner.hpp"

#include <poll.h>

#include <functional>

#include <iostream>

using kvmnet::test::check;
using kvmnet::test::run;
namespace kernel = kvmnet::kernel;

namespace {

// What the monitor has to say after `action`: notifications are delivered
// synchronously with the commit, so one poll with a short grace suffices.
kernel::NftMonitorResult after(kernel::NftMonitor& monitor, const std::function<void()>& action)
{
    action();
    pollfd p{monitor.fd(), POLLIN, 0};
    ::poll(&p, 1, 200);
    return monitor.dispatch();
}

void nft(const std::string& args)
{
    const auto out = run("nft " + args);
    check(out.status == 0, "nft " + args + " failed: " + out.text);
}

}  // namespace

int main()
{
    if (std::string why; !kvmnet::test::in_safe_netns(why)) {
        std::cerr << "refusing to run outside a throwaway network namespace (" << why << "); use ip netns exec\n";
        return 77;
    }
    try {
        const auto network = kvmnet::model::parse_network(
            R"({"name": "n", "mode": "nat", "bridge": "kvmbr0", "ipv4": {"address": "192.168.122.1/24"}})");
        const auto table = kvmnet::plan::build_ruleset({network});
        kernel::Nftables firewall;
        kernel::NftMonitor monitor(kvmnet::plan::table_name);

        auto r = after(monitor, [&] { firewall.replace_table(table); });
        check(!r.changed, "our own replace_table is not reported");
        r = after(monitor, [&] { firewall.replace_table(table); });
        check(!r.changed, "our own second replace_table (delete + add) is not reported");

        r = after(monitor, [&] { nft("add table inet other"); });
        check(!r.changed, "nft adding another table is not reported");
        r = after(monitor, [&] { nft("add table ip kvmnet"); });
        check(!r.changed, "nft adding table ip kvmnet (another family) is not reported");

        r = after(monitor, [&] { nft("delete table inet kvmnet"); });
        check(r.changed, "nft delete table inet kvmnet is reported");
        check(r.who.rfind("nft (pid ", 0) == 0, "the change names nft and its pid: '" + r.who + "'");

        r = after(monitor, [&] { firewall.replace_table(table); });
        check(!r.changed, "our own re-creation is not reported");
        r = after(monitor, [&] { nft("flush ruleset"); });
        check(r.changed, "nft flush ruleset is reported");

        firewall.replace_table(table);
        monitor.dispatch();
        const std::string chain = table.chains.front().name;
        r = after(monitor, [&] { nft("flush chain inet kvmnet " + chain); });
        check(r.changed, "nft flush chain inet kvmnet " + chain + " is reported");
        r = after(monitor, [&] { nft("add chain inet kvmnet extra"); });
        check(r.changed, "nft adding a chain to our table is reported");
        r = after(monitor, [] {});
        check(!r.changed && !r.overrun, "nothing more to report when nothing happened");
        firewall.delete_table(kvmnet::plan::table_name);
        r = after(monitor, [] {});
        check(!r.changed, "our own delete_table is not reported");

        // In a PID namespace of its own the daemon's getpid() is not the pid
        // the kernel reports: the socket's port id still identifies it.
        kernel::NftMonitor by_port(kvmnet::plan::table_name, 1, firewall.port_id());
        r = after(by_port, [&] { firewall.replace_table(table); });
        check(!r.changed, "our own commit is recognised by its port id alone");
        r = after(by_port, [&] { nft("delete table inet kvmnet"); });
        check(r.changed, "nft is still reported when only the port id is ours");
        kernel::NftMonitor by_nothing(kvmnet::plan::table_name, 1, 0);
        r = after(by_nothing, [&] { firewall.replace_table(table); });
        check(r.changed, "control: without pid or port our own commit is foreign");
    } catch (const std::exception& e) {
        check(false, std::string("unexpected exception: ") + e.what());
    }
    std::cout << kvmnet::test::checks << " checks, " << kvmnet::test::failures << " failed\n";
    return kvmnet::test::failures == 0 ? 0 : 1;
}
