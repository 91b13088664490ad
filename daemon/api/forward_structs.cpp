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
    check(sd_bus_message_enter_container(message, SD_BUS_TYPE_ARRAY, "(ssqqsqsu)"));
    for (;;) {
        const char* proto = nullptr;
        const char* host_address = nullptr;
        const char* guest = nullptr;
        const char* description = nullptr;
        model::ForwardFields& f = forwards.emplace_back();
        const int r = sd_bus_message_read(message, "(ssqqsqsu)", &proto, &host_address, &f.host_port, &f.host_port_end,
                                          &guest, &f.guest_port, &description, &f.rate);
        check(r);
        if (r == 0) {  // the array's end
            forwards.pop_back();
            break;
        }
        f.proto = proto;
        f.host_address = host_address;
        f.guest = guest;
        f.description = description;
    }
    check(sd_bus_message_exit_container(message));
    return forwards;
}

}  // namespace kvmnet::api
