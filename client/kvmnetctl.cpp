// kvmnetctl: the command-line client of kvmnetd. A thin layer over the
// org.kvmnet1 D-Bus API: it builds documents from options, calls one method
// and prints the answer as a table or, with --json, as JSON.
#include "org.kvmnet1.Manager-proxy.h"
#include "org.kvmnet1.Network-proxy.h"

#include <nlohmann/json.hpp>
#include <sdbus-c++/sdbus-c++.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

namespace {

using json = nlohmann::json;

constexpr const char* bus_name = "org.kvmnet1";

const char* usage_text = "Usage: kvmnetctl [--json] COMMAND [ARGS]\n"
                         "\n"
                         "Commands:\n"
                         "  list                              networks with mode, state and addresses\n"
                         "  show NET                          one network's configuration and state\n"
                         "  create NET --file FILE            define a network from a JSON document\n"
                         "  create NET --mode nat|isolated|routed --ipv4 GATEWAY/PREFIX [--bridge BR]\n"
                         "             [--dhcp-range FIRST-LAST]... [--dhcp-host MAC,IP[,NAME]]...\n"
                         "             [--uplink IFNAME] [--mtu N] [--stp on|off] [--forward-delay S] [--autostart]\n"
                         "  start NET | stop NET | delete NET\n"
                         "  autostart NET on|off\n"
                         "\n"
                         "--json prints read commands' results as JSON. The daemon is reached on the\n"
                         "system bus (DBUS_SYSTEM_BUS_ADDRESS overrides it).\n";

class UsageError : public std::runtime_error {
    using std::runtime_error::runtime_error;
};

class ManagerProxy final : public sdbus::ProxyInterfaces<org::kvmnet1::Manager_proxy> {
public:
    explicit ManagerProxy(sdbus::IConnection& c) : ProxyInterfaces(c, bus_name, "/org/kvmnet1") { registerProxy(); }
    ~ManagerProxy() { unregisterProxy(); }

private:
    void onNetworkAdded(const std::string&, const sdbus::ObjectPath&) override {}
    void onNetworkRemoved(const std::string&, const sdbus::ObjectPath&) override {}
};

class NetworkProxy final : public sdbus::ProxyInterfaces<org::kvmnet1::Network_proxy> {
public:
    NetworkProxy(sdbus::IConnection& c, const std::string& path) : ProxyInterfaces(c, bus_name, path)
    {
        registerProxy();
    }
    ~NetworkProxy() { unregisterProxy(); }
};

struct Context {
    sdbus::IConnection& bus;
    ManagerProxy manager;
    bool as_json = false;

