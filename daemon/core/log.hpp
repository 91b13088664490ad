// Logging to stderr with sd-daemon level prefixes, which journald turns into
// priorities and which stay readable in a terminal or a test's log file.
#pragma once

#include <string>

namespace kvmnet::core {

enum class LogLevel { debug = 7, info = 6, warning = 4, error = 3 };

void set_log_level(LogLevel level);
bool parse_log_level(const std::string& text, LogLevel& level);
void log(LogLevel level, const std::string& message);

inline void log_debug(const std::string& m) { log(LogLevel::debug, m); }
inline void log_info(const std::string& m) { log(LogLevel::info, m); }
inline void log_warning(const std::string& m) { log(LogLevel::warning, m); }
inline void log_error(const std::string& m) { log(LogLevel::error, m); }

}  // namespace kvmnet::core
