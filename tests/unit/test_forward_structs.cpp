// AddForwardsTyped's argument on the wire: what kvmnetctl and kvmnet-bench
// append with sd-bus (client/forward_call) is what kvmnetd reads back with
// sd-bus (api/forward_structs), field for field (issue 17 item 1). The
// message is built on a bus that never connects: sd-bus makes and seals
// messages without sending them.
#include "api/forward_structs.hpp"
#include "forward_call.hpp"
#include "model/error.hpp"

#include <catch2/catch.hpp>
#include <systemd/sd-bus.h>

#include <string>
#include <sys/socket.h>
#include <unistd.h>
#include <vector>

namespace unit_test_forward_structs {

using kvmnet::model::ForwardFields;

namespace {

// A bus on one end of a socket pair, started (so it makes messages) but
// never authenticated: nothing is sent.
class OfflineBus {
public:
    OfflineBus()
    {
        REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds_) == 0);
        REQUIRE(sd_bus_new(&bus_) >= 0);
        REQUIRE(sd_bus_set_fd(bus_, fds_[0], fds_[0]) >= 0);
        REQUIRE(sd_bus_start(bus_) >= 0);
    }
    ~OfflineBus()
    {
        sd_bus_close(bus_);
        sd_bus_unref(bus_);  // closes fds_[0]
        close(fds_[1]);
    }
    OfflineBus(const OfflineBus&) = delete;
    OfflineBus& operator=(const OfflineBus&) = delete;

    // A sealed AddForwardsTyped call, ready to read from its start.
    sd_bus_message* call(const std::vector<ForwardFields>& forwards)
    {
        sd_bus_message* m = nullptr;
        REQUIRE(sd_bus_message_new_method_call(bus_, &m, "org.kvmnet1", "/org/kvmnet1/network/n", "org.kvmnet1.Network",
                                               "AddForwardsTyped") >= 0);
        kvmnet::client::append_forward_structs(m, forwards);
        REQUIRE(sd_bus_message_seal(m, 1, 0) >= 0);
        return m;
    }

private:
    int fds_[2] = {-1, -1};
    sd_bus* bus_ = nullptr;
};

struct MessageRef {
    sd_bus_message* m;
    ~MessageRef() { sd_bus_message_unref(m); }
};

}  // namespace

TEST_CASE("forward structs: what the client appends, the daemon reads back", "[forward_structs]")
{
    OfflineBus bus;
    std::vector<ForwardFields> forwards = {
        {"tcp", "", 8080, 0, "192.168.122.10", 80, "", 0},
        {"both", "203.0.113.11", 10000, 10099, "web", 20000, "a range, with a description", 50},
        {"udp", "2001:db8::1", 53, 0, "fd00::10", 5353, "dns", 1000000},
    };
    MessageRef m{bus.call(forwards)};
    CHECK(kvmnet::api::read_forward_structs(m.m) == forwards);
}

TEST_CASE("forward structs: an empty array reads as none", "[forward_structs]")
{
    OfflineBus bus;
    MessageRef m{bus.call({})};
    CHECK(kvmnet::api::read_forward_structs(m.m).empty());
}

TEST_CASE("forward structs: many, in order", "[forward_structs]")
{
    OfflineBus bus;
    std::vector<ForwardFields> forwards;
    for (std::uint16_t i = 0; i < 5000; ++i)
        forwards.push_back({"tcp", "203.0.113.11", static_cast<std::uint16_t>(10000 + i), 0,
                            "192.168.150." + std::to_string(10 + i % 200), 80, "", 0});
    MessageRef m{bus.call(forwards)};
    CHECK(kvmnet::api::read_forward_structs(m.m) == forwards);
}

TEST_CASE("forward structs: a message without the array is InvalidArgument naming forwards", "[forward_structs]")
{
    OfflineBus bus;
    MessageRef m{bus.call({})};
    sd_bus_message_rewind(m.m, 1);
    // Past the array: nothing left to read where the array should be.
    kvmnet::api::read_forward_structs(m.m);
    try {
        kvmnet::api::read_forward_structs(m.m);
        FAIL("no error");
    } catch (const kvmnet::Error& e) {
        CHECK(e.kind() == kvmnet::ErrorKind::InvalidArgument);
        CHECK(std::string(e.what()).rfind("forwards: ", 0) == 0);
    }
}

}  // namespace unit_test_forward_structs
