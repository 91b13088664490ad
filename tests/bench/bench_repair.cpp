// Repair time (issue 12): how long traffic stops when something breaks a
// running network behind the daemon's back. An ICMP echo goes out every
// interval from this process's namespace (a guest, or a LAN peer); once
// replies flow, the trigger (ARGV: `ip -n HOST link del BR`, ...) runs; the
// sample is the time from just before the trigger to the first reply after
// the first echo that got none. Every echo has its own ICMP identifier, so
// each is a new conntrack entry and needs the NAT rules as they are then
// (with one identifier, an existing entry would keep masquerading after
// `nft flush ruleset`).
#include "bench.hpp"

#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <map>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/ip_icmp.h>
#include <optional>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

namespace kvmnet::bench {

namespace {

std::uint16_t checksum(const void* data, std::size_t length)
{
    const auto* bytes = static_cast<const std::uint8_t*>(data);
    std::uint32_t sum = 0;
    for (std::size_t i = 0; i + 1 < length; i += 2)
        sum += static_cast<std::uint32_t>(bytes[i] << 8 | bytes[i + 1]);
    if (length % 2) sum += static_cast<std::uint32_t>(bytes[length - 1] << 8);
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return htons(static_cast<std::uint16_t>(~sum));
}

class Pinger {
public:
    explicit Pinger(const std::string& to)
    {
        if (inet_pton(AF_INET, to.c_str(), &to_.sin_addr) != 1) throw UsageError("--to: not an IPv4 address: " + to);
        to_.sin_family = AF_INET;
        fd_ = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMP);
        if (fd_ < 0) throw std::runtime_error(std::string("raw ICMP socket: ") + std::strerror(errno));
        base_id_ = static_cast<std::uint16_t>(getpid() * 7919);
    }
    ~Pinger() { close(fd_); }
    Pinger(const Pinger&) = delete;
    Pinger& operator=(const Pinger&) = delete;

    // Sends echo number `seq` (its identifier differs from every other's).
    void send(std::uint32_t seq)
    {
        std::uint8_t packet[sizeof(icmphdr) + 16] = {};
        auto* h = reinterpret_cast<icmphdr*>(packet);
        h->type = ICMP_ECHO;
        h->un.echo.id = htons(static_cast<std::uint16_t>(base_id_ + seq));
        h->un.echo.sequence = htons(static_cast<std::uint16_t>(seq));
        h->checksum = checksum(packet, sizeof packet);
        sent_[seq] = Clock::now();
        sendto(fd_, packet, sizeof packet, 0, reinterpret_cast<const sockaddr*>(&to_), sizeof to_);
    }
    // Reads replies until `until`; each one's arrival goes to replies().
    void receive_until(Clock::time_point until)
    {
        for (;;) {
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now()).count();
            pollfd p{fd_, POLLIN, 0};
            if (poll(&p, 1, left > 0 ? static_cast<int>(left) : 0) <= 0) return;
            std::uint8_t buffer[1500];
            const ssize_t n = recv(fd_, buffer, sizeof buffer, 0);
            if (n < static_cast<ssize_t>(sizeof(iphdr))) continue;
            const auto* ip = reinterpret_cast<const iphdr*>(buffer);
            const std::size_t header = static_cast<std::size_t>(ip->ihl) * 4;
            if (static_cast<std::size_t>(n) < header + sizeof(icmphdr) || ip->saddr != to_.sin_addr.s_addr) continue;
            const auto* h = reinterpret_cast<const icmphdr*>(buffer + header);
            if (h->type != ICMP_ECHOREPLY) continue;
            const std::uint16_t seq16 = ntohs(h->un.echo.sequence);
            if (ntohs(h->un.echo.id) != static_cast<std::uint16_t>(base_id_ + seq16)) continue;
            // The most recent echo with these low 16 bits.
            for (auto it = sent_.rbegin(); it != sent_.rend(); ++it)
                if (static_cast<std::uint16_t>(it->first) == seq16) {
                    replies_.emplace(it->first, Clock::now());
                    break;
                }
        }
    }
    const std::map<std::uint32_t, Clock::time_point>& sent() const { return sent_; }
    const std::map<std::uint32_t, Clock::time_point>& replies() const { return replies_; }

private:
    int fd_ = -1;
    sockaddr_in to_{};
    std::uint16_t base_id_ = 0;
    std::map<std::uint32_t, Clock::time_point> sent_;
    std::map<std::uint32_t, Clock::time_point> replies_;
};

