// KVMNET_LOOP_TRACE=MS: every turn of the event loop that takes longer than
// MS milliseconds is logged with what ran in it (the source's handler, by
// the place that registered it, or the D-Bus messages it dispatched) and the
// named pieces inside that took a millisecond or more. Off (the default) it
// costs one load and a branch per turn: the loop's latency is what users
// feel, and this says where it goes without a profiler attached.
#pragma once

#include <cstdint>
#include <optional>
#include <source_location>
#include <string>
#include <string_view>
#include <vector>

namespace kvmnet::core {

// The threshold in microseconds from the variable's text ("5", "0.5"), or
// nothing when the text is absent, empty, not a number or not positive.
std::optional<std::uint64_t> parse_loop_trace(const char* text);

struct TracePiece {
    std::string name;
    std::uint64_t usec = 0;
};

// The log line of a slow turn: "loop turn 12.3 ms (cpu 2.0 ms): LABEL;
// pieces: a 9.0 ms, b 2.1 ms" (pieces longest first, at most `max_pieces`,
// the rest counted). The thread's CPU time tells work from waiting: for a
// CPU on a loaded machine, or in the kernel (rcu_barrier, a sleep).
std::string format_loop_turn(std::string_view label, std::uint64_t usec, std::uint64_t cpu_usec,
                             std::vector<TracePiece> pieces, std::size_t max_pieces = 8);

// "event_loop.cpp:42" style: the file's last component and the line.
std::string source_label(const std::source_location& where);

namespace loop_trace {
// 0 when off; read once from the environment.
std::uint64_t threshold_usec();
inline bool enabled() { return threshold_usec() != 0; }
// Appends to the label of the turn under way (the D-Bus turn says how
// many messages it dispatched); nothing when no turn is traced.
void add_to_label(std::string_view text);
}  // namespace loop_trace

// One handler run by the loop. Nested turns (a synchronous wait that runs
// the loop inside a handler) are pieces of the outer one.
class TraceTurn {
public:
    explicit TraceTurn(const std::source_location& where) : TraceTurn(loop_trace::enabled() ? &where : nullptr, {}) {}
    explicit TraceTurn(std::string_view label) : TraceTurn(nullptr, loop_trace::enabled() ? label : std::string_view())
    {
    }
    ~TraceTurn();
    TraceTurn(const TraceTurn&) = delete;
    TraceTurn& operator=(const TraceTurn&) = delete;

private:
    TraceTurn(const std::source_location* where, std::string_view label);
    bool on_ = false;
    std::uint64_t begin_ = 0;
    std::uint64_t cpu_begin_ = 0;
    std::string label_;
};

// A named piece inside a turn (a kernel call, a file write, one D-Bus
// message): recorded when it takes 1 ms or more and a turn is traced.
class TraceSpan {
public:
    explicit TraceSpan(std::string_view name);
    ~TraceSpan();
    TraceSpan(const TraceSpan&) = delete;
    TraceSpan& operator=(const TraceSpan&) = delete;
    // Renames the piece while it runs (a D-Bus message is named by the
    // handler that ends up running it).
    static void relabel(std::string_view name);

private:
    bool on_ = false;
    std::uint64_t begin_ = 0;
    std::string name_;
    TraceSpan* outer_ = nullptr;
};

}  // namespace kvmnet::core
