// Logging: to the journal with fields (NETWORK=, MESSAGE_ID=) when stderr is
// connected to journald, otherwise to stderr with sd-daemon level prefixes,
// which stay readable in a terminal or a test's log file.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <sys/types.h>

namespace kvmnet::core {

enum class LogLevel { debug = 7, info = 6, warning = 4, error = 3 };

// The events a journal reader may want to find whatever the wording, each
// with a fixed MESSAGE_ID (docs/systemd.md, "Journal message ids", lists them).
enum class MessageId {
    none,
    network_created,
    network_deleted,
    network_active,    // a start finished, or a degraded network recovered
    network_inactive,  // stopped
    network_degraded,
    network_failed,
    repaired,
    lease_changed,
    uplink_taken_over,
    uplink_restored,  // given back at stop, or a takeover rolled back
    start_confirmed,
    start_rolled_back,  // not confirmed in time
};

// The 32 lower-case hex digits of the id ("" for none).
std::string_view message_id_text(MessageId id);

struct LogRecord {
    LogLevel level = LogLevel::info;
    std::string message;
    std::string network;  // empty: not about one network
    MessageId id = MessageId::none;
};

// The journal fields of a record, as sd_journal_sendv takes them
// ("MESSAGE=...", "PRIORITY=6", ...).
std::vector<std::string> journal_fields(const LogRecord& record, std::string_view identifier);

// Whether $JOURNAL_STREAM ("DEVICE:INODE", set by systemd for a service whose
// stdout or stderr is connected to journald) names the file stderr is:
// `dev` and `ino` are stderr's st_dev and st_ino.
bool journal_stream_matches(const char* journal_stream, dev_t dev, ino_t ino);

void set_log_level(LogLevel level);
bool parse_log_level(const std::string& text, LogLevel& level);

// Chooses the journal when stderr is connected to journald (systemd's
// documented check of $JOURNAL_STREAM), stderr otherwise. Until called, and
// whenever the journal refuses a record, lines go to stderr.
void log_to_journal_if_connected();
// Where records at or above the log level go instead (tests); an empty
// function restores the default.
using LogSink = std::function<void(const LogRecord&)>;
void set_log_sink(LogSink sink);

void log(LogLevel level, const std::string& message, const std::string& network = {}, MessageId id = MessageId::none);

inline void log_debug(const std::string& m, const std::string& network = {}, MessageId id = MessageId::none)
{
    log(LogLevel::debug, m, network, id);
}
inline void log_info(const std::string& m, const std::string& network = {}, MessageId id = MessageId::none)
{
    log(LogLevel::info, m, network, id);
}
inline void log_warning(const std::string& m, const std::string& network = {}, MessageId id = MessageId::none)
{
    log(LogLevel::warning, m, network, id);
}
inline void log_error(const std::string& m, const std::string& network = {}, MessageId id = MessageId::none)
{
    log(LogLevel::error, m, network, id);
}

}  // namespace kvmnet::core
