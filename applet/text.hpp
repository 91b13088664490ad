// What the applet shows and sends, as text: pure functions (no GTK), so the
// unit tests check them without a display.
#pragma once

#include "bus.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace kvmnet::applet {

// The AddForwards argument for one forward as typed into the form. A port
// field that is a number goes as a number, "8000-8010" as a range, anything
// else as the string it is, so the daemon's validation names what is wrong.
std::string forward_document(const std::string& proto, const std::string& host_port, const std::string& guest,
                             const std::string& guest_port, const std::string& description);
// The AddHost argument ({"mac", "ip", "name"?}).
std::string host_document(const std::string& mac, const std::string& ip, const std::string& name);

// "STATE" or "STATE: REASON".
std::string state_text(const Dict& props);
// The list row's second line: mode, bridge, addresses, guests.
std::string summary_text(const Dict& props);

std::string lease_text(const Dict& lease, std::int64_t now);
// "tcp *:8080 → 192.168.122.10:80" (ranges, named guests with their address).
std::string forward_key_text(const Dict& forward);
std::string forward_text(const Dict& forward, bool running);
std::string port_text(const Dict& port);

// Diagnose's JSON reply as lines: the verdict first, then every check, the
// failing and warning ones before those that pass.
std::vector<std::string> diagnose_lines(const std::string& json);

// Static hosts (ipv4.dhcp.hosts, ipv6.dhcp.hosts) of an Export document:
// {"MAC-or-DUID", "IP NAME"} pairs; no typed read carries them.
struct HostEntry {
    std::string key;  // what RemoveHost takes: the MAC, or a DHCPv6 DUID
    std::string text;
};
std::vector<HostEntry> static_hosts(const std::string& document);

}  // namespace kvmnet::applet
