// D-Bus load (issue #5, "Load"): many concurrent clients, each with its own
// bus connection and thread, call kvmnetd back to back (closed loop, no
// think time) for a fixed time with a mix of reads and writes, and every
// call's latency and outcome is recorded. Any error is a failed call.
//
// Writes are chosen so that no call is refused by design: client C owns the
// host ports 20000+100C .. +99 of the load network's forwards (TCP, guest
// a.b.(C+1).10:80), the static hosts with MAC 52:54:00:1d:CC:NN (address
// a.b.(C+1).(10+NN)), and a network of its own, "load-cC" (NAT, bridge
// ldbrC, 10.201.C.1/24), which it creates, starts, stops and deletes one
// step at a time. What a client finds in its range when it starts (a
// previous run's forwards and hosts) it takes over; its own network is
// always deleted at the end, while forwards and hosts stay, so the caller
// can compare the daemon's state with "expected_forwards"/"expected_hosts".
#include "bench.hpp"

#include <nlohmann/json.hpp>
#include <sdbus-c++/sdbus-c++.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iostream>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <thread>

namespace kvmnet::bench {

namespace {

using json = nlohmann::json;

constexpr const char* service = "org.kvmnet1";
constexpr const char* manager_interface = "org.kvmnet1.Manager";
constexpr const char* network_interface = "org.kvmnet1.Network";
constexpr const char* properties_interface = "org.freedesktop.DBus.Properties";
constexpr auto call_timeout = std::chrono::seconds(60);
constexpr unsigned ports_per_client = 100;
constexpr unsigned first_port = 20000;
constexpr std::size_t errors_kept = 10;

// The calls, in the order of the report.
enum Call : unsigned {
    ListNetworks,
    ManagerDescribe,
    GetManagedObjects,
    Describe,
    GetState,
    GetAll,
    ListForwards,
    Leases,
    Statistics,
    // writes from here on
    AddForwards,
    RemoveForward,
    AddHost,
    RemoveHost,
    SetAutostart,
    CreateNetwork,
    StartNetwork,
    StopNetwork,
    DeleteNetwork,
    call_count
};
constexpr unsigned first_write = AddForwards;
constexpr unsigned read_kinds = first_write;

const char* call_name(unsigned c)
{
    static const char* names[call_count] = {"Manager.ListNetworks",
                                            "Manager.Describe",
                                            "GetManagedObjects",
                                            "Network.Describe",
                                            "Get(State)",
                                            "GetAll",
                                            "Network.ListForwards",
                                            "Network.Leases",
                                            "Network.Statistics",
                                            "Network.AddForwards",
                                            "Network.RemoveForward",
                                            "Network.AddHost",
                                            "Network.RemoveHost",
                                            "Network.SetAutostart",
                                            "Manager.CreateNetwork",
                                            "Network.Start",
                                            "Network.Stop",
                                            "Manager.DeleteNetwork"};
    return names[c];
}

// What all clients share: the error log and the start line.
struct Shared {
    std::string network;
    std::string network_path;
    std::string prefix;  // "a.b." of the load network's (at most /16) subnet
    unsigned read_percent = 80;
    unsigned max_forwards = 20;
    unsigned max_hosts = 4;
    unsigned cycle_percent = 5;  // of writes: one step of the own network's create/start/stop/delete
    int only_read = -1;          // --read KIND: every read is this one (what one kind costs the daemon)
    Clock::time_point deadline;
    std::mutex mutex;
    std::vector<std::string> errors;
    std::uint64_t error_count = 0;
};

struct Stats {
    std::vector<double> ms[call_count];
    std::uint64_t failed[call_count] = {};
};

class Client {
public:
    Client(Shared& shared, unsigned index)
        : shared_(shared), index_(index), random_(0x6b766d6eU + index), bus_(sdbus::createSystemBusConnection()),
          manager_(sdbus::createProxy(*bus_, service, "/org/kvmnet1")),
          network_(sdbus::createProxy(*bus_, service, shared.network_path))
    {
        own_name_ = "load-c" + std::to_string(index_);
    }

