// The nftables transport: one NETLINK_NETFILTER socket (libmnl), nfnetlink
// batches with their acks, dumps, and the ruleset generation. It knows
// messages and sequence numbers, not tables or rules.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

// libmnl's types, declared at global scope: an elaborated "struct mnl_socket"
// inside the namespace would name a different type.
struct mnl_socket;
struct mnl_nlmsg_batch;
struct nlmsghdr;

namespace kvmnet::kernel::nft {

// One nfnetlink transaction: BATCH_BEGIN, the messages, BATCH_END, in a
// buffer sized up front from per-message bounds.
class Batch {
public:
    // Each entry: worst-case size and what the message does (for errors).
    struct Step {
        std::size_t bound;
        std::string what;
    };

    Batch(std::uint32_t first_seq, const std::vector<Step>& steps);

    // Where the next message goes; next() closes it.
    char* current();
    void next();
    void finish();

    // Sequence number of message i (0-based, after BATCH_BEGIN).
    std::uint32_t seq(std::size_t i) const { return first_seq_ + 1 + static_cast<std::uint32_t>(i); }
    std::uint32_t end_seq() const { return seq(what_.size()); }
    std::uint32_t first_seq() const { return first_seq_; }
    std::size_t messages() const { return what_.size(); }
    const std::string& what(std::uint32_t seq) const;

    const void* data();
    std::size_t size();

private:
    struct Stop {
        void operator()(mnl_nlmsg_batch* b) const;
    };
    std::uint32_t first_seq_;
    std::vector<std::string> what_;
    std::vector<char> buffer_;
    std::unique_ptr<mnl_nlmsg_batch, Stop> batch_;
};

// The earliest failing message of a request: error 0 when none failed, else
// its positive errno and sequence number.
struct Outcome {
    int error = 0;
    std::uint32_t seq = 0;
};

class Transport {
public:
    Transport();  // throws Kernel when the socket cannot be opened
    ~Transport();
    Transport(const Transport&) = delete;
    Transport& operator=(const Transport&) = delete;

    // The netlink port id: the nlmsg_pid of the notifications of our transactions.
    unsigned port_id() const { return port_id_; }
    std::uint32_t next_seq() { return ++sequence_; }

    // Sends a finished batch and collects one ack per message.
    Outcome commit(Batch& batch, const std::string& doing);
    // Sends one request (NLM_F_ACK) with sequence number `seq` and waits for its ack.
    Outcome request(const nlmsghdr* nlh, const std::string& doing);
    // Sends a dump request (or any request answered by data, then DONE or an
    // error); each reply goes to `callback`. 0 or an errno.
    int dump(const nlmsghdr* nlh, int (*callback)(const nlmsghdr*, void*), void* data, const std::string& doing);

    // NFT_MSG_GETGEN: the namespace's ruleset generation id.
    std::optional<std::uint32_t> generation();

private:
    Outcome talk(const void* data, std::size_t size, std::uint32_t first, std::uint32_t last, std::size_t expected,
                 const std::string& doing);

    mnl_socket* socket_ = nullptr;
    unsigned port_id_ = 0;
    std::uint32_t sequence_ = 0;
};

}  // namespace kvmnet::kernel::nft
