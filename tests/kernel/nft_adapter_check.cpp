// Kernel check for kernel::Nftables: commits a representative plan::Table
// through libnftnl and compares `nft list` of it with what nft(8) itself makes
// of plan::render() of the same table, then exercises replace/delete/exists
// and failure atomicity. It changes nftables state, so it refuses to run in
// the root network namespace (exit 77 = skip). Usage, as root:
//   ip netns add kvmnft-$$; ip netns exec kvmnft-$$ ./nft_adapter_check kvmtest; ip netns del kvmnft-$$
// KVMNFT_VERBOSE=1 also prints the committed listing.
#include "kernel/nftables.hpp"
#include "model/error.hpp"
#include "model/network.hpp"
#include "netns_guard.hpp"
#include "plan/planner.hpp"
#include "plan/ruleset.hpp"
#include "plan/table_diff.hpp"

#include <sys/stat.h>
#include <sys/wait.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

using namespace kvmnet;
using namespace kvmnet::plan;

namespace {

int failures = 0;

void check(bool ok, const std::string& what)
{
    std::cout << (ok ? "ok   " : "FAIL ") << what << '\n';
    if (!ok) ++failures;
}

// Runs a shell command; returns exit status and stdout. Used only by this test.
std::pair<int, std::string> run(const std::string& command, const std::string& input = {})
{
    if (!input.empty()) {
        FILE* p = popen(command.c_str(), "w");
        if (p == nullptr) return {-1, {}};
        std::fwrite(input.data(), 1, input.size(), p);
        const int status = pclose(p);
        return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, {}};
    }
    FILE* p = popen((command + " 2>&1").c_str(), "r");
    if (p == nullptr) return {-1, {}};
    std::string out;
    char buf[4096];
    std::size_t n = 0;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0)
        out.append(buf, n);
    const int status = pclose(p);
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

// `nft list`, or with `bytecode` also the netlink expressions and userdata of
// every rule, with the table name normalised: the only intended difference
// between the adapter's table and the reference.
std::string list_table(const std::string& name, bool bytecode = false)
{
    auto [status, out] = run(std::string("nft ") + (bytecode ? "--debug=netlink " : "") + "list table inet " + name);
    if (status != 0) return "<nft list failed: " + out + ">";
    std::string normalised;
    std::size_t start = 0;
    while (start < out.size()) {
        std::size_t end = out.find('\n', start);
        end = end == std::string::npos ? out.size() : end + 1;
        std::string line = out.substr(start, end - start);
        for (const std::string& prefix : {"table inet " + name + " ", "inet " + name + " "}) {
            if (line.compare(0, prefix.size(), prefix) == 0) {
                line = prefix.substr(0, prefix.size() - name.size() - 1) + "T " + line.substr(prefix.size());
                break;
            }
        }
        normalised += line;
        start = end;
    }
    // Elements are dumped in the set's hash order, which differs between
    // two sets with the same elements; nft's own listing sorts them.
    std::vector<std::string> lines;
    std::string line;
    for (std::size_t at = 0; at < normalised.size();) {
        std::size_t end = normalised.find('\n', at);
        end = end == std::string::npos ? normalised.size() : end + 1;
        lines.push_back(normalised.substr(at, end - at));
        at = end;
    }
    for (std::size_t i = 0; i < lines.size();) {
        std::size_t j = i;
        while (j < lines.size() && lines[j].rfind("\telement ", 0) == 0)
            ++j;
        std::sort(lines.begin() + static_cast<std::ptrdiff_t>(i), lines.begin() + static_cast<std::ptrdiff_t>(j));
        i = j == i ? i + 1 : j;
    }
    normalised.clear();
    for (const std::string& l : lines)
        normalised += l;
    return normalised;
}

// The rules of a chain with their bytecode, without the set elements that
// `nft --debug=netlink list chain` also prints.
std::string chain_code(const std::string& table, const std::string& chain)
{
    const std::string out = run("nft --debug=netlink list chain inet " + table + " " + chain).second;
    std::string kept;
    for (std::size_t at = 0; at < out.size();) {
        std::size_t end = out.find('\n', at);
        end = end == std::string::npos ? out.size() : end + 1;
        const std::string line = out.substr(at, end - at);
        const bool set_line =
            line.rfind("\telement ", 0) == 0 || (line.rfind("inet ", 0) == 0 && line.find(" @") != std::string::npos);
        if (!set_line) kept += line;
        at = end;
    }
    return kept;
}

// What nft(8) makes of render(table), loaded as table `ref_name` and listed.
std::string reference_listing(Table table, const std::string& ref_name, bool bytecode = false)
{
    run("nft delete table inet " + ref_name);
    table.name = ref_name;
    auto [status, out] = run("nft -f -", render(table));
    if (status != 0) return "<nft -f of render() failed>";
    std::string listing = list_table(ref_name, bytecode);
    run("nft delete table inet " + ref_name);
    return listing;
}

bool table_listed(const std::string& name) { return run("nft list table inet " + name).first == 0; }

// One set's additions or deletions through the adapter's change path.
void add_elements(kernel::Nftables& nft, const std::string& table, const Set& set,
                  const std::vector<SetElement>& elements)
{
    nft.change_elements(table, {{&set, elements, true}});
}

void delete_elements(kernel::Nftables& nft, const std::string& table, const Set& set,
                     const std::vector<SetElement>& elements)
{
    nft.change_elements(table, {{&set, elements, false}});
}

Ipv4Prefix prefix(unsigned a, unsigned b, unsigned c, unsigned d, std::uint8_t length)
{
    return {static_cast<std::uint32_t>((a << 24) | (b << 16) | (c << 8) | d), length};
}

Ipv6Prefix prefix6(const std::string& address, std::uint8_t length)
{
    const auto ip = model::Ipv6::parse(address);
    if (!ip) throw std::runtime_error("bad test address " + address);
    return {model::ipv6_masked(*ip, length).bytes, length};
}

