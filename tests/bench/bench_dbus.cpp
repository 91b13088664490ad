// Forwards end to end through D-Bus: kvmnet-bench is the client, calling
// org.kvmnet1.Network.AddForwards on a kvmnetd that bench.sh started on a
// private bus, the way kvmnetctl or an applet would (minus process start).
#include "bench.hpp"

#include "forward_call.hpp"

#include <nlohmann/json.hpp>
#include <sdbus-c++/sdbus-c++.h>

#include <algorithm>
#include <ctime>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

namespace kvmnet::bench {

namespace {

constexpr const char* manager_interface = "org.kvmnet1.Manager";
constexpr const char* network_interface = "org.kvmnet1.Network";
constexpr auto call_timeout = std::chrono::seconds(300);

std::string forwards_document(unsigned first, unsigned count)
{
    nlohmann::json list = nlohmann::json::array();
    for (unsigned i = first; i < first + count; ++i)
        list.push_back(forward_json(forward_spec(i)));
    return list.dump();
}

class Client {
public:
    explicit Client(std::string document)
        : document_(std::move(document)), bus_(sdbus::createSystemBusConnection()),
          manager_(sdbus::createProxy(*bus_, "org.kvmnet1", "/org/kvmnet1"))
    {
        name_ = nlohmann::json::parse(document_).at("name").get<std::string>();
    }

