#include "core/mode_driver.hpp"

#include "core/log.hpp"
#include "model/error.hpp"
#include "store/files.hpp"

namespace kvmnet::core {

std::unique_ptr<ModeDriver> make_routed_driver(DriverContext context);  // driver_routed.cpp
std::unique_ptr<ModeDriver> make_bridge_driver(DriverContext context);  // driver_bridge.cpp

std::unique_ptr<ModeDriver> make_driver(model::Mode mode, DriverContext context)
{
    switch (mode) {
    case model::Mode::nat:
    case model::Mode::routed:
    case model::Mode::isolated: return make_routed_driver(context);
    case model::Mode::bridge: return make_bridge_driver(context);
    }
    throw Error(ErrorKind::Unsupported, "no driver for mode " + std::string(model::mode_name(mode)));
}

bool half_created_bridge(const store::Layout& layout, const std::string& network, const plan::LinkInfo& bridge)
{
    if (!bridge.alias.empty()) return false;
    const auto named = store::read_file(layout.bridge_creating_marker(network));
    return named && *named == bridge.name + "\n";
}

void apply_link_ops(plan::LinkAdapter& links, const store::Layout& layout, const model::Network& n,
                    const std::vector<plan::LinkOp>& ops, const std::optional<plan::LinkInfo>& observed, Undo& undo,
                    std::string& step)
{
    for (const plan::LinkOp& op : ops) {
        step = plan::describe(op);
        log_debug("network " + n.name + ": " + step, n.name);
        std::visit(
            [&](const auto& o) {
                using T = std::decay_t<decltype(o)>;
                if constexpr (std::is_same_v<T, plan::CreateBridge>) {
                    // In the runtime directory, which a reboot empties: no fsync.
                    store::make_directories(layout.network_dir(n.name), 0755);
                    store::write_replace(layout.bridge_creating_marker(n.name), o.name + "\n");
                    links.create_bridge(o.name, o.options);
                    undo.push("delete bridge " + o.name, [&links, o] { links.delete_link(o.name); });
                } else if constexpr (std::is_same_v<T, plan::SetAlias>) {
                    links.set_alias(o.name, o.alias);
                    store::remove_file(layout.bridge_creating_marker(n.name));
                } else if constexpr (std::is_same_v<T, plan::SetMtu>) {
                    const std::uint32_t before = observed ? observed->mtu : 0;
                    links.set_mtu(o.name, o.mtu);
                    if (before) undo.push("restore MTU", [&links, o, before] { links.set_mtu(o.name, before); });
                } else if constexpr (std::is_same_v<T, plan::AddAddress>) {
                    if (o.address.is_v6()) {
                        plan::AddressInfo info;
                        info.address = o.address;
                        info.prefix_length = o.prefix_length;
                        info.flags = o.flags;
                        links.add_address_info(o.name, info);
                    } else {
                        links.add_address(o.name, o.address, o.prefix_length);
                    }
                    undo.push("remove address",
                              [&links, o] { links.delete_address(o.name, o.address, o.prefix_length); });
                } else if constexpr (std::is_same_v<T, plan::SetUp>) {
                    links.set_up(o.name, true);
                }
            },
            op);
    }
}

void configure_bridge(plan::LinkAdapter& links, const store::Layout& layout, const model::Network& n, Undo& undo,
                      std::string& step, const std::optional<model::Mac>& mac)
{
    step = "configuring bridge " + n.bridge;
    const auto observed = links.find_link(n.bridge);
    // The bridge's own addresses are all plan_bridge looks at: not a dump of every network's.
    const auto addresses = observed ? links.list_addresses_of(observed->index) : std::vector<plan::AddressInfo>{};
    apply_link_ops(links, layout, n, plan::plan_bridge(n, observed, addresses, mac), observed, undo, step);
}

}  // namespace kvmnet::core
