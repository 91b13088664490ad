// Other firewalls' chains that kvmnet keeps its rules in
// (core/foreign_firewall.hpp), and firewalld's zone (core/firewalld.hpp):
// re-synced whenever the set of running networks changes (apply_firewall)
// and when another program changes table ip or ip6 filter, e.g. Docker
// starting, restarting or flushing, or firewalld reloads or restarts.
#include "core/firewalld.hpp"
#include "core/foreign_firewall.hpp"
#include "core/manager.hpp"

namespace kvmnet::core {
namespace {
// One burst of notifications (Docker writes its chains in dozens of
// transactions when it starts) is one sync.
constexpr std::uint64_t foreign_delay_usec = 100'000;
}  // namespace

void Manager::foreign_firewall_changed()
{
    if ((!docker_user_ && !firewalld_) || foreign_timer_) return;
    foreign_timer_ = loop_.add_timer(foreign_delay_usec, [this] {
        foreign_timer_.reset();
        sync_foreign_firewall_now();
    });
}

void Manager::sync_foreign_firewall_now()
{
    if (docker_user_) docker_user_->sync(active_specs());
    if (firewalld_ && options_.firewall_integration) {
        firewalld_->sync(active_specs(), known_bridges(), firewalld_changed_);
        firewalld_changed_ = false;
    }
}

void Manager::firewalld_changed()
{
    firewalld_changed_ = true;
    foreign_firewall_changed();
}

void Manager::set_firewalld_bus(FirewalldBus& bus)
{
    firewalld_ = std::make_unique<Firewalld>(bus, [this](std::uint64_t delay_usec) {
        firewalld_retry_ = loop_.add_timer(delay_usec, [this] {
            firewalld_retry_.reset();
            if (options_.firewall_integration) firewalld_->sync(active_specs(), known_bridges(), true);
        });
    });
}

std::set<std::string> Manager::known_bridges() const
{
    std::set<std::string> bridges;
    for (const auto& [name, e] : networks_)
        bridges.insert(e.spec.bridge);
    return bridges;
}

}  // namespace kvmnet::core
