// Forwards in the daemon without D-Bus: core::Manager (validation, store,
// commit through the real kernel adapters) driven in-process, in a
// namespace bench.sh made for it.
#include "bench.hpp"
#include "core/event_loop.hpp"
#include "core/manager.hpp"
#include "core/phases.hpp"
#include "kernel/netlink_links.hpp"
#include "kernel/nftables.hpp"
#include "model/forward.hpp"

#include <iostream>
#include <map>

namespace kvmnet::bench {

namespace {

std::vector<model::PortForward> forwards(unsigned first, unsigned count)
{
    std::vector<model::PortForward> out;
    out.reserve(count);
    for (unsigned i = first; i < first + count; ++i)
        out.push_back(model::parse_forward(forward_json(forward_spec(i))));
    return out;
}

const char* network_document = R"({"name": "fwbench", "mode": "nat", "bridge": "kvmbfw",
    "ipv4": {"address": "192.168.150.1/24", "dhcp": {"ranges": ["192.168.150.220-192.168.150.250"]}}})";

}  // namespace

int cmd_daemon_forwards(const Args& args)
{
    require_safe_netns();
    core::ManagerOptions options;
    options.state_dir = args.need("state-dir");
    options.runtime_dir = args.need("runtime-dir");
    const auto sizes = args.numbers("sizes", "1000,10000,100000");
    const auto at = args.numbers("at", "0,1000,10000,100000");
    const unsigned bulk_runs = args.number("runs", 5);
    const unsigned runs_100k = args.number("max-runs-100k", 3);
    const unsigned adds = args.number("adds", 200);

    core::EventLoop loop;
    kernel::NetlinkLinks links;
    kernel::Nftables firewall;
    core::Manager manager(options, loop, links, firewall);
    manager.load();
    const std::string name = "fwbench";
    auto fresh = [&] {
        manager.create(network_document);
        manager.start(name);
    };

    for (const unsigned size : sizes) {
        const auto batch = forwards(0, size);
        const unsigned runs = size >= 100000 ? std::min(bulk_runs, runs_100k) : bulk_runs;
        for (unsigned r = 0; r < runs; ++r) {
            fresh();
            auto copy = batch;  // made before the clock starts: the call may take its argument by value
            const auto start = Clock::now();
            manager.add_forwards(name, std::move(copy));
            emit("commit_bulk", "kvmnet-daemon", size, "ms", ms_since(start));
            manager.remove(name);
        }
    }
    for (const unsigned n : at) {
        fresh();
        if (n > 0) manager.add_forwards(name, forwards(0, n));
        for (unsigned r = 0; r < adds; ++r) {
            auto one = forwards(200000 + r, 1);
            const model::ForwardKey key = model::forward_key(one.front());
            const auto start = Clock::now();
            manager.add_forwards(name, std::move(one));
            emit("add_one", "kvmnet-daemon", n, "ms", ms_since(start));
            manager.remove_forward(name, key);
        }
        manager.remove(name);
    }
    return 0;
}

}  // namespace kvmnet::bench

namespace kvmnet::bench {

// The unprivileged reads of a running network with N forwards (issue 11,
// item 5): how long the event loop is held by one Statistics, one
// ListForwards (the whole list) and one 1000-forward page.
int cmd_daemon_reads(const Args& args)
{
    require_safe_netns();
    core::ManagerOptions options;
    options.state_dir = args.need("state-dir");
    options.runtime_dir = args.need("runtime-dir");
    const auto sizes = args.numbers("sizes", "10000,100000");
    const unsigned runs = args.number("runs", 5);

    core::EventLoop loop;
    kernel::NetlinkLinks links;
    kernel::Nftables firewall;
    core::Manager manager(options, loop, links, firewall);
    manager.load();
    const std::string name = "fwbench";
    for (const unsigned size : sizes) {
        manager.create(network_document);
        manager.start(name);
        manager.add_forwards(name, forwards(0, size));
        for (unsigned r = 0; r < runs; ++r) {
            auto start = Clock::now();
            (void)manager.statistics(name);
            emit("read_statistics", "kvmnet-daemon", size, "ms", ms_since(start));
            start = Clock::now();
            try {
                (void)manager.list_forwards_text(name);
            } catch (const Error& e) {
                // Past the reply limit the whole list is refused (TooLarge):
                // what counts is how long the refusal held the loop.
                if (e.kind() != ErrorKind::TooLarge) throw;
            }
            emit("read_list_forwards", "kvmnet-daemon", size, "ms", ms_since(start));
            start = Clock::now();
            (void)manager.list_forwards_page(name, "", 1000);
            emit("read_forwards_page", "kvmnet-daemon", size, "ms", ms_since(start));
        }
        manager.remove(name);
    }
    return 0;
}

}  // namespace kvmnet::bench

