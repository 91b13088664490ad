// One network's own state and run-time pieces; see network.hpp.
#include "core/network.hpp"

#include "core/log.hpp"
#include "model/time_text.hpp"

#include <ctime>
#include <utility>

namespace kvmnet::core {
namespace {

// activating is a step on the way, not an outcome a journal reader looks for.
MessageId state_message_id(State state)
{
    switch (state) {
    case State::inactive: return MessageId::network_inactive;
    case State::activating: return MessageId::none;
    case State::active: return MessageId::network_active;
    case State::degraded: return MessageId::network_degraded;
    case State::failed: return MessageId::network_failed;
    }
    return MessageId::none;
}

}  // namespace

std::string_view state_name(State state)
{
    switch (state) {
    case State::inactive: return "inactive";
    case State::activating: return "activating";
    case State::active: return "active";
    case State::degraded: return "degraded";
    case State::failed: return "failed";
    }
    return "failed";
}

bool Network::set_state(State next, std::string code, std::string why)
{
    if (why.empty()) code = "none";
    if (state == next && reason == why && reason_code == code) return false;
    state = next;
    reason = std::move(why);
    reason_code = std::move(code);
    log_info("network " + spec.name + ": " + std::string(state_name(state)) +
                 (reason.empty() ? "" : " (" + reason + ")"),
             spec.name, state_message_id(state));
    return true;
}

void Network::forget_run()
{
    dnsmasq.reset();
    dnsmasq_unreported.clear();
    port_problems.clear();
    foreign_ports.clear();
    mac_watch.reset();
    routes_seen.reset();
    route_problem.clear();
}

void Network::repaired(const std::string& what, const std::string& detail)
{
    last_repair = model::rfc3339_utc(std::time(nullptr)) + " " + what + ": " + detail;
    log_warning("network " + spec.name + ": repaired " + what + ": " + detail, spec.name, MessageId::repaired);
}

}  // namespace kvmnet::core
