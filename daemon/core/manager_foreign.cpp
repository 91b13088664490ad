// Other firewalls' chains that kvmnet keeps its rules in
// (core/foreign_firewall.hpp), and firewalld's zone (core/firewalld.hpp):
// re-synced whenever the set of running networks changes (apply_firewall)
// and when another program changes one of its tables, e.g. Docker
// starting, restarting or flushing, or firewalld reloads or restarts. The
// same change re-reads the other programs' tables and judges each running
// network again: degraded while one of them drops its guests' traffic,
// active again once it lets them through (plan/foreign_rules.hpp).
#include "core/firewalld.hpp"
#include "core/foreign_firewall.hpp"
#include "core/log.hpp"
#include "core/manager.hpp"

#include <algorithm>

namespace kvmnet::core {
namespace {
// One burst of notifications (Docker writes its chains in dozens of
// transactions when it starts) is one sync.
constexpr std::uint64_t foreign_delay_usec = 100'000;
}  // namespace

void Manager::foreign_firewall_changed()
{
    // At once, not with the timer: a start in between lists them afresh.
    other_chains_valid_ = false;
    if (foreign_timer_) return;
    foreign_timer_ = loop_.add_timer(foreign_delay_usec, [this] {
        foreign_timer_.reset();
        sync_foreign_firewall_now();
    });
}

void Manager::sync_foreign_firewall_now()
{
    if (docker_user_) docker_user_->sync(active_networks(), other_chains());
    if (firewalld_ && options_.firewall_integration) {
        firewalld_->sync(active_networks(), known_bridges(), firewalld_changed_);
        firewalld_changed_ = false;
    }
    read_foreign_rules_now();
    for (auto& [name, e] : networks_)
        assess(e);
}

void Manager::read_foreign_rules_now()
{
    const bool any_running = std::any_of(networks_.begin(), networks_.end(),
                                         [](const auto& n) { return is_running(n.second.state) || n.second.starting; });
    if (any_running && !options_.nft.empty())
        foreign_rules_ = read_foreign_rules(other_chains(), options_.nft, plan::table_name);
    else
        foreign_rules_.reset();
}

const std::optional<std::vector<plan::ChainInfo>>& Manager::other_chains()
{
    if (other_chains_valid_ && foreign_tables_watched_) return other_chains_;
    other_chains_.reset();
    other_chains_valid_ = false;
    try {
        std::vector<plan::ChainInfo> chains = firewall_.list_chains();
        std::erase_if(chains,
                      [](const plan::ChainInfo& c) { return c.family == "inet" && c.table == plan::table_name; });
        other_chains_ = std::move(chains);
        other_chains_valid_ = true;
    } catch (const std::exception& e) {
        log_warning(std::string("other programs' firewall tables: cannot list nftables chains: ") + e.what());
    }
    return other_chains_;
}

void Manager::firewalld_changed()
{
    firewalld_changed_ = true;
    foreign_firewall_changed();
}

void Manager::set_firewalld_bus(FirewalldBus& bus)
{
    firewalld_ = std::make_unique<Firewalld>(
        bus,
        [this](std::uint64_t delay_usec) {
            firewalld_retry_ = loop_.add_timer(delay_usec, [this] {
                firewalld_retry_.reset();
                if (options_.firewall_integration) firewalld_->sync(active_networks(), known_bridges(), true);
            });
        },
        // From inside a sync, maybe within a start: judged on the next turn.
        [this] {
            if (firewalld_assess_) return;
            firewalld_assess_ = loop_.add_timer(0, [this] {
                firewalld_assess_.reset();
                for (auto& [name, e] : networks_)
                    assess(e);
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