    NetworkProxy network(const std::string& name) { return NetworkProxy(bus, manager.GetNetwork(name)); }
};

void need_args(const std::vector<std::string>& args, std::size_t count, const char* synopsis)
{
    if (args.size() != count) throw UsageError(std::string("usage: kvmnetctl ") + synopsis);
}

std::string read_text(const std::string& path)
{
    std::ostringstream s;
    if (path == "-") {
        s << std::cin.rdbuf();
    } else {
        std::ifstream in(path);
        if (!in) throw UsageError("cannot read " + path);
        s << in.rdbuf();
    }
    return s.str();
}

bool on_off(const std::string& value, const std::string& option)
{
    if (value == "on" || value == "yes" || value == "true") return true;
    if (value == "off" || value == "no" || value == "false") return false;
    throw UsageError(option + " takes on or off, not '" + value + "'");
}

unsigned long number(const std::string& value, const std::string& option)
{
    std::size_t used = 0;
    unsigned long n = 0;
    try {
        n = std::stoul(value, &used);
    } catch (...) {
        used = 0;
    }
    if (used == 0 || used != value.size()) throw UsageError(option + " takes a number, not '" + value + "'");
    return n;
}

// Builds the JSON document from `create` options; the daemon validates it.
std::string document_from_options(const std::string& name, const std::vector<std::string>& opts)
{
    json doc = {{"name", name}};
    json ranges = json::array(), hosts = json::array();
    bool dhcp = false;
    for (std::size_t i = 0; i < opts.size(); ++i) {
        const std::string& o = opts[i];
        auto value = [&]() -> const std::string& {
            if (i + 1 >= opts.size()) throw UsageError(o + " needs a value");
            return opts[++i];
        };
        if (o == "--mode")
            doc["mode"] = value();
        else if (o == "--bridge")
            doc["bridge"] = value();
        else if (o == "--ipv4")
            doc["ipv4"]["address"] = value();
        else if (o == "--uplink")
            doc["uplink"] = value();
        else if (o == "--mtu")
            doc["mtu"] = number(value(), o);
        else if (o == "--stp")
            doc["stp"] = on_off(value(), o);
        else if (o == "--forward-delay")
            doc["forward_delay"] = number(value(), o);
        else if (o == "--autostart")
            doc["autostart"] = true;
        else if (o == "--dhcp-range") {
            ranges.push_back(value());
            dhcp = true;
        } else if (o == "--dhcp-host") {
            std::vector<std::string> parts;
            std::stringstream s(value());
            for (std::string part; std::getline(s, part, ',');)
                parts.push_back(part);
            if (parts.size() < 2 || parts.size() > 3) throw UsageError("--dhcp-host takes MAC,IP[,NAME]");
            json host = {{"mac", parts[0]}, {"ip", parts[1]}};
            if (parts.size() == 3) host["name"] = parts[2];
            hosts.push_back(host);
            dhcp = true;
        } else {
            throw UsageError("unknown option '" + o + "' for create");
        }
    }
    if (!doc.contains("mode")) throw UsageError("create needs --file FILE or --mode MODE");
    if (dhcp) {
        if (!doc.contains("ipv4")) throw UsageError("--dhcp-range and --dhcp-host need --ipv4");
        doc["ipv4"]["dhcp"] = {{"ranges", ranges}, {"hosts", hosts}};
    }
    return doc.dump();
}

std::string column(const std::string& text, std::size_t width)
{
    return text.size() >= width ? text + " " : text + std::string(width - text.size(), ' ');
}

int cmd_list(Context& c, const std::vector<std::string>& args)
{
    need_args(args, 0, "list");
    const json all = json::parse(c.manager.Describe());
    if (c.as_json) {
        std::cout << all["networks"].dump(2) << "\n";
        return 0;
    }
    std::cout << column("NAME", 16) << column("MODE", 9) << column("STATE", 11) << column("AUTOSTART", 10)
              << column("BRIDGE", 16) << "IPV4\n";
    for (const auto& n : all["networks"]) {
        std::cout << column(n["name"], 16) << column(n["mode"], 9) << column(n["state"], 11)
                  << column(n["autostart"].get<bool>() ? "yes" : "no", 10) << column(n["bridge"], 16)
                  << (n.contains("ipv4") ? n["ipv4"]["address"].get<std::string>() : "-") << "\n";
    }
    return 0;
}

int cmd_show(Context& c, const std::vector<std::string>& args)
{
    need_args(args, 1, "show NET");
    const json n = json::parse(c.network(args[0]).Describe());
    if (c.as_json) {
        std::cout << n.dump(2) << "\n";
        return 0;
    }
    auto row = [](const std::string& key, const std::string& value) {
        std::cout << std::left << std::setw(15) << (key + ":") << value << "\n";
    };
    row("Name", n["name"]);
    row("Mode", n["mode"]);
    row("State",
        n["state"].get<std::string>() +
            (n["state_reason"].get<std::string>().empty() ? "" : " (" + n["state_reason"].get<std::string>() + ")"));
    row("Autostart", n["autostart"].get<bool>() ? "yes" : "no");
    row("Bridge", n["bridge"]);
    if (n.contains("ipv4")) {
        row("IPv4", n["ipv4"]["address"]);
        if (n["ipv4"].contains("dhcp")) {
            for (const auto& r : n["ipv4"]["dhcp"]["ranges"])
                row("DHCP range", r);
            for (const auto& h : n["ipv4"]["dhcp"]["hosts"])
                row("DHCP host", h["mac"].get<std::string>() + " " + h["ip"].get<std::string>() +
                                     (h.contains("name") ? " " + h["name"].get<std::string>() : ""));
        }
    }
    if (n.contains("uplink")) row("Uplink", n["uplink"]);
    row("STP", n["stp"].get<bool>() ? "on" : "off");
    row("Forward delay", std::to_string(n["forward_delay"].get<unsigned>()) + " s");
    if (n.contains("mtu")) row("MTU", std::to_string(n["mtu"].get<unsigned>()));
    return 0;
}

int cmd_create(Context& c, const std::vector<std::string>& args)
{
    if (args.empty()) throw UsageError("usage: kvmnetctl create NET --file FILE | --mode MODE [options]");
    const std::string& name = args[0];
    std::string document;
    if (args.size() >= 2 && args[1] == "--file") {
        need_args(args, 3, "create NET --file FILE");
        document = read_text(args[2]);
        json doc = json::parse(document, nullptr, false);
        // Syntax errors are left to the daemon, which reports them the same
        // way for every client; only the name is settled here.
        if (doc.is_object()) {
            if (!doc.contains("name")) doc["name"] = name;
            if (doc["name"] != name)
                throw UsageError("the document names network " + doc["name"].dump() + ", not '" + name + "'");
            document = doc.dump();
        }
    } else {
        document = document_from_options(name, {args.begin() + 1, args.end()});
    }
    c.manager.CreateNetwork(document);
    std::cout << "Network " << name << " created.\n";
    return 0;
}

int cmd_simple(Context& c, const std::string& verb, const std::vector<std::string>& args)
{
    need_args(args, 1, (verb + " NET").c_str());
    const std::string& name = args[0];
    if (verb == "delete") {
        c.manager.DeleteNetwork(name);
        std::cout << "Network " << name << " deleted.\n";
    } else if (verb == "start") {
        c.network(name).Start();
        std::cout << "Network " << name << " started.\n";
    } else {
        c.network(name).Stop();
        std::cout << "Network " << name << " stopped.\n";
    }
    return 0;
}

int cmd_autostart(Context& c, const std::vector<std::string>& args)
{
    need_args(args, 2, "autostart NET on|off");
    const bool on = on_off(args[1], "autostart");
    c.network(args[0]).SetAutostart(on);
    std::cout << "Network " << args[0] << " will " << (on ? "" : "not ") << "start with the daemon.\n";
    return 0;
}

std::string error_kind(const std::string& dbus_name)
{
    const std::string prefix = "org.kvmnet1.Error.";
    if (dbus_name.rfind(prefix, 0) == 0) return dbus_name.substr(prefix.size());
    if (dbus_name == "org.freedesktop.DBus.Error.AccessDenied") return "AccessDenied";
    if (dbus_name == "org.freedesktop.DBus.Error.ServiceUnknown" ||
        dbus_name == "org.freedesktop.DBus.Error.NameHasNoOwner")
        return "Unavailable";
    return dbus_name;
}

}  // namespace