pid_t spawn(const std::vector<std::string>& argv)
{
    std::vector<char*> args;
    for (const auto& a : argv)
        args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    const pid_t pid = fork();
    if (pid < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
    if (pid == 0) {
        execvp(args[0], args.data());
        _exit(127);
    }
    return pid;
}

}  // namespace

int cmd_outage(const Args& args)
{
    const auto interval = std::chrono::milliseconds(args.number("interval-ms", 10));
    const auto max_wait = std::chrono::milliseconds(args.number("max-ms", 5000));
    const unsigned steady = args.number("steady", 5);  // consecutive replies that mean "flowing"
    if (args.rest().empty()) throw UsageError("outage: the trigger command goes after --");
    Pinger pinger(args.need("to"));

    std::uint32_t seq = 0;
    auto next = Clock::now();
    // Consecutive replies up to the newest echo old enough to have one.
    auto flowing_after = [&](std::uint32_t from) {
        unsigned run = 0;
        for (std::uint32_t s = from; s < seq; ++s) {
            if (pinger.replies().count(s))
                ++run;
            else if (Clock::now() - pinger.sent().at(s) > 4 * interval)
                run = 0;
            if (run >= steady) return true;
        }
        return false;
    };
    auto tick = [&] {
        pinger.send(seq++);
        next += interval;
        pinger.receive_until(next);
    };
    // Warm-up: traffic must flow before the trigger.
    const auto warm_deadline = Clock::now() + std::chrono::seconds(5);
    while (!flowing_after(0)) {
        if (Clock::now() > warm_deadline) throw std::runtime_error("no replies from " + args.need("to"));
        tick();
    }
    const std::uint32_t first_after = seq;
    const auto t0 = Clock::now();
    const pid_t trigger = spawn(args.rest());
    int status = 0;
    bool trigger_done = false;
    for (;;) {
        tick();
        if (!trigger_done && waitpid(trigger, &status, WNOHANG) == trigger) {
            trigger_done = true;
            if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                throw std::runtime_error("the trigger command failed (status " + std::to_string(status) + ")");
        }
        // The first echo sent after the trigger started that got no reply
        // (older than 4 intervals), and the first reply after it.
        std::optional<std::uint32_t> lost;
        for (std::uint32_t s = first_after; s < seq && !lost; ++s)
            if (!pinger.replies().count(s) && Clock::now() - pinger.sent().at(s) > 4 * interval) lost = s;
        if (lost && trigger_done && flowing_after(*lost)) {
            const auto back = pinger.replies().upper_bound(*lost);
            emit(args.get("figure", "repair"), args.get("variant", "kvmnet"), args.number("n", 0), "ms",
                 std::chrono::duration<double, std::milli>(back->second - t0).count());
            return 0;
        }
        if (Clock::now() - t0 > max_wait) {
            if (!trigger_done) waitpid(trigger, &status, 0);
            if (!lost) {
                // Traffic never stopped: nothing was broken, or the repair
                // was faster than one interval. A 0, said so on stderr.
                std::fprintf(stderr, "kvmnet-bench outage: no echo was lost in %lld ms\n",
                             static_cast<long long>(max_wait.count()));
                emit(args.get("figure", "repair"), args.get("variant", "kvmnet"), args.number("n", 0), "ms", 0);
                return 0;
            }
            std::fprintf(stderr, "kvmnet-bench outage: traffic did not flow again within %lld ms\n",
                         static_cast<long long>(max_wait.count()));
            return 4;
        }
    }
}

}  // namespace kvmnet::bench
