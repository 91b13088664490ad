// nfnetlink transport over libmnl. Acks are collected per sequence number so
// that an error names the message that caused it; replies to an earlier,
// abandoned request are skipped by their sequence number.
#include "kernel/nft_batch.hpp"

#include "kernel/nft_common.hpp"

#include <libmnl/libmnl.h>
#include <libnftnl/common.h>
#include <libnftnl/gen.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <ctime>
#include <limits>

namespace kvmnet::kernel::nft {
namespace {

// Netlink drops acks that do not fit the receive buffer (ENOBUFS), and one
// queued ack costs far more than its payload in skb overhead.
constexpr int receive_bytes_per_ack = 2048;

// Collects the kernel's acks for sequence numbers [first, last].
struct AckTracker {
    std::uint32_t first = 0;
    std::uint32_t last = 0;
    std::size_t expected = 0;
    std::size_t received = 0;
    int error = 0;  // positive errno of the earliest failing message
    std::uint32_t error_seq = 0;

    bool in_range(std::uint32_t seq) const { return seq - first <= last - first; }
    bool done() const { return received >= expected; }
};

int on_error_message(const nlmsghdr* nlh, void* data)
{
    auto* acks = static_cast<AckTracker*>(data);
    if (nlh->nlmsg_len < mnl_nlmsg_size(sizeof(nlmsgerr))) {
        errno = EBADMSG;
        return MNL_CB_ERROR;
    }
    // Replies to an earlier, abandoned request may still be queued.
    if (!acks->in_range(nlh->nlmsg_seq)) return MNL_CB_OK;
    const auto* err = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
    ++acks->received;
    if (err->error != 0 && (acks->error == 0 || nlh->nlmsg_seq - acks->first < acks->error_seq - acks->first)) {
        acks->error = -err->error;
        acks->error_seq = nlh->nlmsg_seq;
    }
    return MNL_CB_OK;
}

int on_data_message(const nlmsghdr*, void*) { return MNL_CB_OK; }

void raise_buffer(int fd, int option, int force_option, int wanted)
{
    int current = 0;
    socklen_t length = sizeof current;
    // The kernel reports (and enforces) twice what was set.
    if (getsockopt(fd, SOL_SOCKET, option, &current, &length) == 0 && current / 2 >= wanted) return;
    if (setsockopt(fd, SOL_SOCKET, force_option, &wanted, sizeof wanted) != 0) {
        setsockopt(fd, SOL_SOCKET, option, &wanted, sizeof wanted);  // capped by rmem_max/wmem_max
    }
}

struct GenerationReply {
    std::optional<std::uint32_t> id;
    bool failed = false;
};

int on_generation_message(const nlmsghdr* nlh, void* data)
{
    auto* reply = static_cast<GenerationReply*>(data);
    std::unique_ptr<nftnl_gen, void (*)(const nftnl_gen*)> gen(checked(nftnl_gen_alloc()), nftnl_gen_free);
    if (nftnl_gen_nlmsg_parse(nlh, gen.get()) < 0 || !nftnl_gen_is_set(gen.get(), NFTNL_GEN_ID)) {
        reply->failed = true;
        return MNL_CB_ERROR;
    }
    reply->id = nftnl_gen_get_u32(gen.get(), NFTNL_GEN_ID);
    return MNL_CB_OK;
}

}  // namespace

// ---- Batch ----------------------------------------------------------------------------------------------------------

void Batch::Stop::operator()(mnl_nlmsg_batch* b) const { mnl_nlmsg_batch_stop(b); }

Batch::Batch(std::uint32_t first_seq, const std::vector<Step>& steps) : first_seq_(first_seq)
{
    std::size_t total = 2 * message_overhead;  // begin + end
    for (const Step& s : steps) {
        total += s.bound;
        what_.push_back(s.what);
    }
    buffer_.assign(total, 0);
    batch_.reset(checked(mnl_nlmsg_batch_start(buffer_.data(), buffer_.size())));
    nftnl_batch_begin(current(), first_seq_);
    next();
}

char* Batch::current() { return static_cast<char*>(mnl_nlmsg_batch_current(batch_.get())); }

const std::string& Batch::what(std::uint32_t seq) const
{
    static const std::string begin = "starting the transaction", end = "ending the transaction";
    const std::size_t i = seq - first_seq_;
    if (i == 0) return begin;
    return i > what_.size() ? end : what_[i - 1];
}

void Batch::next()
{
    // The bounds make this unreachable; if it ever fires the bound is wrong.
    if (!mnl_nlmsg_batch_next(batch_.get())) throw Error(ErrorKind::Kernel, "nftables: batch buffer overflow");
}

void Batch::finish()
{
    nftnl_batch_end(current(), end_seq());
    next();
}

const void* Batch::data() { return mnl_nlmsg_batch_head(batch_.get()); }
std::size_t Batch::size() { return mnl_nlmsg_batch_size(batch_.get()); }

// ---- Transport ------------------------------------------------------------------------------------------------------

Transport::Transport()
{
    socket_ = mnl_socket_open(NETLINK_NETFILTER);
    if (socket_ == nullptr) throw kernel_error("opening netfilter netlink socket", errno);
    if (mnl_socket_bind(socket_, 0, MNL_SOCKET_AUTOPID) < 0) {
        const int error = errno;
        mnl_socket_close(socket_);
        socket_ = nullptr;
        throw kernel_error("binding netfilter netlink socket", error);
    }
    port_id_ = mnl_socket_get_portid(socket_);
    // Error acks then carry only the header we need, not a copy of the request.
    int one = 1;
    mnl_socket_setsockopt(socket_, NETLINK_CAP_ACK, &one, sizeof one);
    sequence_ = static_cast<std::uint32_t>(std::time(nullptr));
}

Transport::~Transport()
{
    if (socket_ != nullptr) mnl_socket_close(socket_);
}

Outcome Transport::commit(Batch& batch, const std::string& doing)
{
    batch.finish();
    sequence_ = batch.end_seq();
    return talk(batch.data(), batch.size(), batch.first_seq(), batch.end_seq(), batch.messages(), doing);
}

Outcome Transport::request(const nlmsghdr* nlh, const std::string& doing)
{
    return talk(nlh, nlh->nlmsg_len, nlh->nlmsg_seq, nlh->nlmsg_seq, 1, doing);
}

// Sends one request (a batch or a single message) and collects the acks.
Outcome Transport::talk(const void* data, std::size_t size, std::uint32_t first, std::uint32_t last,
                        std::size_t expected, const std::string& doing)
{
    AckTracker acks{first, last, expected};
    const int fd = mnl_socket_get_fd(socket_);
    const std::size_t max_int = static_cast<std::size_t>(std::numeric_limits<int>::max()) / 4;
    raise_buffer(fd, SO_SNDBUF, SO_SNDBUFFORCE, static_cast<int>(std::min(size + 4096, max_int)));
    raise_buffer(fd, SO_RCVBUF, SO_RCVBUFFORCE,
                 static_cast<int>(std::min((acks.expected + 1) * receive_bytes_per_ack, max_int)));

    if (mnl_socket_sendto(socket_, data, size) < 0) throw kernel_error(doing + " failed: sending", errno);

    std::array<mnl_cb_t, NLMSG_MIN_TYPE> control{};
    control[NLMSG_ERROR] = on_error_message;
    std::vector<char> buffer(1 << 16);
    while (!acks.done()) {
        // nfnetlink processes the request inside sendto(), so the replies are
        // normally queued already; the wait only guards against surprises.
        const ssize_t n = recv(fd, buffer.data(), buffer.size(), MSG_DONTWAIT | MSG_TRUNC);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == ENOBUFS) {
                throw kernel_error(doing + ": acknowledgements lost, the outcome is unknown", errno);
            }
            if (errno != EAGAIN && errno != EWOULDBLOCK) throw kernel_error(doing + " failed: receiving", errno);
            // After an error the kernel may skip acks of the messages it aborted.
            if (acks.error != 0) break;
            pollfd p{fd, POLLIN, 0};
            const int ready = poll(&p, 1, 5000);
            if (ready < 0 && errno != EINTR) throw kernel_error(doing + " failed: waiting for reply", errno);
            if (ready == 0) throw kernel_error(doing + " failed: no reply from the kernel", ETIMEDOUT);
            continue;
        }
        if (static_cast<std::size_t>(n) > buffer.size()) {
            throw kernel_error(doing + " failed: reply truncated", EMSGSIZE);
        }
        if (mnl_cb_run2(buffer.data(), static_cast<std::size_t>(n), 0, port_id_, on_data_message, &acks, control.data(),
                        control.size()) < 0) {
            throw kernel_error(doing + " failed: parsing reply", errno);
        }
    }
    return {acks.error, acks.error_seq};
}

