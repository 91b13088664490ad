// Who may change kvmnet networks: root always; any other caller only with
// polkit's authorization for the action of the method (action_for_method).
// The pure part of the decision (which action, reading polkit's answer,
// wording the denial) lives here so that unit tests can check it without a
// bus; api/service.cpp asks polkit.
#pragma once

#include <cstddef>
#include <map>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <vector>

namespace kvmnet::api {

// The polkit actions of the changing methods; each defaults to an
// administrator's password (dbus/org.kvmnet1.policy).
inline constexpr const char* action_create_delete = "org.kvmnet1.network.create-delete";
inline constexpr const char* action_start_stop = "org.kvmnet1.network.start-stop";
inline constexpr const char* action_configure = "org.kvmnet1.network.configure";
inline constexpr const char* action_forward = "org.kvmnet1.forward.manage";
inline constexpr const char* action_host = "org.kvmnet1.host.manage";
inline constexpr const char* action_port = "org.kvmnet1.port.manage";
// The one action of earlier versions: the policy file keeps it, and it
// implies every action above (org.freedesktop.policykit.imply), so a rule
// that grants it still grants everything.
inline constexpr const char* legacy_action = "org.kvmnet1.manage";

// The finer actions, in the order the documentation lists them.
const std::vector<std::string_view>& polkit_actions();

// The action that authorizes the changing method METHOD of org.kvmnet1.Manager
// or org.kvmnet1.Network (their method names do not overlap); empty for a
// method that needs none (a read) or that does not exist.
std::string_view action_for_method(std::string_view method);
inline constexpr const char* access_denied_error = "org.freedesktop.DBus.Error.AccessDenied";

// CheckAuthorization's flag that lets polkit ask an authentication agent.
inline constexpr unsigned polkit_allow_user_interaction = 1;

// The reason a CheckAuthorization result (is_authorized, is_challenge,
// details) refuses the call; empty when it authorizes it. interactive: the
// call carried D-Bus's ALLOW_INTERACTIVE_AUTHORIZATION flag, so polkit was
// allowed to ask the caller's authentication agent.
std::string polkit_refusal(bool is_authorized, bool is_challenge, const std::map<std::string, std::string>& details,
                           bool interactive);

// The reason when asking polkit failed with the D-Bus error NAME: MESSAGE
// (polkit not running, timed out, the action not installed, ...) while
// asking about ACTION.
std::string polkit_failure(const std::string& name, const std::string& message, std::string_view action);

// TEXT from a caller made safe for one log line: bytes outside printable
// ASCII as \xNN, cut to at most max_length characters of input ("..." marks
// the cut).
std::string log_safe(const std::string& text, std::size_t max_length = 64);

// The AccessDenied message a person can act on: it names ACTION, the one a
// polkit rule has to grant.
std::string access_denied_message(uid_t uid, std::string_view action, const std::string& reason);

}  // namespace kvmnet::api
