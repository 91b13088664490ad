// The routed family (nat, routed, isolated): a bridge of our own carrying
// the gateway addresses; the modes differ in their nftables rules and
// sysctls (plan/), not in their links. A network with an "overlay" section
// also has a VXLAN device on its bridge: the overlay layer composed here.
#include "core/driver_overlay.hpp"
#include "core/kernel_conflicts.hpp"
#include "core/log.hpp"
#include "core/mode_driver.hpp"

namespace kvmnet::core {
namespace {

class RoutedDriver final : public ModeDriver {
public:
    explicit RoutedDriver(DriverContext context)
        : ModeDriver(context), overlay_(context.links), addresses_(context.addresses)
    {
    }

    void validate(const model::Network& n) override
    {
        check_kernel_conflicts(links_, n, addresses_);
        overlay_.validate(n);
    }

    void setup(const model::Network& spec, Undo& undo, std::string& step) override
    {
        const model::Network n = overlay_.effective(spec);
        configure_bridge(links_, layout_, n, undo, step, overlay_.bridge_mac(n));
        set_gateway_mac(n);
        overlay_.setup(n, undo, step);
        if (n.mode == model::Mode::nat) {
            step = "allowing loopback-sourced forwards on " + n.bridge;
            allow_loopback_forwards(n);
        }
    }

    std::vector<std::string> teardown(const model::Network& n) override { return overlay_.teardown(n); }

    model::Network effective(const model::Network& n) override { return overlay_.effective(n); }

    bool owns_link(const model::Network& n, const std::string& name) const override
    {
        return overlay_.owns_link(n, name);
    }

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

    LinkRepair repair(const model::Network& spec, const std::optional<plan::LinkInfo>& bridge,
                      const std::function<bool()>& allowed) override
    {
        LinkRepair r;
        const model::Network n = overlay_.effective(spec);
        // Only the bridge's addresses: a resync of every network stays O(networks), not O(networks²).
        const auto addresses = bridge ? links_.list_addresses_of(bridge->index) : std::vector<plan::AddressInfo>{};
        const auto ops = plan::plan_bridge(n, bridge, addresses, overlay_.bridge_mac(n));
        if (ops.empty() || !allowed()) {
            r.done = overlay_.repair(n, allowed);
            if (!r.done.empty()) r.what = "link";
            return r;
        }
        Undo undo;  // a repair keeps what it achieved: nothing is undone
        std::string step;
        apply_link_ops(links_, layout_, n, ops, bridge, undo, step);
        undo.commit();
        for (const plan::LinkOp& op : ops) {
            if (std::holds_alternative<plan::CreateBridge>(op)) {
                r.done.push_back("recreated bridge " + n.bridge);
                r.what = "bridge";
            } else if (const auto* a = std::get_if<plan::AddAddress>(&op); a && bridge) {
                r.done.push_back("re-added address " + a->address.str() + "/" + std::to_string(a->prefix_length));
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
        for (auto& d : overlay_.repair(n, allowed))
            r.done.push_back(std::move(d));
        return r;
    }

    void port_attached(const model::Network& n, const std::string& port) override
    {
        // Forwards: a guest may reach itself through the host's address (as
        // Kubernetes' hairpin-veth does for pods).
        if (n.mode == model::Mode::nat) links_.set_port_hairpin(port, true);
    }

private:
    // An adopted bridge made before the overlay was added keeps its old MAC:
    // every host's gateway must answer with the same one.
    void set_gateway_mac(const model::Network& n)
    {
        const auto mac = overlay_.bridge_mac(n);
        if (!mac) return;
        const auto bridge = links_.find_link(n.bridge);
        if (bridge && bridge->mac != mac) links_.set_mac(n.bridge, *mac);
    }

    OverlayLayer overlay_;
    AddressView* addresses_;

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
