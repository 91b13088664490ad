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
    for (const bool interactive : {true, false}) {
        CHECK(polkit_refusal(true, false, {}, interactive).empty());
        // polkit may still report a challenge detail for an authorized (kept) answer.
        CHECK(polkit_refusal(true, true, {{"polkit.retains_authorization_after_challenge", "1"}}, interactive).empty());
        CHECK(polkit_refusal(false, false, {}, interactive) == "polkit: not authorized");
        const auto dismissed = polkit_refusal(false, true, {{"polkit.dismissed", "true"}}, interactive);
        CHECK(contains(dismissed, "dismissed"));
        CHECK_FALSE(polkit_refusal(false, false, {{"polkit.dismissed", "false"}}, interactive).empty());
    }
}

TEST_CASE("a challenge polkit could not put to anyone says how to get asked")
{
    const std::map<std::string, std::string> details{{"polkit.retains_authorization_after_challenge", "1"}};
    // The call allowed interaction: no agent was registered for the caller.
    const auto no_agent = polkit_refusal(false, true, details, true);
    CHECK(contains(no_agent, "no polkit agent of the caller answered"));
    // The call did not allow it (--no-ask-password, or another client).
    const auto not_allowed = polkit_refusal(false, true, details, false);
    CHECK(contains(not_allowed, "did not allow interactive authorization"));
    for (const auto& message : {no_agent, not_allowed}) {
        CHECK(contains(message, "from a terminal without --no-ask-password"));
        CHECK(contains(message, "kvmnetctl(1)"));
        CHECK_FALSE(contains(message, "pkttyagent"));
    }
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