    // Untimed: what of this client's range is already there.
    void adopt()
    {
        std::string text;
        network_->callMethod("Describe").onInterface(network_interface).storeResultsTo(text);
        const json doc = json::parse(text);
        for (const auto& f : doc.value("forwards", json::array())) {
            const unsigned port = f.value("host_port", 0U);
            if (f.value("proto", "") == "tcp" && owns_port(port)) forwards_.insert(port);
        }
        if (doc.contains("ipv4") && doc["ipv4"].contains("dhcp"))
            for (const auto& h : doc["ipv4"]["dhcp"].value("hosts", json::array())) {
                const std::string mac = h.value("mac", "");
                for (unsigned n = 0; n < shared_.max_hosts; ++n)
                    if (mac == host_mac(n)) hosts_.insert(n);
            }
        initial_forwards_ = forwards_.size();
        manager_->callMethod("Describe").onInterface(manager_interface).storeResultsTo(text);
        const json networks = json::parse(text).at("networks");
        for (const auto& n : networks)
            if (n.value("name", "") == own_name_) {
                // Left by an interrupted run: start from a clean slate.
                manager_->callMethod("DeleteNetwork")
                    .onInterface(manager_interface)
                    .withArguments(own_name_)
                    .withTimeout(call_timeout);
            }
    }

    void run()
    {
        std::uniform_int_distribution<unsigned> percent(0, 99);
        while (Clock::now() < shared_.deadline) {
            if (percent(random_) < shared_.read_percent) {
                read(shared_.only_read >= 0 ? static_cast<unsigned>(shared_.only_read)
                                            : std::uniform_int_distribution<unsigned>(0, read_kinds - 1)(random_));
            } else {
                write();
            }
        }
        // Leave no network of our own behind, whatever step it is at: a
        // started one is stopped (DeleteNetwork would stop it too), then
        // deleted, which is retried until it works or 30 s have passed.
        if (cycle_ == 1) cycle_ = 3;
        if (cycle_ == 2) {
            step_own_network();
            cycle_ = 3;
        }
        while (cycle_ == 3)
            step_own_network();
    }

    const Stats& stats() const { return stats_; }
    const std::set<unsigned>& forwards() const { return forwards_; }
    std::vector<std::string> hosts() const
    {
        std::vector<std::string> out;
        for (unsigned n : hosts_)
            out.push_back(host_mac(n));
        return out;
    }
    std::uint64_t added() const { return added_; }
    std::uint64_t removed() const { return removed_; }
    std::size_t initial_forwards() const { return initial_forwards_; }

private:
    bool owns_port(unsigned port) const
    {
        const unsigned first = first_port + index_ * ports_per_client;
        return port >= first && port < first + ports_per_client;
    }
    std::string host_mac(unsigned n) const
    {
        char mac[32];
        std::snprintf(mac, sizeof mac, "52:54:00:1d:%02x:%02x", index_ & 0xff, n & 0xff);
        return mac;
    }
    std::string guest_address(unsigned last) const
    {
        return shared_.prefix + std::to_string(index_ + 1) + "." + std::to_string(last);
    }

    // Times one call; an exception of any kind is a failed call.
    bool timed(Call call, const std::function<void()>& body)
    {
        const auto start = Clock::now();
        try {
            body();
            stats_.ms[call].push_back(ms_since(start));
            return true;
        } catch (const sdbus::Error& e) {
            fail(call, e.getName() + ": " + e.getMessage());
        } catch (const std::exception& e) {
            fail(call, e.what());
        }
        stats_.ms[call].push_back(ms_since(start));
        return false;
    }
    void fail(Call call, const std::string& what)
    {
        ++stats_.failed[call];
        const std::lock_guard lock(shared_.mutex);
        ++shared_.error_count;
        if (shared_.errors.size() < errors_kept)
            shared_.errors.push_back("client " + std::to_string(index_) + ", " + call_name(call) + ": " + what);
    }
    static void require_json(const std::string& text)
    {
        if (!json::accept(text)) throw std::runtime_error("reply is not valid JSON: " + text.substr(0, 80));
    }

