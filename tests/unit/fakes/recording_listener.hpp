// A core::ManagerListener that records every notification for unit tests.
#pragma once

#include "core/manager.hpp"

#include <string>
#include <vector>

namespace kvmnet::test {

class RecordingListener final : public core::ManagerListener {
public:
    struct Conflict {
        std::string network, mac;
        std::vector<std::string> ports;
    };
    std::vector<std::string> added, removed, changed;
    std::vector<Conflict> conflicts;
    void network_added(const std::string& name) override { added.push_back(name); }
    void network_removed(const std::string& name) override { removed.push_back(name); }
    void network_changed(const std::string& name) override { changed.push_back(name); }
    void mac_conflict(const std::string& name, const std::string& mac, const std::vector<std::string>& ports) override
    {
        conflicts.push_back({name, mac, ports});
    }
    void lease_changed(const std::string& name, const std::string& event, const std::string& mac, const std::string& ip,
                       const std::string& hostname) override
    {
        lease_events.push_back(name + " " + event + " " + mac + " " + ip + " " + hostname);
    }
    std::vector<std::string> lease_events;
    void network_repaired(const std::string& name, const std::string& what, const std::string& detail) override
    {
        repairs.push_back(name + " " + what + ": " + detail);
    }
    std::vector<std::string> repairs;  // "NETWORK WHAT: DETAIL"
};

}  // namespace kvmnet::test
