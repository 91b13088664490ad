// kvmnet-applet: a desktop window on kvmnetd's D-Bus API (org.kvmnet1).
//   kvmnet-applet [--bus ADDRESS]
// Without --bus it talks to the system bus (DBUS_SYSTEM_BUS_ADDRESS
// overrides it, as for kvmnetctl).
#include "bus.hpp"
#include "window.hpp"

#include <gtkmm.h>

#include <cstring>
#include <iostream>
#include <string>

namespace {

constexpr const char* usage = "Usage: kvmnet-applet [--bus ADDRESS]\n"
                              "A window on kvmnetd's networks: leases, forwards, ports, repairs and diagnosis,\n"
                              "kept current by the daemon's D-Bus signals.\n"
                              "  --bus ADDRESS  the D-Bus address of the bus kvmnetd is on (default: the system\n"
                              "                 bus; DBUS_SYSTEM_BUS_ADDRESS overrides it)\n";

}  // namespace

int main(int argc, char** argv)
{
    std::string address;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg == "--help" || arg == "-h") {
            std::cout << usage;
            return 0;
        }
        if (arg == "--version") {
            std::cout << "kvmnet-applet " << KVMNET_VERSION << "\n";
            return 0;
        }
        if (arg == "--bus" && i + 1 < argc) {
            address = argv[++i];
        } else if (arg.rfind("--bus=", 0) == 0) {
            address = arg.substr(std::strlen("--bus="));
        } else {
            std::cerr << "kvmnet-applet: unknown argument '" << arg << "'\n" << usage;
            return 2;
        }
    }

    // NON_UNIQUE: a second applet (another bus, another user) is a window of its own.
    auto app = Gtk::Application::create("org.kvmnet.Applet", Gio::Application::Flags::NON_UNIQUE);
    std::string error;
    kvmnet::applet::Bus bus = kvmnet::applet::Bus::connect(address, error);
    char* args[] = {argv[0], nullptr};
    return app->make_window_and_run<kvmnet::applet::Window>(1, args, std::move(bus), error);
}
