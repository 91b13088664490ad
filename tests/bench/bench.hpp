// Shared pieces of kvmnet-bench: argument parsing, timing, and the one CSV
// format every subcommand prints (one row per sample), which `summarize`
// turns into medians and percentiles for scripts/bench.sh.
#pragma once

#include "model/forward.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace kvmnet::bench {

// Thrown for a bad command line; main prints it with the usage and exits 2.
struct UsageError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// "--name value" options after the subcommand, and what follows a bare "--".
class Args {
public:
    Args(int argc, char** argv, int first);
    std::string get(const std::string& name, const std::string& fallback) const;
    std::string need(const std::string& name) const;
    unsigned number(const std::string& name, unsigned fallback) const;
    std::vector<unsigned> numbers(const std::string& name, const std::string& fallback) const;
    bool flag(const std::string& name) const { return options_.count(name) != 0; }
    const std::vector<std::string>& rest() const { return rest_; }

private:
    std::map<std::string, std::string> options_;
    std::vector<std::string> rest_;
};

using Clock = std::chrono::steady_clock;
inline double ms_since(Clock::time_point start)
{
    return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// One sample: "figure,variant,n,unit,value" on stdout (flushed, so a
// partial run still leaves its rows). The header is written by bench.sh.
void emit(const std::string& figure, const std::string& variant, std::uint64_t n, const std::string& unit,
          double value);

// The middle sample, or the mean of the two middle ones; 0 for none.
double median(std::vector<double> samples);
// Nearest-rank percentile (p in 0..100) of unsorted samples; 0 for none.
double percentile(std::vector<double> samples, double p);

// Refuses (throws) unless this process is in a network namespace that is
// not the machine's own (tests/kernel/netns_guard.hpp): every subcommand
// that changes nftables calls it first.
void require_safe_netns();

// The i-th synthetic forward, the same in every subcommand: TCP, host
// address 203.0.113.(11 + i / 50000), host port 10000 + i % 50000, guest
// 192.168.150.(10 + i % 200) port 80. So 100,000 forwards use two host
// addresses, and every guest is in the bench network's 192.168.150.0/24.
struct ForwardSpec {
    std::string host_address;
    unsigned host_port = 0;
    std::string guest;
    unsigned guest_port = 0;
};
ForwardSpec forward_spec(unsigned i);
// As a forward object of the D-Bus API and the network document.
nlohmann::json forward_json(const ForwardSpec& f);
// Forwards 0 .. count-1 as AddForwardsTyped's structs.
std::vector<model::ForwardFields> forward_fields(unsigned count);

// Subcommands (each returns the exit status).
int cmd_nft_elements(const Args& args);
int cmd_nft_dnat(const Args& args);
int cmd_serve(const Args& args);
int cmd_connrate(const Args& args);
int cmd_exec(const Args& args);
int cmd_dbus_forwards(const Args& args);
int cmd_dbus_load(const Args& args);
int cmd_read_while_starting(const Args& args);
int cmd_daemon_forwards(const Args& args);
int cmd_daemon_reads(const Args& args);
int cmd_bulk_breakdown(const Args& args);
int cmd_listener_scan(const Args& args);
int cmd_outage(const Args& args);
int cmd_summarize(const Args& args);

}  // namespace kvmnet::bench
