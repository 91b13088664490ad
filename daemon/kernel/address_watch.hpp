// rtnetlink's address notifications (RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV6_IFADDR)
// on a socket of their own that nobody polls: they queue in its receive
// buffer until read() is called (core::AddressView, at a conflict check),
// so the daemon does not wake for the addresses every start and stop of
// every network adds and removes.
#pragma once

#include "plan/kernel_view.hpp"

#include <functional>

struct nl_sock;

namespace kvmnet::kernel {

class AddressWatch {
public:
    // `receive_buffer` in bytes (the kernel doubles it): what may queue
    // between two reads (about 1,000 notifications per MiB), kernel memory
    // held while nobody reads. An overrun is survivable (read() says so and
    // the caller lists every address again), just costlier.
    explicit AddressWatch(int receive_buffer = default_receive_buffer);
    static constexpr int default_receive_buffer = 1 << 20;
    ~AddressWatch();
    AddressWatch(const AddressWatch&) = delete;
    AddressWatch& operator=(const AddressWatch&) = delete;

    // Every notification queued, oldest first: `changed(true, a)` for an
    // address added (RTM_NEWADDR), false for one removed (RTM_DELADDR).
    // False when some were lost (ENOBUFS) since the last call.
    bool read(const std::function<void(bool added, const plan::AddressInfo& address)>& changed);

private:
    ::nl_sock* socket_ = nullptr;
    const std::function<void(bool, const plan::AddressInfo&)>* changed_ = nullptr;
};

}  // namespace kvmnet::kernel
