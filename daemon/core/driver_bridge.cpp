// Bridge mode: taking over the host's uplink NIC. The uplink's addresses
// and routes move to a new bridge that carries the uplink's MAC, so the host
// keeps its addresses and the LAN sees no new station; guests then sit on
// the LAN with their own MACs. What was moved is recorded in the runtime
// directory before anything changes, so that stop, rollback, an unconfirmed
// start and a daemon restarted in between all put back exactly that.
#include "core/log.hpp"
#include "core/mode_driver.hpp"
#include "core/takeover_record.hpp"
#include "model/error.hpp"
#include "plan/route_text.hpp"
#include "store/files.hpp"

#include <algorithm>
#include <optional>

namespace kvmnet::core {
namespace {

std::string route_text(const plan::RouteInfo& r)
{
    std::string text = plan::destination_text(r);
    if (r.gateway) text.append(" via ").append(r.gateway->str());
    return text.append(" metric ").append(std::to_string(r.metric)).append(" table ").append(std::to_string(r.table));
}

class BridgeDriver final : public ModeDriver {
public:
    using ModeDriver::ModeDriver;

    // The uplink's checks belong to the takeover itself: after a daemon
    // restart the same bridge is adopted, not refused.
    void validate(const model::Network&) override {}

    void setup(const model::Network& n, Undo& undo, std::string& step) override
    {
        take_over_uplink(n, undo, step);
        configure_bridge(links_, layout_, n, undo, step);
    }

    std::vector<std::string> teardown(const model::Network& n) override { return restore_uplink(n); }

    void adopt(const model::Network&) override {}

