// Link change notifications from rtnetlink (RTNLGRP_LINK), read from a
// non-blocking socket that the event loop watches. Lets the manager notice a
// bridge deleted or downed behind its back.
#pragma once

#include <functional>
#include <string>

struct nl_sock;

namespace kvmnet::kernel {

struct LinkEvent {
    bool removed = false;
    int index = 0;
    std::string name;
    bool up = false;  // IFF_UP
};

class LinkMonitor {
public:
    LinkMonitor();
    ~LinkMonitor();
    LinkMonitor(const LinkMonitor&) = delete;
    LinkMonitor& operator=(const LinkMonitor&) = delete;

    int fd() const;
    // Reads every pending notification and calls `on_event` for each.
    void dispatch(const std::function<void(const LinkEvent&)>& on_event);

private:
    struct nl_sock* socket_ = nullptr;
    const std::function<void(const LinkEvent&)>* handler_ = nullptr;
};

}  // namespace kvmnet::kernel