namespace kvmnet::bench {

namespace {

// The phases of the call being timed (core::phases), in the order they end.
std::vector<std::pair<const char*, Clock::time_point>> phase_marks;
void record_phase(const char* phase) { phase_marks.emplace_back(phase, Clock::now()); }

// What the D-Bus service does after every change (api/service.cpp,
// NetworkObject::refresh): it reads the network's properties to emit
// PropertiesChanged; Revision hashes the whole document.
class PropertyReader final : public core::ManagerListener {
public:
    explicit PropertyReader(core::Manager& manager) : manager_(manager) {}
    void network_added(const std::string&) override {}
    void network_removed(const std::string&) override {}
    void network_changed(const std::string& name) override
    {
        revision_ = manager_.revision(name);
        count_ = manager_.spec(name).forwards.size();
    }
    void mac_conflict(const std::string&, const std::string&, const std::vector<std::string>&) override {}
    void lease_changed(const std::string&, const std::string&, const std::string&, const std::string&,
                       const std::string&) override
    {
    }

private:
    core::Manager& manager_;
    std::string revision_;
    std::size_t count_ = 0;
};

// One figure per phase of one call ("phase:NAME"), and the call in all.
void emit_phases(const std::string& variant, std::uint64_t n, Clock::time_point start)
{
    std::map<std::string, double> spent;
    Clock::time_point from = start;
    for (const auto& [phase, at] : phase_marks) {
        spent[phase] += std::chrono::duration<double, std::milli>(at - from).count();
        from = at;
    }
    for (const auto& [phase, ms] : spent)
        emit("phase:" + phase, variant, n, "ms", ms);
    phase_marks.clear();
}

}  // namespace

// Where the time of one AddForwards goes in the daemon (docs/performance.md,
// "Bulk forwards"): the JSON text of N forwards, as the bus delivers it,
// through core::Manager::add_forwards with the real adapters, each phase
// timed by the marks of core/phases.hpp; and one add and one remove at N
// existing, in all.
int cmd_bulk_breakdown(const Args& args)
{
    require_safe_netns();
    core::ManagerOptions options;
    options.state_dir = args.need("state-dir");
    options.runtime_dir = args.need("runtime-dir");
    const auto sizes = args.numbers("sizes", "10000,100000");
    const auto at = args.numbers("at", "0,100000");
    const unsigned runs = args.number("runs", 3);
    const unsigned adds = args.number("adds", 100);
    const std::string variant = args.get("variant", "kvmnet-daemon");

    core::EventLoop loop;
    kernel::NetlinkLinks links;
    kernel::Nftables firewall;
    core::Manager manager(options, loop, links, firewall);
    PropertyReader properties(manager);
    manager.set_listener(&properties);
    manager.load();
    const std::string name = "fwbench";
    auto fresh = [&] {
        manager.create(network_document);
        manager.start(name);
    };
    auto document = [](unsigned first, unsigned count) {
        nlohmann::json list = nlohmann::json::array();
        for (unsigned i = first; i < first + count; ++i)
            list.push_back(forward_json(forward_spec(i)));
        return list.dump();
    };

    // The typed form (AddForwardsTyped) as the service receives it, its
    // runs alternating with the JSON text's.
    const std::string typed = variant + "-typed";

    core::phases::recorder = record_phase;
    for (const unsigned size : sizes) {
        const std::string text = document(0, size);
        const std::vector<model::ForwardFields> structs = forward_fields(size);
        for (unsigned r = 0; r < runs; ++r) {
            fresh();
            phase_marks.clear();
            auto start = Clock::now();
            manager.add_forwards(name, text);
            emit("commit_bulk", variant, size, "ms", ms_since(start));
            emit_phases(variant, size, start);
            manager.remove(name);

            fresh();
            phase_marks.clear();
            start = Clock::now();
            auto forwards = model::forwards_from_fields(structs);
            core::phases::mark("forwards from D-Bus");
            manager.add_forwards(name, std::move(forwards), false);
            emit("commit_bulk", typed, size, "ms", ms_since(start));
            emit_phases(typed, size, start);
            manager.remove(name);
        }
    }
    core::phases::recorder = nullptr;
    for (const unsigned n : at) {
        fresh();
        if (n > 0) manager.add_forwards(name, document(0, n));
        for (unsigned r = 0; r < adds; ++r) {
            const ForwardSpec one = forward_spec(200000 + r);
            const std::string text = forward_json(one).dump();
            const model::ForwardKey key = model::make_forward_key("tcp", one.host_address, one.host_port);
            auto start = Clock::now();
            manager.add_forwards(name, text);
            emit("add_one", variant, n, "ms", ms_since(start));
            start = Clock::now();
            manager.remove_forward(name, key);
            emit("remove_one", variant, n, "ms", ms_since(start));
        }
        manager.remove(name);
    }
    manager.set_listener(nullptr);
    return 0;
}

}  // namespace kvmnet::bench
