// The MAC-conflict watch of one network's bridge: where each guest MAC was
// last learnt, and a conflict when a MAC moves back and forth between two
// ports (two guests sending with one MAC). A MAC that moves once is a guest
// migrating, not a conflict. The clock is injected so that windows and
// expiry are tested without waiting.
#pragma once

#include "core/clock.hpp"

#include <cstdint>
#include <map>
#include <optional>
#include <string>

namespace kvmnet::core {

class MacWatch {
public:
    // Moves closer than this count as a flap.
    static constexpr std::uint64_t flap_window_usec = 20'000'000;
    // A conflict is reported this long after it was last seen.
    static constexpr std::uint64_t conflict_memory_usec = 60'000'000;

    explicit MacWatch(const Clock& clock) : clock_(clock) {}

    // A MAC flapping between two bridge ports (by index).
    struct Flap {
        int previous = 0;
        int port = 0;
    };
    // `mac` was learnt behind bridge port `port_index`: the flap when it
    // moved there back and forth within the window.
    std::optional<Flap> learned(const std::string& mac, int port_index);
    // The conflict a flap showed (in words), kept while recent. True when
    // it is not the one already reported.
    bool report(std::string conflict);
    // True when a conflict was forgotten now, quiet for long enough.
    bool expire();
    // The recent conflict; empty when none.
    const std::string& conflict() const { return conflict_; }

    // The bridge was made again: its port indexes start over.
    void forget_ports() { seen_.clear(); }
    // The network started or stopped: nothing seen before counts.
    void reset()
    {
        seen_.clear();
        conflict_.clear();
    }

private:
    struct Seen {
        int port = 0;
        std::uint64_t moved_usec = 0;
        unsigned moves = 0;
    };
    const Clock& clock_;
    std::map<std::string, Seen> seen_;
    std::string conflict_;
    std::uint64_t conflict_usec_ = 0;
};

}  // namespace kvmnet::core