    LinkRepair repair(const model::Network& n, const std::optional<plan::LinkInfo>& bridge,
                      const std::function<bool()>& allowed) override;

private:
    void take_over_uplink(const model::Network& n, Undo& undo, std::string& step);
    // Puts the uplink's addresses and routes back and deletes the bridge;
    // also the rollback of a failed or unconfirmed takeover.
    std::vector<std::string> restore_uplink(const model::Network& n);
    // The bridge of a takeover, ours by its owner mark, up, with `uplink`
    // enslaved (start and the repair of a deleted bridge).
    void create_takeover_bridge(const model::Network& n, const plan::LinkInfo& uplink, std::string& step);
    // Self-healing: the deleted bridge made again on the free uplink, with
    // the record's static addresses and routes; what was done, in words
    // (empty when the uplink is missing or enslaved elsewhere).
    std::vector<std::string> recreate_takeover_bridge(const model::Network& n);
    // Re-adds (apply) or lists the recorded static addresses and routes
    // missing from the bridge at `bridge_index`.
    std::vector<std::string> restore_takeover_config(const model::Network& n, int bridge_index, bool apply);
};

}  // namespace

void BridgeDriver::take_over_uplink(const model::Network& n, Undo& undo, std::string& step)
{
    step = "checking uplink " + n.uplink;
    const auto uplink = links_.find_link(n.uplink);
    if (!uplink) throw Error(ErrorKind::NotFound, "uplink: there is no interface named " + n.uplink);
    const auto bridge = links_.find_link(n.bridge);

    // Adoption after a daemon restart: the takeover is already in place.
    if (bridge && bridge->alias == plan::owner_alias(n.name)) {
        // A takeover is complete when the uplink is enslaved and every
        // recorded address sits on the bridge; one interrupted half-way (a
        // crash) is put back first and then done again.
        std::string problem;
        const auto record = read_takeover_record(layout_.takeover_record(n.name), problem);
        bool complete = uplink->master_index == bridge->index && record;
        const auto now = links_.list_addresses();
        if (complete)
            for (const plan::AddressInfo& recorded : record->addresses)
                complete = complete && std::any_of(now.begin(), now.end(), [&](const plan::AddressInfo& a) {
                               return a.link_index == bridge->index && a.address == recorded.address &&
                                      a.prefix_length == recorded.prefix_length;
                           });
        if (complete) {
            log_info("network " + n.name + ": adopting the takeover of " + n.uplink, n.name);
            return;
        }
        log_warning("network " + n.name + ": found an unfinished takeover of " + n.uplink + "; undoing it first",
                    n.name);
        for (const auto& p : restore_uplink(n))
            log_error("network " + n.name + ": " + p, n.name);
        return take_over_uplink(n, undo, step);
    }
    if (uplink->wireless)
        throw Error(ErrorKind::Unsupported,
                    "uplink: " + n.uplink +
                        " is a wireless interface, and 802.11 lets a station send only its own MAC, so guests cannot "
                        "be bridged onto it; use a nat or routed network instead");
    if (uplink->kind == "bridge")
        throw Error(ErrorKind::Conflict, "uplink: " + n.uplink + " is itself a bridge; name the physical interface");
    if (uplink->master_index != 0) {
        std::string master = std::to_string(uplink->master_index);
        for (const auto& l : links_.list_links())
            if (l.index == uplink->master_index) master = l.name;
        throw Error(ErrorKind::Conflict, "uplink: " + n.uplink + " is already enslaved to " + master);
    }
    if (bridge)
        throw Error(ErrorKind::Conflict,
                    "bridge: interface " + n.bridge + " already exists and is not managed by this network");

    const auto all_routes = links_.list_routes();
    // Multipath (and nexthop-object) routes are listed without their links,
    // so we cannot tell whether they use the uplink, nor recreate them.
    for (const auto& r : all_routes)
        if (r.unreproducible)
            throw Error(
                ErrorKind::Unsupported,
                "uplink: the host has a multipath or nexthop-object route, which a bridge takeover cannot move; "
                "replace it with single-path routes first");
    const auto addresses = plan::takeover_addresses(links_.list_addresses(), uplink->index);
    const auto routes = plan::takeover_routes(all_routes, uplink->index);

    // Recorded before the first change, so a crash at any later point
    // still knows what to put back.
    step = "recording the uplink's configuration";
    store::make_directories(layout_.network_dir(n.name), 0755);
    write_takeover_record(layout_.takeover_record(n.name), {n.uplink, n.bridge, addresses, routes});
    // One inverse covers every later step: restore_uplink tolerates steps
    // that did not happen yet, and drops the record once all is back.
    undo.push("restore uplink " + n.uplink, [this, n] {
        for (const auto& p : restore_uplink(n))
            log_error("rollback: " + p, n.name);
    });

    create_takeover_bridge(n, *uplink, step);

    // The order that keeps the host reachable (checked against the kernel in
    // tests/kernel/takeover_adapter_check.cpp): the addresses go onto the
    // bridge while still on the uplink (the same address on two links is
    // allowed), so routes through a gateway find its subnet; each route is
    // then deleted before it is re-added, since the kernel refuses a second
    // route with the same table, prefix and metric even on another link;
    // the uplink's addresses go last, in reverse order, because deleting an
    // IPv4 primary also deletes its secondaries.
    for (const auto& a : addresses) {
        step = "adding address " + address_text(a) + " to " + n.bridge;
        links_.add_address_info(n.bridge, a);
    }
    for (const auto& r : routes) {
        step = "moving route " + route_text(r) + " to " + n.bridge;
        try {
            links_.delete_route(r);
        } catch (const Error& err) {
            if (err.kind() != ErrorKind::NotFound) throw;
        }
        links_.add_route(n.bridge, r);
    }
    for (auto a = addresses.rbegin(); a != addresses.rend(); ++a) {
        step = "removing address " + address_text(*a) + " from " + n.uplink;
        try {
            links_.delete_address(n.uplink, a->address, a->prefix_length);
        } catch (const Error& err) {
            if (err.kind() != ErrorKind::NotFound) throw;  // a secondary that went with its primary
        }
    }
    log_info("network " + n.name + ": " + n.uplink + " taken over by " + n.bridge + " (" +
                 std::to_string(addresses.size()) + " addresses, " + std::to_string(routes.size()) + " routes moved)",
             n.name, MessageId::uplink_taken_over);
}

void BridgeDriver::create_takeover_bridge(const model::Network& n, const plan::LinkInfo& uplink, std::string& step)
{
    step = "creating bridge " + n.bridge;
    plan::BridgeOptions options = plan::bridge_options(n, uplink.mac);
    if (options.mtu == 0) options.mtu = uplink.mtu;
    links_.create_bridge(n.bridge, options);
    try {
        links_.set_alias(n.bridge, plan::owner_alias(n.name));
    } catch (...) {
        // Not yet marked as ours, so restore_uplink would not recognise it.
        links_.delete_link(n.bridge);
        throw;
    }

    step = "bringing " + n.bridge + " up";
    links_.set_up(n.bridge, true);

    step = "enslaving " + n.uplink + " to " + n.bridge;
    links_.set_master(n.uplink, n.bridge);
}

std::vector<std::string> BridgeDriver::recreate_takeover_bridge(const model::Network& n)
{
    std::vector<std::string> done;
    // Without its uplink (gone, or enslaved elsewhere since) the bridge
    // would carry the host's addresses onto nothing: the network stays
    // degraded until the uplink is back (link_changed repairs again then).
    const auto uplink = links_.find_link(n.uplink);
    if (!uplink || uplink->master_index != 0) return done;
    std::string step;
    create_takeover_bridge(n, *uplink, step);
    if (!uplink->up) links_.set_up(n.uplink, true);
    done.push_back("recreated bridge " + n.bridge + " on uplink " + n.uplink);
    const auto bridge = links_.find_link(n.bridge);
    if (!bridge) return done;
    // The addresses left with the deleted bridge; the uplink has none of
    // them since the takeover, so the record is what the host had.
    for (auto& d : restore_takeover_config(n, bridge->index, true))
        done.push_back(std::move(d));
    return done;
}

std::vector<std::string> BridgeDriver::restore_uplink(const model::Network& n)
{
    std::vector<std::string> problems;
    auto attempt = [&](const std::string& what, const std::function<void()>& action) {
        try {
            action();
        } catch (const Error& err) {
            if (err.kind() == ErrorKind::AlreadyExists) return;  // that step had not been undone by the kernel
            problems.push_back(what + ": " + err.what());
        } catch (const std::exception& err) {
            problems.push_back(what + ": " + err.what());
        }
    };
    std::string unreadable;
    auto record = read_takeover_record(layout_.takeover_record(n.name), unreadable);
    const auto our_bridge = [&]() -> std::optional<plan::LinkInfo> {
        auto bridge = links_.find_link(n.bridge);
        if (bridge && bridge->alias == plan::owner_alias(n.name)) return bridge;
        return std::nullopt;
    };
    const auto bridge = our_bridge();
    // A start refused before its first change (uplink enslaved elsewhere,
    // say) left nothing to undo.
    if (!record && unreadable.empty() && !bridge) return problems;
    if (!record) {
        problems.push_back("no readable record of the takeover of " + n.uplink + " (" +
                           (unreadable.empty() ? layout_.takeover_record(n.name) : unreadable) +
                           "); its addresses and routes cannot be put back");
        record.emplace();
    }

    // Remaining lifetimes (for addresses from DHCP or SLAAC) are taken from
    // the bridge, where they kept counting down.
    std::vector<plan::AddressInfo> now_on_bridge;
    if (bridge)
        for (const auto& a : links_.list_addresses())
            if (a.link_index == bridge->index) now_on_bridge.push_back(a);

    // Only ever release the uplink from our own bridge, never from another.
    const auto uplink = links_.find_link(n.uplink);
    if (uplink && bridge && uplink->master_index == bridge->index)
        attempt("releasing " + n.uplink, [&] { links_.set_master(n.uplink, ""); });
    if (bridge) attempt("deleting bridge " + n.bridge, [&] { links_.delete_link(n.bridge); });
    if (!uplink) {
        problems.push_back("uplink " + n.uplink + " has disappeared; its addresses and routes cannot be put back");
    } else {
        for (plan::AddressInfo a : record->addresses) {
            for (const auto& current : now_on_bridge)
                if (current.address == a.address && current.prefix_length == a.prefix_length) {
                    a.valid_lifetime = current.valid_lifetime;
                    a.preferred_lifetime = current.preferred_lifetime;
                }
            attempt("putting address " + address_text(a) + " back on " + n.uplink,
                    [&] { links_.add_address_info(n.uplink, a); });
        }
        for (const plan::RouteInfo& r : record->routes)
            attempt("putting route " + route_text(r) + " back on " + n.uplink, [&] { links_.add_route(n.uplink, r); });
    }
    if (problems.empty()) {
        store::remove_file(layout_.takeover_record(n.name));
        log_info("network " + n.name + ": " + n.uplink + " given back by " + n.bridge + " (" +
                     std::to_string(record->addresses.size()) + " addresses, " + std::to_string(record->routes.size()) +
                     " routes put back)",
                 n.name, MessageId::uplink_restored);
    }
    return problems;
}

// Self-healing of a bridge-mode network (manager_repair.cpp): the takeover
// record's addresses and routes that are missing from the bridge (the
// kernel drops IPv6 addresses and routes when a link goes down; someone may
// delete them). Only static configuration is restored: an address with a
// finite lifetime or a route from DHCP or router advertisements belongs to
// its client, which may have replaced it on purpose.
std::vector<std::string> BridgeDriver::restore_takeover_config(const model::Network& n, int bridge_index, bool apply)
{
    constexpr std::uint8_t rtprot_ra = 9, rtprot_dhcp = 16;
    std::vector<std::string> result;
    std::string unreadable;
    const auto record = read_takeover_record(layout_.takeover_record(n.name), unreadable);
    if (!record) return result;
    const auto addresses = links_.list_addresses();
    for (const plan::AddressInfo& a : record->addresses) {
        if (a.valid_lifetime != 0xffffffffu) continue;
        const bool present = std::any_of(addresses.begin(), addresses.end(), [&](const plan::AddressInfo& x) {
            return x.link_index == bridge_index && x.address == a.address && x.prefix_length == a.prefix_length;
        });
        if (present) continue;
        if (apply) links_.add_address_info(n.bridge, a);
        result.push_back("re-added address " + address_text(a));
    }
    const auto routes = links_.list_routes();
    for (const plan::RouteInfo& r : record->routes) {
        if (r.protocol == rtprot_ra || r.protocol == rtprot_dhcp) continue;
        const bool present = std::any_of(routes.begin(), routes.end(), [&](const plan::RouteInfo& x) {
            return x.link_index == bridge_index && x.family == r.family && x.destination == r.destination &&
                   x.prefix_length == r.prefix_length && x.table == r.table && x.metric == r.metric &&
                   x.gateway == r.gateway;
        });
        if (present) continue;
        if (apply) {
            try {
                links_.add_route(n.bridge, r);
            } catch (const std::exception& err) {
                log_warning("network " + n.name + ": re-adding route " + route_text(r) + ": " + err.what(), n.name);
                continue;
            }
        }
        result.push_back("re-added route " + route_text(r));
    }
    return result;
}

LinkRepair BridgeDriver::repair(const model::Network& n, const std::optional<plan::LinkInfo>& bridge,
                                const std::function<bool()>& allowed)
{
    // Otherwise its state, the uplink and the recorded static addresses and
    // routes are repaired.
    LinkRepair r;
    if (!bridge) {
        // Deleted: the host lost the addresses it carried. Made again as
        // the takeover made it, from the takeover record; the manager then
        // puts what hung on it back.
        if (!allowed()) return r;
        r.done = recreate_takeover_bridge(n);
        if (r.done.empty()) return r;  // no free uplink: degraded until it is back
        r.what = "bridge";
        r.recreated = true;
        return r;
    }
    const auto uplink = links_.find_link(n.uplink);
    const bool set_up = !bridge->up;
    // Only a free uplink is re-enslaved: one that someone enslaved
    // elsewhere stays theirs.
    const bool reattach = uplink && uplink->master_index == 0;
    const bool readd = !restore_takeover_config(n, bridge->index, false).empty();
    if ((!set_up && !reattach && !readd) || !allowed()) return r;
    if (set_up) {
        links_.set_up(n.bridge, true);
        r.done.push_back("set bridge " + n.bridge + " up again");
        r.what = "link";
    }
    if (reattach) {
        links_.set_master(n.uplink, n.bridge);
        if (!uplink->up) links_.set_up(n.uplink, true);
        r.done.push_back("attached uplink " + n.uplink + " to " + n.bridge + " again");
        r.what = "uplink";
    }
    // After setting it up: routes need their link up.
    for (auto& d : restore_takeover_config(n, bridge->index, true)) {
        r.done.push_back(std::move(d));
        if (r.what.empty()) r.what = "address";
    }
    return r;
}

std::unique_ptr<ModeDriver> make_bridge_driver(DriverContext context)
{
    return std::make_unique<BridgeDriver>(context);
}

}  // namespace kvmnet::core
