// Pure authorization decisions; see authorization.hpp.
#include "api/authorization.hpp"

namespace kvmnet::api {

const std::vector<std::string_view>& polkit_actions()
{
    static const std::vector<std::string_view> actions{action_create_delete, action_start_stop, action_configure,
                                                       action_forward,       action_host,       action_port};
    return actions;
}

std::string_view action_for_method(std::string_view method)
{
    // Reload re-reads every stored document, so it makes networks appear and
    // vanish: it weighs as much as creating and deleting them.
    static const std::map<std::string_view, std::string_view> actions{
        {"CreateNetwork", action_create_delete},
        {"DeleteNetwork", action_create_delete},
        {"Reload", action_create_delete},
        {"Start", action_start_stop},
        {"StartWithConfirmation", action_start_stop},
        {"Confirm", action_start_stop},
        {"Stop", action_start_stop},
        {"Update", action_configure},
        {"UpdateIfRevision", action_configure},
        {"SetAutostart", action_configure},
        {"AddForwards", action_forward},
        {"AddForwardsTyped", action_forward},
        {"AddForwardsFromFd", action_forward},
        {"RemoveForward", action_forward},
        {"AddHost", action_host},
        {"RemoveHost", action_host},
        {"AttachPort", action_port},
        {"DetachPort", action_port},
    };
    const auto it = actions.find(method);
    return it == actions.end() ? std::string_view() : it->second;
}

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

std::string polkit_failure(const std::string& name, const std::string& message, std::string_view action)
{
    std::string reason;
    if (name == "org.freedesktop.DBus.Error.ServiceUnknown" || name == "org.freedesktop.DBus.Error.NameHasNoOwner")
        reason = "polkit is not running on this bus";
    else if (name == "org.freedesktop.DBus.Error.NoReply" || name == "org.freedesktop.DBus.Error.Timeout")
        reason = "polkit did not answer in time";
    else if (message.find("not registered") != std::string::npos)
        reason = "the polkit action " + std::string(action) + " is not installed";
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

std::string access_denied_message(uid_t uid, std::string_view action, const std::string& reason)
{
    return "changing kvmnet networks needs root or polkit authorization for " + std::string(action) + " (caller uid " +
           std::to_string(uid) + "): " + reason;
}

}  // namespace kvmnet::api