    void read(unsigned kind)
    {
        const auto call = static_cast<Call>(kind);
        timed(call, [&] {
            std::string text;
            switch (call) {
            case ListNetworks: {
                std::vector<sdbus::ObjectPath> paths;
                manager_->callMethod("ListNetworks").onInterface(manager_interface).storeResultsTo(paths);
                if (paths.empty()) throw std::runtime_error("no networks listed");
                return;
            }
            case ManagerDescribe:
                manager_->callMethod("Describe").onInterface(manager_interface).storeResultsTo(text);
                break;
            case GetManagedObjects: {
                std::map<sdbus::ObjectPath, std::map<std::string, std::map<std::string, sdbus::Variant>>> objects;
                manager_->callMethod("GetManagedObjects")
                    .onInterface("org.freedesktop.DBus.ObjectManager")
                    .storeResultsTo(objects);
                if (objects.count(sdbus::ObjectPath(shared_.network_path)) == 0)
                    throw std::runtime_error("the load network is not among the managed objects");
                return;
            }
            case Describe: network_->callMethod("Describe").onInterface(network_interface).storeResultsTo(text); break;
            case GetState: {
                sdbus::Variant state;
                network_->callMethod("Get")
                    .onInterface(properties_interface)
                    .withArguments(std::string(network_interface), std::string("State"))
                    .storeResultsTo(state);
                if (state.get<std::string>() != "active")
                    throw std::runtime_error("State is '" + state.get<std::string>() + "', not active");
                return;
            }
            case GetAll: {
                std::map<std::string, sdbus::Variant> all;
                network_->callMethod("GetAll")
                    .onInterface(properties_interface)
                    .withArguments(std::string(network_interface))
                    .storeResultsTo(all);
                if (all.count("Name") == 0) throw std::runtime_error("GetAll without Name");
                return;
            }
            case ListForwards:
                network_->callMethod("ListForwards").onInterface(network_interface).storeResultsTo(text);
                break;
            case Leases: network_->callMethod("Leases").onInterface(network_interface).storeResultsTo(text); break;
            case Statistics:
                network_->callMethod("Statistics").onInterface(network_interface).storeResultsTo(text);
                break;
            default: throw std::logic_error("not a read");
            }
            require_json(text);
        });
    }

    void write()
    {
        // Forwards and hosts by turns, each added while under its cap and
        // removed otherwise (a coin decides in between), so both stay
        // bounded; now and then the autostart flag or a step of the
        // client's own network.
        const unsigned pick = std::uniform_int_distribution<unsigned>(0, 99)(random_);
        if (pick < shared_.cycle_percent) {
            step_own_network();
        } else if (pick < shared_.cycle_percent + 10) {
            const bool on = random_() % 2 == 0;
            timed(SetAutostart, [&] {
                network_->callMethod("SetAutostart")
                    .onInterface(network_interface)
                    .withArguments(on)
                    .withTimeout(call_timeout);
            });
        } else if (pick < 60) {
            const bool add = forwards_.empty() || (forwards_.size() < shared_.max_forwards && random_() % 2 == 0);
            if (add) {
                add_forward();
            } else {
                remove_forward();
            }
        } else {
            const bool add = hosts_.empty() || (hosts_.size() < shared_.max_hosts && random_() % 2 == 0);
            if (add) {
                add_host();
            } else {
                remove_host();
            }
        }
    }

    void add_forward()
    {
        unsigned port = 0;
        do {
            port = first_port + index_ * ports_per_client + random_() % ports_per_client;
        } while (forwards_.count(port) != 0);
        const json forward = {{"proto", "tcp"},
                              {"host_port", port},
                              {"guest", guest_address(10)},
                              {"guest_port", 80},
                              {"description", "load client " + std::to_string(index_)}};
        if (timed(AddForwards, [&] {
                std::vector<std::string> warnings;
                network_->callMethod("AddForwards")
                    .onInterface(network_interface)
                    .withArguments(forward.dump())
                    .withTimeout(call_timeout)
                    .storeResultsTo(warnings);
            })) {
            forwards_.insert(port);
            ++added_;
        }
    }
    void remove_forward()
    {
        auto it = forwards_.begin();
        std::advance(it, random_() % forwards_.size());
        const unsigned port = *it;
        if (timed(RemoveForward, [&] {
                network_->callMethod("RemoveForward")
                    .onInterface(network_interface)
                    .withArguments(std::string("tcp"), std::string(), static_cast<std::uint32_t>(port))
                    .withTimeout(call_timeout);
            })) {
            forwards_.erase(port);
            ++removed_;
        }
    }
    void add_host()
    {
        unsigned n = 0;
        while (hosts_.count(n) != 0)
            ++n;
        const json host = {{"mac", host_mac(n)},
                           {"ip", guest_address(20 + n)},
                           {"name", "load-c" + std::to_string(index_) + "-h" + std::to_string(n)}};
        if (timed(AddHost, [&] {
                network_->callMethod("AddHost")
                    .onInterface(network_interface)
                    .withArguments(host.dump())
                    .withTimeout(call_timeout);
            }))
            hosts_.insert(n);
    }
    void remove_host()
    {
        auto it = hosts_.begin();
        std::advance(it, random_() % hosts_.size());
        const unsigned n = *it;
        if (timed(RemoveHost, [&] {
                network_->callMethod("RemoveHost")
                    .onInterface(network_interface)
                    .withArguments(host_mac(n))
                    .withTimeout(call_timeout);
            }))
            hosts_.erase(n);
    }

