// The sd-bus message under an sdbus-c++ message. sdbus-c++ 1.2 (Debian 12)
// has no accessor for the ALLOW_INTERACTIVE_AUTHORIZATION header flag nor
// for the message's sd_bus; both are one sd-bus call away from the
// sd_bus_message it keeps in the protected member Message::msg_. A pointer
// to that member, formed in a derived class (which C++ allows for protected
// members), reads it from any Message without copying or casting the object.
#pragma once

#include <sdbus-c++/Message.h>
#include <systemd/sd-bus.h>

namespace kvmnet::dbus {

namespace detail {
struct MessageAccess : sdbus::Message {
    using Member = void* sdbus::Message::*;
    static Member raw() { return &MessageAccess::msg_; }
};
}  // namespace detail

inline sd_bus_message* raw_message(const sdbus::Message& message)
{
    return static_cast<sd_bus_message*>(message.*detail::MessageAccess::raw());
}

}  // namespace kvmnet::dbus
