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
//
// The generator is meant to cost little next to what it measures (issue 12:
// with sdbus-c++ proxies, nlohmann's accept() of every JSON reply and a
// std::function per call, the 32 clients used about as much CPU per call as
// kvmnetd). So the clients speak sd-bus directly: a call is one message
// built and sent with sd_bus_call, a reply's string is checked where it
// lies in the message (json_valid, the same answer as accept()), arguments
// are formatted into stack buffers, and a read, or a forward's or host's
// write, allocates nothing but sd-bus's messages and the latency sample.
#include "bench.hpp"
#include "json_check.hpp"

#include <nlohmann/json.hpp>
#include <systemd/sd-bus.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <memory>
#include <mutex>
#include <random>
#include <thread>

namespace kvmnet::bench {

namespace {

using json = nlohmann::json;

constexpr const char* service = "org.kvmnet1";
constexpr const char* manager_path = "/org/kvmnet1";
constexpr const char* manager_interface = "org.kvmnet1.Manager";
constexpr const char* network_interface = "org.kvmnet1.Network";
constexpr const char* properties_interface = "org.freedesktop.DBus.Properties";
constexpr const char* object_manager_interface = "org.freedesktop.DBus.ObjectManager";
constexpr std::uint64_t write_timeout_usec = 60'000'000;
constexpr std::uint64_t default_timeout_usec = 0;  // sd-bus's own (25 s), as sdbus-c++ used for the reads
constexpr unsigned ports_per_client = 100;
constexpr unsigned first_port = 20000;
constexpr unsigned max_hosts_limit = 200;
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

struct BusClose {
    void operator()(sd_bus* bus) const { sd_bus_flush_close_unref(bus); }
};
struct MessageUnref {
    void operator()(sd_bus_message* m) const { sd_bus_message_unref(m); }
};
using MessagePtr = std::unique_ptr<sd_bus_message, MessageUnref>;

// A connection of its own to the system bus ($DBUS_SYSTEM_BUS_ADDRESS), and
// blocking method calls on it.
class Bus {
public:
    Bus()
    {
        sd_bus* bus = nullptr;
        const int r = sd_bus_open_system(&bus);
        if (r < 0) throw std::runtime_error(std::string{"cannot connect to the system bus: "} + std::strerror(-r));
        bus_.reset(bus);
    }

    // Calls MEMBER with the arguments TYPES, ARGS (as sd_bus_message_append
    // takes them) and waits up to TIMEOUT_USEC (0: sd-bus's default). The
    // reply, positioned at its first argument; null on failure, and WHY
    // says what the bus or the daemon answered ("error name: message").
    template <typename... Args>
    MessagePtr call(std::string& why, std::uint64_t timeout_usec, const char* path, const char* interface,
                    const char* member, const char* types, Args... args)
    {
        sd_bus_message* raw = nullptr;
        int r = sd_bus_message_new_method_call(bus_.get(), &raw, service, path, interface, member);
        const MessagePtr request(raw);
        if (r >= 0 && *types != '\0') r = sd_bus_message_append(raw, types, args...);
        if (r < 0) {
            why = std::string{"building the call: "} + std::strerror(-r);
            return nullptr;
        }
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message* reply = nullptr;
        r = sd_bus_call(bus_.get(), raw, timeout_usec, &error, &reply);
        if (r < 0) {
            why = sd_bus_error_is_set(&error) ? std::string{error.name} + ": " + (error.message ? error.message : "")
                                              : std::string{"sd_bus_call: "} + std::strerror(-r);
            sd_bus_error_free(&error);
            return nullptr;
        }
        return MessagePtr(reply);
    }

