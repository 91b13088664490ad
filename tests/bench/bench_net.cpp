// Subcommands that need no kvmnet library: the TCP accept loop and the
// connection-rate client of the datapath figures, timing other programs
// (the iptables and nft baselines), and the summary of a results file.
#include "bench.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>
#include <sstream>
#include <tuple>

extern char** environ;

namespace kvmnet::bench {

namespace {

sockaddr_in parse_endpoint(const std::string& text)
{
    const auto colon = text.rfind(':');
    if (colon == std::string::npos) throw UsageError("expected ADDRESS:PORT, got '" + text + "'");
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    if (inet_pton(AF_INET, text.substr(0, colon).c_str(), &sa.sin_addr) != 1)
        throw UsageError("not an IPv4 address: '" + text.substr(0, colon) + "'");
    const unsigned long port = std::stoul(text.substr(colon + 1));
    if (port == 0 || port > 65535) throw UsageError("bad port in '" + text + "'");
    sa.sin_port = htons(static_cast<std::uint16_t>(port));
    return sa;
}

[[noreturn]] void fail_errno(const std::string& what) { throw std::runtime_error(what + ": " + std::strerror(errno)); }

// One connection: handshake, then an abortive close (RST), so the client
// keeps no TIME_WAIT socket and its ports can be reused at once; the next
// SYN on the same tuple makes conntrack start (and NAT) a new connection.
bool one_connection(const sockaddr_in& to)
{
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) fail_errno("socket");
    const timeval timeout{2, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    const bool ok = ::connect(fd, reinterpret_cast<const sockaddr*>(&to), sizeof to) == 0;
    const linger abort{1, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &abort, sizeof abort);
    ::close(fd);
    return ok;
}

std::string substitute(std::string text, unsigned i)
{
    const std::string mark = "{i}";
    for (auto pos = text.find(mark); pos != std::string::npos; pos = text.find(mark, pos))
        text.replace(pos, mark.size(), std::to_string(i));
    return text;
}

// Runs argv (no shell) with stdout to /dev/null; returns the exit status.
int run(const std::vector<std::string>& argv)
{
    std::vector<char*> raw;
    for (const auto& a : argv)
        raw.push_back(const_cast<char*>(a.c_str()));
    raw.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    pid_t pid = 0;
    const int r = posix_spawnp(&pid, raw[0], &actions, nullptr, raw.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (r != 0) throw std::runtime_error("cannot run " + argv[0] + ": " + std::strerror(r));
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) fail_errno("waitpid");
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace

int cmd_serve(const Args& args)
{
    const unsigned port = args.number("port", 0);
    if (port == 0 || port > 65535) throw UsageError("--port 1..65535 is required");
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) fail_errno("socket");
    const int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<std::uint16_t>(port));
    if (::bind(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) != 0) fail_errno("bind");
    if (::listen(fd, 4096) != 0) fail_errno("listen");
    // Until SIGTERM (the default action ends the process; bench.sh stops it by PID).
    for (;;) {
        const int c = ::accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
        if (c >= 0) ::close(c);
    }
}

int cmd_connrate(const Args& args)
{
    const sockaddr_in to = parse_endpoint(args.need("to"));
    const unsigned count = args.number("count", 5000);
    const unsigned runs = args.number("runs", 5);
    const std::string variant = args.get("variant", "unnamed");
    const unsigned n = args.number("n", 0);
    // A short warm-up (ARP, caches, the listener's first accepts), not recorded.
    for (unsigned i = 0; i < 200; ++i)
        one_connection(to);
    for (unsigned r = 0; r < runs; ++r) {
        unsigned failed = 0;
        const auto start = Clock::now();
        for (unsigned i = 0; i < count; ++i)
            if (!one_connection(to)) ++failed;
        const double seconds = ms_since(start) / 1000.0;
        if (failed > 0) {
            // A failed attempt is no connection; the run is reported, not counted as a rate.
            std::cerr << "kvmnet-bench connrate " << variant << ": " << failed << " of " << count
                      << " connections failed in run " << r + 1 << "; run discarded\n";
            continue;
        }
        emit("connrate", variant, n, "conn/s", count / seconds);
    }
    return 0;
}

int cmd_exec(const Args& args)
{
    const unsigned runs = args.number("runs", 10);
    const unsigned first = args.number("first", 0);
    const std::string prepare = args.get("prepare", "");
    const std::string cleanup = args.get("cleanup", "");
    const std::string figure = args.need("figure");
    const std::string variant = args.need("variant");
    const unsigned n = args.number("n", 0);
    if (args.rest().empty()) throw UsageError("exec: the command goes after --");
    for (unsigned r = 0; r < runs; ++r) {
        const unsigned i = first + r;
        if (!prepare.empty() && run({"/bin/sh", "-c", substitute(prepare, i)}) != 0)
            throw std::runtime_error("prepare failed: " + substitute(prepare, i));
        std::vector<std::string> argv;
        for (const auto& a : args.rest())
            argv.push_back(substitute(a, i));
        const auto start = Clock::now();
        const int status = run(argv);
        const double ms = ms_since(start);
        if (status != 0)
            throw std::runtime_error(argv[0] + " exited " + std::to_string(status) + " in run " +
                                     std::to_string(r + 1));
        emit(figure, variant, n, "ms", ms);
        if (!cleanup.empty() && run({"/bin/sh", "-c", substitute(cleanup, i)}) != 0)
            throw std::runtime_error("cleanup failed: " + substitute(cleanup, i));
    }
    return 0;
}

int cmd_summarize(const Args&)
{
    // Group rows by (figure, variant, n, unit), keeping first-seen order.
    using Key = std::tuple<std::string, std::string, std::string, std::string>;
    std::vector<Key> order;
    std::map<Key, std::vector<double>> samples;
    std::string line;
    while (std::getline(std::cin, line)) {
        if (line.empty() || line.rfind("figure,", 0) == 0) continue;
        const auto fields = [&] {
            std::vector<std::string> f;
            std::stringstream in(line);
            std::string item;
            while (std::getline(in, item, ','))
                f.push_back(item);
            return f;
        }();
        if (fields.size() != 5) {
            std::cerr << "kvmnet-bench summarize: skipping malformed row: " << line << "\n";
            continue;
        }
        const Key key{fields[0], fields[1], fields[2], fields[3]};
        if (!samples.count(key)) order.push_back(key);
        samples[key].push_back(std::stod(fields[4]));
    }
    std::printf("figure,variant,n,unit,count,median,p99,min,max\n");
    for (const auto& key : order) {
        const auto& v = samples[key];
        std::printf("%s,%s,%s,%s,%zu,%.6g,%.6g,%.6g,%.6g\n", std::get<0>(key).c_str(), std::get<1>(key).c_str(),
                    std::get<2>(key).c_str(), std::get<3>(key).c_str(), v.size(), median(v), percentile(v, 99),
                    percentile(v, 0), percentile(v, 100));
    }
    return 0;
}

}  // namespace kvmnet::bench
