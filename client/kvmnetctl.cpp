// kvmnetctl: the command-line client of kvmnetd. A thin layer over the
// org.kvmnet1 D-Bus API: it builds documents from options, calls one method
// and prints the answer as a table or, with --json, as JSON.
#include "doc_path.hpp"
#include "import_libvirt.hpp"
#include "model/time_text.hpp"
#include "org.kvmnet1.Manager-proxy.h"
#include "org.kvmnet1.Network-proxy.h"
#include "sdbus_raw.hpp"

#include <systemd/sd-login.h>

#include <nlohmann/json.hpp>
#include <sdbus-c++/sdbus-c++.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <functional>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

namespace {

using json = nlohmann::json;

constexpr const char* bus_name = "org.kvmnet1";

const char* usage_text =
    "Usage: kvmnetctl [--json] [--no-ask-password] COMMAND [ARGS]\n"
    "\n"
    "Commands:\n"
    "  list                              networks with mode, state and addresses\n"
    "  show NET                          one network's configuration (all of it) and status\n"
    "  export NET                        the document as JSON, exactly as create --file takes it\n"
    "  create NET --file FILE            define a network from a JSON document (- for stdin;\n"
    "                                    NET names it, whatever its \"name\" says)\n"
    "  create NET --mode nat|isolated|routed --ipv4 GATEWAY/PREFIX [--bridge BR]\n"
    "             [--dhcp-range FIRST-LAST]... [--dhcp-host MAC,IP[,NAME]]...\n"
    "             [--uplink IFNAME] [--mtu N] [--stp on|off] [--forward-delay S] [--autostart]\n"
    "             [--domain DOMAIN] [--forwarder IP]...\n"
    "             [--ipv6 GATEWAY/PREFIX [--ipv6-range FIRST-LAST]... [--nat66] [--no-ra]]\n"
    "  create NET --mode bridge --uplink IFNAME [--bridge BR] [--stp on|off]\n"
    "             [--forward-delay S] [--hello-time S] [--max-age S] [--priority N]\n"
    "             [--multicast-snooping on|off] [--mtu N] [--autostart]\n"
    "  start NET [--confirm-timeout SECONDS]   rolled back unless `confirm NET` follows in time\n"
    "  confirm NET\n"
    "  stop NET | delete NET\n"
    "  autostart NET on|off\n"
    "  set NET PATH=VALUE|PATH+=VALUE... change document fields, e.g. stp=on ipv4.address=10.0.0.1/24\n"
    "                                    ipv4.dhcp.ranges+=10.0.0.50-10.0.0.99 (objects are merged)\n"
    "  unset NET PATH...                 remove fields or array elements, e.g. ipv4.dhcp.hosts[0]\n"
    "  edit NET                          edit the document in $EDITOR (else vi), applied as one update\n"
    "  port attach NET IFNAME [--tap [--owner UID[:GID]]] [--mac MAC] [--isolated]\n"
    "             [--vlan PVID] [--vlan-tagged ID,...] [--inbound AVG[,PEAK[,BURST]]]\n"
    "             [--outbound AVG[,PEAK[,BURST]]]   (rates in kB/s, burst in kB)\n"
    "  port detach NET IFNAME\n"
    "  port list NET\n"
    "  leases NET                        DHCP leases: MAC, IP, host name, expiry\n"
    "  host add NET MAC|DUID IP [NAME]   add a static DHCP host, IPv4 or IPv6 (no dnsmasq restart)\n"
    "  host remove NET MAC|DUID\n"
    "  host list NET                     static DHCP hosts: MAC or DUID, IP, name\n"
    "  forward add NET PROTO HOSTPORT[-LAST] GUEST:GUESTPORT[-LAST] [--host-address A] [--rate N/s]\n"
    "             [--description TEXT]   (GUEST: address, [IPv6 address] or static host name)\n"
    "  forward add NET --host-port PORT[-LAST] --guest ADDRESS|HOSTNAME --guest-port PORT[-LAST]\n"
    "             [--proto tcp|udp|both] [--host-address A.B.C.D] [--rate N] [--description TEXT]\n"
    "  forward add NET --file FILE       one forward object or an array of them (- for stdin)\n"
    "  forward remove NET tcp|udp|both [ADDRESS:]PORT   ([ADDRESS6]:PORT; [::]:PORT: every IPv6 address)\n"
    "  forward list NET                  forwards with connection and drop counters\n"
    "  stats NET                         drop counters of the network's rules, forward totals\n"
    "  diagnose NET                      check the network against the kernel (exit 1 when a check fails)\n"
    "  reload                            make the daemon re-read the stored documents (as SIGHUP)\n"
    "  monitor [NET] [--event KIND]... [--count N] [--timeout SECONDS]\n"
    "                                    print the daemon's signals (about NET; of these kinds:\n"
    "                                    NetworkAdded NetworkRemoved PropertiesChanged LeaseChanged\n"
    "                                    Repaired MacConflict DaemonStarted DaemonStopped) until\n"
    "                                    interrupted, N events printed or SECONDS passed\n"
    "  import-libvirt FILE... | --all [--dir DIR] [--strict] [--dry-run]\n"
    "                                    create networks from libvirt network XML\n"
    "\n"
    "--json prints read commands' results as JSON. A command that changes something,\n"
    "run by a user other than root from a terminal, starts pkttyagent so that polkit\n"
    "can ask for a password; --no-ask-password does not, and tells the daemon not to\n"
    "let polkit ask at all. The daemon is reached on the system bus\n"
    "(DBUS_SYSTEM_BUS_ADDRESS overrides it). See kvmnetctl(1).\n";

class UsageError : public std::runtime_error {
    using std::runtime_error::runtime_error;
};

class ManagerProxy final : public sdbus::ProxyInterfaces<org::kvmnet1::Manager_proxy> {
public:
    explicit ManagerProxy(sdbus::IConnection& c) : ProxyInterfaces(c, bus_name, "/org/kvmnet1") { registerProxy(); }
    ~ManagerProxy() { unregisterProxy(); }
    sdbus::IProxy& proxy() { return getProxy(); }

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

private:
    void onMacConflict(const std::string&, const std::vector<std::string>&) override {}
    void onLeaseChanged(const std::string&, const std::string&, const std::string&, const std::string&) override {}
    void onRepaired(const std::string&, const std::string&) override {}
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
        else if (o == "--hello-time")
            doc["hello_time"] = number(value(), o);
        else if (o == "--max-age")
            doc["max_age"] = number(value(), o);
        else if (o == "--priority")
            doc["priority"] = number(value(), o);
        else if (o == "--multicast-snooping")
            doc["multicast_snooping"] = on_off(value(), o);
        else if (o == "--autostart")
            doc["autostart"] = true;
        else if (o == "--domain")
            doc["dns"]["domain"] = value();
        else if (o == "--forwarder")
            doc["dns"]["forwarders"].push_back(value());
        else if (o == "--ipv6")
            doc["ipv6"]["address"] = value();
        else if (o == "--ipv6-range")
            doc["ipv6"]["dhcp"]["ranges"].push_back(value());
        else if (o == "--nat66")
            doc["ipv6"]["nat66"] = true;
        else if (o == "--no-ra")
            doc["ipv6"]["ra"] = false;
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

// Every item of a paged read (ListForwardsPage, LeasesPage, ListPortsPage),
// page after page: no reply of the daemon may be large (issue 11).
template <typename Call>
json all_pages(Call call)
{
    constexpr std::uint32_t page_limit = 4096;
    json all = json::array();
    std::string cursor;
    do {
        auto [items, next] = call(cursor, page_limit);
        for (auto& item : json::parse(items))
            all.push_back(std::move(item));
        cursor = std::move(next);
    } while (!cursor.empty());
    return all;
}

int cmd_list(Context& c, const std::vector<std::string>& args)
{
    need_args(args, 0, "list");
    const json all = json::parse(c.manager.DescribeBrief());
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

std::string port_text(const json& port);
std::string error_kind(const std::string& dbus_name);

// The document as `create --file` takes it (Export), and its revision.
struct Exported {
    json document;
    std::string revision;
};

Exported export_document(NetworkProxy& network)
{
    const auto [text, revision] = network.Export();
    return {json::parse(text), revision};
}

// show NET: the configuration (the document, everything in it) and the
// status (what the daemon reports about it now), kept apart; with --json
// {"config": <document as export prints it>, "status": {...}}.
int cmd_show(Context& c, const std::vector<std::string>& args)
{
    need_args(args, 1, "show NET");
    auto network = c.network(args[0]);
    Exported exported;
    bool brief = false;
    try {
        exported = export_document(network);
    } catch (const sdbus::Error& e) {
        // Past the reply limit: the document without its forwards (forward
        // list NET pages through them), with their number.
        if (e.getName() != "org.kvmnet1.Error.TooLarge") throw;
        json n = json::parse(network.DescribeBrief());
        n.erase("state");
        n.erase("state_reason");
        exported = {std::move(n), network.Revision()};
        brief = true;
        std::cerr << "kvmnetctl: note: the " << exported.document.value("forward_count", std::size_t{0})
                  << " forwards are left out (too many for one reply); see kvmnetctl forward list\n";
    }
    const json status = {{"revision", exported.revision},
                         {"state", network.State()},
                         {"state_reason", network.StateReason()},
                         {"dnsmasq", network.Dnsmasq()},
                         {"awaiting_confirmation", network.AwaitingConfirmation()},
                         {"last_repair", network.LastRepair()}};
    if (c.as_json) {
        std::cout << json{{"config", exported.document}, {"status", status}}.dump(2) << "\n";
        return 0;
    }
    const json& n = exported.document;
    auto row = [](const std::string& key, const std::string& value) {
        std::cout << "  " << std::left << std::setw(15) << (key + ":") << value << "\n";
    };
    std::cout << "Config (revision " << exported.revision << "; `kvmnetctl export " << args[0]
              << "` prints it as JSON):\n";
    row("Name", n["name"]);
    row("Mode", n["mode"]);
    row("Autostart", n.value("autostart", false) ? "yes" : "no");
    row("Bridge", n.value("bridge", std::string("-")));
    if (n.contains("ipv4")) {
        row("IPv4", n["ipv4"]["address"]);
        if (n["ipv4"].contains("dhcp")) {
            for (const auto& r : n["ipv4"]["dhcp"].value("ranges", json::array()))
                row("DHCP range", r);
            for (const auto& h : n["ipv4"]["dhcp"].value("hosts", json::array()))
                row("DHCP host", h["mac"].get<std::string>() + " " + h["ip"].get<std::string>() +
                                     (h.contains("name") ? " " + h["name"].get<std::string>() : ""));
        }
    }
    if (n.contains("ipv6")) {
        const json& v6 = n["ipv6"];
        row("IPv6", v6["address"].get<std::string>() + (v6.value("nat66", false) ? " (NAT66)" : "") +
                        (v6.value("ra", true) ? "" : " (no router advertisements)"));
        if (v6.contains("dhcp"))
            for (const auto& r : v6["dhcp"]["ranges"])
                row("DHCPv6 range", r);
    }
    if (n.contains("dns")) {
        if (n["dns"].contains("domain")) row("DNS domain", n["dns"]["domain"]);
        for (const auto& f : n["dns"].value("forwarders", json::array()))
            row("DNS forwarder", f);
    }
    if (n.contains("uplink")) row("Uplink", n["uplink"]);
    row("STP", n.value("stp", false) ? "on" : "off");
    row("Forward delay", std::to_string(n.value("forward_delay", 0u)) + " s");
    if (n.contains("mtu")) row("MTU", std::to_string(n["mtu"].get<unsigned>()));
    if (n.contains("hello_time")) row("Hello time", std::to_string(n["hello_time"].get<unsigned>()) + " s");
    if (n.contains("max_age")) row("Max age", std::to_string(n["max_age"].get<unsigned>()) + " s");
    if (n.contains("priority")) row("Priority", std::to_string(n["priority"].get<unsigned>()));
    if (n.contains("multicast_snooping")) row("Mcast snooping", n["multicast_snooping"].get<bool>() ? "on" : "off");
    for (const auto& p : n.value("ports", json::array()))
        row("Port", p["name"].get<std::string>() + (p.contains("mac") ? " " + p["mac"].get<std::string>() : "") +
                        (p.value("tap", false) ? " (tap)" : "") + (p.value("isolated", false) ? " isolated" : ""));
    for (const auto& f : n.value("forwards", json::array())) {
        std::string text = f["proto"].get<std::string>();
        text.append(" ").append(f.value("host_address", std::string("*")));
        text.append(":").append(port_text(f["host_port"])).append(" -> ").append(f["guest"].get<std::string>());
        text.append(":").append(port_text(f["guest_port"]));
        if (f.contains("rate")) text.append(" rate ").append(f["rate"].dump()).append("/s");
        if (f.contains("description")) text.append(" \"").append(f["description"].get<std::string>()).append("\"");
        row("Forward", text);
    }
    if (brief) row("Forwards", n["forward_count"].dump() + " (kvmnetctl forward list NET)");
    const json limits = n.value("limits", json::object());
    for (const auto& [key, value] : limits.items())
        row("Limit", key + " " + value.dump());
    std::cout << "Status:\n";
    const std::string reason = status["state_reason"];
    row("State", status["state"].get<std::string>() + (reason.empty() ? "" : " (" + reason + ")"));
    row("Dnsmasq", status["dnsmasq"]);
    if (status["awaiting_confirmation"].get<bool>()) row("Confirmation", "awaited (kvmnetctl confirm)");
    if (const std::string last = status["last_repair"]; !last.empty()) row("Last repair", last);
    return 0;
}

// export NET: exactly what `create NET --file` takes.
int cmd_export(Context& c, const std::vector<std::string>& args)
{
    need_args(args, 1, "export NET");
    auto network = c.network(args[0]);
    std::cout << export_document(network).document.dump(2) << "\n";
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
        // The argument names the network, whatever the document says, so an
        // export can be created again under another name.
        if (doc.is_object()) {
            doc["name"] = name;
            document = doc.dump();
        }
    } else {
        document = document_from_options(name, {args.begin() + 1, args.end()});
    }
    c.manager.CreateNetwork(document);
    std::cout << "Network " << name << " created.\n";
    return 0;
}

int cmd_start(Context& c, const std::vector<std::string>& args)
{
    if (args.size() == 3 && args[1] == "--confirm-timeout") {
        const auto timeout = number(args[2], "--confirm-timeout");
        if (timeout == 0 || timeout > 3600) throw UsageError("--confirm-timeout takes 1 to 3600 seconds");
        c.network(args[0]).StartWithConfirmation(static_cast<std::uint32_t>(timeout));
        std::cout << "Network " << args[0] << " started; run `kvmnetctl confirm " << args[0] << "` within " << timeout
                  << " s or it is rolled back.\n";
        return 0;
    }
    need_args(args, 1, "start NET [--confirm-timeout SECONDS]");
    c.network(args[0]).Start();
    std::cout << "Network " << args[0] << " started.\n";
    return 0;
}

int cmd_confirm(Context& c, const std::vector<std::string>& args)
{
    need_args(args, 1, "confirm NET");
    c.network(args[0]).Confirm();
    std::cout << "Network " << args[0] << " confirmed.\n";
    return 0;
}

// A document edit of set/unset reported like the daemon's errors
// ("kvmnetctl: InvalidArgument: ipv4.dhcp.hosts[2]: no such element ...").
[[noreturn]] void path_failed(const kvmnet::client::PathError& e)
{
    throw sdbus::Error("org.kvmnet1.Error." + e.kind(), e.what());
}

bool is_conflict(const sdbus::Error& e) { return e.getName() == "org.kvmnet1.Error.Conflict"; }

// Read, edit, UpdateIfRevision. A set or unset is defined against whatever
// the document is, so when another client changed it in between (Conflict
// and a new revision) the edit is applied again to the new document; a
// Conflict at an unchanged revision is the daemon's own refusal.
void edit_document(NetworkProxy& network, const std::function<void(json&)>& edit)
{
    constexpr int attempts = 5;
    for (int attempt = 1;; ++attempt) {
        const Exported e = export_document(network);
        json doc = e.document;
        try {
            edit(doc);
        } catch (const kvmnet::client::PathError& error) {
            path_failed(error);
        }
        try {
            network.UpdateIfRevision(doc.dump(), e.revision);
            return;
        } catch (const sdbus::Error& error) {
            if (!is_conflict(error) || attempt == attempts || network.Revision() == e.revision) throw;
        }
    }
}

void refuse_identity(const std::string& path)
{
    const auto steps = kvmnet::client::parse_path(path);
    if (const auto* key = std::get_if<std::string>(&steps.front()); key && (*key == "name" || *key == "mode"))
        throw UsageError(*key + " cannot be changed; create a new network");
}

// set NET PATH=VALUE|PATH+=VALUE...: merged into the document
// (client/doc_path.hpp), all in one revision-checked Update.
int cmd_set(Context& c, const std::vector<std::string>& args)
{
    if (args.size() < 2) throw UsageError("usage: kvmnetctl set NET PATH=VALUE|PATH+=VALUE...");
    std::vector<kvmnet::client::Assignment> assignments;
    for (std::size_t i = 1; i < args.size(); ++i) {
        try {
            assignments.push_back(kvmnet::client::parse_assignment(args[i]));
        } catch (const kvmnet::client::PathError& e) {
            throw UsageError(e.what());
        }
        refuse_identity(assignments.back().path);
    }
    auto network = c.network(args[0]);
    edit_document(network, [&](json& doc) {
        for (const auto& a : assignments) {
            if (a.append)
                kvmnet::client::append_path(doc, a.path, a.value);
            else
                kvmnet::client::set_path(doc, a.path, a.value);
        }
    });
    std::cout << "Network " << args[0] << " updated.\n";
    return 0;
}

// unset NET PATH...: removes fields or array elements.
int cmd_unset(Context& c, const std::vector<std::string>& args)
{
    if (args.size() < 2) throw UsageError("usage: kvmnetctl unset NET PATH...");
    for (std::size_t i = 1; i < args.size(); ++i) {
        try {
            refuse_identity(args[i]);
        } catch (const kvmnet::client::PathError& e) {
            throw UsageError(e.what());
        }
    }
    auto network = c.network(args[0]);
    edit_document(network, [&](json& doc) {
        for (std::size_t i = 1; i < args.size(); ++i)
            kvmnet::client::unset_path(doc, args[i]);
    });
    std::cout << "Network " << args[0] << " updated.\n";
    return 0;
}

// edit NET: $EDITOR (else vi) on the export, then one UpdateIfRevision. On
// any failure the network is unchanged and the edited text stays in the
// temporary file, named in the message, for another try.
int cmd_edit(Context& c, const std::vector<std::string>& args)
{
    need_args(args, 1, "edit NET");
    auto network = c.network(args[0]);
    const Exported before = export_document(network);
    const std::string original = before.document.dump(2) + "\n";
    const char* tmpdir = std::getenv("TMPDIR");
    std::string path = std::string(tmpdir && *tmpdir ? tmpdir : "/tmp") + "/kvmnetctl-edit-" + args[0] + "-XXXXXX.json";
    const int fd = ::mkstemps(path.data(), 5);
    if (fd < 0) throw std::runtime_error("cannot create a temporary file " + path + ": " + std::strerror(errno));
    const bool written = ::write(fd, original.data(), original.size()) == static_cast<ssize_t>(original.size());
    ::close(fd);
    if (!written) {
        ::unlink(path.c_str());
        throw std::runtime_error("cannot write " + path);
    }
    const char* from_env = std::getenv("EDITOR");
    const std::string editor = from_env && *from_env ? from_env : "vi";
    // Through the shell, as git runs it: EDITOR may carry arguments.
    const std::string command = editor + " \"$1\"";
    const pid_t pid = ::fork();
    if (pid < 0) throw std::runtime_error(std::string("cannot start the editor: ") + std::strerror(errno));
    if (pid == 0) {
        ::execl("/bin/sh", "sh", "-c", command.c_str(), "sh", path.c_str(), static_cast<char*>(nullptr));
        ::_exit(127);
    }
    int wstatus = 0;
    while (::waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
    }
    const auto kept = [&](const std::string& why) {
        std::cerr << "kvmnetctl: " << why << "\nkvmnetctl: network " << args[0]
                  << " is unchanged; the edited text is kept in " << path << "\n";
        return 1;
    };
    if (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0) return kept("the editor (" + editor + ") failed");
    std::string edited;
    try {
        edited = read_text(path);
    } catch (const UsageError& e) {
        return kept(e.what());
    }
    if (edited == original) {
        ::unlink(path.c_str());
        std::cout << "Network " << args[0] << " unchanged.\n";
        return 0;
    }
    try {
        network.UpdateIfRevision(edited, before.revision);
    } catch (const sdbus::Error& e) {
        const bool changed = is_conflict(e) && network.Revision() != before.revision;
        return kept(error_kind(e.getName()) + ": " + e.getMessage() +
                    (changed ? " (someone changed the network while you edited; run edit again)" : ""));
    }
    ::unlink(path.c_str());
    std::cout << "Network " << args[0] << " updated.\n";
    return 0;
}

json rate(const std::string& text, const std::string& option)
{
    std::vector<std::string> parts;
    std::stringstream s(text);
    for (std::string part; std::getline(s, part, ',');)
        parts.push_back(part);
    if (parts.empty() || parts.size() > 3) throw UsageError(option + " takes AVERAGE[,PEAK[,BURST]]");
    json r = {{"average", number(parts[0], option)}};
    if (parts.size() > 1 && !parts[1].empty()) r["peak"] = number(parts[1], option);
    if (parts.size() > 2 && !parts[2].empty()) r["burst"] = number(parts[2], option);
    return r;
}

int cmd_port(Context& c, const std::vector<std::string>& args)
{
    if (args.size() < 2) throw UsageError("usage: kvmnetctl port attach|detach|list NET ...");
    const std::string& verb = args[0];
    const std::string& net = args[1];
    if (verb == "list") {
        need_args(args, 2, "port list NET");
        auto network = c.network(net);
        const json ports = all_pages(
            [&](const std::string& cursor, std::uint32_t limit) { return network.ListPortsPage(cursor, limit); });
        if (c.as_json) {
            std::cout << ports.dump(2) << "\n";
            return 0;
        }
        std::cout << column("PORT", 16) << column("STATE", 10) << column("MAC", 19) << column("OPTIONS", 24)
                  << column("RX BYTES", 12) << "TX BYTES\n";
        for (const auto& p : ports) {
            std::string options;
            if (p.value("tap", false)) options += "tap(uid " + std::to_string(p.value("owner", 0u)) + ") ";
            if (p.value("isolated", false)) options += "isolated ";
            if (p.contains("vlan")) options += "vlan ";
            if (p.contains("bandwidth")) options += "limited ";
            std::cout << column(p["name"], 16) << column(p["state"], 10) << column(p.value("mac", std::string("-")), 19)
                      << column(options.empty() ? "-" : options, 24)
                      << column(std::to_string(p.value("rx_bytes", 0ull)), 12) << p.value("tx_bytes", 0ull) << "\n";
            if (p.contains("problem")) std::cout << "  problem: " << p["problem"].get<std::string>() << "\n";
        }
        return 0;
    }
    if (verb == "detach") {
        need_args(args, 3, "port detach NET IFNAME");
        c.network(net).DetachPort(args[2]);
        std::cout << "Port " << args[2] << " detached from " << net << ".\n";
        return 0;
    }
    if (verb != "attach") throw UsageError("unknown port command '" + verb + "' (attach, detach or list)");
    if (args.size() < 3) throw UsageError("usage: kvmnetctl port attach NET IFNAME [options]");
    json port = {{"name", args[2]}};
    json bandwidth = json::object();
    for (std::size_t i = 3; i < args.size(); ++i) {
        const std::string& o = args[i];
        auto value = [&]() -> const std::string& {
            if (i + 1 >= args.size()) throw UsageError(o + " needs a value");
            return args[++i];
        };
        if (o == "--tap")
            port["tap"] = true;
        else if (o == "--owner") {
            const std::string v = value();
            const auto colon = v.find(':');
            port["owner"] = number(v.substr(0, colon), o);
            port["group"] = colon == std::string::npos ? port["owner"] : json(number(v.substr(colon + 1), o));
        } else if (o == "--mac")
            port["mac"] = value();
        else if (o == "--isolated")
            port["isolated"] = true;
        else if (o == "--vlan")
            port["vlan"]["pvid"] = number(value(), o);
        else if (o == "--vlan-tagged") {
            json tagged = json::array();
            std::stringstream s(value());
            for (std::string id; std::getline(s, id, ',');)
                tagged.push_back(number(id, o));
            port["vlan"]["tagged"] = tagged;
        } else if (o == "--inbound")
            bandwidth["inbound"] = rate(value(), o);
        else if (o == "--outbound")
            bandwidth["outbound"] = rate(value(), o);
        else
            throw UsageError("unknown option '" + o + "' for port attach");
    }
    if (!bandwidth.empty()) port["bandwidth"] = bandwidth;
    c.network(net).AttachPort(port.dump());
    std::cout << "Port " << args[2] << " attached to " << net << ".\n";
    return 0;
}

int cmd_simple(Context& c, const std::string& verb, const std::vector<std::string>& args)
{
    need_args(args, 1, (verb + " NET").c_str());
    const std::string& name = args[0];
    if (verb == "delete") {
        c.manager.DeleteNetwork(name);
        std::cout << "Network " << name << " deleted.\n";
    } else {
        c.network(name).Stop();
        std::cout << "Network " << name << " stopped.\n";
    }
    return 0;
}

int cmd_reload(Context& c, const std::vector<std::string>& args)
{
    need_args(args, 0, "reload");
    c.manager.Reload();
    std::cout << "Stored networks reloaded.\n";
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

int cmd_leases(Context& c, const std::vector<std::string>& args)
{
    need_args(args, 1, "leases NET");
    auto network = c.network(args[0]);
    const json leases =
        all_pages([&](const std::string& cursor, std::uint32_t limit) { return network.LeasesPage(cursor, limit); });
    if (c.as_json) {
        std::cout << leases.dump(2) << "\n";
        return 0;
    }
    std::cout << column("MAC", 19) << column("IP", 17) << column("HOSTNAME", 24) << column("TYPE", 9) << "EXPIRES\n";
    for (const auto& l : leases) {
        std::string expires = "never";
        if (const std::time_t when = l.value("expiry", std::int64_t{0}); when != 0) {
            std::tm local{};
            char text[32];
            ::localtime_r(&when, &local);
            std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S", &local);
            expires = text;
        }
        // A DHCPv6 lease has a MAC only when the client's DUID carries one.
        std::cout << column(l.value("mac", std::string("-")), 19) << column(l["ip"], 17)
                  << column(l.value("hostname", std::string("-")), 24) << column(l.value("type", std::string("-")), 9)
                  << expires << "\n";
    }
    return 0;
}

int cmd_host(Context& c, const std::vector<std::string>& args)
{
    if (args.size() < 2) throw UsageError("usage: kvmnetctl host add|remove|list NET ...");
    const std::string& verb = args[0];
    const std::string& net = args[1];
    if (verb == "list") {
        need_args(args, 2, "host list NET");
        auto network = c.network(net);
        json document;
        try {
            document = export_document(network).document;
        } catch (const sdbus::Error& e) {
            // Past the reply limit (forwards): the brief document has the hosts.
            if (e.getName() != "org.kvmnet1.Error.TooLarge") throw;
            document = json::parse(network.DescribeBrief());
        }
        // The IPv4 hosts, then the IPv6 ones (named by "mac" or "duid").
        json hosts = json::array();
        for (const char* family : {"ipv4", "ipv6"})
            if (document.contains(family) && document[family].contains("dhcp"))
                for (const auto& h : document[family]["dhcp"].value("hosts", json::array()))
                    hosts.push_back(h);
        if (c.as_json) {
            std::cout << hosts.dump(2) << "\n";
            return 0;
        }
        std::size_t id_width = 19, ip_width = 17;
        for (const auto& h : hosts) {
            id_width = std::max(id_width, h.value("mac", h.value("duid", std::string())).size() + 2);
            ip_width = std::max(ip_width, h.value("ip", std::string()).size() + 2);
        }
        std::cout << column("MAC/DUID", id_width) << column("IP", ip_width) << "NAME\n";
        for (const auto& h : hosts)
            std::cout << column(h.value("mac", h.value("duid", std::string())), id_width) << column(h["ip"], ip_width)
                      << h.value("name", std::string("-")) << "\n";
        return 0;
    }
    if (verb == "remove") {
        need_args(args, 3, "host remove NET MAC|DUID");
        c.network(net).RemoveHost(args[2]);
        std::cout << "Static host " << args[2] << " removed from " << net << ".\n";
        return 0;
    }
    if (verb != "add") throw UsageError("unknown host command '" + verb + "' (add, remove or list)");
    if (args.size() != 4 && args.size() != 5) throw UsageError("usage: kvmnetctl host add NET MAC|DUID IP [NAME]");
    // A DHCPv6 client may be named by its DUID (longer than a MAC) instead.
    json host = {{args[2].size() > 17 ? "duid" : "mac", args[2]}, {"ip", args[3]}};
    if (args.size() == 5) host["name"] = args[4];
    c.network(net).AddHost(host.dump());
    std::cout << "Static host " << args[2] << " (" << args[3] << ") added to " << net << ".\n";
    return 0;
}

// ---- forwards -----------------------------------------------------------------

// "8080" or "8080-8090" as the document has it (a number or a string range).
json port_value(const std::string& text, const std::string& option)
{
    if (text.find('-') != std::string::npos) return text;
    return number(text, option);
}

int cmd_forward_add(Context& c, const std::vector<std::string>& args)
{
    const std::string& net = args[1];
    std::string document;
    json forward = json::object();
    std::size_t first_option = 2;
    // design.md's form: forward add NET PROTO HOSTPORT GUEST:GUESTPORT [options]
    // (an IPv6 guest as [ADDRESS]:PORT).
    if (args.size() >= 5 && args[2].rfind("--", 0) != 0) {
        forward["proto"] = args[2];
        forward["host_port"] = port_value(args[3], "HOSTPORT");
        const std::string& target = args[4];
        const auto colon = target.rfind(':');
        if (colon == std::string::npos || colon == 0 || colon + 1 == target.size())
            throw UsageError("expected GUEST:GUESTPORT (or [IPv6]:GUESTPORT), got '" + target + "'");
        std::string guest = target.substr(0, colon);
        if (guest.size() >= 2 && guest.front() == '[' && guest.back() == ']') guest = guest.substr(1, guest.size() - 2);
        forward["guest"] = guest;
        forward["guest_port"] = port_value(target.substr(colon + 1), "GUESTPORT");
        first_option = 5;
    }
    for (std::size_t i = first_option; i < args.size(); ++i) {
        const std::string& o = args[i];
        auto value = [&]() -> const std::string& {
            if (i + 1 >= args.size()) throw UsageError(o + " needs a value");
            return args[++i];
        };
        if (o == "--file")
            document = read_text(value());
        else if (o == "--proto")
            forward["proto"] = value();
        else if (o == "--host-port")
            forward["host_port"] = port_value(value(), o);
        else if (o == "--host-address")
            forward["host_address"] = value();
        else if (o == "--guest")
            forward["guest"] = value();
        else if (o == "--guest-port")
            forward["guest_port"] = port_value(value(), o);
        else if (o == "--description")
            forward["description"] = value();
        else if (o == "--rate") {
            // "5" or "5/s": new connections per second
            std::string rate = value();
            if (rate.size() > 2 && rate.compare(rate.size() - 2, 2, "/s") == 0) rate.resize(rate.size() - 2);
            forward["rate"] = number(rate, o);
        } else
            throw UsageError("unknown option " + o + " for forward add");
    }
    if (!document.empty() && !forward.empty()) throw UsageError("forward add: --file or options, not both");
    if (document.empty()) {
        if (forward.empty())
            throw UsageError("usage: kvmnetctl forward add NET --file FILE | --host-port PORT[-LAST] --guest ADDRESS "
                             "--guest-port PORT[-LAST] [options]");
        if (!forward.contains("proto")) forward["proto"] = "tcp";
        document = forward.dump();
    }
    const auto warnings = c.network(net).AddForwards(document);
    for (const std::string& w : warnings)
        std::cerr << "kvmnetctl: warning: " << w << "\n";
    std::cout << "Forward(s) added to " << net << ".\n";
    return 0;
}

int cmd_forward_remove(Context& c, const std::vector<std::string>& args)
{
    need_args(args, 4,
              "forward remove NET tcp|udp|both [ADDRESS:]PORT ([ADDRESS6]:PORT, [::]:PORT for every IPv6 address)");
    std::string where = args[3], address;
    if (const auto colon = where.rfind(':'); colon != std::string::npos) {
        address = where.substr(0, colon);
        where = where.substr(colon + 1);
    }
    if (address == "*") address.clear();
    // "[fd00::1]:8080", "[::]:8080" (every IPv6 address)
    if (address.size() >= 2 && address.front() == '[' && address.back() == ']')
        address = address.substr(1, address.size() - 2);
    c.network(args[1]).RemoveForward(args[2], address, static_cast<std::uint32_t>(number(where, "PORT")));
    std::cout << "Forward " << args[2] << " " << args[3] << " removed from " << args[1] << ".\n";
    return 0;
}

std::string port_text(const json& port) { return port.is_string() ? port.get<std::string>() : port.dump(); }

int cmd_forward_list(Context& c, const std::vector<std::string>& args)
{
    need_args(args, 2, "forward list NET");
    auto network = c.network(args[1]);
    const json forwards = all_pages(
        [&](const std::string& cursor, std::uint32_t limit) { return network.ListForwardsPage(cursor, limit); });
    if (c.as_json) {
        std::cout << forwards.dump(2) << "\n";
        return 0;
    }
    std::cout << column("PROTO", 6) << column("HOST", 24) << column("GUEST", 28) << column("RATE", 6)
              << column("CONNS", 9) << column("DROPPED", 9) << "DESCRIPTION\n";
    for (const auto& f : forwards) {
        // append, not operator+: g++ 12 at -O3 warns a false -Wrestrict on
        // "const char*" + std::string&& (GCC bug 105329).
        std::string host = f.value("host_address", std::string("*"));
        host.append(":").append(port_text(f["host_port"]));
        std::string guest = f["guest"].get<std::string>();
        if (f.contains("guest_address")) guest.append(" (").append(f["guest_address"].get<std::string>()).append(")");
        guest.append(":").append(port_text(f["guest_port"]));
        const auto counter = [&](const char* key) { return f.contains(key) ? f[key].dump() : std::string("-"); };
        std::cout << column(f["proto"], 6) << column(host, 24) << column(guest, 28)
                  << column(f.contains("rate") ? f["rate"].dump() + "/s" : "-", 6) << column(counter("connections"), 9)
                  << column(counter("dropped"), 9) << f.value("description", std::string()) << "\n";
    }
    return 0;
}

int cmd_forward(Context& c, const std::vector<std::string>& args)
{
    if (args.size() < 2) throw UsageError("usage: kvmnetctl forward add|remove|list NET ...");
    if (args[0] == "add") return cmd_forward_add(c, args);
    if (args[0] == "remove") return cmd_forward_remove(c, args);
    if (args[0] == "list") return cmd_forward_list(c, args);
    throw UsageError("unknown forward command '" + args[0] + "' (add, remove or list)");
}

int cmd_stats(Context& c, const std::vector<std::string>& args)
{
    need_args(args, 1, "stats NET");
    const json stats = json::parse(c.network(args[0]).Statistics());
    if (c.as_json) {
        std::cout << stats.dump(2) << "\n";
        return 0;
    }
    if (!stats["running"].get<bool>()) std::cout << "(not running: no counters)\n";
    const json& f = stats["forwards"];
    std::cout << "forwards: " << f["count"] << ", connections forwarded: " << f["connections"]
              << ", dropped over their rate: " << f["dropped"] << "\n";
    std::cout << column("PACKETS", 12) << column("BYTES", 14) << "RULE\n";
    for (const auto& r : stats["drops"])
        std::cout << column(r["packets"].dump(), 12) << column(r["bytes"].dump(), 14) << r["rule"].get<std::string>()
                  << "\n";
    return 0;
}

// Exit status 1 when a check fails, so scripts can use it as a health check.
int cmd_diagnose(Context& c, const std::vector<std::string>& args)
{
    need_args(args, 1, "diagnose NET");
    const json report = json::parse(c.network(args[0]).Diagnose());
    const bool failed = report["verdict"] == "fail";
    if (c.as_json) {
        std::cout << report.dump(2) << "\n";
        return failed ? 1 : 0;
    }
    std::cout << "network " << report["network"].get<std::string>() << ": " << report["state"].get<std::string>();
    const std::string reason = report["state_reason"].get<std::string>();
    if (!reason.empty()) std::cout << " (" << reason << ")";
    std::cout << "\n";
    for (const auto& check : report["checks"]) {
        std::string status = check["status"].get<std::string>();
        std::transform(status.begin(), status.end(), status.begin(), [](unsigned char ch) { return std::toupper(ch); });
        std::cout << column(status, 6) << column(check["check"].get<std::string>(), 18)
                  << check["detail"].get<std::string>() << "\n";
    }
    return failed ? 1 : 0;
}

// ---- monitor ----------------------------------------------------------------

// The kinds of event monitor prints (and --event selects), in --help's order.
const std::vector<std::string> monitor_events = {"NetworkAdded",  "NetworkRemoved", "PropertiesChanged",
                                                 "LeaseChanged",  "Repaired",       "MacConflict",
                                                 "DaemonStarted", "DaemonStopped"};

struct MonitorOptions {
    std::string network;              // empty: every network
    std::vector<std::string> events;  // empty: every kind
    unsigned long count = 0;          // 0: no limit
    unsigned long timeout_s = 0;      // 0: none
};

// Checked before any bus connection, so a usage error never waits for the bus.
MonitorOptions parse_monitor(const std::vector<std::string>& args)
{
    const std::string synopsis = "usage: kvmnetctl monitor [NET] [--event KIND]... [--count N] [--timeout SECONDS]";
    MonitorOptions o;
    bool have_network = false;
    for (std::size_t i = 0; i < args.size(); ++i) {
        const std::string& a = args[i];
        auto value = [&]() -> const std::string& {
            if (i + 1 >= args.size()) throw UsageError("monitor: " + a + " needs a value; " + synopsis);
            return args[++i];
        };
        if (a == "--event") {
            const std::string& kind = value();
            const auto known = std::find_if(monitor_events.begin(), monitor_events.end(), [&](const std::string& k) {
                return k.size() == kind.size() && std::equal(k.begin(), k.end(), kind.begin(), [](char x, char y) {
                           return std::tolower(static_cast<unsigned char>(x)) ==
                                  std::tolower(static_cast<unsigned char>(y));
                       });
            });
            if (known == monitor_events.end()) {
                std::string list;
                for (const auto& k : monitor_events)
                    list += (list.empty() ? "" : ", ") + k;
                throw UsageError("monitor: unknown event kind '" + kind + "' (kinds: " + list + ")");
            }
            o.events.push_back(*known);
        } else if (a == "--count") {
            o.count = number(value(), "--count");
            if (o.count == 0 || o.count > 1'000'000'000) throw UsageError("--count takes 1 to 1000000000 events");
        } else if (a == "--timeout") {
            o.timeout_s = number(value(), "--timeout");
            if (o.timeout_s == 0 || o.timeout_s > 31'536'000) throw UsageError("--timeout takes 1 to 31536000 seconds");
        } else if (a.rfind("-", 0) == 0 || have_network) {
            throw UsageError(synopsis);
        } else {
            o.network = a;
            have_network = true;
        }
    }
    return o;
}

// The time of an event: RFC 3339 UTC with milliseconds in JSON, as every
// time in kvmnet's JSON; local time (without the zone) for people reading text.
std::string now_text(bool as_json)
{
    timespec ts{};
    ::clock_gettime(CLOCK_REALTIME, &ts);
    if (as_json)
        return kvmnet::model::rfc3339_utc_ms(static_cast<std::int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000);
    std::tm local{};
    ::localtime_r(&ts.tv_sec, &local);
    char text[40];
    const std::size_t n = std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S", &local);
    std::snprintf(text + n, sizeof text - n, ".%03ld", ts.tv_nsec / 1000000);
    return text;
}

// The network name back from its object path (the daemon escapes every byte
// outside [A-Za-z0-9] as _XX).
std::string network_of(const std::string& path)
{
    const std::string prefix = "/org/kvmnet1/network/";
    if (path.rfind(prefix, 0) != 0) return path;
    std::string name;
    for (std::size_t i = prefix.size(); i < path.size(); ++i) {
        if (path[i] == '_' && i + 2 < path.size()) {
            name += static_cast<char>(std::stoi(path.substr(i + 1, 2), nullptr, 16));
            i += 2;
        } else {
            name += path[i];
        }
    }
    return name;
}

json variant_json(sdbus::Variant& v)
{
    const std::string type = v.peekValueType();
    if (type == "s") return v.get<std::string>();
    if (type == "b") return v.get<bool>();
    if (type == "u") return v.get<std::uint32_t>();
    if (type == "as") return v.get<std::vector<std::string>>();
    return "(" + type + ")";
}

class Monitor {
public:
    Monitor(sdbus::IConnection& bus, bool as_json, MonitorOptions options)
        : bus_(bus), as_json_(as_json), options_(std::move(options))
    {
    }

    // One event: printed as "TIME SIGNAL NETWORK DETAILS..." or, with --json,
    // as one JSON object per line, when the filters take it. The daemon's
    // own start and stop concern every network, so a NET filter keeps them.
    void event(const std::string& signal, const std::string& network, const json& fields,
               const std::vector<std::string>& words)
    {
        if (done_) return;
        if (!options_.network.empty() && !network.empty() && network != options_.network) return;
        if (!options_.events.empty() &&
            std::find(options_.events.begin(), options_.events.end(), signal) == options_.events.end())
            return;
        if (as_json_) {
            json line = {{"time", now_text(true)}, {"signal", signal}};
            if (!network.empty()) line["network"] = network;
            for (const auto& [key, value] : fields.items())
                line[key] = value;
            std::cout << line.dump() << std::endl;
        } else {
            std::cout << now_text(false) << " " << signal;
            if (!network.empty()) std::cout << " " << network;
            for (const auto& w : words)
                std::cout << " " << w;
            std::cout << std::endl;
        }
        ++printed_;
        if (options_.count != 0 && printed_ >= options_.count) {
            done_ = true;
            bus_.leaveEventLoop();
        }
    }

    void on_signal(sdbus::Message& m);

    // Until SIGINT/SIGTERM, --count events or --timeout; the exit status.
    int run();

private:
    sdbus::IConnection& bus_;
    const bool as_json_;
    const MonitorOptions options_;
    bool done_ = false;  // only touched on the event loop's thread
    std::atomic<unsigned long> printed_{0};
    std::atomic<bool> timed_out_{false};
};

void Monitor::on_signal(sdbus::Message& m)
{
    const std::string iface = m.getInterfaceName(), member = m.getMemberName(), path = m.getPath();
    if (iface == "org.freedesktop.DBus" && member == "NameOwnerChanged") {
        std::string name, old_owner, new_owner;
        m >> name >> old_owner >> new_owner;
        if (name != bus_name) return;
        const std::string what = new_owner.empty() ? "DaemonStopped" : "DaemonStarted";
        event(what, "", json::object(), {});
    } else if (iface == "org.kvmnet1.Manager" && (member == "NetworkAdded" || member == "NetworkRemoved")) {
        std::string name;
        sdbus::ObjectPath object;
        m >> name >> object;
        event(member, name, json::object(), {});
    } else if (iface == "org.freedesktop.DBus.Properties" && member == "PropertiesChanged") {
        std::string changed_iface;
        std::map<std::string, sdbus::Variant> changed;
        std::vector<std::string> invalidated;
        m >> changed_iface >> changed >> invalidated;
        if (changed_iface != "org.kvmnet1.Network") return;
        json fields = json::object();
        std::vector<std::string> words;
        for (auto& [property, value] : changed) {
            fields[property] = variant_json(value);
            words.push_back(property + "=" + fields[property].dump());
        }
        for (const auto& property : invalidated)
            words.push_back(property + " (invalidated)");
        event("PropertiesChanged", network_of(path), {{"properties", fields}}, words);
    } else if (iface == "org.kvmnet1.Network" && member == "LeaseChanged") {
        std::string what, mac, ip, hostname;
        m >> what >> mac >> ip >> hostname;
        event(member, network_of(path), {{"event", what}, {"mac", mac}, {"ip", ip}, {"hostname", hostname}},
              {what, mac, ip, hostname.empty() ? "-" : hostname});
    } else if (iface == "org.kvmnet1.Network" && member == "Repaired") {
        std::string what, detail;
        m >> what >> detail;
        event(member, network_of(path), {{"what", what}, {"detail", detail}}, {what, detail});
    } else if (iface == "org.kvmnet1.Network" && member == "MacConflict") {
        std::string mac;
        std::vector<std::string> ports;
        m >> mac >> ports;
        std::string joined;
        for (const auto& p : ports)
            joined += (joined.empty() ? "" : ",") + p;
        event(member, network_of(path), {{"mac", mac}, {"ports", ports}}, {mac, joined});
    }
}

// Subscribes to the daemon's signals and prints them. A bus match (rather
// than per-object proxies) also covers networks created after the monitor
// started, and survives a daemon restart.
int Monitor::run()
{
    auto handler = [this](sdbus::Message& m) {
        try {
            on_signal(m);
        } catch (const std::exception& e) {
            std::cerr << "kvmnetctl: monitor: cannot decode " << m.getMemberName() << ": " << e.what() << std::endl;
        }
    };
    auto daemon_slot = bus_.addMatch("type='signal',sender='org.kvmnet1',path_namespace='/org/kvmnet1'", handler);
    auto owner_slot = bus_.addMatch("type='signal',sender='org.freedesktop.DBus',interface='org.freedesktop.DBus',"
                                    "member='NameOwnerChanged',arg0='org.kvmnet1'",
                                    handler);
    if (!as_json_)
        std::cout << "Monitoring kvmnetd signals"
                  << (options_.network.empty() ? "" : " about network " + options_.network) << "; Ctrl-C stops."
                  << std::endl;
    // SIGINT and SIGTERM are blocked (see main) and taken here by a thread
    // that ends the event loop, so the exit is a clean one with status 0;
    // the same thread ends it at the --timeout.
    std::thread waiter([this] {
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGINT);
        sigaddset(&set, SIGTERM);
        if (options_.timeout_s == 0) {
            int sig = 0;
            ::sigwait(&set, &sig);
        } else {
            timespec left{static_cast<time_t>(options_.timeout_s), 0};
            timespec start{};
            ::clock_gettime(CLOCK_MONOTONIC, &start);
            for (;;) {
                if (::sigtimedwait(&set, nullptr, &left) >= 0) break;
                if (errno == EAGAIN) {
                    timed_out_ = true;
                    break;
                }
                // EINTR (a signal we do not wait for, e.g. SIGSTOP/SIGCONT): wait out the rest.
                timespec now{};
                ::clock_gettime(CLOCK_MONOTONIC, &now);
                const std::int64_t spent_ns =
                    (now.tv_sec - start.tv_sec) * 1'000'000'000LL + (now.tv_nsec - start.tv_nsec);
                const std::int64_t left_ns = static_cast<std::int64_t>(options_.timeout_s) * 1'000'000'000LL - spent_ns;
                if (left_ns <= 0) {
                    timed_out_ = true;
                    break;
                }
                left = {static_cast<time_t>(left_ns / 1'000'000'000LL), static_cast<long>(left_ns % 1'000'000'000LL)};
            }
        }
        bus_.leaveEventLoop();
    });
    waiter.detach();
    bus_.enterEventLoop();
    // --count reached: 0. The timeout first: 0 if events came and no count
    // was asked for, else 1 (nothing happened, or fewer than --count).
    if (options_.count != 0 && printed_ >= options_.count) return 0;
    if (timed_out_) return options_.count == 0 && printed_ > 0 ? 0 : 1;
    return 0;
}

// ---- polkit agent -------------------------------------------------------------

// The verbs that call a changing (polkit-checked) method.
bool changes_something(const std::string& command, const std::vector<std::string>& args)
{
    static const std::vector<std::string> changing = {"create", "start",     "confirm", "stop",
                                                      "delete", "autostart", "set",     "reload"};
    if (std::find(changing.begin(), changing.end(), command) != changing.end()) return true;
    const std::string sub = args.empty() ? "" : args.front();
    if (command == "host") return sub != "list";
    if (command == "port") return sub == "attach" || sub == "detach";
    if (command == "forward") return sub == "add" || sub == "remove";
    if (command == "import-libvirt") return std::find(args.begin(), args.end(), "--dry-run") == args.end();
    return false;
}

// kvmnetctl's own text-mode polkit agent, as systemctl and pkexec run one:
// polkit asks only an agent registered for the caller's process or its
// login session, so a pkttyagent started from another shell is never asked.
// pkttyagent registers for this process and closes the notify pipe once
// registered (or exits on failure, which closes it too).
// In a logind session it is started with --fallback, so that a session's
// own agent (a desktop's dialog) is preferred, as systemctl does. Outside
// one (ssh without pam_systemd, su, a container without logind) it is not:
// polkit (122) looks a fallback agent up only through the caller's session,
// so without a session a fallback agent is never asked.
class PolkitAgent {
public:
    PolkitAgent() = default;
    PolkitAgent(const PolkitAgent&) = delete;
    PolkitAgent& operator=(const PolkitAgent&) = delete;
    ~PolkitAgent() { close(); }

    void open()
    {
        int notify[2];
        if (::pipe2(notify, O_CLOEXEC) != 0) {
            std::cerr << "kvmnetctl: cannot start the polkit agent: pipe: " << std::strerror(errno) << "\n";
            return;
        }
        const pid_t parent = ::getpid();
        char* session = nullptr;
        const bool in_session = sd_pid_get_session(0, &session) >= 0;
        std::free(session);
        pid_ = ::fork();
        if (pid_ < 0) {
            std::cerr << "kvmnetctl: cannot start the polkit agent: fork: " << std::strerror(errno) << "\n";
            ::close(notify[0]);
            ::close(notify[1]);
            return;
        }
        if (pid_ == 0) {
            // The agent must not outlive kvmnetctl, even when it is killed.
            ::prctl(PR_SET_PDEATHSIG, SIGTERM);
            if (::getppid() != parent) ::_exit(0);
            ::fcntl(notify[1], F_SETFD, 0);
            const std::string process = std::to_string(parent), fd = std::to_string(notify[1]);
            ::execlp("pkttyagent", "pkttyagent", "--process", process.c_str(), "--notify-fd", fd.c_str(),
                     in_session ? "--fallback" : static_cast<char*>(nullptr), static_cast<char*>(nullptr));
            const std::string message =
                std::string("kvmnetctl: cannot run pkttyagent (polkit's text agent): ") + std::strerror(errno) + "\n";
            [[maybe_unused]] const auto written = ::write(STDERR_FILENO, message.data(), message.size());
            ::_exit(127);
        }
        ::close(notify[1]);
        // Wait until the agent is registered (or gone) before calling: polkit
        // asks only an agent that is registered when the question arrives.
        pollfd p{notify[0], 0, 0};
        while (::poll(&p, 1, -1) < 0 && errno == EINTR) {
        }
        ::close(notify[0]);
    }

    void close()
    {
        if (pid_ <= 0) return;
        ::kill(pid_, SIGTERM);
        while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
        }
        pid_ = -1;
    }

private:
    pid_t pid_ = -1;
};

// Sets the D-Bus ALLOW_INTERACTIVE_AUTHORIZATION header flag on every call
// this connection makes: the daemon lets polkit ask for a password only
// then. (The changing methods' own timeout, 330 s, already allows for the
// dialog: their Method.Timeout annotation.) sdbus-c++ 1.2 exposes neither
// the flag nor the sd_bus; the sd_bus is reached through a message.
void allow_interactive_authorization(ManagerProxy& manager)
{
    const auto probe = manager.proxy().createMethodCall("org.freedesktop.DBus.Peer", "Ping");
    if (sd_bus* bus = sd_bus_message_get_bus(kvmnet::dbus::raw_message(probe)))
        sd_bus_set_allow_interactive_authorization(bus, 1);
}

std::string error_kind(const std::string& dbus_name)
{
    const std::string prefix = "org.kvmnet1.Error.";
    if (dbus_name.rfind(prefix, 0) == 0) return dbus_name.substr(prefix.size());
    if (dbus_name == "org.freedesktop.DBus.Error.AccessDenied") return "AccessDenied";
    if (dbus_name == "org.freedesktop.DBus.Error.ServiceUnknown" ||
        dbus_name == "org.freedesktop.DBus.Error.NameHasNoOwner")
        return "Unavailable";
    // A network object vanishes when the network is deleted between the
    // GetNetwork that found it and the call on it.
    if (dbus_name == "org.freedesktop.DBus.Error.UnknownObject") return "NotFound";
    return dbus_name;
}

// "Unknown object '/org/kvmnet1/network/a_2db'." -> "no network named 'a-b' ...":
// the daemon's own NotFound wording, the name unescaped (_XX is byte 0xXX).
std::string vanished_object_message(const std::string& message)
{
    const std::string prefix = "/org/kvmnet1/network/";
    const auto start = message.find(prefix);
    const auto end = start == std::string::npos ? start : message.find('\'', start);
    if (end == std::string::npos) return message;
    const std::string escaped = message.substr(start + prefix.size(), end - start - prefix.size());
    std::string name;
    for (std::size_t i = 0; i < escaped.size(); ++i) {
        if (escaped[i] == '_' && i + 2 < escaped.size() && std::isxdigit(static_cast<unsigned char>(escaped[i + 1])) &&
            std::isxdigit(static_cast<unsigned char>(escaped[i + 2]))) {
            name += static_cast<char>(std::stoi(escaped.substr(i + 1, 2), nullptr, 16));
            i += 2;
        } else {
            name += escaped[i];
        }
    }
    return "no network named '" + name + "' (it was deleted while kvmnetctl was using it)";
}

}  // namespace

int main(int argc, char** argv)
{
    std::vector<std::string> args;
    bool as_json = false, ask_password = true;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--json")
            as_json = true;
        else if (a == "--no-ask-password")
            ask_password = false;
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
    static const std::vector<std::string> commands = {
        "list",   "show", "create",  "start",   "stop",  "delete",   "autostart", "confirm", "set",   "port",
        "leases", "host", "monitor", "forward", "stats", "diagnose", "reload",    "export",  "unset", "edit"};
    if (command != "import-libvirt" && std::find(commands.begin(), commands.end(), command) == commands.end()) {
        std::cerr << "kvmnetctl: unknown command '" << command << "' (see kvmnetctl --help)\n";
        return 2;
    }
    if (command == "monitor") {
        // Blocked before any thread exists, so only the monitor's waiter takes them.
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGINT);
        sigaddset(&set, SIGTERM);
        ::pthread_sigmask(SIG_BLOCK, &set, nullptr);
    }
    // Only a caller that may need polkit's authorization, and only with a
    // terminal to ask on (stdin: this is about input); root never needs it.
    const bool may_ask = ask_password && changes_something(command, args) && ::geteuid() != 0;
    PolkitAgent agent;
    if (may_ask && ::isatty(STDIN_FILENO)) agent.open();
    try {
        if (command == "import-libvirt") return kvmnet::cli::import_libvirt(args, ask_password);
        MonitorOptions monitor_options;
        if (command == "monitor") monitor_options = parse_monitor(args);
        auto bus = sdbus::createSystemBusConnection();
        if (command == "monitor") return Monitor(*bus, as_json, monitor_options).run();
        Context c{*bus, ManagerProxy(*bus), as_json};
        // As systemctl: interactive authorization is allowed unless
        // --no-ask-password, also without a terminal (a desktop session's
        // agent may ask); polkit answers at once when no agent is there.
        if (ask_password) allow_interactive_authorization(c.manager);
        if (command == "list") return cmd_list(c, args);
        if (command == "show") return cmd_show(c, args);
        if (command == "create") return cmd_create(c, args);
        if (command == "start") return cmd_start(c, args);
        if (command == "confirm") return cmd_confirm(c, args);
        if (command == "set") return cmd_set(c, args);
        if (command == "unset") return cmd_unset(c, args);
        if (command == "export") return cmd_export(c, args);
        if (command == "edit") return cmd_edit(c, args);
        if (command == "port") return cmd_port(c, args);
        if (command == "leases") return cmd_leases(c, args);
        if (command == "host") return cmd_host(c, args);
        if (command == "forward") return cmd_forward(c, args);
        if (command == "stats") return cmd_stats(c, args);
        if (command == "diagnose") return cmd_diagnose(c, args);
        if (command == "reload") return cmd_reload(c, args);
        if (command == "stop" || command == "delete") return cmd_simple(c, command, args);
        if (command == "autostart") return cmd_autostart(c, args);
        throw UsageError("unknown command '" + command + "'");
    } catch (const UsageError& e) {
        std::cerr << "kvmnetctl: " << e.what() << "\n";
        return 2;
    } catch (const sdbus::Error& e) {
        const std::string kind = error_kind(e.getName());
        std::string message = e.getMessage();
        if (kind == "Unavailable") message = "kvmnetd is not running or not reachable on the bus (" + message + ")";
        if (kind == "NotFound" && e.getName() == "org.freedesktop.DBus.Error.UnknownObject")
            message = vanished_object_message(message);
        std::cerr << "kvmnetctl: " << kind << ": " << message << "\n";
        return 1;
    } catch (const std::exception& e) {
        std::cerr << "kvmnetctl: " << e.what() << "\n";
        return 1;
    }
}
