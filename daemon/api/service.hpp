// The D-Bus face of the daemon: one adaptor object for the manager at
// /org/kvmnet1 and one per network, kept in step with the core::Manager
// through its listener interface. Translates kvmnet::Error into named D-Bus
// errors and lets callers of changing methods through only when they are
// root or polkit authorizes them (api/authorization.hpp).
#pragma once

#include "core/event_loop.hpp"
#include "core/manager.hpp"

#include <sdbus-c++/sdbus-c++.h>

#include <map>
#include <memory>
#include <set>
#include <string>

namespace kvmnet::api {

inline constexpr const char* bus_name = "org.kvmnet1";
inline constexpr const char* manager_path = "/org/kvmnet1";

// "/org/kvmnet1/network/" + name with every byte outside [A-Za-z0-9] as _XX.
std::string network_path(const std::string& name);

class Authorizer;
class ManagerObject;
class NetworkObject;

class Service final : public core::ManagerListener {
public:
    // With `loop`, the PropertiesChanged of a network's counts, revision and
    // the like go out once per loop turn (see network_changed); without it
    // at every change.
    Service(sdbus::IConnection& connection, core::Manager& manager, core::EventLoop* loop = nullptr);
    ~Service() override;

    void network_added(const std::string& name) override;
    void network_removed(const std::string& name) override;
    void network_changed(const std::string& name) override;
    void overlay_changed(const std::string& name, const std::string& what, const std::string& detail) override;
    void mac_conflict(const std::string& name, const std::string& mac, const std::vector<std::string>& ports) override;
    void network_repaired(const std::string& name, const std::string& what, const std::string& detail) override;
    void lease_changed(const std::string& name, const std::string& event, const std::string& mac, const std::string& ip,
                       const std::string& hostname) override;

private:
    void flush_changes();

    sdbus::IConnection& connection_;
    core::Manager& manager_;
    std::unique_ptr<Authorizer> authorizer_;
    std::unique_ptr<ManagerObject> manager_object_;
    std::map<std::string, std::unique_ptr<NetworkObject>> networks_;
    core::EventLoop* loop_;
    std::set<std::string> changed_;  // networks whose PropertiesChanged waits for the end of the turn
    std::unique_ptr<core::EventSource> flush_;
};

}  // namespace kvmnet::api