int Transport::dump(const nlmsghdr* nlh, int (*callback)(const nlmsghdr*, void*), void* data, const std::string& doing)
{
    if (mnl_socket_sendto(socket_, nlh, nlh->nlmsg_len) < 0) throw kernel_error(doing + " failed: sending", errno);
    const std::uint32_t seq = nlh->nlmsg_seq;
    std::vector<char> buffer(1 << 16);
    for (;;) {
        const ssize_t n = mnl_socket_recvfrom(socket_, buffer.data(), buffer.size());
        if (n < 0) {
            if (errno == EINTR) continue;
            throw kernel_error(doing + " failed: receiving", errno);
        }
        // Messages with another sequence number (stale replies) make libmnl fail with ESRCH.
        const int r = mnl_cb_run(buffer.data(), static_cast<std::size_t>(n), seq, port_id_, callback, data);
        if (r == MNL_CB_STOP) return 0;
        if (r < 0) return errno != 0 ? errno : EBADMSG;
    }
}

std::optional<std::uint32_t> Transport::generation()
{
    const std::string doing = "reading the nftables generation";
    std::vector<char> buffer(message_overhead, 0);
    nlmsghdr* nlh = nftnl_nlmsg_build_hdr(buffer.data(), NFT_MSG_GETGEN, AF_UNSPEC, NLM_F_ACK, next_seq());
    GenerationReply reply;
    const int error = dump(nlh, on_generation_message, &reply, doing);
    if (error != 0) throw kernel_error(doing + " failed", reply.failed ? EBADMSG : error);
    return reply.id;
}

}  // namespace kvmnet::kernel::nft