    // A fresh, running network from the document.
    void create_and_start()
    {
        sdbus::ObjectPath path;
        manager_->callMethod("CreateNetwork")
            .onInterface(manager_interface)
            .withArguments(document_)
            .storeResultsTo(path);
        network_ = sdbus::createProxy(*bus_, "org.kvmnet1", path);
        network_->callMethod("Start").onInterface(network_interface).withTimeout(call_timeout);
    }
    void remove()
    {
        manager_->callMethod("DeleteNetwork")
            .onInterface(manager_interface)
            .withArguments(name_)
            .withTimeout(call_timeout);
        network_.reset();
    }
    void add_forwards(const std::string& json)
    {
        network_->callMethod("AddForwards")
            .onInterface(network_interface)
            .withArguments(json)
            .withTimeout(call_timeout);
    }
    // As `kvmnetctl forward add --file` calls them (client/forward_call.hpp):
    // as structs (AddForwardsTyped) or as records in a sealed memfd
    // (AddForwardsFromFd).
    void add_forwards_typed(const std::vector<model::ForwardFields>& forwards, client::TypedCallTimes* times,
                            bool from_fd)
    {
        if (from_fd)
            client::add_forwards_from_fd(*network_, forwards, call_timeout, times);
        else
            client::add_forwards_typed(*network_, forwards, call_timeout, times);
    }
    // The message the client built before it wrote the structs with sd-bus
    // itself: sdbus-c++'s Struct tuples, serialised field by field. Built
    // and dropped, for the build time only.
    void build_sdbuscpp_message(const std::vector<model::ForwardFields>& forwards)
    {
        using Typed =
            sdbus::Struct<std::string, std::string, uint16_t, uint16_t, std::string, uint16_t, std::string, uint32_t>;
        std::vector<Typed> structs;
        structs.reserve(forwards.size());
        for (const auto& f : forwards)
            structs.emplace_back(f.proto, f.host_address, f.host_port, f.host_port_end, f.guest, f.guest_port,
                                 f.description, f.rate);
        auto call = network_->createMethodCall(network_interface, "AddForwardsTyped");
        call << structs;
    }
    void remove_forward(const ForwardSpec& f)
    {
        network_->callMethod("RemoveForward")
            .onInterface(network_interface)
            .withArguments(std::string("tcp"), f.host_address, static_cast<std::uint32_t>(f.host_port))
            .withTimeout(call_timeout);
    }

private:
    std::string document_;
    std::string name_;
    std::unique_ptr<sdbus::IConnection> bus_;
    std::unique_ptr<sdbus::IProxy> manager_;
    std::unique_ptr<sdbus::IProxy> network_;
};

std::string read_file(const std::string& path)
{
    std::ifstream in(path);
    if (!in) throw std::runtime_error("cannot read " + path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

// CPU time of one thread (ns) from /proc/PID/task/TID/schedstat, or of a
// process's main thread: what dbus-daemon (one thread) and kvmnetd's event
// loop spend on one call. -1 when unreadable.
long long cpu_ns(unsigned pid)
{
    if (pid == 0) return -1;
    std::ifstream in("/proc/" + std::to_string(pid) + "/schedstat");
    long long ns = -1;
    return in >> ns ? ns : -1;
}

long long thread_cpu_ns()
{
    timespec t{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return static_cast<long long>(t.tv_sec) * 1000000000LL + t.tv_nsec;
}

// One mark of the daemon (kvmnetd with KVMNET_PHASES=FILE): when, on
// CLOCK_MONOTONIC (steady_clock's clock), and the marking thread's CPU time.
struct DaemonMark {
    std::string phase;
    Clock::time_point at;
    long long cpu_ns = 0;
};
std::vector<DaemonMark> daemon_marks(const std::string& path)
{
    std::vector<DaemonMark> marks;
    std::ifstream in(path);
    long long ns = 0, cpu = 0;
    std::string phase;
    while (in >> ns >> cpu && std::getline(in >> std::ws, phase))
        marks.push_back({phase, Clock::time_point(std::chrono::nanoseconds(ns)), cpu});
    return marks;
}

double ms_between(Clock::time_point from, Clock::time_point to)
{
    return std::chrono::duration<double, std::milli>(to - from).count();
}

// One AddForwardsTyped (or, `from_fd`, AddForwardsFromFd) of `forwards`, timed in parts ("bus:<part>" rows,
// which add up to the call): the client's build; the way to the method
// (the client's write, dbus-daemon's relay, kvmnetd reading the message and
// sdbus-c++ unpacking it); the method until its reply is sent; the reply's
// way back. The way to the method needs the daemon's marks (--phases FILE,
// kvmnetd's KVMNET_PHASES); with --bus-pid / --daemon-pid also the CPU time
// dbus-daemon and kvmnetd's loop thread spent (kvmnetd's until the method
// starts: reading and unpacking the message).
double typed_call_split(Client& client, const std::vector<model::ForwardFields>& forwards, const Args& args,
                        const std::string& variant, unsigned size, bool from_fd)
{
    const std::string phases = args.get("phases", "");
    if (!phases.empty()) std::ofstream(phases, std::ios::trunc);  // kvmnetd appends (O_APPEND)
    const unsigned bus_pid = args.number("bus-pid", 0), daemon_pid = args.number("daemon-pid", 0);
    const long long bus_cpu = cpu_ns(bus_pid), daemon_cpu = cpu_ns(daemon_pid);
    const long long own_cpu = thread_cpu_ns();
    client::TypedCallTimes times;
    const auto start = Clock::now();
    client.add_forwards_typed(forwards, &times, from_fd);
    const double total = ms_since(start);
    auto part = [&](const std::string& name, double ms) { emit("bus:" + name, variant, size, "ms", ms); };
    part("client: build the message", ms_between(start, times.built));
    part("client: write it until flushed (within the next)", ms_between(times.built, times.sent));
    part("client: CPU in all", static_cast<double>(thread_cpu_ns() - own_cpu) / 1e6);
    if (bus_cpu >= 0) part("dbus-daemon: CPU", static_cast<double>(cpu_ns(bus_pid) - bus_cpu) / 1e6);
    // Marks of this call only: from its "request read" to the first "reply
    // sent" after it, which kvmnetd writes just after the reply (wait for it).
    std::vector<DaemonMark> marks;
    auto entry = marks.end(), reply = marks.end();
    for (int tries = 0; !phases.empty() && tries < 1000; ++tries) {
        marks = daemon_marks(phases);
        entry = std::find_if(marks.begin(), marks.end(), [](const DaemonMark& m) { return m.phase == "request read"; });
        reply = std::find_if(entry, marks.end(), [](const DaemonMark& m) { return m.phase == "reply sent"; });
        if (reply != marks.end()) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    if (reply != marks.end()) {
        part("built → kvmnetd's method runs (write + relay + read)", ms_between(times.built, entry->at));
        if (daemon_cpu >= 0)
            part("kvmnetd loop: CPU until the method (read)", static_cast<double>(entry->cpu_ns - daemon_cpu) / 1e6);
        part("the method until its reply is sent", ms_between(entry->at, reply->at));
        // Inside it, by the daemon's marks (core/phases.hpp).
        std::map<std::string, std::pair<double, double>> spent;  // wall, CPU of the loop's thread
        for (auto m = entry; m != reply; ++m) {
            spent[std::next(m)->phase].first += ms_between(m->at, std::next(m)->at);
            spent[std::next(m)->phase].second += static_cast<double>(std::next(m)->cpu_ns - m->cpu_ns) / 1e6;
        }
        for (const auto& [phase, ms] : spent) {
            emit("bus:kvmnetd: " + phase, variant, size, "ms", ms.first);
            emit("bus:kvmnetd CPU: " + phase, variant, size, "ms", ms.second);
        }
        part("reply sent → read by the client", ms_between(reply->at, times.replied));
    } else {
        part("built → the reply read by the client", ms_between(times.built, times.replied));
    }
    return total;
}

}  // namespace

int cmd_dbus_forwards(const Args& args)
{
    Client client(read_file(args.need("document")));
    if (args.flag("load")) {
        // Leave a running network with this many forwards (for the memory figure).
        const unsigned n = args.number("load", 0);
        client.create_and_start();
        if (n > 0) client.add_forwards(forwards_document(0, n));
        return 0;
    }
    const auto sizes = args.numbers("bulk", "1000,10000,100000");
    const unsigned bulk_runs = args.number("bulk-runs", 5);
    const unsigned runs_100k = args.number("max-runs-100k", 3);
    const auto at = args.numbers("at", "0,1000,10000,100000");
    const unsigned adds = args.number("adds", 200);

    for (const unsigned size : sizes) {
        const std::string batch = forwards_document(0, size);
        // The same forwards as AddForwardsTyped's structs; its runs alternate with AddForwards'.
        const std::vector<model::ForwardFields> typed = forward_fields(size);
        const unsigned runs = size >= 100000 ? std::min(bulk_runs, runs_100k) : bulk_runs;
        for (unsigned r = 0; r < runs; ++r) {
            client.create_and_start();
            auto start = Clock::now();
            client.add_forwards(batch);
            emit("commit_bulk", "kvmnet-dbus", size, "ms", ms_since(start));
            client.remove();
            client.create_and_start();
            emit("commit_bulk", "kvmnet-dbus-typed", size, "ms",
                 typed_call_split(client, typed, args, "kvmnet-dbus-typed", size, false));
            start = Clock::now();
            const long long cpu = thread_cpu_ns();
            client.build_sdbuscpp_message(typed);
            emit("bus:client: build with sdbus-c++ Structs (before; not sent)", "kvmnet-dbus-typed", size, "ms",
                 ms_since(start));
            emit("bus:client: CPU of that build", "kvmnet-dbus-typed", size, "ms",
                 static_cast<double>(thread_cpu_ns() - cpu) / 1e6);
            client.remove();
            // The same structs as records in a sealed memfd (AddForwardsFromFd).
            client.create_and_start();
            emit("commit_bulk", "kvmnet-dbus-fd", size, "ms",
                 typed_call_split(client, typed, args, "kvmnet-dbus-fd", size, true));
            client.remove();
        }
    }
    for (const unsigned n : at) {
        client.create_and_start();
        if (n > 0) client.add_forwards(forwards_document(0, n));
        for (unsigned r = 0; r < adds; ++r) {
            const ForwardSpec one = forward_spec(200000 + r);
            const std::string json = forward_json(one).dump();
            const auto start = Clock::now();
            client.add_forwards(json);
            emit("add_one", "kvmnet-dbus", n, "ms", ms_since(start));
            const auto removing = Clock::now();
            client.remove_forward(one);
            emit("remove_one", "kvmnet-dbus", n, "ms", ms_since(removing));
        }
        client.remove();
    }
    return 0;
}

}  // namespace kvmnet::bench
