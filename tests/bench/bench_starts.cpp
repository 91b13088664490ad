// Reads while networks start (issue 12, "a loop that never blocks"): one
// client reads back to back (GetAll on a running network's object, then
// Manager.Describe) while N other clients, one connection each, start N NAT
// networks with DHCP at once and so N dnsmasq. Every read's latency is one
// sample; with a daemon whose loop waits for each dnsmasq, the reads queue
// behind the starts.
#include "bench.hpp"

#include <nlohmann/json.hpp>
#include <sdbus-c++/sdbus-c++.h>

#include <atomic>
#include <cstdio>
#include <thread>

namespace kvmnet::bench {
namespace {

constexpr const char* manager_interface = "org.kvmnet1.Manager";
constexpr const char* network_interface = "org.kvmnet1.Network";
constexpr auto call_timeout = std::chrono::seconds(120);

std::string start_document(unsigned i)
{
    const std::string net = "10.61." + std::to_string(i) + ".";
    return nlohmann::json{{"name", "start" + std::to_string(i)},
                          {"mode", "nat"},
                          {"bridge", "kvmbs" + std::to_string(i)},
                          {"ipv4", {{"address", net + "1/24"}, {"dhcp", {{"ranges", {net + "100-" + net + "200"}}}}}}}
        .dump();
}

sdbus::ObjectPath path_of(sdbus::IProxy& manager, const std::string& name)
{
    sdbus::ObjectPath path;
    manager.callMethod("GetNetwork").onInterface(manager_interface).withArguments(name).storeResultsTo(path);
    return path;
}

}  // namespace

int cmd_read_while_starting(const Args& args)
{
    const unsigned count = args.number("networks", 10);
    const unsigned rounds = args.number("rounds", 10);
    const std::string variant = args.get("variant", "kvmnetd");
    const std::string read_network = args.need("read-network");

    auto bus = sdbus::createSystemBusConnection();
    auto manager = sdbus::createProxy(*bus, "org.kvmnet1", "/org/kvmnet1");
    for (unsigned i = 0; i < count; ++i)
        manager->callMethod("CreateNetwork")
            .onInterface(manager_interface)
            .withArguments(start_document(i))
            .withTimeout(call_timeout);
    auto reader = sdbus::createProxy(*bus, "org.kvmnet1", path_of(*manager, read_network));

    for (unsigned r = 0; r < rounds; ++r) {
        std::atomic<unsigned> started{0};
        std::atomic<bool> failed{false};
        std::vector<std::thread> starters;
        const auto begin = Clock::now();
        for (unsigned i = 0; i < count; ++i)
            starters.emplace_back([i, &started, &failed] {
                try {
                    auto own = sdbus::createSystemBusConnection();
                    auto m = sdbus::createProxy(*own, "org.kvmnet1", "/org/kvmnet1");
                    auto network = sdbus::createProxy(*own, "org.kvmnet1", path_of(*m, "start" + std::to_string(i)));
                    network->callMethod("Start").onInterface(network_interface).withTimeout(call_timeout);
                } catch (const std::exception& e) {
                    std::fprintf(stderr, "start%u: %s\n", i, e.what());
                    failed = true;
                }
                ++started;
            });
        unsigned reads = 0;
        while (started.load() < count) {
            auto t = Clock::now();
            std::map<std::string, sdbus::Variant> properties;
            reader->callMethod("GetAll")
                .onInterface("org.freedesktop.DBus.Properties")
                .withArguments(std::string(network_interface))
                .withTimeout(call_timeout)
                .storeResultsTo(properties);
            emit("read_during_starts", variant + ":GetAll", count, "ms", ms_since(t));
            t = Clock::now();
            std::string all;
            manager->callMethod("Describe")
                .onInterface(manager_interface)
                .withTimeout(call_timeout)
                .storeResultsTo(all);
            emit("read_during_starts", variant + ":Describe", count, "ms", ms_since(t));
            reads += 2;
        }
        for (auto& t : starters)
            t.join();
        emit("starts_wall", variant, count, "ms", ms_since(begin));
        if (failed) throw std::runtime_error("a start failed in round " + std::to_string(r));
        if (reads == 0) std::fprintf(stderr, "round %u: the starts finished before the first read\n", r);
        for (unsigned i = 0; i < count; ++i) {
            auto network = sdbus::createProxy(*bus, "org.kvmnet1", path_of(*manager, "start" + std::to_string(i)));
            network->callMethod("Stop").onInterface(network_interface).withTimeout(call_timeout);
        }
    }
    for (unsigned i = 0; i < count; ++i)
        manager->callMethod("DeleteNetwork")
            .onInterface(manager_interface)
            .withArguments("start" + std::to_string(i))
            .withTimeout(call_timeout);
    return 0;
}

}  // namespace kvmnet::bench