// The ip6 match in every shape the adapter builds: whole-byte prefixes,
// a prefix that needs a mask, /128 and /0, both directions and operators, and
// ip with ip6 matches in one table.
std::vector<Rule> ipv6_rules(const std::string& br)
{
    return {
        {{MatchIfname{true, Cmp::eq, br}, MatchIpv6{true, Cmp::neq, prefix6("fd00:1:2:3::", 64)}},
         true,
         Verdict::drop,
         "spoofed IPv6"},
        {{MatchIfname{false, Cmp::eq, br}, MatchIpv6{false, Cmp::eq, prefix6("fd00:1:2:3::", 64)},
          MatchCtState{ct::established | ct::related}},
         false,
         Verdict::accept,
         ""},
        {{MatchIpv6{true, Cmp::eq, prefix6("fd00:1:2:3:8000::", 65)}}, false, Verdict::accept, ""},
        {{MatchIpv6{false, Cmp::neq, prefix6("2001:db8::", 29)}}, false, Verdict::drop, ""},
        {{MatchIpv6{true, Cmp::eq, prefix6("2001:db8::5", 128)}, MatchL4Dport{6, 22}}, false, Verdict::accept, ""},
        {{MatchIfname{true, Cmp::eq, br}, MatchIpv6{true, Cmp::eq, prefix6("::", 0)}}, true, Verdict::drop, "no IPv6"},
        {{MatchIpv6{true, Cmp::neq, prefix6("::", 0)}}, false, Verdict::drop, ""},
        {{MatchIpv6{true, Cmp::eq, prefix6("fd00:1:2:3::", 64)}, MatchIpv6{false, Cmp::eq, prefix6("ff00::", 8)}},
         false,
         Verdict::return_,
         ""},
    };
}

Table representative(const std::string& name)
{
    const std::string br = "kvmbr0";
    Table t{name, {}};

    Chain forward{"forward", "filter", "forward", 0, false, {}};
    forward.rules = {
        {{MatchCtState{ct::established | ct::related}}, true, Verdict::accept, "established"},
        {{MatchIfname{true, Cmp::eq, br}, MatchIpv4{true, Cmp::eq, prefix(192, 168, 122, 0, 24)}},
         true,
         Verdict::accept,
         "kvmnet: outbound"},
        {{MatchIfname{false, Cmp::eq, br}, MatchIpv4{false, Cmp::eq, prefix(192, 168, 122, 5, 32)},
          MatchL4Dport{6, 22}},
         false,
         Verdict::accept,
         ""},
        {{MatchIfname{true, Cmp::neq, br}, MatchIpv4{true, Cmp::neq, prefix(10, 1, 0, 0, 20)}},
         false,
         Verdict::drop,
         ""},
        {{MatchIpv4{false, Cmp::eq, prefix(0, 0, 0, 0, 0)}}, true, Verdict::none, "any ipv4"},
        {{MatchIpv4{true, Cmp::neq, prefix(0, 0, 0, 0, 0)}}, false, Verdict::drop, ""},
        {{MatchIpv4{true, Cmp::eq, prefix(172, 16, 0, 0, 12)}}, false, Verdict::return_, ""},
        {{MatchIpv4{false, Cmp::eq, prefix(10, 0, 0, 0, 8)}, MatchIpv4{true, Cmp::eq, prefix(10, 20, 0, 0, 16)},
          MatchL4Dport{17, 53}},
         true,
         Verdict::accept,
         ""},
        {{MatchCtState{ct::invalid}}, true, Verdict::drop, "invalid"},
        {{MatchCtState{ct::new_ | ct::untracked}}, true, Verdict::none, ""},
        {{}, true, Verdict::none, "count the rest"},
    };
    for (Rule& r : ipv6_rules(br))
        forward.rules.push_back(std::move(r));

    Chain input{"input", "filter", "input", -5, true, {}};
    input.rules = {
        {{MatchIfname{true, Cmp::eq, br}, MatchL4Dport{17, 67}}, false, Verdict::accept, "dhcp"},
        {{MatchIfname{true, Cmp::eq, br}, MatchL4Dport{17, 53}}, false, Verdict::accept, ""},
        {{MatchIfname{true, Cmp::eq, br}, MatchL4Dport{6, 53}}, false, Verdict::accept, ""},
        {{MatchIfname{true, Cmp::eq, "a-fifteen-chars"}}, false, Verdict::drop, ""},
    };

    Chain postrouting{"postrouting", "nat", "postrouting", 100, true, {}};
    postrouting.rules = {
        {{MatchIpv4{true, Cmp::eq, prefix(192, 168, 122, 0, 24)},
          MatchIpv4{false, Cmp::eq, prefix(255, 255, 255, 255, 32)}},
         false,
         Verdict::return_,
         ""},
        {{MatchIpv4{true, Cmp::eq, prefix(192, 168, 122, 0, 24)},
          MatchIpv4{false, Cmp::neq, prefix(192, 168, 122, 0, 24)}},
         true,
         Verdict::masquerade,
         "kvmnet nat"},
        {{MatchIfname{false, Cmp::eq, "eth0"}}, false, Verdict::masquerade, ""},
        {{MatchIpv6{true, Cmp::eq, prefix6("fd00:1:2:3::", 64)},
          MatchIpv6{false, Cmp::neq, prefix6("fd00:1:2:3::", 64)}, MatchIfname{false, Cmp::eq, "eth0"}},
         true,
         Verdict::masquerade,
         "nat66"},
    };

    Chain output{"output", "filter", "output", 10, true, {}};  // an empty base chain

    t.chains = {forward, input, postrouting, output};
    return t;
}

