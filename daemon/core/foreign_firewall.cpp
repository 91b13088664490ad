#include "core/foreign_firewall.hpp"

#include "core/log.hpp"
#include "plan/docker_user.hpp"
#include "plan/planner.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <fcntl.h>
#include <poll.h>
#include <set>
#include <stdexcept>
#include <sys/wait.h>
#include <unistd.h>

namespace kvmnet::core {

namespace {

// timeout_ms < 0: no limit.
CommandResult run_limited(const std::vector<std::string>& argv, int timeout_ms)
{
    CommandResult result;
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) return result;
    const pid_t pid = ::fork();
    if (pid < 0) {
        ::close(fds[0]);
        ::close(fds[1]);
        return result;
    }
    if (pid == 0) {
        // Its own process group, so a timeout also ends what it started
        // (a shell script's children holding the pipe).
        if (timeout_ms >= 0) ::setpgid(0, 0);
        ::dup2(fds[1], STDOUT_FILENO);
        ::dup2(fds[1], STDERR_FILENO);
        const int null = ::open("/dev/null", O_RDONLY);
        if (null >= 0) ::dup2(null, STDIN_FILENO);
        // Our netlink sockets and the bus connection stay ours.
        ::close_range(3, ~0U, 0);
        sigset_t none;
        sigemptyset(&none);
        ::sigprocmask(SIG_SETMASK, &none, nullptr);
        std::vector<char*> args;
        for (const auto& a : argv)
            args.push_back(const_cast<char*>(a.c_str()));
        args.push_back(nullptr);
        ::execv(args[0], args.data());
        ::_exit(127);
    }
    ::close(fds[1]);
    if (timeout_ms >= 0) ::setpgid(pid, pid);  // also from here: no window before the child's own call
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    char buffer[4096];
    for (;;) {
        if (timeout_ms >= 0) {
            const auto left =
                std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
            pollfd p{fds[0], POLLIN, 0};
            const int ready = left.count() > 0 ? ::poll(&p, 1, static_cast<int>(left.count())) : 0;
            if (ready < 0 && errno == EINTR) continue;
            if (ready <= 0) {
                result.timed_out = true;
                break;
            }
        }
        const ssize_t n = ::read(fds[0], buffer, sizeof buffer);
        if (n > 0) {
            if (result.output.size() < (1u << 20)) result.output.append(buffer, static_cast<std::size_t>(n));
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        break;
    }
    ::close(fds[0]);
    // SIGKILL to the group (its PID): a hung program may ignore SIGTERM,
    // and nothing of its state is ours to save; the waitpid below reaps it.
    if (result.timed_out) ::kill(-pid, SIGKILL);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) return result;
    result.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return result;
}

}  // namespace

CommandResult run_command(const std::vector<std::string>& argv) { return run_limited(argv, -1); }

CommandResult run_command_timeout(const std::vector<std::string>& argv, int timeout_ms)
{
    return run_limited(argv, std::max(0, timeout_ms));
}

std::optional<std::vector<plan::ForeignChain>> read_foreign_rules(plan::FirewallAdapter& firewall,
                                                                  const std::string& nft, const std::string& our_table,
                                                                  const CommandRunner& run)
{
    if (nft.empty()) return std::nullopt;
    std::optional<std::vector<plan::ChainInfo>> chains;
    try {
        chains = firewall.list_chains();
    } catch (const std::exception& e) {
        log_warning(std::string("other programs' firewall tables: cannot list nftables chains: ") + e.what());
        return std::nullopt;
    }
    return read_foreign_rules(chains, nft, our_table, run);
}

