// Pure authorization decisions; see authorization.hpp.
#include "api/authorization.hpp"

namespace kvmnet::api {

std::string polkit_refusal(bool is_authorized, bool is_challenge, const std::map<std::string, std::string>& details,
                           bool interactive)
{
    if (is_authorized) return "";
    if (auto it = details.find("polkit.dismissed"); it != details.end() && it->second == "true")
        return "polkit: the authentication dialog was dismissed";
    if (!is_challenge) return "polkit: not authorized";
    // polkit asks only an agent registered for the caller's process or
    // session: a pkttyagent started by hand from another shell is never asked.
    if (interactive)
        return "polkit: authentication is required and no polkit agent of the caller answered (run kvmnetctl from a "
               "terminal without --no-ask-password and it asks for the password itself, or as root, or ask the "
               "administrator for a polkit rule: see kvmnetctl(1))";
    return "polkit: authentication is required, but the call did not allow interactive authorization (run kvmnetctl "
           "from a terminal without --no-ask-password and it asks for the password itself, or as root, or ask the "
           "administrator for a polkit rule: see kvmnetctl(1))";
}

std::string polkit_failure(const std::string& name, const std::string& message)
{
    std::string reason;
    if (name == "org.freedesktop.DBus.Error.ServiceUnknown" || name == "org.freedesktop.DBus.Error.NameHasNoOwner")
        reason = "polkit is not running on this bus";
    else if (name == "org.freedesktop.DBus.Error.NoReply" || name == "org.freedesktop.DBus.Error.Timeout")
        reason = "polkit did not answer in time";
    else if (message.find("not registered") != std::string::npos)
        reason = std::string("the polkit action ") + polkit_action + " is not installed";
    else
        reason = "asking polkit failed";
    return reason + " (" + name + ": " + message + ")";
}

std::string log_safe(const std::string& text, std::size_t max_length)
{
    static const char hex[] = "0123456789abcdef";
    std::string safe;
    for (std::size_t i = 0; i < text.size() && i < max_length; ++i) {
        const auto c = static_cast<unsigned char>(text[i]);
        if (c >= 0x20 && c < 0x7f && c != '\\') {
            safe += static_cast<char>(c);
        } else {
            safe += "\\x";
            safe += hex[c >> 4];
            safe += hex[c & 0xf];
        }
    }
    if (text.size() > max_length) safe += "...";
    return safe;
}

std::string access_denied_message(uid_t uid, const std::string& reason)
{
    return std::string("changing kvmnet networks needs root or polkit authorization for ") + polkit_action +
           " (caller uid " + std::to_string(uid) + "): " + reason;
}

}  // namespace kvmnet::api
