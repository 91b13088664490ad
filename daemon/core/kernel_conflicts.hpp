// The kernel checks of a network's names and subnets, at create, update
// and start: what the kernel already has that the network would collide with.
#pragma once

#include "model/network.hpp"
#include "plan/kernel_view.hpp"

namespace kvmnet::core {

// Conflict when the bridge name is another program's interface or a subnet
// overlaps one on an interface kvmnet does not manage; Unsupported for IPv6
// without kernel support.
void check_kernel_conflicts(plan::LinkAdapter& kernel, const model::Network& n);
// The IPv6 part of it.
void check_ipv6_kernel(plan::LinkAdapter& kernel, const model::Network& n);

}  // namespace kvmnet::core