// Sets, maps and the expressions port forwarding and limits use.
Table with_sets(const std::string& name)
{
    Table t{name};
    const auto v4 = SetType::ipv4_addr, v6 = SetType::ipv6_addr, proto = SetType::inet_proto,
               port = SetType::inet_service;
    Set fwd4{"fwd4", {v4, proto, port}, {v4, port}, 0, false, true, {}};
    fwd4.elements = {{{"192.0.2.10", "tcp", "8080"}, {"192.168.122.10", "80"}, "web"},
                     {{"192.0.2.10", "udp", "53"}, {"192.168.122.11", "5353"}, ""}};
    Set local{
        "fwd4_local", {proto, port}, {v4, port}, 0, false, false, {{{"tcp", "2222"}, {"192.168.122.10", "22"}, ""}}};
    Set fwd6{
        "fwd6", {v6, proto, port}, {v6, port}, 0, false, false, {{{"fd00::1", "udp", "53"}, {"fd00::10", "5353"}, ""}}};
    Set only{"ip4only", {v4}, {v4}, 0, false, false, {{{"198.51.100.1"}, {"192.168.122.12"}, "whole host"}}};
    Set guests{"guests4", {v4}, {}, 0, false, false, {{{"192.168.122.10"}, {}, ""}, {{"192.168.122.11"}, {}, "db"}}};
    Set ifs{"bridges", {SetType::ifname}, {}, 0, false, false, {{{"kvmbr0"}, {}, ""}, {{"kvmbr1"}, {}, ""}}};
    Set macs{"macs", {SetType::ether_addr}, {}, 0, false, false, {{{"52:54:00:12:34:56"}, {}, ""}}};
    Set meter{"meter4", {v4}, {}, 65535, true, false, {}};
    Set ports{"ports", {proto, port}, {}, 100, false, true, {{{"tcp", "22"}, {}, ""}, {{"udp", "67"}, {}, ""}}};
    t.sets = {fwd4, local, fwd6, only, guests, ifs, macs, meter, ports};

    Chain prerouting{"prerouting", "nat", "prerouting", -100, true, {}};
    prerouting.rules = {
        {{DnatMap{false, {Field::ip_daddr, Field::meta_l4proto, Field::th_dport}, "fwd4"}}, true, Verdict::none, "fwd"},
        {{MatchFibDaddrLocal{}, DnatMap{false, {Field::meta_l4proto, Field::th_dport}, "fwd4_local"}},
         false,
         Verdict::none,
         ""},
        {{DnatMap{true, {Field::ip6_daddr, Field::meta_l4proto, Field::th_dport}, "fwd6"}}, false, Verdict::none, ""},
        {{DnatMap{false, {Field::ip_daddr}, "ip4only"}}, false, Verdict::none, ""},
    };
    Chain forward{"forward", "filter", "forward", 0, true, {}};
    forward.rules = {
        {{MatchCtState{ct::new_}, MatchLimit{200, 5, true}}, true, Verdict::drop, "rate"},
        {{MatchCtState{ct::new_}, MatchConnLimit{{Field::ip_saddr}, "meter4", 1024, true}}, true, Verdict::drop, ""},
        {{MatchSetLookup{{Field::meta_l4proto, Field::th_dport}, "ports", false}}, false, Verdict::accept, ""},
        {{MatchIfname{true, Cmp::eq, "kvmbr0"}, MatchSetLookup{{Field::ip_saddr}, "guests4", true}},
         true,
         Verdict::drop,
         ""},
        {{MatchIpv4{false, Cmp::eq, prefix(192, 168, 122, 0, 24)}, MatchSetLookup{{Field::ip_saddr}, "guests4", false}},
         false,
         Verdict::accept,
         ""},
        {{MatchSetLookup{{Field::iifname}, "bridges", false}}, false, Verdict::accept, ""},
        {{MatchSetLookup{{Field::oifname}, "bridges", true}}, false, Verdict::return_, ""},
        {{MatchSetLookup{{Field::ether_saddr}, "macs", false}}, false, Verdict::accept, ""},
        {{MatchCtStatus{ct_status::dnat}}, false, Verdict::accept, "forwarded"},
        {{MatchCtStatus{ct_status::snat | ct_status::dnat}}, false, Verdict::none, ""},
        {{MatchLimit{5, 10, false}}, false, Verdict::accept, ""},
        {{MatchFibDaddrLocal{Cmp::neq}}, false, Verdict::drop, ""},
        {{MatchConnLimit{{Field::ip_saddr}, "meter4", 8, false}}, false, Verdict::accept, ""},
    };
    Chain postrouting{"postrouting", "nat", "postrouting", 100, true, {}};
    postrouting.rules = {{{MatchCtStatus{ct_status::dnat}}, false, Verdict::masquerade, "hairpin"}};
    t.chains = {prerouting, forward, postrouting};
    return t;
}

Set missing_set()
{
    Set s;
    s.name = "nosuch";
    s.key = {SetType::ipv4_addr};
    return s;
}

// Number of elements nft -j reports for a set or map; -1 if it cannot be listed.
int json_element_count(const std::string& table, const std::string& kind, const std::string& set)
{
    auto [status, out] = run("nft -j list " + kind + " inet " + table + " " + set);
    if (status != 0) return -1;
    try {
        const auto doc = nlohmann::json::parse(out);
        for (const auto& item : doc.at("nftables")) {
            if (!item.contains(kind)) continue;
            const auto& s = item.at(kind);
            return s.contains("elem") ? static_cast<int>(s.at("elem").size()) : 0;
        }
    } catch (const std::exception&) {
    }
    return -1;
}

bool has_element(const std::string& table, const std::string& set, const std::string& key)
{
    return run("nft get element inet " + table + " " + set + " '{ " + key + " }'").first == 0;
}

SetElement forward_element(unsigned i)
{
    return {
        {"10." + std::to_string((i >> 16) & 255) + "." + std::to_string((i >> 8) & 255) + "." + std::to_string(i & 255),
         i % 2 ? "udp" : "tcp", std::to_string(1024 + i % 60000)},
        {"192.168.122." + std::to_string(2 + i % 250), std::to_string(1 + i % 1000)},
        i % 100 == 0 ? "forward " + std::to_string(i) : ""};
}

