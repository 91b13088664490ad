// Unit tests of core/log: the journal fields of a record, the check of
// $JOURNAL_STREAM against stderr, the message ids and the level filter in
// front of an injected sink.
#include "core/log.hpp"

#include <catch2/catch.hpp>

#include <cctype>
#include <set>
#include <string>
#include <vector>

namespace unit_test_log {

namespace core = kvmnet::core;
using core::LogLevel;
using core::LogRecord;
using core::MessageId;

TEST_CASE("Journal fields: message, priority, identifier, and NETWORK and MESSAGE_ID when set", "[log]")
{
    CHECK(core::journal_fields({LogLevel::info, "kvmnetd ready", "", MessageId::none}, "kvmnetd") ==
          std::vector<std::string>{"MESSAGE=kvmnetd ready", "PRIORITY=6", "SYSLOG_IDENTIFIER=kvmnetd"});
    CHECK(core::journal_fields(
              {LogLevel::warning, "network lan: repaired bridge: recreated bridge lan0", "lan", MessageId::repaired},
              "kvmnetd") == std::vector<std::string>{"MESSAGE=network lan: repaired bridge: recreated bridge lan0",
                                                     "PRIORITY=4", "SYSLOG_IDENTIFIER=kvmnetd", "NETWORK=lan",
                                                     "MESSAGE_ID=43f088bd9449489d8153c8709f67d106"});
    CHECK(core::journal_fields({LogLevel::error, "network x: stopping: boom", "x", MessageId::none}, "") ==
          std::vector<std::string>{"MESSAGE=network x: stopping: boom", "PRIORITY=3", "NETWORK=x"});
    // A multi-line message stays one field: sd_journal_sendv serializes it.
    CHECK(core::journal_fields({LogLevel::debug, "a\nb", "", MessageId::none}, "")[0] == "MESSAGE=a\nb");
}

TEST_CASE("Message ids are distinct 128-bit ids in journald's form", "[log]")
{
    CHECK(core::message_id_text(MessageId::none).empty());
    std::set<std::string> seen;
    for (auto id = static_cast<int>(MessageId::network_created); id <= static_cast<int>(MessageId::start_rolled_back);
         ++id) {
        const std::string text(core::message_id_text(static_cast<MessageId>(id)));
        INFO(id);
        REQUIRE(text.size() == 32);
        for (const char c : text)
            CHECK((std::isdigit(static_cast<unsigned char>(c)) || (c >= 'a' && c <= 'f')));
        CHECK(seen.insert(text).second);
    }
    CHECK(seen.size() == 12);
}

TEST_CASE("$JOURNAL_STREAM counts only when it names stderr's device and inode", "[log]")
{
    CHECK(core::journal_stream_matches("8:1234", 8, 1234));
    CHECK(core::journal_stream_matches("64769:18446744073709551615", 64769, static_cast<ino_t>(-1)));
    CHECK_FALSE(core::journal_stream_matches(nullptr, 8, 1234));
    CHECK_FALSE(core::journal_stream_matches("", 8, 1234));
    CHECK_FALSE(core::journal_stream_matches("8:1235", 8, 1234));
    CHECK_FALSE(core::journal_stream_matches("9:1234", 8, 1234));
    CHECK_FALSE(core::journal_stream_matches("8:1234x", 8, 1234));
    CHECK_FALSE(core::journal_stream_matches("8", 8, 1234));
    CHECK_FALSE(core::journal_stream_matches("8:", 8, 1234));
    CHECK_FALSE(core::journal_stream_matches("x:1234", 8, 1234));
}

TEST_CASE("An injected sink gets the records at or above the log level", "[log]")
{
    std::vector<LogRecord> records;
    core::set_log_sink([&](const LogRecord& r) { records.push_back(r); });
    core::set_log_level(LogLevel::info);
    core::log_debug("not shown", "lan");
    core::log_info("network lan: created", "lan", MessageId::network_created);
    core::log_error("plain");
    core::set_log_sink({});
    core::set_log_level(LogLevel::error);
    REQUIRE(records.size() == 2);
    CHECK(records[0].level == LogLevel::info);
    CHECK(records[0].message == "network lan: created");
    CHECK(records[0].network == "lan");
    CHECK(records[0].id == MessageId::network_created);
    CHECK(records[1].level == LogLevel::error);
    CHECK(records[1].network.empty());
    CHECK(records[1].id == MessageId::none);
}

}  // namespace unit_test_log
