// Per-mode drivers: what differs between the modes of a network, behind one
// small interface (netavark's validate / setup / teardown is the model).
// The routed family (nat, routed, isolated: a bridge of our own with the
// gateway addresses) and bridge takeover (the host's uplink moved onto a
// bridge) are the two drivers; a new mode is a new driver and one line in
// make_driver, not branches in the manager. Everything common to every mode
// (the nftables table, dnsmasq, sysctls, ports, the runtime record) stays in
// core::Manager.
#pragma once

#include "core/undo.hpp"
#include "model/network.hpp"
#include "plan/kernel_view.hpp"
#include "plan/planner.hpp"
#include "store/layout.hpp"

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace kvmnet::core {

class AddressView;  // core/kernel_conflicts.hpp

// What a driver may touch.
struct DriverContext {
    plan::LinkAdapter& links;
    const store::Layout& layout;
    // The host's addresses for the conflict check (ManagerOptions::addresses).
    AddressView* addresses = nullptr;
};

// What a repair of the network's links did.
struct LinkRepair {
    std::vector<std::string> done;  // in words, for the log and the signal
    std::string what;               // the most drastic: "bridge", "uplink", "link" or "address"
    bool recreated = false;         // a new bridge: what hung on the old one goes onto it again
};

class ModeDriver {
public:
    explicit ModeDriver(DriverContext context) : links_(context.links), layout_(context.layout) {}
    virtual ~ModeDriver() = default;
    ModeDriver(const ModeDriver&) = delete;
    ModeDriver& operator=(const ModeDriver&) = delete;

    // Refuses a start that the kernel as it is cannot take, before anything changes.
    virtual void validate(const model::Network& n) = 0;
    // Makes (or adopts, after a daemon restart) the network's bridge and
    // what the mode hangs on it, pushing each change's inverse to `undo`;
    // `step` names the step under way for the error.
    virtual void setup(const model::Network& n, Undo& undo, std::string& step) = 0;
    // What only this mode has to undo before the bridge is deleted; the
    // problems in words (empty: all undone).
    virtual std::vector<std::string> teardown(const model::Network& n) = 0;
    // A restarted daemon adopts the running network: settings a crash may
    // have left half applied are applied again (no change when they match).
    virtual void adopt(const model::Network& n) = 0;
    // Repairs drift of a running network's links (its bridge as observed
    // now: `bridge`). `allowed` asks the repair budget once before the first
    // change; when it says no, nothing is changed.
    virtual LinkRepair repair(const model::Network& n, const std::optional<plan::LinkInfo>& bridge,
                              const std::function<bool()>& allowed) = 0;
    // A guest port was attached to the bridge.
    virtual void port_attached(const model::Network& /*n*/, const std::string& /*port*/) {}
    // The network as this host's kernel and dnsmasq carry it, where that
    // depends on the host (an overlay's MTU and DHCP slice); `n` otherwise.
    virtual model::Network effective(const model::Network& n) { return n; }
    // Whether link `name` (other than the bridge and the uplink) is one the
    // mode keeps on the bridge, so its changes call for a repair.
    virtual bool owns_link(const model::Network& /*n*/, const std::string& /*name*/) const { return false; }

protected:
    plan::LinkAdapter& links_;
    const store::Layout& layout_;
};

std::unique_ptr<ModeDriver> make_driver(model::Mode mode, DriverContext context);

// Shared by the drivers. Applies the planner's link operations for `n`
// (bridge, alias, MTU, addresses, up), pushing inverses to `undo`.
// A bridge is created only after `layout`'s bridge_creating_marker names it.
void apply_link_ops(plan::LinkAdapter& links, const store::Layout& layout, const model::Network& n,
                    const std::vector<plan::LinkOp>& ops, const std::optional<plan::LinkInfo>& observed, Undo& undo,
                    std::string& step);
// Whether `bridge`, found without an alias, is the one a start or repair of
// `network` created and a crash kept from being marked.
bool half_created_bridge(const store::Layout& layout, const std::string& network, const plan::LinkInfo& bridge);
// The bridge as plan::plan_bridge wants it, from what is there now.
// `mac`: the bridge's MAC at creation (nothing: the kernel's choice).
void configure_bridge(plan::LinkAdapter& links, const store::Layout& layout, const model::Network& n, Undo& undo,
                      std::string& step, const std::optional<model::Mac>& mac = {});

}  // namespace kvmnet::core
