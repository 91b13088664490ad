// The loop-turn trace: see loop_trace.hpp. The state is per thread (the
// loop's), so the store's writer thread and a worker never mix into it.
#include "core/loop_trace.hpp"

#include "core/event_loop.hpp"
#include "core/log.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <ctime>

namespace kvmnet::core {
namespace {

constexpr std::uint64_t piece_min_usec = 1000;

struct State {
    int depth = 0;
    std::string* label = nullptr;  // the outermost turn's
    std::vector<TracePiece> pieces;
    TraceSpan* span = nullptr;
};
thread_local State state;

std::string ms_text(std::uint64_t usec)
{
    char text[32];
    std::snprintf(text, sizeof text, "%.1f ms", static_cast<double>(usec) / 1000.0);
    return text;
}

std::uint64_t thread_cpu_usec()
{
    timespec ts{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1000000u + static_cast<std::uint64_t>(ts.tv_nsec) / 1000u;
}

}  // namespace

std::optional<std::uint64_t> parse_loop_trace(const char* text)
{
    if (!text || !*text) return std::nullopt;
    char* end = nullptr;
    const double ms = std::strtod(text, &end);
    if (end == text || *end != '\0' || !(ms > 0) || ms > 3'600'000) return std::nullopt;
    return std::max<std::uint64_t>(1, static_cast<std::uint64_t>(ms * 1000.0));
}

std::string format_loop_turn(std::string_view label, std::uint64_t usec, std::uint64_t cpu_usec,
                             std::vector<TracePiece> pieces, std::size_t max_pieces)
{
    std::string line = "loop turn ";
    line.append(ms_text(usec)).append(" (cpu ").append(ms_text(cpu_usec)).append("): ").append(label);
    if (pieces.empty()) return line;
    std::stable_sort(pieces.begin(), pieces.end(),
                     [](const TracePiece& a, const TracePiece& b) { return a.usec > b.usec; });
    line.append("; pieces: ");
    for (std::size_t i = 0; i < pieces.size() && i < max_pieces; ++i)
        line.append(i ? ", " : "").append(pieces[i].name).append(" ").append(ms_text(pieces[i].usec));
    if (pieces.size() > max_pieces)
        line.append(" (+").append(std::to_string(pieces.size() - max_pieces)).append(" more)");
    return line;
}

std::string source_label(const std::source_location& where)
{
    std::string_view file = where.file_name();
    // daemon/core/dnsmasq.cpp -> core/dnsmasq.cpp: the layer says enough.
    if (const auto slash = file.rfind('/'); slash != std::string_view::npos && slash > 0)
        if (const auto before = file.rfind('/', slash - 1); before != std::string_view::npos)
            file.remove_prefix(before + 1);
    return std::string(file) + ":" + std::to_string(where.line());
}

namespace loop_trace {

std::uint64_t threshold_usec()
{
    static const std::uint64_t threshold = parse_loop_trace(std::getenv("KVMNET_LOOP_TRACE")).value_or(0);
    return threshold;
}

void add_to_label(std::string_view text)
{
    if (state.label) state.label->append(text);
}

}  // namespace loop_trace

TraceTurn::TraceTurn(const std::source_location* where, std::string_view label)
{
    if (!loop_trace::enabled()) return;
    on_ = true;
    label_ = where ? source_label(*where) : std::string(label);
    begin_ = EventLoop::now_usec();
    cpu_begin_ = thread_cpu_usec();
    if (state.depth++ == 0) state.label = &label_;
}

TraceTurn::~TraceTurn()
{
    if (!on_) return;
    const std::uint64_t usec = EventLoop::now_usec() - begin_;
    if (--state.depth > 0) {
        // A turn run inside another (a synchronous wait): a piece of it.
        if (usec >= piece_min_usec) state.pieces.push_back({"nested " + label_, usec});
        return;
    }
    state.label = nullptr;
    auto pieces = std::move(state.pieces);
    state.pieces.clear();
    if (usec > loop_trace::threshold_usec())
        log_info(format_loop_turn(label_, usec, thread_cpu_usec() - cpu_begin_, std::move(pieces)));
}

TraceSpan::TraceSpan(std::string_view name)
{
    if (!loop_trace::enabled() || state.depth == 0) return;
    on_ = true;
    outer_ = state.span;
    name_ = outer_ ? outer_->name_ + " > " + std::string(name) : std::string(name);
    state.span = this;
    begin_ = EventLoop::now_usec();
}

TraceSpan::~TraceSpan()
{
    if (!on_) return;
    state.span = outer_;
    const std::uint64_t usec = EventLoop::now_usec() - begin_;
    if (usec >= piece_min_usec) state.pieces.push_back({std::move(name_), usec});
}

void TraceSpan::relabel(std::string_view name)
{
    if (state.span) state.span->name_ = name;
}

}  // namespace kvmnet::core
