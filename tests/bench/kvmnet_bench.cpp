// kvmnet-bench: the measuring half of scripts/bench.sh (issue #4,
// "Benchmarks"). Each subcommand measures one thing and prints one CSV row
// per sample; bench.sh creates the namespaces, runs the subcommands inside
// them and renders the results. Built by meson, never run as a test.
#include "bench.hpp"
#include "netns_guard.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <sstream>

namespace kvmnet::bench {

Args::Args(int argc, char** argv, int first)
{
    for (int i = first; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--") {
            rest_.assign(argv + i + 1, argv + argc);
            return;
        }
        if (a.rfind("--", 0) != 0) throw UsageError("unexpected argument '" + a + "'");
        const std::string name = a.substr(2);
        if (i + 1 < argc && std::string(argv[i + 1]).rfind("--", 0) != 0) {
            options_[name] = argv[++i];
        } else {
            options_[name] = "";
        }
    }
}

std::string Args::get(const std::string& name, const std::string& fallback) const
{
    const auto it = options_.find(name);
    return it == options_.end() ? fallback : it->second;
}

std::string Args::need(const std::string& name) const
{
    const auto it = options_.find(name);
    if (it == options_.end() || it->second.empty()) throw UsageError("--" + name + " is required");
    return it->second;
}

unsigned Args::number(const std::string& name, unsigned fallback) const
{
    const auto it = options_.find(name);
    if (it == options_.end()) return fallback;
    try {
        std::size_t used = 0;
        const unsigned long v = std::stoul(it->second, &used);
        if (used != it->second.size() || v > 0xffffffffUL) throw std::invalid_argument("range");
        return static_cast<unsigned>(v);
    } catch (const std::exception&) {
        throw UsageError("--" + name + ": not a number: '" + it->second + "'");
    }
}

std::vector<unsigned> Args::numbers(const std::string& name, const std::string& fallback) const
{
    std::vector<unsigned> out;
    std::stringstream list(get(name, fallback));
    std::string item;
    while (std::getline(list, item, ',')) {
        if (item.empty()) continue;
        try {
            out.push_back(static_cast<unsigned>(std::stoul(item)));
        } catch (const std::exception&) {
            throw UsageError("--" + name + ": not a number: '" + item + "'");
        }
    }
    return out;
}

void emit(const std::string& figure, const std::string& variant, std::uint64_t n, const std::string& unit, double value)
{
    std::printf("%s,%s,%llu,%s,%.6g\n", figure.c_str(), variant.c_str(), static_cast<unsigned long long>(n),
                unit.c_str(), value);
    std::fflush(stdout);
}

double median(std::vector<double> samples)
{
    if (samples.empty()) return 0;
    std::sort(samples.begin(), samples.end());
    const std::size_t mid = samples.size() / 2;
    return samples.size() % 2 ? samples[mid] : (samples[mid - 1] + samples[mid]) / 2;
}

double percentile(std::vector<double> samples, double p)
{
    if (samples.empty()) return 0;
    std::sort(samples.begin(), samples.end());
    const double rank = std::ceil(p / 100.0 * static_cast<double>(samples.size()));
    const std::size_t index = rank < 1 ? 0 : static_cast<std::size_t>(rank) - 1;
    return samples[std::min(index, samples.size() - 1)];
}

void require_safe_netns()
{
    std::string why;
    if (!test::in_safe_netns(why))
        throw std::runtime_error("refusing to change nftables here: " + why +
                                 " (run inside a namespace made by scripts/bench.sh)");
}

}  // namespace kvmnet::bench

