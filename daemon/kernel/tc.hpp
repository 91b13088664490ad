// Traffic control for guest ports: libvirt's <bandwidth> on a host-side port, as NetlinkLinks::set_bandwidth
// applies it. Internal to the kernel adapters; the contract is plan::LinkAdapter::set_bandwidth.
#pragma once

#include <string>

#include "plan/kernel_view.hpp"

namespace kvmnet::kernel::tc {

// Throws InvalidArgument when `bandwidth` cannot be expressed (average missing while peak or burst is set, peak
// below average, numbers beyond what tc can carry). Touches nothing.
void validate(const std::string& name, const plan::PortBandwidth& bandwidth);

// Makes the shaping of link `ifindex` (called `name` in messages) match `bandwidth`; an all-zero direction removes
// that direction's configuration. Uses its own netlink socket with extended acks, so that a missing qdisc,
// classifier or action can be told apart from other failures and reported as Unsupported.
void apply_bandwidth(int ifindex, const std::string& name, const plan::PortBandwidth& bandwidth);

}  // namespace kvmnet::kernel::tc