std::optional<std::vector<plan::ForeignChain>>
read_foreign_rules(const std::optional<std::vector<plan::ChainInfo>>& listed, const std::string& nft,
                   const std::string& our_table, const CommandRunner& run)
{
    if (nft.empty() || !listed) return std::nullopt;
    std::set<std::pair<std::string, std::string>> tables;
    for (const auto& c : *listed)
        if (c.base && (c.hook == "forward" || c.hook == "input") &&
            !(c.family == "inet" && (c.table == our_table || c.table == plan::fast_path_table)))
            tables.emplace(c.family, c.table);
    std::vector<plan::ForeignChain> chains;
    for (const auto& [family, table] : tables) {
        const auto listing = run({nft, "-j", "list", "table", family, table});
        try {
            if (listing.status != 0) throw std::runtime_error("exit status " + std::to_string(listing.status));
            // nft may warn on stderr before its JSON ("table ip filter is
            // managed by iptables-nft"); the JSON is the line with "{".
            const auto start = listing.output.find("{\"nftables\"");
            if (start == std::string::npos) throw std::runtime_error("no JSON in its output");
            auto more = plan::parse_nft_json(listing.output.substr(start, listing.output.find('\n', start) - start));
            chains.insert(chains.end(), std::make_move_iterator(more.begin()), std::make_move_iterator(more.end()));
        } catch (const std::exception& e) {
            log_warning("other programs' firewall tables: " + nft + " -j list table " + family + " " + table +
                        " failed (" + e.what() + "): " + listing.output.substr(0, 200));
            return std::nullopt;
        }
    }
    return chains;
}

DockerUser::DockerUser(plan::FirewallAdapter& firewall, std::string iptables, std::string ip6tables, CommandRunner run)
    : firewall_(firewall), iptables_(std::move(iptables)), ip6tables_(std::move(ip6tables)), run_(std::move(run))
{
}

bool DockerUser::chain_exists(const std::string& family)
{
    try {
        const auto chains = firewall_.list_chains();
        return std::any_of(chains.begin(), chains.end(), [&](const plan::ChainInfo& c) {
            return c.family == family && c.table == "filter" && c.name == plan::docker_user_chain;
        });
    } catch (const std::exception&) {
        return false;
    }
}

int DockerUser::rules_of(const std::string& family, const std::string& network)
{
    if (!chain_exists(family)) return 0;
    const auto listing = run_({tool(family), "-S", plan::docker_user_chain});
    if (listing.status != 0) return 0;
    const auto rules = plan::parse_docker_user(listing.output);
    return static_cast<int>(
        std::count_if(rules.begin(), rules.end(), [&](const auto& r) { return r.network == network; }));
}

void DockerUser::sync(const std::vector<const model::Network*>& running)
{
    std::optional<std::vector<plan::ChainInfo>> chains;
    try {
        chains = firewall_.list_chains();
    } catch (const std::exception& e) {
        log_warning(std::string("Docker's DOCKER-USER chain: cannot list nftables chains: ") + e.what());
        return;
    }
    sync(running, chains);
}

void DockerUser::sync(const std::vector<const model::Network*>& running,
                      const std::optional<std::vector<plan::ChainInfo>>& listed)
{
    if (!listed) return;
    const std::vector<plan::ChainInfo>& chains = *listed;
    for (const std::string family : {"ip", "ip6"}) {
        const bool exists = std::any_of(chains.begin(), chains.end(), [&](const plan::ChainInfo& c) {
            return c.family == family && c.table == "filter" && c.name == plan::docker_user_chain;
        });
        if (!exists) continue;
        std::vector<plan::DockerUserNetwork> want;
        for (const model::Network* n : running)
            if (wanted(*n) && (family == "ip" || n->ipv6)) want.push_back({n->name, n->bridge});
        const std::string iptables = tool(family);
        const auto listing = run_({iptables, "-S", plan::docker_user_chain});
        if (listing.status != 0) {
            log_warning("Docker's DOCKER-USER chain (" + family + " filter): " + iptables + " -S failed (status " +
                        std::to_string(listing.status) + "): " + listing.output);
            continue;
        }
        const auto plan = plan::plan_docker_user(listing.output, want);
        const auto apply = [&](const char* verb, const plan::DockerUserRule& r) {
            std::vector<std::string> argv{iptables, verb, plan::docker_user_chain};
            const auto spec = r.spec();
            argv.insert(argv.end(), spec.begin(), spec.end());
            const auto done = run_(argv);
            std::string line;
            for (const auto& a : argv)
                line += (line.empty() ? "" : " ") + a;
            if (done.status != 0)
                log_warning("network " + r.network + ": " + line + " failed: " + done.output, r.network);
            else
                log_info("network " + r.network + ": " + line, r.network);
        };
        for (const auto& r : plan.remove)
            apply("-D", r);
        for (const auto& r : plan.insert)
            apply("-I", r);
    }
}

}  // namespace kvmnet::core
