// libFuzzer target for every model parser that takes text from a client:
// the network document (CreateNetwork, Update), a forward or an array of
// them (AddForwards), a port (AttachPort), a static host (AddHost),
// RemoveForward's key, and the address and prefix parsers beneath them;
// and dnsmasq's lease file (plan/leases), which carries what guests sent.
// Every input goes to all of them, so the seed corpus is plain text.
//
// Expected: success, or kvmnet::Error (the typed refusal). A failure is
// anything else: another exception (std::terminate reports it), a crash,
// a sanitizer report, or a broken invariant checked here:
// - what parses serialises (to_json) and parses back to the same value,
//   and validates again;
// - a parsed network compared against itself and a fixed network
//   (validate_against) refuses with kvmnet::Error only;
// - forwards accepted by parse_forwards pass validate_added_forwards
//   against a fixed NAT network or are refused with kvmnet::Error;
// - an address that parses prints in a form that parses to the same value;
// - forward records (AddForwardsFromFd) that decode encode to the same bytes.
#include "model/error.hpp"
#include "model/forward.hpp"
#include "model/forward_records.hpp"
#include "model/ipv4.hpp"
#include "model/ipv6.hpp"
#include "model/json_text.hpp"
#include "model/network.hpp"
#include "plan/leases.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

using namespace kvmnet;
using namespace kvmnet::model;

namespace {

[[noreturn]] void broken(const char* what, const std::string& detail)
{
    std::fprintf(stderr, "fuzz_document: invariant broken: %s: %s\n", what, detail.c_str());
    std::abort();
}

// Runs f; kvmnet::Error is the expected refusal. Returns whether f succeeded.
template <class F>
bool refused_or_ok(F f)
{
    try {
        f();
        return true;
    } catch (const Error&) {
        return false;
    }
}

const Network& fixed_network()
{
    static const Network n = parse_network(R"({
        "name": "fixed", "mode": "nat", "bridge": "kvmbr0",
        "ipv4": {"address": "192.168.122.1/24",
                 "dhcp": {"ranges": ["192.168.122.100-192.168.122.200"],
                          "hosts": [{"mac": "52:54:00:00:00:01", "ip": "192.168.122.10", "name": "web"}]}},
        "ipv6": {"address": "fd00:1:2:3::1/64"},
        "ports": [{"name": "vnet0", "mac": "52:54:00:00:00:02"}],
        "forwards": [{"proto": "tcp", "host_port": 8080, "guest": "web", "guest_port": 80},
                     {"proto": "both", "host_port": "5000-5010", "host_address": "203.0.113.1",
                      "guest": "192.168.122.11", "guest_port": "6000-6010"},
                     {"proto": "udp", "host_port": 53, "guest": "fd00:1:2:3::10", "guest_port": 53}]})");
    return n;
}

void network(const std::string& text)
{
    Network n;
    if (!refused_or_ok([&] { n = parse_network(text); })) return;
    const std::string dumped = to_json(n).dump();
    Network again;
    try {
        again = parse_network(dumped);
    } catch (const Error& e) {
        broken("parse_network(to_json(n)) refused", std::string(e.what()) + " in " + dumped);
    }
    if (!(again == n)) broken("parse_network(to_json(n)) != n", dumped);
    try {
        validate(n);
    } catch (const Error& e) {
        broken("validate refused a parsed network", e.what());
    }
    refused_or_ok([&] { validate_against(n, {fixed_network()}); });
    refused_or_ok([&] { validate_against(fixed_network(), {n}); });
    // A network always clashes with itself (same name).
    if (refused_or_ok([&] { validate_against(n, {n}); })) broken("validate_against(n, {n}) passed", dumped);
}

void forwards(const std::string& text)
{
    std::vector<PortForward> added;
    if (!refused_or_ok([&] { added = parse_forwards(text); })) return;
    for (const PortForward& f : added) {
        const std::string dumped = to_json(f).dump();
        PortForward again;
        try {
            again = parse_forward(nlohmann::json::parse(dumped));
        } catch (const Error& e) {
            broken("parse_forward(to_json(f)) refused", std::string(e.what()) + " in " + dumped);
        }
        if (!(again == f)) broken("parse_forward(to_json(f)) != f", dumped);
        (void)describe(f);
        (void)describe(forward_key(f));
        if (!forwards_overlap(f, f)) broken("a forward does not overlap itself", dumped);
    }
    const Network& base = fixed_network();
    refused_or_ok([&] {
        validate_added_forwards(base, added, [](std::size_t i) { return "forwards[" + std::to_string(i) + "]"; }, {});
    });
}