// Median (and fastest, slowest) microseconds of `runs` single-element adds to `set` (each removed again).
std::string add_us(kernel::Nftables& nft, const std::string& table, const Set& set, unsigned first, int runs)
{
    std::vector<double> times;
    for (int r = 0; r < runs; ++r) {
        const std::vector<SetElement> one{forward_element(first + static_cast<unsigned>(r))};
        const auto start = std::chrono::steady_clock::now();
        add_elements(nft, table, set, one);
        const auto end = std::chrono::steady_clock::now();
        times.push_back(std::chrono::duration<double, std::micro>(end - start).count());
        delete_elements(nft, table, set, one);
    }
    std::sort(times.begin(), times.end());
    return std::to_string(times[times.size() / 2]) + " us (min " + std::to_string(times.front()) + ", max " +
           std::to_string(times.back()) + ")";
}

template <typename F>
std::string expect_error(F&& f, ErrorKind kind)
{
    try {
        f();
    } catch (const Error& e) {
        if (e.kind() != kind) return std::string("wrong kind: ") + e.what();
        return e.what();
    } catch (const std::exception& e) {
        return std::string("wrong exception: ") + e.what();
    }
    return "";
}

}  // namespace

// The planner's table for a NAT network with forwards and limits, through
// the adapter, and forward changes as multi-set element batches.
void check_planned_forwards(kernel::Nftables& nft, const std::string& name, const std::string& ref)
{
    model::Network n = model::parse_network(R"({"name": "web", "mode": "nat", "bridge": "kvmbr5",
        "ipv4": {"address": "10.5.0.1/24"}, "ipv6": {"address": "fd00:5::1/64"},
        "forwards": [{"proto": "both", "host_port": "5000-5001", "guest": "10.5.0.11", "guest_port": "6000-6001"},
                     {"proto": "tcp", "host_port": 2222, "guest": "10.5.0.13", "guest_port": 22, "rate": 5},
                     {"proto": "tcp", "host_port": 443, "host_address": "203.0.113.7", "guest": "10.5.0.10",
                      "guest_port": 443, "rate": 100},
                     {"proto": "tcp", "host_port": 8080, "guest": "fd00:5::10", "guest_port": 80},
                     {"proto": "udp", "host_port": 53, "host_address": "2001:db8::7", "guest": "fd00:5::12",
                      "guest_port": 5353, "rate": 20}],
        "limits": {"new_connections_per_second": 200, "connections_per_source": 1024}})");
    Table planned = build_ruleset({n});
    planned.name = name;
    nft.replace_table(planned);
    const std::string listing = list_table(name);
    const std::string expected = reference_listing(planned, ref);
    check(listing == expected, "planner's forwards and limits: nft list equals nft -f of render()");
    if (listing != expected) std::cout << "--- committed\n" << listing << "--- expected\n" << expected;
    const std::string code = list_table(name, true);
    const std::string code_expected = reference_listing(planned, ref, true);
    check(code == code_expected, "planner's forwards and limits: bytecode and elements equal nft's");
    if (code != code_expected) std::cout << "--- committed\n" << code << "--- expected\n" << code_expected;

    // One more rate-limited forward: two sets, one batch.
    model::PortForward f = n.forwards[1];
    f.host_port_first = f.host_port_last = 2223;
    f.rate = 7;
    const std::vector<Set> declared = forward_sets();
    const auto set = [&](const std::string& set_name) {
        return &*std::find_if(declared.begin(), declared.end(), [&](const Set& x) { return x.name == set_name; });
    };
    std::vector<ElementChange> add;
    for (const SetElements& part : forward_elements(f, "web"))
        add.push_back({set(part.set), part.elements, true});
    nft.change_elements(name, add);
    const std::string after = list_table(name);
    check(after.find("tcp . 2223 limit rate 7/second burst 7 packets counter packets 0 bytes 0 comment \"web\" : "
                     "10.5.0.13 . 22") != std::string::npos &&
              after.find("tcp . 2223 counter packets 0 bytes 0 comment \"web\"") != std::string::npos,
          "a rate-limited forward is added to its map and its over-rate set in one batch");
    const auto counted = nft.list_elements(name, *set(fwd4_any_rate_set));
    check(counted.size() == 2 && counted[0].has_counter, "list_elements reads a limited map's counters");

    // Atomic: the second change fails (not there), so the first is undone.
    std::vector<ElementChange> remove;
    for (const SetElements& part : forward_elements(f, "web"))
        remove.push_back({set(part.set), part.elements, false});
    std::vector<ElementChange> half = remove;
    half.push_back({set(fwd4_set), {{{"tcp", "192.0.2.1", "1"}, {}, ""}}, false});
    const std::string message = expect_error([&] { nft.change_elements(name, half); }, ErrorKind::Kernel);
    check(message.find("does not exist") != std::string::npos && list_table(name) == after,
          "a failing change in a batch leaves every set as it was: " + message);
    nft.change_elements(name, remove);
    check(list_table(name) == listing, "removing the forward restores the listing");

    const auto rules = nft.rule_counters(name);
    const bool found = std::any_of(rules.begin(), rules.end(), [](const RuleCounter& r) {
        return r.chain == "net_web_limits" && r.comment == "web: new connections from guests over the rate limit";
    });
    check(found && rules.size() >= 8,
          "rule_counters finds the commented counter rules (" + std::to_string(rules.size()) + ")");

    // The bridge . subnet interval set (pipapo): read back as prefixes,
    // deleted by its range and added again.
    Set net4;
    net4.name = net4_set;
    net4.key = {SetType::ifname, SetType::ipv4_addr};
    net4.interval = true;
    const auto subnets = nft.list_elements(name, net4);
    check(subnets.size() == 1 && subnets[0].element.key == std::vector<std::string>{"kvmbr5", "10.5.0.0/24"} &&
              subnets[0].element.comment == "web",
          "list_elements decodes a bridge . prefix element of an interval set");
    const SetElement subnet{{"kvmbr5", "10.5.0.0/24"}, {}, "web", 0, 5};
    nft.change_elements(name, {{&net4, {subnet}, false}});
    check(nft.list_elements(name, net4).empty(), "an interval element is deleted by its range");
    nft.change_elements(name, {{&net4, {subnet}, true}});
    check(list_table(name) == listing, "an interval element added again restores the listing");
    const std::string bad = expect_error(
        [&] {
            nft.change_elements(name, {{&net4, {{{"kvmbr6", "10.6.0.1/24"}, {}, "", 0, 5}}, true}});
        },
        ErrorKind::InvalidArgument);
    check(bad.find("host bits") != std::string::npos, "a prefix with host bits is refused: " + bad);
    check(nft.rule_counters(name + "_absent").empty(), "rule_counters of an absent table is empty");
}

