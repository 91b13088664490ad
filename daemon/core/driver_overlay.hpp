// The overlay layer of the routed family's driver (docs/overlay.md): a VXLAN
// device per network with an "overlay" section, enslaved to the network's
// bridge, its flood list holding one all-zeros FDB entry per static peer
// (head-end replication), its MTU and the bridge's taken from the underlay
// (less the 50 bytes of VXLAN encapsulation), and the bridge carrying the
// anycast gateway MAC that every host derives alike. The routed driver
// composes it; networks without an overlay pass through it untouched.
#pragma once

#include "core/undo.hpp"
#include "model/network.hpp"
#include "plan/kernel_view.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace kvmnet::core {

class OverlayLayer {
public:
    explicit OverlayLayer(plan::LinkAdapter& links) : links_(links) {}

    // Where the tunnel starts: this host's underlay address, its link and
    // that link's MTU. InvalidArgument naming overlay.local or
    // overlay.local_interface when this host has no such address or link.
    struct Underlay {
        model::Ipv4 local;
        int index = 0;
        std::uint32_t mtu = 0;
    };
    Underlay underlay(const model::Network& n);

    // The network as the kernel and dnsmasq must see it on this host: the
    // MTU from the underlay, the DHCP slice resolved. `n` itself without an
    // overlay.
    model::Network effective(const model::Network& n);
    // The bridge MAC the routed driver gives the bridge (nothing without overlay).
    std::optional<model::Mac> bridge_mac(const model::Network& n) const;

    // Refuses a start this host cannot carry (no underlay, a network MTU the
    // underlay cannot fit, a VXLAN device of that name that is not ours).
    void validate(const model::Network& n);
    // After the bridge: the VXLAN device, its port and its flood list.
    void setup(const model::Network& n, Undo& undo, std::string& step);
    // Puts back what drifted; `allowed` is asked before the first change.
    // Each repair in words (empty: nothing was wrong or nothing allowed).
    std::vector<std::string> repair(const model::Network& n, const std::function<bool()>& allowed);
    std::vector<std::string> teardown(const model::Network& n);
    // Whether a change of link `name` concerns this network's overlay.
    bool owns_link(const model::Network& n, const std::string& name) const;

private:
    // The per-host address (docs/overlay.md): on the bridge as /32, the source
    // of the subnet's route, its MAC rewritten on the VXLAN port. Each change
    // in words (empty: nothing was missing); `allowed`, when given, is asked
    // before the first change.
    std::vector<std::string> host_address(const model::Network& n, const std::function<bool()>* allowed);
    plan::VxlanOptions wanted(const model::Network& n, const Underlay& u) const;
    // No duplicate address detection on the bridge (its accept_dad sysctl).
    void skip_dad(const model::Network& n);
    plan::LinkAdapter& links_;
};

}  // namespace kvmnet::core
