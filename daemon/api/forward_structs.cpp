#include "api/forward_structs.hpp"

#include "model/error.hpp"

#include <cstring>
#include <string>

namespace kvmnet::api {

namespace {

void check(int r)
{
    if (r < 0)
        throw Error(ErrorKind::InvalidArgument,
                    std::string("forwards: not an array of (ssqqsqsu): ").append(std::strerror(-r)));
}

}  // namespace

std::vector<model::ForwardFields> read_forward_structs(sd_bus_message* message)
{
    std::vector<model::ForwardFields> forwards;
    const int entered = sd_bus_message_enter_container(message, SD_BUS_TYPE_ARRAY, "(ssqqsqsu)");
    check(entered);
    if (entered == 0) throw Error(ErrorKind::InvalidArgument, "forwards: missing");
    for (;;) {
        const int r = sd_bus_message_enter_container(message, SD_BUS_TYPE_STRUCT, "ssqqsqsu");
        check(r);
        if (r == 0) break;  // the array's end
        const char* proto = nullptr;
        const char* host_address = nullptr;
        const char* guest = nullptr;
        const char* description = nullptr;
        model::ForwardFields& f = forwards.emplace_back();
        check(sd_bus_message_read_basic(message, SD_BUS_TYPE_STRING, &proto));
        check(sd_bus_message_read_basic(message, SD_BUS_TYPE_STRING, &host_address));
        check(sd_bus_message_read_basic(message, SD_BUS_TYPE_UINT16, &f.host_port));
        check(sd_bus_message_read_basic(message, SD_BUS_TYPE_UINT16, &f.host_port_end));
        check(sd_bus_message_read_basic(message, SD_BUS_TYPE_STRING, &guest));
        check(sd_bus_message_read_basic(message, SD_BUS_TYPE_UINT16, &f.guest_port));
        check(sd_bus_message_read_basic(message, SD_BUS_TYPE_STRING, &description));
        check(sd_bus_message_read_basic(message, SD_BUS_TYPE_UINT32, &f.rate));
        check(sd_bus_message_exit_container(message));
        f.proto = proto;
        f.host_address = host_address;
        f.guest = guest;
        f.description = description;
    }
    check(sd_bus_message_exit_container(message));
    return forwards;
}

}  // namespace kvmnet::api