    // The same for callers outside the timed loop: a failure throws.
    template <typename... Args>
    MessagePtr call_or_throw(const char* path, const char* interface, const char* member, const char* types,
                             Args... args)
    {
        std::string why;
        MessagePtr reply = call(why, write_timeout_usec, path, interface, member, types, args...);
        if (!reply) throw std::runtime_error(std::string{member} + ": " + why);
        return reply;
    }

private:
    std::unique_ptr<sd_bus, BusClose> bus_;
};

// Reading replies. Each returns false and says why when the reply is not of
// the type the method declares (sdbus-c++ threw then).
bool unexpected(std::string& why, const char* what, int r)
{
    why = std::string{"unexpected reply ("} + what + "): " + (r < 0 ? std::strerror(-r) : "missing");
    return false;
}
// A string argument, where it lies in the message.
bool read_string(sd_bus_message* reply, const char*& text, std::string& why)
{
    const int r = sd_bus_message_read_basic(reply, SD_BUS_TYPE_STRING, &text);
    return r > 0 || unexpected(why, "s", r);
}
bool read_path(sd_bus_message* reply, const char*& path, std::string& why)
{
    const int r = sd_bus_message_read_basic(reply, SD_BUS_TYPE_OBJECT_PATH, &path);
    return r > 0 || unexpected(why, "o", r);
}
// A string reply that must be JSON.
bool read_json(sd_bus_message* reply, std::string& why)
{
    const char* text = nullptr;
    if (!read_string(reply, text, why)) return false;
    const std::string_view view(text);
    if (json_valid(view)) return true;
    why = std::string{"reply is not valid JSON: "}.append(view.substr(0, 80));
    return false;
}

// "a.b.c.d" and the JSON arguments of the writes, in stack buffers; the
// texts are nlohmann's dump() of the objects the generator sent before
// (members in key order).
struct Text {
    char s[320];
    template <typename... Args>
    explicit Text(const char* format, Args... args)
    {
        const int n = std::snprintf(s, sizeof s, format, args...);
        if (n < 0 || static_cast<std::size_t>(n) >= sizeof s) throw std::logic_error("load generator: text too long");
    }
};

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

// A set of small numbers (a client's port offsets, its host numbers) that
// needs no allocation to change; the k-th member is what std::set's k-th
// element was, so the random choices are the ones the generator always made.
template <unsigned N>
class SmallSet {
public:
    bool has(unsigned n) const { return present_[n]; }
    std::size_t size() const { return size_; }
    bool empty() const { return size_ == 0; }
    void insert(unsigned n)
    {
        if (!present_[n]) ++size_;
        present_[n] = true;
    }
    void erase(unsigned n)
    {
        if (present_[n]) --size_;
        present_[n] = false;
    }
    unsigned nth(std::size_t k) const
    {
        for (unsigned n = 0; n < N; ++n)
            if (present_[n] && k-- == 0) return n;
        throw std::logic_error("SmallSet::nth beyond the end");
    }
    template <typename F>
    void each(F&& f) const
    {
        for (unsigned n = 0; n < N; ++n)
            if (present_[n]) f(n);
    }

private:
    bool present_[N] = {};
    std::size_t size_ = 0;
};

class Client {
public:
    Client(Shared& shared, unsigned index)
        : shared_(shared), index_(index), random_(0x6b766d6eU + index), own_name_("load-c" + std::to_string(index)),
          first_own_port_(first_port + index * ports_per_client)
    {
        const std::string subnet = shared.prefix + std::to_string(index_ + 1) + ".";
        std::snprintf(guest_prefix_, sizeof guest_prefix_, "%s", subnet.c_str());
    }

