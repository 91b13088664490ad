// D-Bus adaptors for org.kvmnet1.Manager and org.kvmnet1.Network.
#include "api/service.hpp"

#include "core/log.hpp"
#include "org.kvmnet1.Manager-adaptor.h"
#include "org.kvmnet1.Network-adaptor.h"

#include <functional>

namespace kvmnet::api {
namespace {

constexpr const char* version = KVMNET_VERSION;

// Runs a handler, turning our typed errors into named D-Bus errors.
template <typename F>
auto guarded(F&& body) -> decltype(body())
{
    try {
        return body();
    } catch (const sdbus::Error&) {
        throw;
    } catch (const Error& e) {
        throw sdbus::Error("org.kvmnet1.Error." + std::string(error_kind_name(e.kind())), e.what());
    } catch (const std::exception& e) {
        core::log_error(std::string("unexpected failure: ") + e.what());
        throw sdbus::Error("org.freedesktop.DBus.Error.Failed", e.what());
    }
}

// Changing anything needs root for now; polkit comes with issue #5.
void require_privileged(sdbus::IObject& object)
{
    const sdbus::Message* message = object.getCurrentlyProcessedMessage();
    uid_t uid = 0;
    try {
        if (!message) throw sdbus::Error("org.freedesktop.DBus.Error.AccessDenied", "no current message");
        uid = message->getCredsUid();
    } catch (const sdbus::Error&) {
        throw sdbus::Error("org.freedesktop.DBus.Error.AccessDenied", "cannot determine the caller's user id");
    }
    if (uid != 0)
        throw sdbus::Error("org.freedesktop.DBus.Error.AccessDenied",
                           "changing kvmnet networks requires root (caller uid " + std::to_string(uid) + ")");
}

}  // namespace

std::string network_path(const std::string& name)
{
    static const char hex[] = "0123456789abcdef";
    std::string path = "/org/kvmnet1/network/";
    for (unsigned char c : name) {
        if (std::isalnum(c)) {
            path += static_cast<char>(c);
        } else {
            path += '_';
            path += hex[c >> 4];
            path += hex[c & 0xf];
        }
    }
    return path;
}

class ManagerObject final
    : public sdbus::AdaptorInterfaces<org::kvmnet1::Manager_adaptor, sdbus::ObjectManager_adaptor> {
public:
    ManagerObject(sdbus::IConnection& connection, core::Manager& manager)
        : AdaptorInterfaces(connection, manager_path), manager_(manager)
    {
        registerAdaptor();
    }
    ~ManagerObject() { unregisterAdaptor(); }

private:
    sdbus::ObjectPath CreateNetwork(const std::string& document) override
    {
        return guarded([&] {
            require_privileged(getObject());
            return sdbus::ObjectPath(network_path(manager_.create(document)));
        });
    }
    void DeleteNetwork(const std::string& name) override
    {
        guarded([&] {
            require_privileged(getObject());
            manager_.remove(name);
        });
    }
    sdbus::ObjectPath GetNetwork(const std::string& name) override
    {
        return guarded([&] {
            manager_.spec(name);  // NotFound when absent
            return sdbus::ObjectPath(network_path(name));
        });
    }
    std::vector<sdbus::ObjectPath> ListNetworks() override
    {
        std::vector<sdbus::ObjectPath> paths;
        for (const auto& name : manager_.names())
            paths.emplace_back(network_path(name));
        return paths;
    }
    std::string Describe() override
    {
        return guarded([&] { return manager_.describe_all().dump(); });
    }
    void Reload() override
    {
        guarded([&] {
            require_privileged(getObject());
            manager_.reload();
        });
    }
    std::string Version() override { return version; }

    core::Manager& manager_;
};

class NetworkObject final : public sdbus::AdaptorInterfaces<org::kvmnet1::Network_adaptor, sdbus::ManagedObject_adaptor,
                                                            sdbus::Properties_adaptor> {
public:
    NetworkObject(sdbus::IConnection& connection, core::Manager& manager, std::string name)
        : AdaptorInterfaces(connection, network_path(name)), manager_(manager), name_(std::move(name))
    {
        registerAdaptor();
        snapshot_ = snapshot();
        emitInterfacesAddedSignal({org::kvmnet1::Network_adaptor::INTERFACE_NAME});
    }
    ~NetworkObject()
    {
        // When the daemon exits, networks keep running: their objects go away
        // with the daemon but must not be announced as removed.
        if (!daemon_exiting_) emitInterfacesRemovedSignal({org::kvmnet1::Network_adaptor::INTERFACE_NAME});
        unregisterAdaptor();
    }

    void daemon_exiting() { daemon_exiting_ = true; }

    // Emits PropertiesChanged for exactly the properties whose value moved.
    void refresh()
    {
        auto now = snapshot();
        std::vector<std::string> changed;
        for (const auto& [property, value] : now)
            if (snapshot_[property] != value) changed.push_back(property);
        snapshot_ = std::move(now);
        if (!changed.empty()) emitPropertiesChangedSignal(org::kvmnet1::Network_adaptor::INTERFACE_NAME, changed);
    }

private:
    std::map<std::string, std::string> snapshot()
    {
        const auto& s = manager_.spec(name_);
        return {{"Name", s.name},
                {"Mode", std::string(model::mode_name(s.mode))},
                {"State", std::string(core::state_name(manager_.state(name_)))},
                {"StateReason", manager_.state_reason(name_)},
                {"Bridge", s.bridge},
                {"IPv4Address", IPv4Address()},
                {"Autostart", s.autostart ? "true" : "false"},
                {"Uplink", s.uplink},
                {"Mtu", std::to_string(s.mtu)},
                {"Ports",
                 [&] {
                     std::string names;
                     for (const auto& p : s.ports)
                         names += p.name + "\n";
                     return names;
                 }()},
                {"AwaitingConfirmation", manager_.awaiting_confirmation(name_) ? "true" : "false"},
                {"Dnsmasq", Dnsmasq()},
                {"IPv6Address", IPv6Address()},
                {"LastRepair", manager_.last_repair(name_)}};
    }

    void Start() override
    {
        guarded([&] {
            require_privileged(getObject());
            manager_.start(name_);
        });
    }
    void Stop() override
    {
        guarded([&] {
            require_privileged(getObject());
            manager_.stop(name_);
        });
    }
    void Update(const std::string& document) override
    {
        guarded([&] {
            require_privileged(getObject());
            manager_.update(name_, document);
        });
    }
    std::string Describe() override
    {
        return guarded([&] { return manager_.describe(name_).dump(); });
    }
    void StartWithConfirmation(const uint32_t& timeout_seconds) override
    {
        guarded([&] {
            require_privileged(getObject());
            if (timeout_seconds == 0 || timeout_seconds > 3600)
                throw Error(ErrorKind::InvalidArgument, "timeout_seconds: must be between 1 and 3600");
            manager_.start(name_, timeout_seconds);
        });
    }
    void Confirm() override
    {
        guarded([&] {
            require_privileged(getObject());
            manager_.confirm(name_);
        });
    }
    void AttachPort(const std::string& port) override
    {
        guarded([&] {
            require_privileged(getObject());
            manager_.attach_port(name_, port);
        });
    }
    void DetachPort(const std::string& port) override
    {
        guarded([&] {
            require_privileged(getObject());
            manager_.detach_port(name_, port);
        });
    }
    std::string ListPorts() override
    {
        return guarded([&] { return manager_.list_ports(name_).dump(); });
    }
    std::string Leases() override
    {
        return guarded([&] { return manager_.leases(name_).dump(); });
    }
    void AddHost(const std::string& host) override
    {
        guarded([&] {
            require_privileged(getObject());
            manager_.add_host(name_, host);
        });
    }
    void RemoveHost(const std::string& mac) override
    {
        guarded([&] {
            require_privileged(getObject());
            manager_.remove_host(name_, mac);
        });
    }
    std::vector<std::string> AddForwards(const std::string& forwards) override
    {
        return guarded([&] {
            require_privileged(getObject());
            return manager_.add_forwards(name_, forwards);
        });
    }
    void RemoveForward(const std::string& proto, const std::string& host_address, const uint32_t& host_port) override
    {
        guarded([&] {
            require_privileged(getObject());
            manager_.remove_forward(name_, model::make_forward_key(proto, host_address, host_port));
        });
    }
    std::string ListForwards() override
    {
        return guarded([&] { return manager_.list_forwards(name_).dump(); });
    }
    std::string Statistics() override
    {
        return guarded([&] { return manager_.statistics(name_).dump(); });
    }
    std::string Diagnose() override
    {
        return guarded([&] { return manager_.diagnose(name_).dump(); });
    }
    std::vector<std::string> Ports() override
    {
        std::vector<std::string> names;
        for (const auto& p : manager_.spec(name_).ports)
            names.push_back(p.name);
        return names;
    }
    bool AwaitingConfirmation() override { return manager_.awaiting_confirmation(name_); }
    std::string Dnsmasq() override { return std::string(manager_.dnsmasq_state(name_)); }
    void SetAutostart(const bool& autostart) override
    {
        guarded([&] {
            require_privileged(getObject());
            manager_.set_autostart(name_, autostart);
        });
    }

    std::string Name() override { return name_; }
    std::string Mode() override { return std::string(model::mode_name(manager_.spec(name_).mode)); }
    std::string State() override { return std::string(core::state_name(manager_.state(name_))); }
    std::string StateReason() override { return manager_.state_reason(name_); }
    std::string Bridge() override { return manager_.spec(name_).bridge; }
    std::string IPv4Address() override
    {
        const auto& ipv4 = manager_.spec(name_).ipv4;
        return ipv4 ? ipv4->address.str() : "";
    }
    std::string IPv6Address() override
    {
        const auto& ipv6 = manager_.spec(name_).ipv6;
        return ipv6 ? ipv6->address.str() : "";
    }
    bool Autostart() override { return manager_.spec(name_).autostart; }
    std::string Uplink() override { return manager_.spec(name_).uplink; }
    uint32_t Mtu() override { return manager_.spec(name_).mtu; }
    std::string LastRepair() override { return manager_.last_repair(name_); }

    core::Manager& manager_;
    std::string name_;
    std::map<std::string, std::string> snapshot_;
    bool daemon_exiting_ = false;
};

Service::Service(sdbus::IConnection& connection, core::Manager& manager)
    : connection_(connection), manager_(manager), manager_object_(std::make_unique<ManagerObject>(connection, manager))
{
    manager_.set_listener(this);
}

Service::~Service()
{
    manager_.set_listener(nullptr);
    for (auto& [name, object] : networks_)
        object->daemon_exiting();
    networks_.clear();
}

void Service::network_added(const std::string& name)
{
    networks_[name] = std::make_unique<NetworkObject>(connection_, manager_, name);
    manager_object_->emitNetworkAdded(name, sdbus::ObjectPath(network_path(name)));
}

void Service::network_removed(const std::string& name)
{
    networks_.erase(name);
    manager_object_->emitNetworkRemoved(name, sdbus::ObjectPath(network_path(name)));
}

void Service::mac_conflict(const std::string& name, const std::string& mac, const std::vector<std::string>& ports)
{
    if (auto it = networks_.find(name); it != networks_.end()) it->second->emitMacConflict(mac, ports);
}

void Service::lease_changed(const std::string& name, const std::string& event, const std::string& mac,
                            const std::string& ip, const std::string& hostname)
{
    if (auto it = networks_.find(name); it != networks_.end()) it->second->emitLeaseChanged(event, mac, ip, hostname);
}

void Service::network_repaired(const std::string& name, const std::string& what, const std::string& detail)
{
    if (auto it = networks_.find(name); it != networks_.end()) it->second->emitRepaired(what, detail);
}

void Service::network_changed(const std::string& name)
{
    if (auto it = networks_.find(name); it != networks_.end()) it->second->refresh();
}

}  // namespace kvmnet::api