// A listing's element entries ("elements = { a,\n\t\t\t     b }")
// sorted: the kernel lists an interval set's elements (pipapo) in the order
// they were added, which an update does not keep.
std::string sorted_elements(const std::string& listing)
{
    std::string out, line;
    std::vector<std::string> entries;
    std::istringstream in(listing);
    const std::string start = "\t\telements = { ", more = "\t\t\t     ";
    while (std::getline(in, line)) {
        const bool first = line.rfind(start, 0) == 0;
        if (!first && (entries.empty() || line.rfind(more, 0) != 0)) {
            out += line + "\n";
            continue;
        }
        std::string entry = line.substr(first ? start.size() : more.size());
        const bool last = entry.size() >= 2 && entry.compare(entry.size() - 2, 2, " }") == 0;
        entry.resize(entry.size() - (last ? 2 : entry.back() == ',' ? 1 : 0));
        entries.push_back(entry);
        if (!last) continue;
        std::sort(entries.begin(), entries.end());
        for (std::size_t i = 0; i < entries.size(); ++i)
            out += (i == 0 ? start : more) + entries[i] + (i + 1 == entries.size() ? " }\n" : ",\n");
        entries.clear();
    }
    return out;
}

// A listing with its sets and chains sorted by their text: nft lists them in
// the order they were added, which an update does not keep.
std::string sorted_blocks(const std::string& listing_as_listed)
{
    const std::string listing = sorted_elements(listing_as_listed);
    std::vector<std::string> blocks;
    std::string head, block, line;
    std::istringstream in(listing);
    while (std::getline(in, line)) {
        if (line.rfind("\t", 0) == 0 && line.rfind("\t\t", 0) != 0 && line != "\t}") {
            if (!block.empty()) blocks.push_back(block);
            block.clear();
        }
        if (line.empty() || line == "}") continue;
        (blocks.empty() && block.empty() && line.rfind("\t", 0) != 0 ? head : block) += line + "\n";
    }
    if (!block.empty()) blocks.push_back(block);
    std::sort(blocks.begin(), blocks.end());
    for (const std::string& b : blocks)
        head += b;
    return head + "}\n";
}

// Incremental updates (plan::diff_tables through update_table): starting and
// stopping networks next to others leaves exactly what a replace would.
void check_incremental_update(kernel::Nftables& nft, const std::string& name, const std::string& ref)
{
    const model::Network web = model::parse_network(R"({"name": "web", "mode": "nat", "bridge": "kvmbr5",
        "ipv4": {"address": "10.5.0.1/24"}, "ipv6": {"address": "fd00:5::1/64"},
        "forwards": [{"proto": "tcp", "host_port": 2222, "guest": "10.5.0.13", "guest_port": 22, "rate": 5}],
        "limits": {"new_connections_per_second": 200, "connections_per_source": 1024}})");
    const model::Network dmz = model::parse_network(
        R"({"name": "dmz", "mode": "routed", "bridge": "kvmbr2", "ipv4": {"address": "10.20.0.1/24"}})");
    const model::Network lab = model::parse_network(
        R"({"name": "lab", "mode": "isolated", "bridge": "kvmbr1", "ipv4": {"address": "10.10.0.1/24"}})");
    const model::Network db = model::parse_network(R"({"name": "db", "mode": "nat", "bridge": "kvmbr6",
        "ipv4": {"address": "10.6.0.1/24"}, "limits": {"connections_per_source": 10}})");
    auto table_of = [&](std::vector<model::Network> nets) {
        Table t = build_ruleset(std::move(nets));
        t.name = name;
        return t;
    };
    Table current = table_of({web});
    nft.replace_table(current);
    const std::vector<std::pair<std::string, std::vector<model::Network>>> steps{
        {"two more networks started", {web, dmz, lab}},
        {"a NAT network with a meter started", {web, dmz, lab, db}},
        {"two networks stopped", {web, db}},
        {"every NAT network stopped", {dmz}},
        {"NAT networks started again", {db, dmz, web}}};
    for (const auto& [what, nets] : steps) {
        Table next = table_of(nets);
        const plan::TableDiff diff = plan::diff_tables(current, next);
        check(!diff.replace, what + ": an incremental update (" + diff.summary() + ")");
        nft.update_table(next, diff);
        const std::string listing = sorted_blocks(list_table(name));
        const std::string expected = sorted_blocks(reference_listing(next, ref));
        check(listing == expected, what + ": nft list after the update equals nft -f of render() (in any order)");
        if (listing != expected) std::cout << "--- committed\n" << listing << "--- expected\n" << expected;
        current = std::move(next);
    }
    nft.delete_table(name);
}

