#include "plan/listeners.hpp"

namespace kvmnet::plan {
namespace {

bool wildcard(const std::string& address) { return address == "0.0.0.0" || address == "::"; }

}  // namespace

std::vector<Listener> shadowed_listeners(const model::PortForward& f, const std::vector<Listener>& listeners)
{
    std::vector<Listener> result;
    for (const Listener& l : listeners) {
        const bool proto = f.proto == model::Proto::both || (f.proto == model::Proto::tcp) == l.tcp;
        if (!proto || l.port < f.host_port_first || l.port > f.host_port_last) continue;
        if (f.host_address && !wildcard(l.address) && l.address != f.host_address->str() &&
            l.address != "::ffff:" + f.host_address->str())
            continue;
        result.push_back(l);
    }
    return result;
}

}  // namespace kvmnet::plan
