// Forwards end to end through D-Bus: kvmnet-bench is the client, calling
// org.kvmnet1.Network.AddForwards on a kvmnetd that bench.sh started on a
// private bus, the way kvmnetctl or an applet would (minus process start).
#include "bench.hpp"

#include <nlohmann/json.hpp>
#include <sdbus-c++/sdbus-c++.h>

#include <fstream>
#include <iostream>
#include <sstream>

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
    using Typed =
        sdbus::Struct<std::string, std::string, uint16_t, uint16_t, std::string, uint16_t, std::string, uint32_t>;
    void add_forwards_typed(const std::vector<Typed>& forwards)
    {
        network_->callMethod("AddForwardsTyped")
            .onInterface(network_interface)
            .withArguments(forwards)
            .withTimeout(call_timeout);
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
        std::vector<Client::Typed> typed;
        typed.reserve(size);
        for (unsigned i = 0; i < size; ++i) {
            const ForwardSpec f = forward_spec(i);
            typed.emplace_back(std::string("tcp"), f.host_address, static_cast<uint16_t>(f.host_port), uint16_t{0},
                               f.guest, static_cast<uint16_t>(f.guest_port), std::string(), uint32_t{0});
        }
        const unsigned runs = size >= 100000 ? std::min(bulk_runs, runs_100k) : bulk_runs;
        for (unsigned r = 0; r < runs; ++r) {
            client.create_and_start();
            auto start = Clock::now();
            client.add_forwards(batch);
            emit("commit_bulk", "kvmnet-dbus", size, "ms", ms_since(start));
            client.remove();
            client.create_and_start();
            start = Clock::now();
            client.add_forwards_typed(typed);
            emit("commit_bulk", "kvmnet-dbus-typed", size, "ms", ms_since(start));
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