    // One step of none (0) -> created (1) -> running (2) -> stopped (3) ->
    // none. A failed step is retried next time (and counted each time it
    // fails).
    void step_own_network()
    {
        switch (cycle_) {
        case 0: {
            const std::string subnet = "10.201." + std::to_string(index_);
            const json doc = {
                {"name", own_name_},
                {"mode", "nat"},
                {"bridge", "ldbr" + std::to_string(index_)},
                {"ipv4",
                 {{"address", subnet + ".1/24"}, {"dhcp", {{"ranges", {subnet + ".100-" + subnet + ".200"}}}}}}};
            if (timed(CreateNetwork, [&] {
                    sdbus::ObjectPath path;
                    manager_->callMethod("CreateNetwork")
                        .onInterface(manager_interface)
                        .withArguments(doc.dump())
                        .withTimeout(call_timeout)
                        .storeResultsTo(path);
                    own_ = sdbus::createProxy(*bus_, service, path);
                }))
                cycle_ = 1;
            break;
        }
        case 1:
            if (timed(StartNetwork,
                      [&] { own_->callMethod("Start").onInterface(network_interface).withTimeout(call_timeout); }))
                cycle_ = 2;
            break;
        case 2:
            if (timed(StopNetwork,
                      [&] { own_->callMethod("Stop").onInterface(network_interface).withTimeout(call_timeout); }))
                cycle_ = 3;
            break;
        default:
            if (timed(DeleteNetwork, [&] {
                    manager_->callMethod("DeleteNetwork")
                        .onInterface(manager_interface)
                        .withArguments(own_name_)
                        .withTimeout(call_timeout);
                })) {
                own_.reset();
                cycle_ = 0;
            } else if (Clock::now() > shared_.deadline + std::chrono::seconds(30)) {
                throw std::runtime_error(own_name_ + " could not be deleted");
            }
        }
    }