int main(int argc, char** argv)
{
    std::vector<std::string> args;
    bool as_json = false;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--json")
            as_json = true;
        else if (a == "--help" || a == "-h") {
            std::cout << usage_text;
            return 0;
        } else
            args.push_back(a);
    }
    if (args.empty()) {
        std::cerr << usage_text;
        return 2;
    }
    const std::string command = args.front();
    args.erase(args.begin());
    static const std::vector<std::string> commands = {"list", "show", "create", "start", "stop", "delete", "autostart"};
    if (std::find(commands.begin(), commands.end(), command) == commands.end()) {
        std::cerr << "kvmnetctl: unknown command '" << command << "' (see kvmnetctl --help)\n";
        return 2;
    }
    try {
        auto bus = sdbus::createSystemBusConnection();
        Context c{*bus, ManagerProxy(*bus), as_json};
        if (command == "list") return cmd_list(c, args);
        if (command == "show") return cmd_show(c, args);
        if (command == "create") return cmd_create(c, args);
        if (command == "start" || command == "stop" || command == "delete") return cmd_simple(c, command, args);
        if (command == "autostart") return cmd_autostart(c, args);
        throw UsageError("unknown command '" + command + "'");
    } catch (const UsageError& e) {
        std::cerr << "kvmnetctl: " << e.what() << "\n";
        return 2;
    } catch (const sdbus::Error& e) {
        const std::string kind = error_kind(e.getName());
        std::string message = e.getMessage();
        if (kind == "Unavailable") message = "kvmnetd is not running or not reachable on the bus (" + message + ")";
        std::cerr << "kvmnetctl: " << kind << ": " << message << "\n";
        return 1;
    } catch (const std::exception& e) {
        std::cerr << "kvmnetctl: " << e.what() << "\n";
        return 1;
    }
}
