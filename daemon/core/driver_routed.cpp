// The routed family (nat, routed, isolated): a bridge of our own carrying
// the gateway addresses; the modes differ in their nftables rules and
// sysctls (plan/), not in their links.
#include "core/kernel_conflicts.hpp"
#include "core/log.hpp"
#include "core/mode_driver.hpp"

namespace kvmnet::core {
namespace {

class RoutedDriver final : public ModeDriver {
public:
    using ModeDriver::ModeDriver;

    void validate(const model::Network& n) override { check_kernel_conflicts(links_, n); }

    void setup(const model::Network& n, Undo& undo, std::string& step) override
    {
        configure_bridge(links_, n, undo, step);
        if (n.mode == model::Mode::nat) {
            step = "allowing loopback-sourced forwards on " + n.bridge;
            allow_loopback_forwards(n);
        }
    }

    std::vector<std::string> teardown(const model::Network&) override { return {}; }

    void adopt(const model::Network& n) override
    {
        // A crash between a live Update's save and its kernel change
        // leaves the bridge without options the stored document has;
        // setting them again changes nothing when they match.
        try {
            const auto bridge = links_.find_link(n.bridge);
            if (bridge && bridge->alias == plan::owner_alias(n.name))
                links_.set_bridge_options(n.bridge, plan::bridge_options(n));
        } catch (const std::exception& err) {
            log_error("network " + n.name + ": setting the bridge options again: " + err.what(), n.name);
        }
    }

    LinkRepair repair(const model::Network& n, const std::optional<plan::LinkInfo>& bridge,
                      const std::function<bool()>& allowed) override
    {
        LinkRepair r;
        const auto ops = plan::plan_bridge(n, bridge, links_.list_addresses());
        if (ops.empty() || !allowed()) return r;
        Undo undo;  // a repair keeps what it achieved: nothing is undone
        std::string step;
        apply_link_ops(links_, n, ops, bridge, undo, step);
        undo.commit();
        for (const plan::LinkOp& op : ops) {
            if (std::holds_alternative<plan::CreateBridge>(op)) {
                r.done.push_back("recreated bridge " + n.bridge);
                r.what = "bridge";
            } else if (const auto* a = std::get_if<plan::AddAddress>(&op); a && bridge) {
                r.done.push_back("re-added address " + a->address + "/" + std::to_string(a->prefix_length));
                if (r.what.empty()) r.what = "address";
            } else if (std::holds_alternative<plan::SetUp>(op) && bridge) {
                r.done.push_back("set bridge " + n.bridge + " up again");
                if (r.what.empty() || r.what == "address") r.what = "link";
            } else if (std::holds_alternative<plan::SetMtu>(op)) {
                r.done.push_back("restored MTU " + std::to_string(n.mtu));
                if (r.what.empty()) r.what = "link";
            }
        }
        if (!bridge) {
            if (n.mode == model::Mode::nat) allow_loopback_forwards(n);
            r.recreated = true;
        }
        return r;
    }

    void port_attached(const model::Network& n, const std::string& port) override
    {
        // Forwards: a guest may reach itself through the host's address (as
        // Kubernetes' hairpin-veth does for pods).
        if (n.mode == model::Mode::nat) links_.set_port_hairpin(port, true);
    }

private:
    // Forwards reached from the host as 127.0.0.1 leave through the bridge
    // with that source until masqueraded: the kernel routes them only with
    // route_localnet (guests cannot use loopback addresses:
    // guest_prerouting drops them).
    void allow_loopback_forwards(const model::Network& n)
    {
        links_.write_sysctl("net/ipv4/conf/" + n.bridge + "/route_localnet", "1");
    }
};

}  // namespace

std::unique_ptr<ModeDriver> make_routed_driver(DriverContext context)
{
    return std::make_unique<RoutedDriver>(context);
}

}  // namespace kvmnet::core