    Shared& shared_;
    unsigned index_;
    std::mt19937 random_;
    std::unique_ptr<sdbus::IConnection> bus_;
    std::unique_ptr<sdbus::IProxy> manager_;
    std::unique_ptr<sdbus::IProxy> network_;
    std::unique_ptr<sdbus::IProxy> own_;
    std::string own_name_;
    unsigned cycle_ = 0;
    std::set<unsigned> forwards_;
    std::set<unsigned> hosts_;
    std::size_t initial_forwards_ = 0;
    std::uint64_t added_ = 0;
    std::uint64_t removed_ = 0;
    Stats stats_;
};

// "a.b." of the network's IPv4 address, which must be a /16 or wider.
std::string subnet_prefix(const std::string& network, const std::string& describe)
{
    const json doc = json::parse(describe);
    const std::string cidr = doc.contains("ipv4") ? doc["ipv4"].value("address", "") : "";
    const auto slash = cidr.find('/');
    if (slash == std::string::npos || std::stoi(cidr.substr(slash + 1)) > 16)
        throw std::runtime_error("network '" + network + "' needs an IPv4 subnet of /16 or wider, has '" + cidr + "'");
    const auto second_dot = cidr.find('.', cidr.find('.') + 1);
    return cidr.substr(0, second_dot + 1);
}

double rounded(double v) { return std::round(v * 1000) / 1000; }

}  // namespace

int cmd_dbus_load(const Args& args)
{
    Shared shared;
    shared.network = args.get("network", "load");
    const unsigned clients = args.number("clients", 32);
    const unsigned seconds = args.number("seconds", 60);
    shared.read_percent = args.number("read-percent", 80);
    shared.max_forwards = args.number("max-forwards", 20);
    shared.max_hosts = args.number("max-hosts", 4);
    shared.cycle_percent = args.number("cycle-percent", 5);
    const std::string json_path = args.get("json", "");
    if (const std::string only = args.get("read", ""); !only.empty()) {
        for (unsigned k = 0; k < read_kinds; ++k)
            if (only == call_name(k)) shared.only_read = static_cast<int>(k);
        if (shared.only_read < 0)
            throw UsageError("--read: one of the read calls' names, e.g. GetAll, Network.Describe");
    }
    if (clients == 0 || clients > 250) throw UsageError("--clients: 1 to 250");
    if (shared.read_percent > 100) throw UsageError("--read-percent: 0 to 100");
    if (shared.max_forwards == 0 || shared.max_forwards > ports_per_client / 2)
        throw UsageError("--max-forwards: 1 to 50");
    if (shared.max_hosts == 0 || shared.max_hosts > 200) throw UsageError("--max-hosts: 1 to 200");
    if (shared.cycle_percent > 50) throw UsageError("--cycle-percent: 0 to 50");

    {
        auto bus = sdbus::createSystemBusConnection();
        auto manager = sdbus::createProxy(*bus, service, "/org/kvmnet1");
        sdbus::ObjectPath path;
        manager->callMethod("GetNetwork")
            .onInterface(manager_interface)
            .withArguments(shared.network)
            .storeResultsTo(path);
        shared.network_path = path;
        auto network = sdbus::createProxy(*bus, service, path);
        std::string describe;
        network->callMethod("Describe").onInterface(network_interface).storeResultsTo(describe);
        shared.prefix = subnet_prefix(shared.network, describe);
    }

    // Every client connects and looks at its range first; the clock starts
    // when all are ready.
    std::vector<std::unique_ptr<Client>> all;
    for (unsigned i = 0; i < clients; ++i) {
        all.push_back(std::make_unique<Client>(shared, i));
        all.back()->adopt();
    }
    const auto start = Clock::now();
    shared.deadline = start + std::chrono::seconds(seconds);
    std::vector<std::thread> threads;
    std::mutex crash_mutex;
    std::string crash;
    for (auto& c : all)
        threads.emplace_back([&c, &crash, &crash_mutex] {
            try {
                c->run();
            } catch (const std::exception& e) {
                const std::lock_guard lock(crash_mutex);
                crash = e.what();
            }
        });
    for (auto& t : threads)
        t.join();
    const double elapsed = ms_since(start) / 1000;
    if (!crash.empty()) throw std::runtime_error(crash);

    // Merge and report.
    json per_call = json::object();
    std::uint64_t calls = 0, failed = 0, reads = 0;
    std::uint64_t added = 0, removed = 0, initial = 0;
    std::vector<unsigned> expected_forwards;
    std::vector<std::string> expected_hosts;
    std::vector<double> read_ms;  // every read's latency: the "read p99" of issue 12
    for (unsigned k = 0; k < call_count; ++k) {
        std::vector<double> ms;
        std::uint64_t bad = 0;
        for (const auto& c : all) {
            ms.insert(ms.end(), c->stats().ms[k].begin(), c->stats().ms[k].end());
            bad += c->stats().failed[k];
        }
        calls += ms.size();
        failed += bad;
        if (k < first_write) {
            reads += ms.size();
            read_ms.insert(read_ms.end(), ms.begin(), ms.end());
        }
        if (ms.empty()) continue;
        per_call[call_name(k)] = {{"write", k >= first_write},
                                  {"calls", ms.size()},
                                  {"failed", bad},
                                  {"p50_ms", rounded(percentile(ms, 50))},
                                  {"p90_ms", rounded(percentile(ms, 90))},
                                  {"p99_ms", rounded(percentile(ms, 99))},
                                  {"max_ms", rounded(*std::max_element(ms.begin(), ms.end()))}};
    }
    for (const auto& c : all) {
        added += c->added();
        removed += c->removed();
        initial += c->initial_forwards();
        expected_forwards.insert(expected_forwards.end(), c->forwards().begin(), c->forwards().end());
        const auto h = c->hosts();
        expected_hosts.insert(expected_hosts.end(), h.begin(), h.end());
    }
    std::sort(expected_forwards.begin(), expected_forwards.end());
    std::sort(expected_hosts.begin(), expected_hosts.end());
    std::vector<double> all_ms;
    for (const auto& c : all)
        for (unsigned k = 0; k < call_count; ++k)
            all_ms.insert(all_ms.end(), c->stats().ms[k].begin(), c->stats().ms[k].end());

    const json report = {
        {"network", shared.network},
        {"clients", clients},
        {"seconds", rounded(elapsed)},
        {"read_percent", shared.read_percent},
        {"calls", calls},
        {"reads", reads},
        {"writes", calls - reads},
        {"failed", failed},
        {"errors", shared.errors},
        {"calls_per_second", rounded(static_cast<double>(calls) / elapsed)},
        {"all_calls",
         {{"p50_ms", rounded(percentile(all_ms, 50))},
          {"p90_ms", rounded(percentile(all_ms, 90))},
          {"p99_ms", rounded(percentile(all_ms, 99))},
          {"max_ms", all_ms.empty() ? 0.0 : rounded(*std::max_element(all_ms.begin(), all_ms.end()))}}},
        {"read_calls",
         {{"p50_ms", rounded(percentile(read_ms, 50))},
          {"p90_ms", rounded(percentile(read_ms, 90))},
          {"p99_ms", rounded(percentile(read_ms, 99))},
          {"max_ms", read_ms.empty() ? 0.0 : rounded(*std::max_element(read_ms.begin(), read_ms.end()))}}},
        {"per_call", per_call},
        {"forwards_at_start", initial},
        {"forwards_added", added},
        {"forwards_removed", removed},
        {"expected_forwards", expected_forwards},
        {"expected_hosts", expected_hosts}};
    if (!json_path.empty()) {
        std::ofstream out(json_path);
        out << report.dump(2) << "\n";
        if (!out) throw std::runtime_error("cannot write " + json_path);
    } else {
        std::cout << report.dump(2) << "\n";
    }

    // The short text summary (stderr when the JSON went to stdout).
    std::ostream& text = json_path.empty() ? std::cerr : std::cout;
    char line[256];
    std::snprintf(line, sizeof line,
                  "%u clients, %.1f s, %llu calls (%llu reads, %llu writes), %.0f calls/s, %llu failed\n", clients,
                  elapsed, static_cast<unsigned long long>(calls), static_cast<unsigned long long>(reads),
                  static_cast<unsigned long long>(calls - reads), static_cast<double>(calls) / elapsed,
                  static_cast<unsigned long long>(failed));
    text << line;
    std::snprintf(line, sizeof line, "%-24s %8s %6s %9s %9s %9s %9s\n", "call", "calls", "failed", "p50 ms", "p90 ms",
                  "p99 ms", "max ms");
    text << line;
    for (unsigned k = 0; k < call_count; ++k) {
        if (!per_call.contains(call_name(k))) continue;
        const json& r = per_call[call_name(k)];
        std::snprintf(line, sizeof line, "%-24s %8llu %6llu %9.3f %9.3f %9.3f %9.3f\n", call_name(k),
                      r["calls"].get<unsigned long long>(), r["failed"].get<unsigned long long>(),
                      r["p50_ms"].get<double>(), r["p90_ms"].get<double>(), r["p99_ms"].get<double>(),
                      r["max_ms"].get<double>());
        text << line;
    }
    std::snprintf(line, sizeof line, "forwards: %llu at start + %llu added - %llu removed = %zu expected\n",
                  static_cast<unsigned long long>(initial), static_cast<unsigned long long>(added),
                  static_cast<unsigned long long>(removed), expected_forwards.size());
    text << line;
    for (const auto& e : shared.errors)
        text << "error: " << e << "\n";
    return failed == 0 ? 0 : 1;
}

}  // namespace kvmnet::bench
