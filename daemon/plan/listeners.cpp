// /proc/net socket tables: "sl local_address rem_address st ...", addresses
// as hex in the kernel's (little-endian, 32-bit word) byte order.
#include "plan/listeners.hpp"

#include <arpa/inet.h>

#include <array>
#include <charconv>
#include <cstdlib>
#include <sstream>

namespace kvmnet::plan {
namespace {

// from_chars on the text itself: no temporary string (g++ 12 at -O3 warned
// a false use-after-free on the substr() this used to take).
bool hex_word(const std::string& text, std::size_t at, std::uint32_t& out)
{
    if (at + 8 > text.size()) return false;
    const char* first = text.data() + at;
    const auto [end, error] = std::from_chars(first, first + 8, out, 16);
    return error == std::errc{} && end == first + 8;
}

// "0100007F:1F90" -> 127.0.0.1, 8080 (the words are in host byte order).
bool parse_endpoint(const std::string& text, bool ipv6, std::string& address, std::uint16_t& port)
{
    const auto colon = text.find(':');
    if (colon != (ipv6 ? 32u : 8u) || text.size() != colon + 5) return false;
    std::array<std::uint32_t, 4> words{};
    for (std::size_t i = 0; i < (ipv6 ? 4u : 1u); ++i)
        if (!hex_word(text, i * 8, words[i])) return false;
    char* end = nullptr;
    port = static_cast<std::uint16_t>(std::strtoul(text.c_str() + colon + 1, &end, 16));
    if (end != text.c_str() + text.size()) return false;
    char buffer[INET6_ADDRSTRLEN] = {};
    if (!inet_ntop(ipv6 ? AF_INET6 : AF_INET, words.data(), buffer, sizeof buffer)) return false;
    address = buffer;
    return true;
}

bool wildcard(const std::string& address) { return address == "0.0.0.0" || address == "::"; }

}  // namespace

std::vector<Listener> parse_proc_net(const std::string& text, bool tcp, bool ipv6)
{
    std::vector<Listener> result;
    std::istringstream in(text);
    std::string line;
    std::getline(in, line);  // the header
    while (std::getline(in, line)) {
        std::istringstream fields(line);
        std::string slot, local, remote, state;
        if (!(fields >> slot >> local >> remote >> state)) continue;
        if (state != (tcp ? "0A" : "07")) continue;
        Listener l;
        l.tcp = tcp;
        if (!parse_endpoint(local, ipv6, l.address, l.port)) continue;
        result.push_back(std::move(l));
    }
    return result;
}

std::vector<Listener> shadowed_listeners(const model::PortForward& f, const std::vector<Listener>& listeners)
{
    std::vector<Listener> result;
    for (const Listener& l : listeners) {
        const bool proto = f.proto == model::Proto::both || (f.proto == model::Proto::tcp) == l.tcp;
        if (!proto || l.port < f.host_port_first || l.port > f.host_port_last) continue;
        if (f.host_address && !wildcard(l.address) && l.address != f.host_address->str() &&
            l.address != "::ffff:" + f.host_address->str())
            continue;
        result.push_back(l);
    }
    return result;
}

}  // namespace kvmnet::plan
