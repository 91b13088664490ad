// Subcommands that talk to nf_tables through kvmnet's own adapter
// (kernel::Nftables): the cost of committing forward-map elements, and a
// map-DNAT table for the connection-rate runs.
#include "bench.hpp"
#include "kernel/nftables.hpp"
#include "plan/ruleset.hpp"

#include <iostream>

namespace kvmnet::bench {

using namespace kvmnet::plan;

ForwardSpec forward_spec(unsigned i)
{
    return {"203.0.113." + std::to_string(11 + i / 50000), 10000 + i % 50000,
            "192.168.150." + std::to_string(10 + i % 200), 80};
}

namespace {

// A map shaped like the daemon's forward map: ip daddr . l4proto . dport
// -> guest address . guest port, with a counter per element, used by one
// DNAT rule in a nat prerouting chain.
Table forward_table(const std::string& name)
{
    Set map{"fwd4",
            {SetType::ipv4_addr, SetType::inet_proto, SetType::inet_service},
            {SetType::ipv4_addr, SetType::inet_service},
            0,
            false,
            true,
            {}};
    Rule dnat{{DnatMap{false, {Field::ip_daddr, Field::meta_l4proto, Field::th_dport}, "fwd4"}},
              true,
              Verdict::none,
              "forwards"};
    Chain prerouting{"prerouting", "nat", "prerouting", -100, true, {dnat}};
    return Table{name, {prerouting}, {map}};
}

SetElement element(const ForwardSpec& f)
{
    return {{f.host_address, "tcp", std::to_string(f.host_port)}, {f.guest, std::to_string(f.guest_port)}, ""};
}

std::vector<SetElement> elements(unsigned first, unsigned count)
{
    std::vector<SetElement> out;
    out.reserve(count);
    for (unsigned i = first; i < first + count; ++i)
        out.push_back(element(forward_spec(i)));
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

    kernel::Nftables nft;
    const Table table = forward_table("kvmnet");
    const Set& map = table.sets.front();

    for (const unsigned size : sizes) {
        const auto batch = elements(0, size);
        for (unsigned r = 0; r < runs; ++r) {
            nft.replace_table(table);
            const auto start = Clock::now();
            nft.add_elements(table.name, map, batch);
            emit("commit_bulk", variant, size, "ms", ms_since(start));
        }
    }
    // One forward more when n exist; each is removed again (untimed) so n stays n.
    for (const unsigned n : at) {
        nft.replace_table(table);
        if (n > 0) nft.add_elements(table.name, map, elements(0, n));
        for (unsigned r = 0; r < adds; ++r) {
            const std::vector<SetElement> one{element(forward_spec(200000 + r))};
            const auto start = Clock::now();
            nft.add_elements(table.name, map, one);
            emit("add_one", variant, n, "ms", ms_since(start));
            nft.delete_elements(table.name, map, one);
        }
    }
    nft.delete_table(table.name);
    return 0;
}

int cmd_nft_dnat(const Args& args)
{
    require_safe_netns();
    kernel::Nftables nft;
    const Table table = forward_table("kvmnet_bench");
    if (args.flag("delete")) {
        nft.delete_table(table.name);
        return 0;
    }
    const unsigned forwards = args.number("forwards", 1);
    if (forwards == 0) throw UsageError("--forwards must be at least 1");
    const ForwardSpec used{args.need("host-address"), args.number("port", 0), args.need("guest"),
                           args.number("guest-port", 0)};
    if (used.host_port == 0 || used.guest_port == 0) throw UsageError("--port and --guest-port are required");
    nft.replace_table(table);
    // The other forwards first, in one batch; then the one in use, last.
    if (forwards > 1) nft.add_elements(table.name, table.sets.front(), elements(0, forwards - 1));
    nft.add_elements(table.name, table.sets.front(), {element(used)});
    std::cerr << "kvmnet-bench nft-dnat: " << forwards << " forwards in table inet " << table.name << "\n";
    return 0;
}

}  // namespace kvmnet::bench
