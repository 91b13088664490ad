// Another process's rtnetlink socket taken out of its multicast groups.
#pragma once

#include <string>
#include <sys/types.h>

namespace kvmnet::core {

// Every rtnetlink socket of process `pid` leaves the IPv4 and IPv6 route
// and address groups (pidfd_getfd: the socket is shared, so the process
// hears of no route or address change any more; its own requests and dumps
// still work). Each of those notifications wakes every listener: with
// 1,000 dnsmasq, a network's start and stop woke 1,000 processes about 20
// times, in the kernel on kvmnetd's thread and then in each dnsmasq.
// Only for a dnsmasq that acts on none of them (bind-interfaces, IPv4
// only): what it needs of them, a turn of its loop after its bridge is
// recreated, Dnsmasq::rebind gives it. Returns how many sockets left their
// groups; throws Error(Kernel) when the process's descriptors cannot be
// taken (no CAP_SYS_PTRACE, a process gone).
int quiet_route_notifications(pid_t pid);

}  // namespace kvmnet::core
