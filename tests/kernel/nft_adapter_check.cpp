// Kernel check for kernel::Nftables: commits a representative plan::Table
// through libnftnl and compares `nft list` of it with what nft(8) itself makes
// of plan::render() of the same table, then exercises replace/delete/exists
// and failure atomicity. It changes nftables state, so it refuses to run in
// the root network namespace (exit 77 = skip). Usage, as root:
//   ip netns add kvmnft-$$; ip netns exec kvmnft-$$ ./nft_adapter_check kvmtest; ip netns del kvmnft-$$
// KVMNFT_VERBOSE=1 also prints the committed listing.
#include "kernel/nftables.hpp"
#include "model/error.hpp"
#include "netns_guard.hpp"
#include "plan/ruleset.hpp"

#include <sys/stat.h>
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>

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
    return normalised;
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

Ipv4Prefix prefix(unsigned a, unsigned b, unsigned c, unsigned d, std::uint8_t length)
{
    return {static_cast<std::uint32_t>((a << 24) | (b << 16) | (c << 8) | d), length};
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
    };

    Chain output{"output", "filter", "output", 10, true, {}};  // an empty base chain

    t.chains = {forward, input, postrouting, output};
    return t;
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
        check(!nft.table_exists(name), "table absent at start");

        const Table table = representative(name);
        nft.replace_table(table);
        check(nft.table_exists(name), "table_exists after replace_table");
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
                  message.find("rule 12 to chain forward") != std::string::npos,
              "kernel rejection reported: " + message);
        check(list_table(name) == committed, "table intact after kernel rejection");

        Table bad_new = bad_rule;
        bad_new.name = name + "_new";
        message = expect_error([&] { nft.replace_table(bad_new); }, ErrorKind::Kernel);
        check(!message.empty() && !nft.table_exists(bad_new.name), "failed first commit leaves no table");

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

        nft.delete_table(name);
        check(!nft.table_exists(name) && !table_listed(name), "delete_table removes the table");
        nft.delete_table(name);
        check(true, "second delete_table is a no-op");
        check(!nft.table_exists(name), "table_exists false after delete");
    } catch (const std::exception& e) {
        std::cout << "FAIL unexpected exception: " << e.what() << '\n';
        ++failures;
    }

    std::cout << (failures == 0 ? "all checks passed\n" : std::to_string(failures) + " check(s) failed\n");
    return failures == 0 ? 0 : 1;
}
