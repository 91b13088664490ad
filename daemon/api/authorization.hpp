// Who may change kvmnet networks: root always; any other caller only with
// polkit's authorization for org.kvmnet1.manage. The pure part of the
// decision (reading polkit's answer, wording the denial) lives here so that
// unit tests can check it without a bus; api/service.cpp asks polkit.
#pragma once

#include <cstddef>
#include <map>
#include <string>
#include <sys/types.h>

namespace kvmnet::api {

inline constexpr const char* polkit_action = "org.kvmnet1.manage";
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
// (polkit not running, timed out, the action not installed, ...).
std::string polkit_failure(const std::string& name, const std::string& message);

// TEXT from a caller made safe for one log line: bytes outside printable
// ASCII as \xNN, cut to at most max_length characters of input ("..." marks
// the cut).
std::string log_safe(const std::string& text, std::size_t max_length = 64);

// The AccessDenied message a person can act on.
std::string access_denied_message(uid_t uid, const std::string& reason);

}  // namespace kvmnet::api
