// The manager owns the desired state (through the store) and the runtime
// state of every network, and reconciles the kernel with it: start and stop
// are transactions over links, the nftables table, sysctls and dnsmasq, with
// every step undone in reverse order when a later one fails.
#pragma once

#include "core/event_loop.hpp"
#include "core/process.hpp"
#include "model/network.hpp"
#include "plan/kernel_view.hpp"
#include "store/store.hpp"

#include <nlohmann/json.hpp>

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace kvmnet::core {

enum class State { inactive, activating, active, degraded, failed };
std::string_view state_name(State state);

struct ManagerOptions {
    std::string state_dir = "/var/lib/kvmnet";
    std::string runtime_dir = "/run/kvmnet";
    std::string dnsmasq = "/usr/sbin/dnsmasq";
    std::string dnsmasq_user;  // empty: "dnsmasq" when that user exists, else "nobody"
};

// Notified after every change, from inside the event loop.
class ManagerListener {
public:
    virtual ~ManagerListener() = default;
    virtual void network_added(const std::string& name) = 0;
    virtual void network_removed(const std::string& name) = 0;
    virtual void network_changed(const std::string& name) = 0;
};

class Manager {
public:
    Manager(ManagerOptions options, EventLoop& loop, plan::LinkAdapter& links, plan::FirewallAdapter& firewall);
    ~Manager();
    Manager(const Manager&) = delete;
    Manager& operator=(const Manager&) = delete;

    void set_listener(ManagerListener* listener) { listener_ = listener; }

    // Loads the stored networks and brings up (or adopts) those marked
    // autostart and those the runtime directory records as active.
    void load();
    // Re-reads the store: new networks appear, removed ones are stopped and
    // vanish, changed ones are updated (restarted when active).
    void reload();

    std::vector<std::string> names() const;
    const model::Network& spec(const std::string& name) const;
    State state(const std::string& name) const;
    const std::string& state_reason(const std::string& name) const;
    nlohmann::json describe(const std::string& name) const;
    nlohmann::json describe_all() const;

    std::string create(const std::string& document);  // returns the network's name
    void remove(const std::string& name);
    void start(const std::string& name);
    void stop(const std::string& name);
    void update(const std::string& name, const std::string& document);
    void set_autostart(const std::string& name, bool autostart);

    // A link appeared, changed or vanished (rtnetlink notification). A
    // running network whose bridge was deleted or downed by someone else
    // becomes degraded; back to active when the bridge is up again.
    void link_changed(const std::string& link_name);

private:
    struct Entry {
        model::Network spec;
        State state = State::inactive;
        std::string reason;
        std::unique_ptr<ProcessWatch> dnsmasq;
        std::unique_ptr<EventSource> restart_timer;
        unsigned restarts = 0;
        std::uint64_t dnsmasq_since_usec = 0;
        std::string dnsmasq_problem;  // why dnsmasq is not serving, while a restart is pending
    };

    Entry& entry(const std::string& name);
    const Entry& entry(const std::string& name) const;
    std::vector<model::Network> configured_except(const std::string& name) const;
    std::vector<model::Network> active_specs(const std::string& plus = {}, const std::string& minus = {}) const;
    void check_kernel_conflicts(const model::Network& network);
    std::string pick_bridge_name() const;
    std::string runtime_dir_of(const std::string& name) const;
    void set_state(Entry& e, State state, std::string reason = {});

    void bring_up(Entry& e);
    std::vector<std::string> tear_down(Entry& e);
    void apply_firewall(const std::vector<model::Network>& active);
    void update_ip_forward(const std::vector<model::Network>& active);
    // Sets active or degraded (with the reason) from the bridge and dnsmasq as they are now.
    void assess(Entry& e);
    void start_dnsmasq(Entry& e);
    void watch_dnsmasq(Entry& e, pid_t pid);
    void dnsmasq_exited(const std::string& name, int status);
    void stop_dnsmasq(Entry& e);

    ManagerOptions options_;
    EventLoop& loop_;
    plan::LinkAdapter& links_;
    plan::FirewallAdapter& firewall_;
    store::Store store_;
    std::string dnsmasq_user_;
    std::map<std::string, Entry> networks_;
    ManagerListener* listener_ = nullptr;
};

}  // namespace kvmnet::core
