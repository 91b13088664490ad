#include "forward_call.hpp"

#include "sdbus_raw.hpp"

#include <sdbus-c++/Error.h>
#include <sdbus-c++/Message.h>

#include "model/forward_records.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace kvmnet::client {

namespace {

constexpr const char* network_interface = "org.kvmnet1.Network";

void check(int r, const char* what)
{
    if (r < 0)
        throw sdbus::Error("org.freedesktop.DBus.Error.Failed",
                           std::string("adding forwards: ").append(what).append(": ").append(std::strerror(-r)));
}

void append(sd_bus_message* m, const model::ForwardFields& f)
{
    check(sd_bus_message_open_container(m, SD_BUS_TYPE_STRUCT, "ssqqsqsu"), "building the message");
    check(sd_bus_message_append_basic(m, SD_BUS_TYPE_STRING, f.proto.c_str()), "building the message");
    check(sd_bus_message_append_basic(m, SD_BUS_TYPE_STRING, f.host_address.c_str()), "building the message");
    check(sd_bus_message_append_basic(m, SD_BUS_TYPE_UINT16, &f.host_port), "building the message");
    check(sd_bus_message_append_basic(m, SD_BUS_TYPE_UINT16, &f.host_port_end), "building the message");
    check(sd_bus_message_append_basic(m, SD_BUS_TYPE_STRING, f.guest.c_str()), "building the message");
    check(sd_bus_message_append_basic(m, SD_BUS_TYPE_UINT16, &f.guest_port), "building the message");
    check(sd_bus_message_append_basic(m, SD_BUS_TYPE_STRING, f.description.c_str()), "building the message");
    check(sd_bus_message_append_basic(m, SD_BUS_TYPE_UINT32, &f.rate), "building the message");
    check(sd_bus_message_close_container(m), "building the message");
}

struct Pending {
    sd_bus_message* reply = nullptr;
    ~Pending() { sd_bus_message_unref(reply); }
};

int on_reply(sd_bus_message* m, void* userdata, sd_bus_error*)
{
    static_cast<Pending*>(userdata)->reply = sd_bus_message_ref(m);
    return 0;
}

std::vector<std::string> read_warnings(sd_bus_message* reply)
{
    if (sd_bus_message_is_method_error(reply, nullptr)) {
        const sd_bus_error* e = sd_bus_message_get_error(reply);
        throw sdbus::Error(e && e->name ? e->name : "org.freedesktop.DBus.Error.Failed",
                           e && e->message ? e->message : "");
    }
    std::vector<std::string> warnings;
    check(sd_bus_message_enter_container(reply, SD_BUS_TYPE_ARRAY, "s"), "reading the reply");
    const char* w = nullptr;
    int r;
    while ((r = sd_bus_message_read_basic(reply, SD_BUS_TYPE_STRING, &w)) > 0)
        warnings.emplace_back(w);
    check(r, "reading the reply");
    check(sd_bus_message_exit_container(reply), "reading the reply");
    return warnings;
}

}  // namespace

void append_forward_structs(sd_bus_message* m, const std::vector<model::ForwardFields>& forwards)
{
    check(sd_bus_message_open_container(m, SD_BUS_TYPE_ARRAY, "(ssqqsqsu)"), "building the message");
    for (const model::ForwardFields& f : forwards)
        append(m, f);
    check(sd_bus_message_close_container(m), "building the message");
}

namespace {

// Sends the call built by `build`, flushed and waited for in steps (the
// benchmark's split of the bus); the warnings of the reply.
template <typename Build>
std::vector<std::string> call_forwards(sdbus::IProxy& network, const char* method, Build build,
                                       std::chrono::microseconds timeout, TypedCallTimes* times)
{
    auto call = network.createMethodCall(network_interface, method);
    sd_bus_message* m = dbus::raw_message(call);
    build(m);
    if (times) times->built = std::chrono::steady_clock::now();

    sd_bus* bus = sd_bus_message_get_bus(m);
    Pending pending;
    sd_bus_slot* slot = nullptr;
    check(sd_bus_call_async(bus, &slot, m, on_reply, &pending, static_cast<std::uint64_t>(timeout.count())), "sending");
    struct SlotGuard {
        sd_bus_slot* slot;
        ~SlotGuard() { sd_bus_slot_unref(slot); }
    } guard{slot};
    check(sd_bus_flush(bus), "sending");
    if (times) times->sent = std::chrono::steady_clock::now();
    // Anything else that arrives meanwhile (signals) goes to its handlers.
    while (!pending.reply) {
        const int r = sd_bus_process(bus, nullptr);
        check(r, "waiting for the reply");
        if (r == 0 && !pending.reply) check(sd_bus_wait(bus, UINT64_MAX), "waiting for the reply");
    }
    auto warnings = read_warnings(pending.reply);
    if (times) times->replied = std::chrono::steady_clock::now();
    return warnings;
}

}  // namespace

std::vector<std::string> add_forwards_typed(sdbus::IProxy& network, const std::vector<model::ForwardFields>& forwards,
                                            std::chrono::microseconds timeout, TypedCallTimes* times)
{
    return call_forwards(
        network, "AddForwardsTyped", [&](sd_bus_message* m) { append_forward_structs(m, forwards); }, timeout, times);
}

int sealed_memfd(std::string_view bytes)
{
    const int fd = memfd_create("kvmnet-forwards", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) check(-errno, "memfd_create");
    struct Closer {
        int fd;
        ~Closer()
        {
            if (fd >= 0) close(fd);
        }
    } closer{fd};
    for (std::size_t at = 0; at < bytes.size();) {
        const ssize_t n = write(fd, bytes.data() + at, bytes.size() - at);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) check(n < 0 ? -errno : -EIO, "writing the records");
        at += static_cast<std::size_t>(n);
    }
    if (fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0)
        check(-errno, "sealing the records");
    closer.fd = -1;
    return fd;
}

std::vector<std::string> add_forwards_from_fd(sdbus::IProxy& network, const std::vector<model::ForwardFields>& forwards,
                                              std::chrono::microseconds timeout, TypedCallTimes* times)
{
    const int fd = sealed_memfd(model::encode_forward_records(forwards));
    struct Closer {
        int fd;
        ~Closer() { close(fd); }
    } closer{fd};
    // The message keeps its own duplicate of the descriptor.
    return call_forwards(
        network, "AddForwardsFromFd",
        [&](sd_bus_message* m) {
            check(sd_bus_message_append_basic(m, SD_BUS_TYPE_UNIX_FD, &fd), "building the message");
        },
        timeout, times);
}

}  // namespace kvmnet::client