void port(const std::string& text)
{
    Port p;
    if (!refused_or_ok([&] { p = parse_port(text); })) return;
    const std::string dumped = to_json(p).dump();
    Port again;
    try {
        again = parse_port(dumped);
    } catch (const Error& e) {
        broken("parse_port(to_json(p)) refused", std::string(e.what()) + " in " + dumped);
    }
    if (!(again == p)) broken("parse_port(to_json(p)) != p", dumped);
}

void host(const std::string& text)
{
    refused_or_ok([&] { parse_dhcp_host(text); });
}

void addresses(const std::string& text)
{
    if (auto ip = Ipv4::parse(text)) {
        const auto back = Ipv4::parse(ip->str());
        if (!back || *back != *ip || ip->str() != text) broken("Ipv4 round trip", text);
    }
    if (auto a = Ipv4Interface::parse(text)) {
        const auto back = Ipv4Interface::parse(a->str());
        if (!back || !(*back == *a)) broken("Ipv4Interface round trip", text);
        (void)a->network_str();
        (void)a->overlaps(*a);
    }
    if (auto ip = Ipv6::parse(text)) {
        const auto back = Ipv6::parse(ip->str());
        if (!back || *back != *ip) broken("Ipv6 round trip", text);
    }
    if (auto a = Ipv6Interface::parse(text)) {
        const auto back = Ipv6Interface::parse(a->str());
        if (!back || !(*back == *a)) broken("Ipv6Interface round trip", text);
        if (!a->contains(a->address) || !a->overlaps(*a)) broken("Ipv6Interface contains itself", text);
        (void)a->network_str();
    }
    (void)parse_proto(text);
    (void)valid_network_name(text);
    (void)valid_interface_name(text);
    (void)valid_domain_name(text);
    (void)valid_unicast_mac(text);
}

// RemoveForward's arguments: "PROTO ADDRESS PORT" split at spaces (the
// port as D-Bus gives it, any 32-bit number).
void forward_key_text(const std::string& text)
{
    const auto first = text.find(' ');
    if (first == std::string::npos) return;
    const auto second = text.find(' ', first + 1);
    if (second == std::string::npos) return;
    const std::string port_text = text.substr(second + 1);
    std::uint32_t port = 0;
    for (const char c : port_text.substr(0, 10))
        port = port * 10 + static_cast<std::uint32_t>(static_cast<unsigned char>(c) % 10);
    ForwardKey key;
    if (refused_or_ok(
            [&] { key = make_forward_key(text.substr(0, first), text.substr(first + 1, second - first - 1), port); }))
        (void)describe(key);
}

// dnsmasq's lease file carries what guests sent (host names, client ids):
// parsed leases must serialise (Leases() dumps them; LeaseChanged sends
// them as D-Bus strings, which must be UTF-8).
void leases(const std::string& text)
{
    const auto parsed = plan::parse_leases(text);
    try {
        (void)plan::to_json(parsed).dump();
    } catch (const nlohmann::json::exception& e) {
        broken("to_json(parse_leases(text)).dump() threw", e.what());
    }
    const auto events = plan::diff_leases({}, parsed, 0);
    if (events.size() != parsed.size()) broken("diff_leases({}, leases) is not one event per lease", text);
    (void)plan::diff_leases(parsed, {}, 1);
}

// AddForwardsFromFd's records: the format is canonical, so what decodes
// encodes to the input's bytes.
void records(const std::string& text)
{
    std::vector<ForwardFields> fields;
    if (!refused_or_ok([&] { fields = decode_forward_records(text); })) return;
    if (encode_forward_records(fields) != text) broken("forward records round trip", std::to_string(text.size()));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    const std::string text(reinterpret_cast<const char*>(data), size);
    network(text);
    forwards(text);
    port(text);
    host(text);
    leases(text);
    records(text);
    if (size <= 128) {
        addresses(text);
        forward_key_text(text);
    }
    return 0;
}
