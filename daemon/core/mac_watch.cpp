// The MAC-conflict watch; see mac_watch.hpp.
#include "core/mac_watch.hpp"

#include <utility>

namespace kvmnet::core {

std::optional<MacWatch::Flap> MacWatch::learned(const std::string& mac, int port_index)
{
    const std::uint64_t now = clock_.now_usec();
    auto [it, inserted] = seen_.try_emplace(mac, Seen{port_index, now, 0});
    Seen& seen = it->second;
    if (inserted || seen.port == port_index) return std::nullopt;
    // The MAC moved to another port. Once is a guest migrating; moving back
    // and forth within the window means two senders.
    seen.moves = now - seen.moved_usec < flap_window_usec ? seen.moves + 1 : 1;
    const int previous = seen.port;
    seen.port = port_index;
    seen.moved_usec = now;
    if (seen.moves < 2) return std::nullopt;
    return Flap{previous, port_index};
}

bool MacWatch::report(std::string conflict)
{
    const bool is_new = conflict_ != conflict;
    conflict_ = std::move(conflict);
    conflict_usec_ = clock_.now_usec();
    return is_new;
}

bool MacWatch::expire()
{
    if (conflict_.empty() || clock_.now_usec() - conflict_usec_ <= conflict_memory_usec) return false;
    conflict_.clear();
    return true;
}

}  // namespace kvmnet::core
