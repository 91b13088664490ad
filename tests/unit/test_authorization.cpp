// Unit tests of the pure authorization decisions: which polkit action each
// changing method needs (checked against the introspection XML and the
// policy file), reading polkit's CheckAuthorization answer and its failures,
// and the AccessDenied message.
#include "api/authorization.hpp"

#include <catch2/catch.hpp>

#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>

namespace unit_test_authorization {

using namespace kvmnet::api;

namespace {
bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

std::string source_file(const std::string& path)
{
    std::ifstream in(std::string(SOURCE_DIR) + "/" + path);
    REQUIRE(in);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

// The methods of an introspection file, split by the Method.Async=server
// annotation that marks the changing ones.
std::pair<std::set<std::string>, std::set<std::string>> changing_and_reading(const std::string& xml)
{
    std::set<std::string> changing, reading;
    // Plain scanning, not std::regex: g++ 12's -O2 sanitizer build warns
    // (-Wmaybe-uninitialized) inside <regex>, and warnings are errors.
    const std::string open = "<method name=\"";
    for (auto pos = xml.find(open); pos != std::string::npos; pos = xml.find(open, pos)) {
        pos += open.size();
        const auto quote = xml.find('"', pos);
        const std::string name = xml.substr(pos, quote - pos);
        const auto tag_end = xml.find('>', quote);
        std::string body;
        if (xml[tag_end - 1] != '/') body = xml.substr(tag_end + 1, xml.find("</method>", tag_end) - tag_end - 1);
        // Diagnose is a read answered asynchronously (it waits for
        // firewalld without holding the loop): open to everyone.
        const bool async = contains(body, R"(name="org.freedesktop.DBus.Method.Async" value="server")");
        (async && name != "Diagnose" ? changing : reading).insert(name);
    }
    return {changing, reading};
}

// The text of each <action id="..."> ... </action> of the policy file.
std::map<std::string, std::string> policy_actions()
{
    const std::string policy = source_file("dbus/org.kvmnet1.policy");
    std::map<std::string, std::string> actions;
    const std::string open = "<action id=\"";
    for (auto start = policy.find(open); start != std::string::npos; start = policy.find(open, start + 1)) {
        const auto id = start + open.size();
        actions[policy.substr(id, policy.find('"', id) - id)] =
            policy.substr(start, policy.find("</action>", start) - start);
    }
    return actions;
}
}  // namespace

TEST_CASE("each changing method needs the polkit action of its kind; reads need none")
{
    CHECK(action_for_method("CreateNetwork") == "org.kvmnet1.network.create-delete");
    CHECK(action_for_method("DeleteNetwork") == "org.kvmnet1.network.create-delete");
    CHECK(action_for_method("Reload") == "org.kvmnet1.network.create-delete");
    for (const char* m : {"Start", "Stop", "StartWithConfirmation", "Confirm"})
        CHECK(action_for_method(m) == "org.kvmnet1.network.start-stop");
    for (const char* m : {"Update", "UpdateIfRevision", "SetAutostart"})
        CHECK(action_for_method(m) == "org.kvmnet1.network.configure");
    CHECK(action_for_method("AddForwards") == "org.kvmnet1.forward.manage");
    CHECK(action_for_method("AddForwardsTyped") == "org.kvmnet1.forward.manage");
    CHECK(action_for_method("AddForwardsFromFd") == "org.kvmnet1.forward.manage");
    CHECK(action_for_method("RemoveForward") == "org.kvmnet1.forward.manage");
    CHECK(action_for_method("AddHost") == "org.kvmnet1.host.manage");
    CHECK(action_for_method("RemoveHost") == "org.kvmnet1.host.manage");
    CHECK(action_for_method("AttachPort") == "org.kvmnet1.port.manage");
    CHECK(action_for_method("DetachPort") == "org.kvmnet1.port.manage");
    CHECK(action_for_method("Describe").empty());
    CHECK(action_for_method("NoSuchMethod").empty());
    CHECK(action_for_method("").empty());
}

TEST_CASE("every changing method of the introspection XML has an action, no read has one")
{
    std::set<std::string> used;
    for (const char* file : {"dbus/org.kvmnet1.Manager.xml", "dbus/org.kvmnet1.Network.xml"}) {
        const auto [changing, reading] = changing_and_reading(source_file(file));
        INFO(file);
        CHECK_FALSE(changing.empty());
        CHECK_FALSE(reading.empty());
        for (const auto& m : changing) {
            INFO(m);
            CHECK_FALSE(action_for_method(m).empty());
            used.insert(std::string(action_for_method(m)));
        }
        for (const auto& m : reading) {
            INFO(m);
            CHECK(action_for_method(m).empty());
        }
    }
    // No action is left without a method.
    std::set<std::string> all;
    for (const auto a : polkit_actions())
        all.insert(std::string(a));
    CHECK(used == all);
}

TEST_CASE("the policy file defines every action for the daemon's user, admin by default, and the old action implies "
          "them all")
{
    const auto actions = policy_actions();
    std::string implied;
    for (const auto a : polkit_actions()) {
        INFO(a);
        REQUIRE(actions.count(std::string(a)) == 1);
        const std::string& text = actions.at(std::string(a));
        CHECK(contains(text, "<allow_any>auth_admin</allow_any>"));
        CHECK(contains(text, "<allow_inactive>auth_admin</allow_inactive>"));
        CHECK(contains(text, "<allow_active>auth_admin_keep</allow_active>"));
        // polkit answers the daemon (user kvmnet under systemd) only for actions it owns.
        CHECK(contains(text, R"(<annotate key="org.freedesktop.policykit.owner">unix-user:kvmnet</annotate>)"));
        implied += (implied.empty() ? "" : " ") + std::string(a);
    }
    REQUIRE(actions.count(legacy_action) == 1);
    // polkit splits the list at single spaces.
    CHECK(contains(actions.at(legacy_action),
                   R"(<annotate key="org.freedesktop.policykit.imply">)" + implied + "</annotate>"));
    CHECK(actions.size() == polkit_actions().size() + 1);
}

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
    const auto absent =
        polkit_failure("org.freedesktop.DBus.Error.ServiceUnknown",
                       "The name org.freedesktop.PolicyKit1 was not provided by any .service files", action_start_stop);
    CHECK(contains(absent, "polkit is not running"));
    CHECK(contains(absent, "org.freedesktop.DBus.Error.ServiceUnknown: The name"));
    CHECK(contains(polkit_failure("org.freedesktop.DBus.Error.NameHasNoOwner", "x", action_start_stop),
                   "polkit is not running"));
    CHECK(contains(polkit_failure("org.freedesktop.DBus.Error.NoReply", "Method call timed out", action_start_stop),
                   "in time"));
    CHECK(contains(polkit_failure("org.freedesktop.PolicyKit1.Error.Failed",
                                  "Action org.kvmnet1.forward.manage is not registered", action_forward),
                   "the polkit action org.kvmnet1.forward.manage is not installed"));
    const auto other = polkit_failure("org.freedesktop.PolicyKit1.Error.Failed", "boom", action_start_stop);
    CHECK(contains(other, "asking polkit failed"));
    CHECK(contains(other, "boom"));
}

TEST_CASE("the AccessDenied message names the action, the caller's uid and the reason")
{
    const auto message = access_denied_message(65534, action_for_method("Stop"), "polkit: not authorized");
    CHECK(message == "changing kvmnet networks needs root or polkit authorization for org.kvmnet1.network.start-stop "
                     "(caller uid 65534): polkit: not authorized");
}

TEST_CASE("a caller's text is logged on one line, escaped and cut")
{
    CHECK(log_safe("default") == "default");
    CHECK(log_safe("a\nb\\c") == "a\\x0ab\\x5cc");
    CHECK(log_safe("<3>x\xff") == "<3>x\\xff");
    CHECK(log_safe(std::string(70, 'n')) == std::string(64, 'n') + "...");
    CHECK(log_safe(std::string("a\0b", 3)) == "a\\x00b");
}

}  // namespace unit_test_authorization