    // Untimed: what of this client's range is already there.
    void adopt()
    {
        const char* text = nullptr;
        std::string why;
        MessagePtr reply = bus_.call_or_throw(shared_.network_path.c_str(), network_interface, "Describe", "");
        if (!read_string(reply.get(), text, why)) throw std::runtime_error("Describe: " + why);
        const json doc = json::parse(text);
        for (const auto& f : doc.value("forwards", json::array())) {
            const unsigned port = f.value("host_port", 0U);
            if (f.value("proto", "") == "tcp" && owns_port(port)) forwards_.insert(port - first_own_port_);
        }
        if (doc.contains("ipv4") && doc["ipv4"].contains("dhcp"))
            for (const auto& h : doc["ipv4"]["dhcp"].value("hosts", json::array())) {
                const std::string mac = h.value("mac", "");
                for (unsigned n = 0; n < shared_.max_hosts; ++n)
                    if (mac == host_mac(n).s) hosts_.insert(n);
            }
        initial_forwards_ = forwards_.size();
        reply = bus_.call_or_throw(manager_path, manager_interface, "Describe", "");
        if (!read_string(reply.get(), text, why)) throw std::runtime_error("Manager.Describe: " + why);
        const json networks = json::parse(text).at("networks");
        for (const auto& n : networks)
            if (n.value("name", "") == own_name_) {
                // Left by an interrupted run: start from a clean slate.
                bus_.call_or_throw(manager_path, manager_interface, "DeleteNetwork", "s", own_name_.c_str());
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
    std::vector<unsigned> forwards() const
    {
        std::vector<unsigned> out;
        forwards_.each([&](unsigned offset) { out.push_back(first_own_port_ + offset); });
        return out;
    }
    std::vector<std::string> hosts() const
    {
        std::vector<std::string> out;
        hosts_.each([&](unsigned n) { out.emplace_back(host_mac(n).s); });
        return out;
    }
    std::uint64_t added() const { return added_; }
    std::uint64_t removed() const { return removed_; }
    std::size_t initial_forwards() const { return initial_forwards_; }

private:
    bool owns_port(unsigned port) const { return port >= first_own_port_ && port < first_own_port_ + ports_per_client; }
    Text host_mac(unsigned n) const { return Text("52:54:00:1d:%02x:%02x", index_ & 0xff, n & 0xff); }

    // Times one call: BODY makes it and checks the reply, and says why when
    // it returns false.
    template <typename Body>
    bool timed(Call call, Body&& body)
    {
        std::string why;
        const auto start = Clock::now();
        const bool ok = body(why);
        stats_.ms[call].push_back(ms_since(start));
        if (!ok) fail(call, why);
        return ok;
    }
    void fail(Call call, const std::string& what)
    {
        ++stats_.failed[call];
        const std::lock_guard lock(shared_.mutex);
        ++shared_.error_count;
        if (shared_.errors.size() < errors_kept)
            shared_.errors.push_back("client " + std::to_string(index_) + ", " + call_name(call) + ": " + what);
    }

    // A read: MEMBER with the arguments TYPES, ARGS, its reply checked by
    // CHECK(reply, why).
    template <typename Check, typename... Args>
    bool call_and_check(std::string& why, const char* path, const char* interface, const char* member, Check&& check,
                        const char* types = "", Args... args)
    {
        const MessagePtr reply = bus_.call(why, default_timeout_usec, path, interface, member, types, args...);
        return reply && check(reply.get(), why);
    }

    void read(unsigned kind)
    {
        const auto call = static_cast<Call>(kind);
        const char* network = shared_.network_path.c_str();
        timed(call, [&](std::string& why) {
            switch (call) {
            case ListNetworks:
                return call_and_check(why, manager_path, manager_interface, "ListNetworks", check_networks_listed);
            case ManagerDescribe: return call_and_check(why, manager_path, manager_interface, "Describe", read_json);
            case GetManagedObjects:
                return call_and_check(why, manager_path, object_manager_interface, "GetManagedObjects",
                                      [&](sd_bus_message* reply, std::string& w) {
                                          return require_key(reply, managed_objects, network,
                                                             "the load network is not among the managed objects", w);
                                      });
            case Describe: return call_and_check(why, network, network_interface, "Describe", read_json);
            case GetState:
                return call_and_check(why, network, properties_interface, "Get", check_state_active, "ss",
                                      network_interface, "State");
            case GetAll:
                return call_and_check(
                    why, network, properties_interface, "GetAll",
                    [](sd_bus_message* reply, std::string& w) {
                        return require_key(reply, properties, "Name", "GetAll without Name", w);
                    },
                    "s", network_interface);
            case ListForwards: return call_and_check(why, network, network_interface, "ListForwards", read_json);
            case Leases: return call_and_check(why, network, network_interface, "Leases", read_json);
            case Statistics: return call_and_check(why, network, network_interface, "Statistics", read_json);
            default: throw std::logic_error("not a read");
            }
        });
    }

    // The checks of the typed replies (what the generator always asked).
    static bool check_networks_listed(sd_bus_message* reply, std::string& why)
    {
        int r = sd_bus_message_enter_container(reply, SD_BUS_TYPE_ARRAY, "o");
        if (r <= 0) return unexpected(why, "ao", r);
        unsigned listed = 0;
        const char* path = nullptr;
        while ((r = sd_bus_message_read_basic(reply, SD_BUS_TYPE_OBJECT_PATH, &path)) > 0)
            ++listed;
        if (r < 0 || (r = sd_bus_message_exit_container(reply)) < 0) return unexpected(why, "ao", r);
        if (listed == 0) {
            why = "no networks listed";
            return false;
        }
        return true;
    }
    static bool check_state_active(sd_bus_message* reply, std::string& why)
    {
        const char* state = nullptr;
        int r = sd_bus_message_enter_container(reply, SD_BUS_TYPE_VARIANT, "s");
        if (r <= 0 || (r = sd_bus_message_read_basic(reply, SD_BUS_TYPE_STRING, &state)) <= 0 ||
            (r = sd_bus_message_exit_container(reply)) < 0)
            return unexpected(why, "v of s", r);
        if (std::strcmp(state, "active") != 0) {
            why = std::string{"State is '"} + state + "', not active";
            return false;
        }
        return true;
    }
    // A dictionary reply (GetAll's a{sv}, GetManagedObjects' a{oa{sa{sv}}}):
    // its signatures, and how its keys are read.
    struct DictType {
        const char* name;      // a{sv}
        const char* entry;     // {sv}
        const char* contents;  // sv
        char key;              // SD_BUS_TYPE_STRING
        const char* value;     // v
    };
    static constexpr DictType properties{"a{sv}", "{sv}", "sv", SD_BUS_TYPE_STRING, "v"};
    static constexpr DictType managed_objects{"a{oa{sa{sv}}}", "{oa{sa{sv}}}", "oa{sa{sv}}", SD_BUS_TYPE_OBJECT_PATH,
                                              "a{sa{sv}}"};
    // Whether the dictionary has the key WANTED (why = MISSING if not).
    // Every value is skipped, not just passed by: a reply of another type
    // fails as it did when sdbus-c++ read it whole.
    static bool require_key(sd_bus_message* reply, const DictType& type, const char* wanted, const char* missing,
                            std::string& why)
    {
        int r = sd_bus_message_enter_container(reply, SD_BUS_TYPE_ARRAY, type.entry);
        if (r <= 0) return unexpected(why, type.name, r);
        bool found = false;
        while ((r = sd_bus_message_enter_container(reply, SD_BUS_TYPE_DICT_ENTRY, type.contents)) > 0) {
            const char* key = nullptr;
            if ((r = sd_bus_message_read_basic(reply, type.key, &key)) <= 0 ||
                (r = sd_bus_message_skip(reply, type.value)) < 0 || (r = sd_bus_message_exit_container(reply)) < 0)
                return unexpected(why, type.name, r);
            found = found || std::strcmp(key, wanted) == 0;
        }
        if (r < 0 || (r = sd_bus_message_exit_container(reply)) < 0) return unexpected(why, type.name, r);
        if (!found) why = missing;
        return found;
    }

    // A write to the load network's object that answers nothing the
    // generator reads.
    template <typename... Args>
    bool network_write(std::string& why, const char* member, const char* types, Args... args)
    {
        return bus_.call(why, write_timeout_usec, shared_.network_path.c_str(), network_interface, member, types,
                         args...) != nullptr;
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
            const int on = random_() % 2 == 0 ? 1 : 0;
            timed(SetAutostart, [&](std::string& why) { return network_write(why, "SetAutostart", "b", on); });
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
        unsigned offset = 0;
        do {
            offset = random_() % ports_per_client;
        } while (forwards_.has(offset));
        const unsigned port = first_own_port_ + offset;
        const Text forward(
            R"({"description":"load client %u","guest":"%s10","guest_port":80,"host_port":%u,"proto":"tcp"})", index_,
            guest_prefix_, port);
        if (timed(AddForwards, [&](std::string& why) {
                const MessagePtr reply = bus_.call(why, write_timeout_usec, shared_.network_path.c_str(),
                                                   network_interface, "AddForwards", "s", forward.s);
                if (!reply) return false;
                const int r = sd_bus_message_skip(reply.get(), "as");  // the warnings
                return r >= 0 || unexpected(why, "as", r);
            })) {
            forwards_.insert(offset);
            ++added_;
        }
    }
    void remove_forward()
    {
        const unsigned offset = forwards_.nth(random_() % forwards_.size());
        const std::uint32_t port = first_own_port_ + offset;
        if (timed(RemoveForward,
                  [&](std::string& why) { return network_write(why, "RemoveForward", "ssu", "tcp", "", port); })) {
            forwards_.erase(offset);
            ++removed_;
        }
    }
    void add_host()
    {
        unsigned n = 0;
        while (hosts_.has(n))
            ++n;
        const Text host(R"({"ip":"%s%u","mac":"%s","name":"load-c%u-h%u"})", guest_prefix_, 20 + n, host_mac(n).s,
                        index_, n);
        if (timed(AddHost, [&](std::string& why) { return network_write(why, "AddHost", "s", host.s); }))
            hosts_.insert(n);
    }
    void remove_host()
    {
        const unsigned n = hosts_.nth(random_() % hosts_.size());
        const Text mac = host_mac(n);
        if (timed(RemoveHost, [&](std::string& why) { return network_write(why, "RemoveHost", "s", mac.s); }))
            hosts_.erase(n);
    }

    // One step of none (0) -> created (1) -> running (2) -> stopped (3) ->
    // none. A failed step is retried next time (and counted each time it
    // fails).
    void step_own_network()
    {
        switch (cycle_) {
        case 0: {
            const Text doc(R"({"bridge":"ldbr%u","ipv4":{"address":"10.201.%u.1/24","dhcp":{"ranges":)"
                           R"(["10.201.%u.100-10.201.%u.200"]}},"mode":"nat","name":"%s"})",
                           index_, index_, index_, index_, own_name_.c_str());
            if (timed(CreateNetwork, [&](std::string& why) {
                    const MessagePtr reply = bus_.call(why, write_timeout_usec, manager_path, manager_interface,
                                                       "CreateNetwork", "s", doc.s);
                    const char* path = nullptr;
                    if (!reply || !read_path(reply.get(), path, why)) return false;
                    own_path_ = path;
                    return true;
                }))
                cycle_ = 1;
            break;
        }
        case 1:
            if (timed(StartNetwork, [&](std::string& why) {
                    return bus_.call(why, write_timeout_usec, own_path_.c_str(), network_interface, "Start", "") !=
                           nullptr;
                }))
                cycle_ = 2;
            break;
        case 2:
            if (timed(StopNetwork, [&](std::string& why) {
                    return bus_.call(why, write_timeout_usec, own_path_.c_str(), network_interface, "Stop", "") !=
                           nullptr;
                }))
                cycle_ = 3;
            break;
        default:
            if (timed(DeleteNetwork, [&](std::string& why) {
                    return bus_.call(why, write_timeout_usec, manager_path, manager_interface, "DeleteNetwork", "s",
                                     own_name_.c_str()) != nullptr;
                })) {
                own_path_.clear();
                cycle_ = 0;
            } else if (Clock::now() > shared_.deadline + std::chrono::seconds(30)) {
                throw std::runtime_error(own_name_ + " could not be deleted");
            }
        }
    }

    Shared& shared_;
    unsigned index_;
    std::mt19937 random_;
    Bus bus_;
    std::string own_name_;
    std::string own_path_;
    unsigned first_own_port_;
    char guest_prefix_[32] = {};  // "a.b.(index+1)."
    unsigned cycle_ = 0;
    SmallSet<ports_per_client> forwards_;  // offsets from first_own_port_
    SmallSet<max_hosts_limit> hosts_;
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
    if (shared.max_hosts == 0 || shared.max_hosts > max_hosts_limit) throw UsageError("--max-hosts: 1 to 200");
    if (shared.cycle_percent > 50) throw UsageError("--cycle-percent: 0 to 50");

    {
        Bus bus;
        const char* text = nullptr;
        std::string why;
        MessagePtr reply =
            bus.call_or_throw(manager_path, manager_interface, "GetNetwork", "s", shared.network.c_str());
        if (!read_path(reply.get(), text, why)) throw std::runtime_error("GetNetwork: " + why);
        shared.network_path = text;
        reply = bus.call_or_throw(shared.network_path.c_str(), network_interface, "Describe", "");
        if (!read_string(reply.get(), text, why)) throw std::runtime_error("Describe: " + why);
        shared.prefix = subnet_prefix(shared.network, text);
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
        const auto f = c->forwards();
        expected_forwards.insert(expected_forwards.end(), f.begin(), f.end());
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
