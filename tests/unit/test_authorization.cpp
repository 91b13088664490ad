// Unit tests of the pure authorization decisions: reading polkit's
// CheckAuthorization answer and its failures, and the AccessDenied message.
#include "api/authorization.hpp"

#include <catch2/catch.hpp>

#include <map>
#include <string>

using namespace kvmnet::api;

namespace {
bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }
}  // namespace

TEST_CASE("polkit's answer: authorized lets the call through, anything else refuses it")
{
    CHECK(polkit_refusal(true, false, {}).empty());
    // polkit may still report a challenge detail for an authorized (kept) answer.
    CHECK(polkit_refusal(true, true, {{"polkit.retains_authorization_after_challenge", "1"}}).empty());

    const auto plain = polkit_refusal(false, false, {});
    CHECK(plain == "polkit: not authorized");

    const auto challenge = polkit_refusal(false, true, {{"polkit.retains_authorization_after_challenge", "1"}});
    CHECK(contains(challenge, "no authentication agent"));
    CHECK(contains(challenge, "pkttyagent"));

    const auto dismissed = polkit_refusal(false, true, {{"polkit.dismissed", "true"}});
    CHECK(contains(dismissed, "dismissed"));
    CHECK_FALSE(polkit_refusal(false, false, {{"polkit.dismissed", "false"}}).empty());
}

TEST_CASE("asking polkit failed: the reason names what is wrong and keeps the D-Bus error")
{
    const auto absent = polkit_failure("org.freedesktop.DBus.Error.ServiceUnknown",
                                       "The name org.freedesktop.PolicyKit1 was not provided by any .service files");
    CHECK(contains(absent, "polkit is not running"));
    CHECK(contains(absent, "org.freedesktop.DBus.Error.ServiceUnknown: The name"));
    CHECK(contains(polkit_failure("org.freedesktop.DBus.Error.NameHasNoOwner", "x"), "polkit is not running"));
    CHECK(contains(polkit_failure("org.freedesktop.DBus.Error.NoReply", "Method call timed out"), "in time"));
    CHECK(contains(
        polkit_failure("org.freedesktop.PolicyKit1.Error.Failed", "Action org.kvmnet1.manage is not registered"),
        "org.kvmnet1.manage is not installed"));
    const auto other = polkit_failure("org.freedesktop.PolicyKit1.Error.Failed", "boom");
    CHECK(contains(other, "asking polkit failed"));
    CHECK(contains(other, "boom"));
}

TEST_CASE("the AccessDenied message names the action, the caller's uid and the reason")
{
    const auto message = access_denied_message(65534, "polkit: not authorized");
    CHECK(message == "changing kvmnet networks needs root or polkit authorization for org.kvmnet1.manage (caller uid "
                     "65534): polkit: not authorized");
}

TEST_CASE("a caller's text is logged on one line, escaped and cut")
{
    CHECK(log_safe("default") == "default");
    CHECK(log_safe("a\nb\\c") == "a\\x0ab\\x5cc");
    CHECK(log_safe("<3>x\xff") == "<3>x\\xff");
    CHECK(log_safe(std::string(70, 'n')) == std::string(64, 'n') + "...");
    CHECK(log_safe(std::string("a\0b", 3)) == "a\\x00b");
}
