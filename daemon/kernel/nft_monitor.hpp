// Change notifications from nftables (NFNLGRP_NFTABLES), read from a
// non-blocking libmnl socket that the event loop watches, so the daemon
// notices `nft flush ruleset`, `nft delete table inet kvmnet`, a flushed
// chain or a deleted rule in its table and can put the table back.
//
// Every committed transaction's notifications end with NFT_MSG_NEWGEN,
// which carries the process id of the committer (NFTA_GEN_PROC_PID). The
// monitor buffers what a transaction touched until its NEWGEN and drops
// transactions committed by this process (or from the daemon's nftables
// socket, whose port id the NEWGEN header carries), so the daemon's own
// changes never trigger a repair.
#pragma once

#include <cstdint>
#include <string>
#include <sys/types.h>
#include <unistd.h>
#include <utility>

struct mnl_socket;
struct nlmsghdr;

namespace kvmnet::kernel {

// The pure part (header-only, unit-tested without a kernel): fed one
// notification at a time, decides per transaction.
class NftChangeFilter {
public:
    // Ours: transactions of `own_pid`, or sent from netlink port `own_port`
    // (the firewall adapter's socket; 0: none).
    NftChangeFilter(std::string table, pid_t own_pid, std::uint32_t own_port = 0)
        : table_(std::move(table)), own_pid_(own_pid), own_port_(own_port)
    {
    }

    // An object notification (table, chain, rule, set, element, object,
    // flowtable) of `family` in table `table`.
    void object(std::uint8_t family, const std::string& table)
    {
        if (family == inet_family && table == table_)
            touched_ = true;
        else
            // Another program's table: Docker's DOCKER-USER in ip filter,
            // ufw's chains, a hand-made table that may drop guests' traffic.
            foreign_touched_ = true;
    }
    // NFT_MSG_NEWGEN: the end of one transaction (`port`: its nlmsg_pid,
    // the committing socket). True when it touched our table and was
    // committed by another process; `who` then names it.
    bool end_of_transaction(pid_t pid, const std::string& process_name, std::uint32_t port = 0)
    {
        const bool ours = pid == own_pid_ || (own_port_ != 0 && port == own_port_);
        const bool foreign = touched_ && !ours;
        touched_ = false;
        foreign_changed_ = foreign_changed_ || (foreign_touched_ && !ours);
        foreign_touched_ = false;
        if (foreign)
            who_ =
                (process_name.empty() ? std::string("process") : process_name) + " (pid " + std::to_string(pid) + ")";
        return foreign;
    }
    // Notifications were lost: whatever was buffered is dropped.
    void reset()
    {
        touched_ = false;
        foreign_touched_ = false;
    }
    // Whether a transaction since the last call changed another table than
    // ours (any process but us; kvmnet's own iptables-nft runs count, and
    // the re-sync they cause finds nothing to do).
    bool take_foreign_changed() { return std::exchange(foreign_changed_, false); }

    const std::string& who() const { return who_; }

    static constexpr std::uint8_t inet_family = 1;   // NFPROTO_INET
    static constexpr std::uint8_t ipv4_family = 2;   // NFPROTO_IPV4
    static constexpr std::uint8_t ipv6_family = 10;  // NFPROTO_IPV6

private:
    std::string table_;
    pid_t own_pid_;
    std::uint32_t own_port_;
    bool touched_ = false;
    bool foreign_touched_ = false;
    bool foreign_changed_ = false;
    std::string who_;
};

struct NftMonitorResult {
    bool changed = false;          // another process changed our table
    bool overrun = false;          // notifications were lost (ENOBUFS): state unknown
    bool foreign_changed = false;  // another process changed another table than ours
    std::string who;               // "nft (pid 1234)" for the last foreign change
};

class NftMonitor {
public:
    // Watches table "inet <table>"; transactions of `own_pid`, or from the
    // netlink port `own_port` (Nftables::port_id()), are ours. The pid is
    // the kernel's view (the initial PID namespace); the port also holds
    // when the daemon runs in a PID namespace of its own.
    // `receive_buffer`: the socket's receive buffer in bytes (the kernel
    // doubles it and enforces a minimum); tests shrink it to make an
    // overrun (ENOBUFS) cheap to reach.
    explicit NftMonitor(std::string table, pid_t own_pid = ::getpid(), std::uint32_t own_port = 0,
                        int receive_buffer = default_receive_buffer);
    static constexpr int default_receive_buffer = 8 << 20;
    ~NftMonitor();
    NftMonitor(const NftMonitor&) = delete;
    NftMonitor& operator=(const NftMonitor&) = delete;

    int fd() const;
    // Reads every pending notification.
    NftMonitorResult dispatch();
    // Leaves and rejoins the notification group around one of our own
    // large element batches: while nobody listens, the kernel builds no
    // notifications at all (one per element, which cost more than adding
    // the elements), and what we would read and filter out never comes.
    // Notifications queued before pause() stay readable. Whoever pauses
    // must find out from the ruleset generation whether another process
    // committed meanwhile (core::CommittedTable does).
    void pause();
    void resume();

private:
    void handle(const nlmsghdr* header, NftMonitorResult& result);

    struct mnl_socket* socket_ = nullptr;
    NftChangeFilter filter_;
};

}  // namespace kvmnet::kernel