int main(int argc, char** argv)
{
    if (argc != 2) {
        std::cerr << "usage: " << argv[0] << " TABLE_NAME (run inside a throwaway network namespace)\n";
        return 2;
    }
    if (std::string why; !kvmnet::test::in_safe_netns(why)) {
        std::cerr << "refusing to run outside a throwaway network namespace (" << why << "); use ip netns exec\n";
        return 77;
    }
    const std::string name = argv[1];
    const std::string ref = name + "_ref";

    try {
        kernel::Nftables nft;
        nft.delete_table(name);
        check(!table_listed(name), "table absent at start");

        const Table table = representative(name);
        nft.replace_table(table);
        check(table_listed(name), "table listed after replace_table");
        const std::string committed = list_table(name);
        const std::string expected = reference_listing(table, ref);
        check(committed == expected, "nft list of committed table equals nft -f of render()");
        if (std::getenv("KVMNFT_VERBOSE") != nullptr) std::cout << committed;
        if (committed != expected) std::cout << "--- committed\n" << committed << "--- expected\n" << expected;
        const std::string committed_code = list_table(name, true);
        const std::string expected_code = reference_listing(table, ref, true);
        check(committed_code == expected_code, "netlink bytecode and userdata equal nft's, rule by rule");
        if (committed_code != expected_code) {
            std::cout << "--- committed\n" << committed_code << "--- expected\n" << expected_code;
        }

        nft.replace_table(table);
        check(list_table(name) == committed, "replace_table twice is idempotent");

        // Replacing with a smaller table must drop what is no longer there.
        Table smaller = table;
        smaller.chains.erase(smaller.chains.begin() + 1, smaller.chains.end());
        smaller.chains[0].rules.resize(2);
        nft.replace_table(smaller);
        check(list_table(name, true) == reference_listing(smaller, ref, true), "replace_table with a smaller table");
        nft.replace_table(table);
        check(list_table(name) == committed, "replace_table back to the full table");

        // Rejected before sending: the table stays as it was.
        Table bad_hook = table;
        bad_hook.chains[1].hook = "inptu";
        std::string message = expect_error([&] { nft.replace_table(bad_hook); }, ErrorKind::InvalidArgument);
        check(message.find("unknown hook") != std::string::npos, "invalid hook rejected: " + message);
        check(list_table(name) == committed, "table intact after invalid hook");

        // Other plans the adapter refuses before sending.
        const auto rejected = [&](const std::string& what, auto&& mutate) {
            Table bad = table;
            mutate(bad);
            const std::string m = expect_error([&] { nft.replace_table(bad); }, ErrorKind::InvalidArgument);
            check(!m.empty() && m.find("wrong") != 0 && list_table(name) == committed, what + " rejected: " + m);
        };
        rejected("unknown chain type", [](Table& t) { t.chains[2].type = "natt"; });
        rejected("16-byte interface name", [](Table& t) {
            t.chains[1].rules[0].matches[0] = MatchIfname{true, Cmp::eq, "sixteen-chars-xx"};
        });
        rejected("prefix length 33", [](Table& t) {
            t.chains[0].rules[2].matches.push_back(MatchIpv4{true, Cmp::eq, prefix(1, 2, 3, 4, 33)});
        });
        rejected("empty ct state", [](Table& t) { t.chains[0].rules[3].matches.push_back(MatchCtState{0}); });
        rejected("protocol 1 dport", [](Table& t) { t.chains[0].rules[3].matches.push_back(MatchL4Dport{1, 7}); });
        rejected("129-byte comment", [](Table& t) { t.chains[0].rules[1].comment = std::string(129, 'c'); });
        rejected("empty chain name", [](Table& t) { t.chains[3].name.clear(); });

        // Rejected by the kernel (masquerade outside a nat chain) after the
        // DELTABLE in the same batch: the transaction must roll back.
        Table bad_rule = table;
        bad_rule.chains[0].rules.push_back({{}, false, Verdict::masquerade, ""});
        message = expect_error([&] { nft.replace_table(bad_rule); }, ErrorKind::Kernel);
        check(message.find("Operation not supported") != std::string::npos &&
                  message.find("rule " + std::to_string(bad_rule.chains[0].rules.size()) + " to chain forward") !=
                      std::string::npos,
              "kernel rejection reported: " + message);
        check(list_table(name) == committed, "table intact after kernel rejection");

        Table bad_new = bad_rule;
        bad_new.name = name + "_new";
        message = expect_error([&] { nft.replace_table(bad_new); }, ErrorKind::Kernel);
        check(!message.empty() && !table_listed(bad_new.name), "failed first commit leaves no table");

        // Many messages: more acks than the default socket buffers hold.
        Table big{name + "_big", {{"forward", "filter", "forward", 0, true, {}}}};
        for (unsigned i = 0; i < 4000; ++i) {
            big.chains[0].rules.push_back({{MatchIfname{true, Cmp::eq, "veth" + std::to_string(i)},
                                            MatchIpv4{true, Cmp::eq, prefix(10, (i >> 8) & 255, i & 255, 0, 24)},
                                            MatchL4Dport{6, static_cast<std::uint16_t>(1000 + i)}},
                                           true,
                                           Verdict::accept,
                                           "rule " + std::to_string(i)});
        }
        nft.replace_table(big);
        const std::string big_listing = list_table(big.name);
        check(list_table(big.name, true) == reference_listing(big, big.name + "_ref", true),
              "4000-rule table matches nft -f, bytecode included");
        Table big_bad = big;
        big_bad.chains[0].rules.push_back({{}, false, Verdict::masquerade, ""});
        message = expect_error([&] { nft.replace_table(big_bad); }, ErrorKind::Kernel);
        check(message.find("rule 4001 to chain forward") != std::string::npos,
              "error located in a large batch: " + message);
        check(list_table(big.name) == big_listing, "large table intact after kernel rejection");
        nft.delete_table(big.name);

        check_planned_forwards(nft, name, ref);
        check_incremental_update(nft, name, ref);

        // ---- the planner's own dual-stack ruleset (IPv4 and IPv6 rules of every mode) ----
        {
            std::vector<model::Network> networks;
            for (const char* document : {
                     R"({"name": "default", "mode": "nat", "bridge": "kvmbr0", "uplink": "eth0",
                         "ipv4": {"address": "192.168.122.1/24"}, "ipv6": {"address": "fd00:1:2:3::1/64", "nat66": true}})",
                     R"({"name": "dmz", "mode": "routed", "bridge": "kvmbr2", "ipv4": {"address": "10.20.0.1/24"},
                         "ipv6": {"address": "2001:db8:20::1/60", "ra": false}})",
                     R"({"name": "lab", "mode": "isolated", "bridge": "kvmbr1", "ipv4": {"address": "10.10.0.1/24"},
                         "ipv6": {"address": "fd00:30::1/64"}})",
                     // Another IPv4 length and (dmz) IPv6 length: the established accepts' hash sets per length.
                     R"({"name": "v4only", "mode": "nat", "bridge": "br-v4", "ipv4": {"address": "10.4.0.1/16"}})"})
                networks.push_back(model::parse_network(document));
            Table planned = build_ruleset(networks);
            planned.name = name;
            nft.replace_table(planned);
            const std::string listing = list_table(name);
            const std::string wanted = reference_listing(planned, ref);
            check(listing == wanted, "dual-stack planner ruleset: nft list equals nft -f of render()");
            if (listing != wanted) std::cout << "--- committed\n" << listing << "--- expected\n" << wanted;
            check(list_table(name, true) == reference_listing(planned, ref, true),
                  "dual-stack planner ruleset: bytecode equals nft's");
            nft.delete_table(name);
        }

        // ---- sets, maps and the expressions that use them ----
        const Table sets = with_sets(name);
        nft.replace_table(sets);
        const std::string sets_listing = list_table(name);
        const std::string sets_expected = reference_listing(sets, ref);
        check(sets_listing == sets_expected, "sets and maps: nft list of committed table equals nft -f of render()");
        if (std::getenv("KVMNFT_VERBOSE") != nullptr) std::cout << sets_listing;
        if (sets_listing != sets_expected)
            std::cout << "--- committed\n" << sets_listing << "--- expected\n" << sets_expected;
        const std::string sets_code = list_table(name, true);
        const std::string sets_code_expected = reference_listing(sets, ref, true);
        check(sets_code == sets_code_expected, "sets and maps: bytecode, elements and userdata equal nft's");
        if (sets_code != sets_code_expected) {
            std::cout << "--- committed\n" << sets_code << "--- expected\n" << sets_code_expected;
        }
        nft.replace_table(sets);
        check(list_table(name) == sets_listing, "replace_table with sets twice is idempotent");

        const auto rejected_sets = [&](const std::string& what, auto&& mutate) {
            Table bad = sets;
            mutate(bad);
            const std::string m = expect_error([&] { nft.replace_table(bad); }, ErrorKind::InvalidArgument);
            check(!m.empty() && m.find("wrong") != 0 && list_table(name) == sets_listing, what + " rejected: " + m);
        };
        rejected_sets("lookup in an undeclared set", [](Table& t) {
            t.chains[1].rules[2].matches[0] = MatchSetLookup{{Field::th_dport}, "nosuch", false};
        });
        rejected_sets("lookup key of the wrong types", [](Table& t) {
            t.chains[1].rules[2].matches[0] = MatchSetLookup{{Field::th_dport, Field::meta_l4proto}, "ports", false};
        });
        rejected_sets("a lookup masked to a prefix without an address in its key", [](Table& t) {
            t.chains[1].rules[2].matches[0] =
                MatchSetLookup{{Field::meta_l4proto, Field::th_dport}, "ports", false, 24};
        });
        rejected_sets("dnat through a map to a port only", [](Table& t) {
            t.sets[1].data = {SetType::inet_service};
            t.sets[1].elements[0].data = {"22"};
        });
        rejected_sets("two dnat statements", [](Table& t) {
            t.chains[0].rules[3].matches.push_back(DnatMap{false, {Field::ip_daddr}, "ip4only"});
        });
        rejected_sets("dnat with a verdict", [](Table& t) { t.chains[0].rules[3].verdict = Verdict::accept; });
        rejected_sets("ct count in a set that is not dynamic", [](Table& t) { t.sets[7].dynamic = false; });
        rejected_sets("element with a bad address", [](Table& t) { t.sets[0].elements[0].key[0] = "192.0.2.300"; });
        rejected_sets("element with a missing key part", [](Table& t) { t.sets[0].elements[0].key.pop_back(); });
        rejected_sets("set element with data", [](Table& t) { t.sets[4].elements[0].data = {"1.2.3.4"}; });
        rejected_sets("set declared twice", [](Table& t) { t.sets.push_back(t.sets[4]); });
        rejected_sets("key of 5 concatenated ipv6 addresses", [](Table& t) {
            t.sets[4].key.assign(5, SetType::ipv6_addr);
            t.sets[4].elements.clear();
        });
        // Rejected by the kernel: a duplicate element in the plan (EXCL).
        Table dup = sets;
        dup.sets[4].elements.push_back(dup.sets[4].elements[0]);
        message = expect_error([&] { nft.replace_table(dup); }, ErrorKind::Kernel);
        check(message.find("File exists") != std::string::npos && message.find("@guests4") != std::string::npos,
              "duplicate element in a plan rejected by the kernel: " + message);
        check(list_table(name) == sets_listing, "table intact after the duplicate element");

        // ---- the O(1) change path: elements only ----
        const Set& fwd4 = sets.sets[0];
        const std::string chains_before = chain_code(name, "prerouting") + chain_code(name, "forward");
        std::vector<SetElement> thousand;
        for (unsigned i = 0; i < 1000; ++i)
            thousand.push_back(forward_element(i));
        add_elements(nft, name, fwd4, thousand);
        check(json_element_count(name, "map", "fwd4") == 1002, "1000 elements added in one batch (nft -j list map)");
        add_elements(nft, name, fwd4, {forward_element(1000)});
        check(json_element_count(name, "map", "fwd4") == 1003 && has_element(name, "fwd4", "10.0.3.232 . tcp . 2024"),
              "one more element added");
        delete_elements(nft, name, fwd4, {forward_element(500)});
        check(json_element_count(name, "map", "fwd4") == 1002 &&
                  !has_element(name, "fwd4", "10.0.1.244 . tcp . 1524") &&
                  has_element(name, "fwd4", "10.0.1.245 . udp . 1525"),
              "one element deleted");
        const std::string chains_after = chain_code(name, "prerouting") + chain_code(name, "forward");
        check(chains_before == chains_after, "element changes leave the chains untouched");

        // A failing batch changes nothing: a new element and a duplicate.
        message = expect_error(
            [&] {
                add_elements(nft, name, fwd4, {forward_element(2000), forward_element(7)});
            },
            ErrorKind::Kernel);
        check(message.find("already in the set") != std::string::npos, "duplicate element refused: " + message);
        check(json_element_count(name, "map", "fwd4") == 1002 && !has_element(name, "fwd4", "10.0.7.208 . tcp . 3024"),
              "failed add batch left the map unchanged");
        // Across chunks: 3000 new elements (several messages) and one duplicate at the end.
        std::vector<SetElement> many;
        for (unsigned i = 3000; i < 6000; ++i)
            many.push_back(forward_element(i));
        many.push_back(forward_element(1));
        message = expect_error([&] { add_elements(nft, name, fwd4, many); }, ErrorKind::Kernel);
        check(json_element_count(name, "map", "fwd4") == 1002, "failed multi-message add batch left the map unchanged");
        message = expect_error(
            [&] {
                delete_elements(nft, name, fwd4, {forward_element(1), forward_element(500)});
            },
            ErrorKind::Kernel);
        check(message.find("does not exist") != std::string::npos && json_element_count(name, "map", "fwd4") == 1002 &&
                  has_element(name, "fwd4", "10.0.0.1 . udp . 1025"),
              "failed delete batch left the map unchanged: " + message);
        message = expect_error(
            [&] {
                add_elements(nft, name, fwd4, {{{"10.0.0.1", "tcp"}, {"1.2.3.4", "1"}, ""}});
            },
            ErrorKind::InvalidArgument);
        check(!message.empty(), "element with a missing key part refused before sending: " + message);
        message = expect_error(
            [&] {
                add_elements(nft, name, fwd4, {{{"10.0.0.1", "tcp", "70000"}, {"1.2.3.4", "1"}, ""}});
            },
            ErrorKind::InvalidArgument);
        check(!message.empty(), "port 70000 refused before sending: " + message);
        message = expect_error(
            [&] {
                add_elements(nft, name, missing_set(), {{{"1.2.3.4"}, {}, ""}});
            },
            ErrorKind::Kernel);
        check(!message.empty(), "adding to a missing set fails: " + message);

        // Reading elements back, with per-element counters.
        const auto listed = nft.list_elements(name, fwd4);
        bool decoded = listed.size() == 1002;
        bool counters = true;
        for (const auto& e : listed)
            counters = counters && e.has_counter;
        const auto web = std::find_if(listed.begin(), listed.end(), [](const auto& e) {
            return e.element.key == std::vector<std::string>{"192.0.2.10", "tcp", "8080"};
        });
        decoded = decoded && web != listed.end() &&
                  web->element.data == std::vector<std::string>{"192.168.122.10", "80"} &&
                  web->element.comment == "web";
        const auto f100 = std::find_if(listed.begin(), listed.end(),
                                       [](const auto& e) { return e.element.key == forward_element(100).key; });
        decoded = decoded && f100 != listed.end() && f100->element.data == forward_element(100).data &&
                  f100->element.comment == "forward 100";
        check(decoded, "list_elements decodes keys, data and comments");
        check(counters, "list_elements reports a counter on every element of a counter map");
        const auto plain = nft.list_elements(name, sets.sets[5]);
        check(plain.size() == 2 && !plain[0].has_counter, "list_elements of a set without counters");
        message = expect_error([&] { nft.list_elements(name, missing_set()); }, ErrorKind::NotFound);
        check(!message.empty(), "list_elements of a missing set: " + message);

        // Timings (informational): one element added at 0 and at 10,000 existing.
        {
            Table timing{name + "_t"};
            Set empty_map = fwd4;
            empty_map.elements.clear();
            timing.sets = {empty_map};
            nft.replace_table(timing);
            const std::string at0 = add_us(nft, timing.name, empty_map, 100000, 21);
            std::vector<SetElement> tenk;
            for (unsigned i = 0; i < 10000; ++i)
                tenk.push_back(forward_element(i));
            const auto start = std::chrono::steady_clock::now();
            add_elements(nft, timing.name, empty_map, tenk);
            const double bulk =
                std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
            check(json_element_count(timing.name, "map", "fwd4") == 10000, "10,000 elements added in one batch");
            const std::string at10k = add_us(nft, timing.name, empty_map, 100000, 21);
            std::cout << "info add_elements: 10,000 in one batch " << bulk << " ms; one element, median of 21: " << at0
                      << " at 0 existing, " << at10k << " at 10,000 existing\n";
            nft.delete_table(timing.name);
        }

        nft.delete_table(name);
        check(!table_listed(name), "delete_table removes the table");
        nft.delete_table(name);
        check(true, "second delete_table is a no-op");
    } catch (const std::exception& e) {
        std::cout << "FAIL unexpected exception: " << e.what() << '\n';
        ++failures;
    }

    std::cout << (failures == 0 ? "all checks passed\n" : std::to_string(failures) + " check(s) failed\n");
    return failures == 0 ? 0 : 1;
}
