// Bench-only instrumentation: where the time of one call goes
// (`kvmnet-bench bulk-breakdown`, docs/performance.md). A call marks the end
// of each of its phases; only the benchmark installs a recorder, so in the
// daemon a mark is one test of a null pointer.
#pragma once

namespace kvmnet::core::phases {

// Called with the name of the phase that just ended (a string literal).
using Recorder = void (*)(const char* phase);

inline Recorder recorder = nullptr;

inline void mark(const char* phase)
{
    if (recorder) recorder(phase);
}

}  // namespace kvmnet::core::phases