namespace {

void usage(std::ostream& out)
{
    out << "Usage: kvmnet-bench COMMAND [OPTIONS]   (one CSV row per sample: figure,variant,n,unit,value;\n"
           "                                        dbus-load: a JSON report)\n"
           "  nft-elements [--sizes 1000,10000,100000] [--at 0,1000,10000,100000] [--runs 5] [--adds 200]\n"
           "      forwards as the daemon's map elements through kvmnet's nftables adapter: a bulk add of each size in\n"
           "      one batch, and one element added (then removed) with --at existing. Needs a throwaway netns.\n"
           "  nft-dnat --forwards N --host-address A --port P --guest G --guest-port GP --bridge BR\n"
           "           --subnet-prefix a.b.c [--delete]\n"
           "      kvmnet's ruleset for one NAT network on BR (a.b.c.1/24) with N forwards, the one to A:P last.\n"
           "  serve --port P                 accept and close TCP connections until killed\n"
           "  connrate --to A:P --count N [--runs 5] [--variant V] [--n N]\n"
           "      new TCP connections per second: connect, then close with RST, N times per run\n"
           "  exec --runs K [--first I] [--prepare CMD] [--cleanup CMD] --variant V --figure F --n N -- ARGV\n"
           "      wall time of ARGV (no shell; {i} becomes the run's number); prepare/cleanup run untimed in sh\n"
           "  dbus-forwards --document F [--bulk 1000,10000,100000] [--bulk-runs 5] [--at 0,1000,10000]\n"
           "                [--adds 200] [--max-runs-100k 3] [--phases FILE] [--bus-pid P] [--daemon-pid P]\n"
           "      AddForwards through D-Bus ($DBUS_SYSTEM_BUS_ADDRESS): bulk per request, and one at N;\n"
           "      AddForwardsTyped split into parts (bus:* rows; --phases: kvmnetd's KVMNET_PHASES file)\n"
           "  dbus-load [--network load] [--clients 32] [--seconds 60] [--read-percent 80] [--max-forwards 20]\n"
           "            [--max-hosts 4] [--cycle-percent 5] [--read CALL] [--json FILE]\n"
           "      concurrent D-Bus clients (one connection and thread each) calling kvmnetd back to back with mixed\n"
           "      reads and writes (--read: every read is CALL, e.g. GetAll, Network.Describe); the JSON report "
           "(calls, failures, latency per call) goes to FILE or stdout, a\n"
           "      text summary to the other; exit 1 if any call failed. The network must be a running nat one\n"
           "      with ipv4.dhcp and a /16 or wider subnet\n"
           "  daemon-forwards --state-dir D --runtime-dir D [--sizes ...] [--runs 5] [--at ...] [--adds 200]\n"
           "      the same in-process through core::Manager (real adapters; needs a throwaway netns)\n"
           "  daemon-reads --state-dir D --runtime-dir D [--sizes 10000,100000] [--runs 5]\n"
           "  bulk-breakdown --state-dir D --runtime-dir D [--sizes 10000,100000] [--at 0,100000] [--runs 3]\n"
           "      [--adds 100]\n"
           "      one Statistics, one whole ListForwards and one 1000-forward page of a running network with N\n"
           "      forwards, in-process through core::Manager (real adapters; needs a throwaway netns)\n"
           "  listener-scan [--runs 50]      local listeners: /proc/net/{tcp,tcp6,udp,udp6} vs the daemon's sock_diag\n"
           "  read-while-starting --read-network NET [--networks 10] [--rounds 10] [--variant V]\n"
           "      GetAll on NET and Manager.Describe back to back while N NAT networks (created, then\n"
           "      deleted at the end) start at once, one client each; CSV rows read_during_starts\n"
           "  outage --to IPV4 [--interval-ms 10] [--steady 5] [--max-ms 5000] [--figure F] [--variant V] [--n N]\n"
           "         -- TRIGGER-ARGV\n"
           "      an ICMP echo (each its own identifier) every interval; once replies flow, runs the trigger; the\n"
           "      sample: ms from the trigger to the first reply after the first lost echo (0: none was lost)\n"
           "  summarize < raw.csv            figure,variant,n,unit,count,median,p99,min,max\n";
}

}  // namespace

int main(int argc, char** argv)
{
    using namespace kvmnet::bench;
    if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
        usage(argc < 2 ? std::cerr : std::cout);
        return argc < 2 ? 2 : 0;
    }
    const std::string command = argv[1];
    try {
        const Args args(argc, argv, 2);
        if (command == "nft-elements") return cmd_nft_elements(args);
        if (command == "nft-dnat") return cmd_nft_dnat(args);
        if (command == "serve") return cmd_serve(args);
        if (command == "connrate") return cmd_connrate(args);
        if (command == "exec") return cmd_exec(args);
        if (command == "dbus-forwards") return cmd_dbus_forwards(args);
        if (command == "dbus-load") return cmd_dbus_load(args);
        if (command == "read-while-starting") return cmd_read_while_starting(args);
        if (command == "daemon-forwards") return cmd_daemon_forwards(args);
        if (command == "daemon-reads") return cmd_daemon_reads(args);
        if (command == "bulk-breakdown") return cmd_bulk_breakdown(args);
        if (command == "listener-scan") return cmd_listener_scan(args);
        if (command == "outage") return cmd_outage(args);
        if (command == "summarize") return cmd_summarize(args);
        throw UsageError("unknown command '" + command + "'");
    } catch (const UsageError& e) {
        std::cerr << "kvmnet-bench: " << e.what() << "\n";
        usage(std::cerr);
        return 2;
    } catch (const std::exception& e) {
        std::cerr << "kvmnet-bench " << command << ": " << e.what() << "\n";
        return 1;
    }
}
