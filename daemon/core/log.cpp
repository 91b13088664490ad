// Level-filtered logging to the journal or stderr.
#include "core/log.hpp"

#include <systemd/sd-journal.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

namespace kvmnet::core {
namespace {
LogLevel threshold = LogLevel::info;
bool to_journal = false;
LogSink sink;

void to_stderr(const LogRecord& r)
{
    std::fprintf(stderr, "<%d>%s\n", static_cast<int>(r.level), r.message.c_str());
    std::fflush(stderr);
}

void send_to_journal(const LogRecord& r)
{
    const auto fields = journal_fields(r, program_invocation_short_name);
    std::vector<iovec> iov;
    iov.reserve(fields.size());
    for (const auto& f : fields)
        iov.push_back({const_cast<char*>(f.data()), f.size()});
    // journald gone (stopped, or restarting): the line still goes somewhere
    // someone can read it.
    if (sd_journal_sendv(iov.data(), static_cast<int>(iov.size())) < 0) to_stderr(r);
}
}  // namespace

std::string_view message_id_text(MessageId id)
{
    // Generated once (random 128-bit ids); never change one, journal
    // queries and catalogs depend on them.
    switch (id) {
    case MessageId::none: return {};
    case MessageId::network_created: return "f2e06a3145f04861b5732c4f51d8d574";
    case MessageId::network_deleted: return "9df043a476cd497ab5541330159bc61a";
    case MessageId::network_active: return "94090e9e8be246acb199e1f4fb743012";
    case MessageId::network_inactive: return "fcae4f2a1d774855af439a68ca79b852";
    case MessageId::network_degraded: return "7d11320797514a599ee82a50e1d84a05";
    case MessageId::network_failed: return "e1dfecae6d85458eaec244378b149ef1";
    case MessageId::repaired: return "43f088bd9449489d8153c8709f67d106";
    case MessageId::lease_changed: return "003764c49057449d8a46b9915ca34924";
    case MessageId::uplink_taken_over: return "2405f9b4b42e4498b72e10b27c0e2a6d";
    case MessageId::uplink_restored: return "ad12f7a26bc04b0da058ece49dbe3b95";
    case MessageId::start_confirmed: return "41a6fe6f36b242d3b17de9cadbdfb7e3";
    case MessageId::start_rolled_back: return "fd6a947785454d59bd4866508be241e0";
    }
    return {};
}

std::vector<std::string> journal_fields(const LogRecord& record, std::string_view identifier)
{
    std::vector<std::string> fields = {"MESSAGE=" + record.message,
                                       "PRIORITY=" + std::to_string(static_cast<int>(record.level))};
    if (!identifier.empty()) fields.push_back("SYSLOG_IDENTIFIER=" + std::string(identifier));
    if (!record.network.empty()) fields.push_back("NETWORK=" + record.network);
    if (const auto id = message_id_text(record.id); !id.empty()) fields.push_back("MESSAGE_ID=" + std::string(id));
    return fields;
}

bool journal_stream_matches(const char* journal_stream, dev_t dev, ino_t ino)
{
    if (journal_stream == nullptr) return false;
    unsigned long long want_dev = 0, want_ino = 0;
    int end = 0;
    if (std::sscanf(journal_stream, "%llu:%llu%n", &want_dev, &want_ino, &end) != 2) return false;
    if (journal_stream[end] != '\0') return false;
    return want_dev == static_cast<unsigned long long>(dev) && want_ino == static_cast<unsigned long long>(ino);
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

void log_to_journal_if_connected()
{
    // $JOURNAL_STREAM alone is inherited by whatever the service starts with
    // its stderr redirected elsewhere; only the same file means journald.
    // sd_journal_sendv reports success when journald's socket is missing
    // (it drops the record), so without the socket stderr it is.
    struct stat st {};
    to_journal = ::fstat(STDERR_FILENO, &st) == 0 &&
                 journal_stream_matches(std::getenv("JOURNAL_STREAM"), st.st_dev, st.st_ino) &&
                 ::access("/run/systemd/journal/socket", F_OK) == 0;
}

void set_log_sink(LogSink s) { sink = std::move(s); }

void log(LogLevel level, const std::string& message, const std::string& network, MessageId id)
{
    if (static_cast<int>(level) > static_cast<int>(threshold)) return;
    const LogRecord record{level, message, network, id};
    if (sink)
        sink(record);
    else if (to_journal)
        send_to_journal(record);
    else
        to_stderr(record);
}

}  // namespace kvmnet::core
