// core::FirewalldBus over the system bus (org.fedoraproject.FirewallD1),
// and the watch that re-syncs kvmnet's bridges into firewalld's zone when
// firewalld reloads (its Reloaded signal) or appears on or leaves the bus
// (NameOwnerChanged): a restart forgets run-time interface bindings, and so
// does a reload with FlushAllOnReload=yes (Debian's default).
#pragma once

#include "core/firewalld.hpp"

#include <sdbus-c++/sdbus-c++.h>

#include <functional>
#include <memory>

namespace kvmnet::api {

class FirewalldBusClient final : public core::FirewalldBus {
public:
    // `changed` runs inside the event loop, from the signal's dispatch.
    FirewalldBusClient(sdbus::IConnection& connection, std::function<void()> changed);

    bool running() override;
    void zones(ListDone done) override;
    void zone_of(const std::string& interface, ZoneDone done) override;
    void interfaces_of(const std::string& zone, ListDone done) override;
    void change_zone(const std::string& zone, const std::string& interface, Done done) override;
    void remove_interface(const std::string& zone, const std::string& interface, Done done) override;

private:
    std::function<void()> changed_;
    std::unique_ptr<sdbus::IProxy> bus_;
    std::unique_ptr<sdbus::IProxy> firewalld_;
};

}  // namespace kvmnet::api
