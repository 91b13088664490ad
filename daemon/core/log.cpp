// Level-filtered logging to stderr.
#include "core/log.hpp"

#include <cstdio>

namespace kvmnet::core {
namespace {
LogLevel threshold = LogLevel::info;
}

void set_log_level(LogLevel level) { threshold = level; }

bool parse_log_level(const std::string& text, LogLevel& level)
{
    if (text == "debug")
        level = LogLevel::debug;
    else if (text == "info")
        level = LogLevel::info;
    else if (text == "warning")
        level = LogLevel::warning;
    else if (text == "error")
        level = LogLevel::error;
    else
        return false;
    return true;
}

void log(LogLevel level, const std::string& message)
{
    if (static_cast<int>(level) > static_cast<int>(threshold)) return;
    std::fprintf(stderr, "<%d>%s\n", static_cast<int>(level), message.c_str());
    std::fflush(stderr);
}

}  // namespace kvmnet::core
