// Subcommands that talk to nf_tables through kvmnet's own adapter
// (kernel::Nftables) with the daemon's own ruleset (plan::build_ruleset)
// and forward elements (plan::forward_elements): the time to kernel commit
// of forwards, and the same ruleset on a hand-made router for the
// connection-rate runs.
#include "bench.hpp"
#include "kernel/nftables.hpp"
#include "model/forward.hpp"
#include "model/network.hpp"
#include "plan/planner.hpp"
#include "plan/ruleset.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <iostream>

namespace kvmnet::bench {

ForwardSpec forward_spec(unsigned i)
{
    return {"203.0.113." + std::to_string(11 + i / 50000), 10000 + i % 50000,
            "192.168.150." + std::to_string(10 + i % 200), 80};
}

nlohmann::json forward_json(const ForwardSpec& f)
{
    return {{"proto", "tcp"},
            {"host_address", f.host_address},
            {"host_port", f.host_port},
            {"guest", f.guest},
            {"guest_port", f.guest_port}};
}

std::vector<model::ForwardFields> forward_fields(unsigned count)
{
    std::vector<model::ForwardFields> all(count);
    for (unsigned i = 0; i < count; ++i) {
        const ForwardSpec f = forward_spec(i);
        all[i] = {"tcp",
                  f.host_address,
                  static_cast<std::uint16_t>(f.host_port),
                  0,
                  f.guest,
                  static_cast<std::uint16_t>(f.guest_port),
                  "",
                  0};
    }
    return all;
}

namespace {

// The network the control-plane figures use (bench.sh's "fwbench").
const char* bench_network = R"({"name": "fwbench", "mode": "nat", "bridge": "kvmbfw",
    "ipv4": {"address": "192.168.150.1/24", "dhcp": {"ranges": ["192.168.150.220-192.168.150.250"]}}})";

// The element changes that add (or delete) forwards `specs` of `network`,
// exactly as the daemon makes them.
std::vector<plan::ElementChange> changes(const std::vector<plan::Set>& sets, const std::vector<ForwardSpec>& specs,
                                         const std::string& network, bool add)
{
    std::vector<plan::ElementChange> out;
    for (const ForwardSpec& spec : specs) {
        for (plan::SetElements& part : plan::forward_elements(model::parse_forward(forward_json(spec)), network)) {
            const auto set = std::find_if(sets.begin(), sets.end(), [&](const auto& s) { return s.name == part.set; });
            if (set == sets.end()) throw std::runtime_error("no set " + part.set + " in the ruleset");
            auto same = std::find_if(out.begin(), out.end(), [&](const auto& c) { return c.set == &*set; });
            if (same == out.end()) {
                out.push_back({&*set, {}, add});
                same = out.end() - 1;
            }
            same->elements.insert(same->elements.end(), part.elements.begin(), part.elements.end());
        }
    }
    return out;
}

std::vector<ForwardSpec> specs(unsigned first, unsigned count)
{
    std::vector<ForwardSpec> out;
    out.reserve(count);
    for (unsigned i = first; i < first + count; ++i)
        out.push_back(forward_spec(i));
    return out;
}

}  // namespace

int cmd_nft_elements(const Args& args)
{
    require_safe_netns();
    const auto sizes = args.numbers("sizes", "1000,10000,100000");
    const auto at = args.numbers("at", "0,1000,10000,100000");
    const unsigned runs = args.number("runs", 5);
    const unsigned adds = args.number("adds", 200);
    const std::string variant = args.get("variant", "kvmnet-adapter");

    const model::Network network = model::parse_network(bench_network);
    const plan::Table table = plan::build_ruleset({network});
    kernel::Nftables nft;

    for (const unsigned size : sizes) {
        const auto batch = changes(table.sets, specs(0, size), network.name, true);
        for (unsigned r = 0; r < runs; ++r) {
            nft.replace_table(table);
            const auto start = Clock::now();
            nft.change_elements(table.name, batch);
            emit("commit_bulk", variant, size, "ms", ms_since(start));
        }
    }
    // One forward more when n exist; each is removed again (untimed) so n stays n.
    for (const unsigned n : at) {
        nft.replace_table(table);
        if (n > 0) nft.change_elements(table.name, changes(table.sets, specs(0, n), network.name, true));
        for (unsigned r = 0; r < adds; ++r) {
            const std::vector<ForwardSpec> one{forward_spec(200000 + r)};
            const auto add = changes(table.sets, one, network.name, true);
            const auto remove = changes(table.sets, one, network.name, false);
            const auto start = Clock::now();
            nft.change_elements(table.name, add);
            emit("add_one", variant, n, "ms", ms_since(start));
            nft.change_elements(table.name, remove);
        }
    }
    nft.delete_table(table.name);
    return 0;
}

int cmd_nft_dnat(const Args& args)
{
    require_safe_netns();
    kernel::Nftables nft;
    if (args.flag("delete")) {
        nft.delete_table("kvmnet");
        return 0;
    }
    // kvmnet's whole ruleset for one NAT network on an existing bridge,
    // with `forwards` forwards: the others in the document, then the one in
    // use added last, as the daemon would add it.
    const unsigned forwards = args.number("forwards", 1);
    if (forwards == 0) throw UsageError("--forwards must be at least 1");
    const ForwardSpec used{args.need("host-address"), args.number("port", 0), args.need("guest"),
                           args.number("guest-port", 0)};
    if (used.host_port == 0 || used.guest_port == 0) throw UsageError("--port and --guest-port are required");
    const std::string prefix = args.need("subnet-prefix");  // "a.b.c": the network is a.b.c.1/24
    nlohmann::json document = {
        {"name", "bench"}, {"mode", "nat"}, {"bridge", args.need("bridge")}, {"ipv4", {{"address", prefix + ".1/24"}}}};
    nlohmann::json others = nlohmann::json::array();
    for (unsigned i = 0; i + 1 < forwards; ++i) {
        ForwardSpec other = forward_spec(i);
        other.guest = prefix + "." + std::to_string(10 + i % 200);
        others.push_back(forward_json(other));
    }
    document["forwards"] = others;
    const model::Network network = model::parse_network(document);
    const plan::Table table = plan::build_ruleset({network});
    nft.replace_table(table);
    nft.change_elements(table.name, changes(table.sets, {used}, network.name, true));
    std::cerr << "kvmnet-bench nft-dnat: kvmnet's ruleset with " << forwards << " forwards\n";
    return 0;
}

}  // namespace kvmnet::bench
