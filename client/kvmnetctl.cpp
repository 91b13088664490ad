// kvmnetctl: the command-line client of kvmnetd. A thin layer over the
// org.kvmnet1 D-Bus API: it builds documents from options, calls one method
// and prints the answer as a table or, with --json, as JSON.
//
// The command line is parsed by CLI11 before anything touches the bus:
// each verb is a subcommand with typed options, so a usage error (exit 2)
// never waits for the daemon, and a value is never taken for an option.
#include "doc_path.hpp"
#include "forward_call.hpp"
#include "forward_file.hpp"
#include "import_libvirt.hpp"
#include "model/time_text.hpp"
#include "org.kvmnet1.Manager-proxy.h"
#include "org.kvmnet1.Network-proxy.h"
#include "output.hpp"
#include "overlay_text.hpp"
#include "sdbus_raw.hpp"

#include <systemd/sd-login.h>

#include <CLI/CLI.hpp>
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
    sdbus::IProxy& proxy() { return getProxy(); }

private:
    void onMacConflict(const std::string&, const std::vector<std::string>&) override {}
    void onLeaseChanged(const std::string&, const std::string&, const std::string&, const std::string&) override {}
    void onRepaired(const std::string&, const std::string&) override {}
    void onOverlayChanged(const std::string&, const std::string&) override {}
};

// The options every verb takes (before or after it).
struct Globals {
    bool as_json = false;
    bool ask_password = true;
    kvmnet::client::TableStyle style;
};

struct Context {
    sdbus::IConnection& bus;
    ManagerProxy manager;
    bool as_json = false;
    kvmnet::client::TableStyle style;

    NetworkProxy network(const std::string& name) { return NetworkProxy(bus, manager.GetNetwork(name)); }
};

// The columns of each table verb, for -o (checked before the bus) and printing.
using kvmnet::client::Column;
using kvmnet::client::overlay_config_text;
using kvmnet::client::overlay_status_text;
using kvmnet::client::overlay_summary_lines;
const std::vector<Column> list_columns = {
    {"name", "NAME"},     {"mode", "MODE"}, {"state", "STATE"},      {"autostart", "AUTOSTART"},
    {"bridge", "BRIDGE"}, {"ipv4", "IPV4"}, {"ipv6", "IPV6", false}, {"state_reason", "REASON", false}};
const std::vector<Column> port_columns = {{"port", "PORT"},
                                          {"state", "STATE"},
                                          {"mac", "MAC"},
                                          {"options", "OPTIONS"},
                                          {"rx_bytes", "RX BYTES"},
                                          {"tx_bytes", "TX BYTES"},
                                          {"problem", "PROBLEM", false}};
const std::vector<Column> lease_columns = {{"mac", "MAC"},
                                           {"ip", "IP"},
                                           {"hostname", "HOSTNAME"},
                                           {"type", "TYPE"},
                                           {"expires", "EXPIRES"},
                                           {"family", "FAMILY", false},
                                           {"expires_at", "EXPIRES AT", false},
                                           {"vtep", "VTEP", false}};
// "mac" holds a DHCPv6 host's DUID when it has no MAC.
const std::vector<Column> host_columns = {{"mac", "MAC/DUID"}, {"ip", "IP"}, {"name", "NAME"}};
const std::vector<Column> forward_columns = {{"proto", "PROTO"},
                                             {"host", "HOST"},
                                             {"guest", "GUEST"},
                                             {"rate", "RATE"},
                                             {"conns", "CONNS"},
                                             {"dropped", "DROPPED"},
                                             {"description", "DESCRIPTION"}};
const std::vector<Column> drop_columns = {
    {"packets", "PACKETS"}, {"bytes", "BYTES"}, {"rule", "RULE"}, {"chain", "CHAIN", false}};

void print_table(const Context& c, const std::vector<Column>& columns,
                 const std::vector<std::vector<std::string>>& rows, const std::vector<std::string>& notes = {})
{
    kvmnet::client::print_table(std::cout, columns, rows, c.style, notes);
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
// The options of `create NET --mode ...`; each one given sets the document
// field of its name, and the daemon validates the result.
struct CreateOptions {
    std::string file;
    std::string mode, bridge, ipv4, uplink, domain, ipv6, stp, multicast_snooping;
    unsigned mtu = 0, forward_delay = 0, hello_time = 0, max_age = 0, priority = 0;
    bool autostart = false, nat66 = false, no_ra = false, fast_path = false;
    std::vector<std::string> dhcp_ranges, dhcp_hosts, forwarders, ipv6_ranges;
    unsigned vni = 0;
    std::string overlay_local, overlay_local_interface, dhcp_slice;
    std::vector<std::string> peers;
    CLI::App* app = nullptr;            // which options were given: app->count("--mtu")
    std::vector<CLI::Option*> options;  // all but --file

    bool given(const char* option) const { return app->count(option) > 0; }
};

std::string document_from_options(const std::string& name, const CreateOptions& o)
{
    json doc = {{"name", name}};
    if (o.mode.empty()) throw UsageError("create needs --file FILE or --mode MODE");
    doc["mode"] = o.mode;
    if (o.given("--bridge")) doc["bridge"] = o.bridge;
    if (o.given("--ipv4")) doc["ipv4"]["address"] = o.ipv4;
    if (o.given("--uplink")) doc["uplink"] = o.uplink;
    if (o.given("--mtu")) doc["mtu"] = o.mtu;
    if (o.given("--stp")) doc["stp"] = on_off(o.stp, "--stp");
    if (o.given("--forward-delay")) doc["forward_delay"] = o.forward_delay;
    if (o.given("--hello-time")) doc["hello_time"] = o.hello_time;
    if (o.given("--max-age")) doc["max_age"] = o.max_age;
    if (o.given("--priority")) doc["priority"] = o.priority;
    if (o.given("--multicast-snooping"))
        doc["multicast_snooping"] = on_off(o.multicast_snooping, "--multicast-snooping");
    if (o.autostart) doc["autostart"] = true;
    if (o.fast_path) doc["fast_path"] = true;
    if (o.given("--domain")) doc["dns"]["domain"] = o.domain;
    for (const auto& f : o.forwarders)
        doc["dns"]["forwarders"].push_back(f);
    if (o.given("--ipv6")) doc["ipv6"]["address"] = o.ipv6;
    for (const auto& r : o.ipv6_ranges)
        doc["ipv6"]["dhcp"]["ranges"].push_back(r);
    if (o.nat66) doc["ipv6"]["nat66"] = true;
    if (o.no_ra) doc["ipv6"]["ra"] = false;
    if (!o.dhcp_ranges.empty() || !o.dhcp_hosts.empty()) {
        if (!doc.contains("ipv4")) throw UsageError("--dhcp-range and --dhcp-host need --ipv4");
        json hosts = json::array();
        for (const auto& text : o.dhcp_hosts) {
            std::vector<std::string> parts;
            std::stringstream s(text);
            for (std::string part; std::getline(s, part, ',');)
                parts.push_back(part);
            if (parts.size() < 2 || parts.size() > 3) throw UsageError("--dhcp-host takes MAC,IP[,NAME]");
            json host = {{"mac", parts[0]}, {"ip", parts[1]}};
            if (parts.size() == 3) host["name"] = parts[2];
            hosts.push_back(host);
        }
        doc["ipv4"]["dhcp"] = {{"ranges", o.dhcp_ranges}, {"hosts", hosts}};
    }
    if (o.given("--vni")) doc["overlay"]["vni"] = o.vni;
    if (o.given("--local")) doc["overlay"]["local"] = o.overlay_local;
    if (o.given("--local-interface")) doc["overlay"]["local_interface"] = o.overlay_local_interface;
    for (const auto& p : o.peers)
        doc["overlay"]["peers"].push_back(p);
    if (o.given("--dhcp-slice")) {
        const auto slash = o.dhcp_slice.find('/');
        if (slash == std::string::npos) throw UsageError("--dhcp-slice takes INDEX/COUNT, e.g. 0/3");
        doc["overlay"]["dhcp_slice"] = {{"index", number(o.dhcp_slice.substr(0, slash), "--dhcp-slice")},
                                        {"count", number(o.dhcp_slice.substr(slash + 1), "--dhcp-slice")}};
    }
    if (doc.contains("overlay") && !doc["overlay"].contains("vni"))
        throw UsageError("--local, --local-interface, --peer and --dhcp-slice need --vni");
    return doc.dump();
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

int cmd_list(Context& c)
{
    const json all = json::parse(c.manager.DescribeBrief());
    if (c.as_json) {
        json networks = json::array();
        for (const auto& n : all["networks"])
            networks.push_back(kvmnet::client::with_nulls(n, {"ipv4", "ipv6"}));
        std::cout << networks.dump(2) << "\n";
        return 0;
    }
    std::vector<std::vector<std::string>> rows;
    for (const auto& n : all["networks"]) {
        const auto address = [&](const char* family) {
            return n.contains(family) ? n[family]["address"].get<std::string>() : std::string();
        };
        rows.push_back({n["name"], n["mode"], n["state"], n["autostart"].get<bool>() ? "yes" : "no", n["bridge"],
                        address("ipv4"), address("ipv6"), n.value("state_reason", std::string())});
    }
    print_table(c, list_columns, rows);
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
int cmd_show(Context& c, const std::string& net)
{
    auto network = c.network(net);
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
    // No repair yet: null, as every absent value in kvmnetctl's JSON.
    const std::string last_repair = network.LastRepair();
    json status = {{"revision", exported.revision},
                   {"state", network.State()},
                   {"state_reason", network.StateReason()},
                   {"dnsmasq", network.Dnsmasq()},
                   {"awaiting_confirmation", network.AwaitingConfirmation()},
                   {"last_repair", last_repair.empty() ? json() : json(last_repair)}};
    if (exported.document.contains("overlay")) {
        try {
            status["overlay"] = json::parse(network.OverlayStatus());
        } catch (const sdbus::Error& e) {
            // A daemon older than the method: show the rest.
            if (e.getName() != "org.freedesktop.DBus.Error.UnknownMethod") throw;
        }
    }
    if (c.as_json) {
        std::cout << json{{"config", exported.document}, {"status", status}}.dump(2) << "\n";
        return 0;
    }
    const json& n = exported.document;
    auto row = [](const std::string& key, const std::string& value) {
        std::cout << "  " << std::left << std::setw(15) << (key + ":") << value << "\n";
    };
    std::cout << "Config (revision " << exported.revision << "; `kvmnetctl export " << net << "` prints it as JSON):\n";
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
    if (n.value("fast_path", false)) row("Fast path", "flowtable");
    if (n.contains("overlay")) row("Overlay", overlay_config_text(n["overlay"]));
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
    if (status["last_repair"].is_string()) row("Last repair", status["last_repair"]);
    if (status.contains("overlay"))
        for (const std::string& line : overlay_summary_lines(status["overlay"]))
            row("Overlay", line);
    return 0;
}

// export NET: exactly what `create NET --file` takes.
int cmd_export(Context& c, const std::string& net)
{
    auto network = c.network(net);
    std::cout << export_document(network).document.dump(2) << "\n";
    return 0;
}

// create NET --file FILE: the file's document, named NET. Read before the
// bus, so a file that cannot be read is a usage error.
std::string document_from_file(const std::string& name, const std::string& file)
{
    std::string document = read_text(file);
    json doc = json::parse(document, nullptr, false);
    // Syntax errors are left to the daemon, which reports them the same
    // way for every client; only the name is settled here.
    // The argument names the network, whatever the document says, so an
    // export can be created again under another name.
    if (doc.is_object()) {
        doc["name"] = name;
        document = doc.dump();
    }
    return document;
}

int cmd_create(Context& c, const std::string& name, const std::string& document)
{
    c.manager.CreateNetwork(document);
    std::cout << "Network " << name << " created.\n";
    return 0;
}

int cmd_start(Context& c, const std::string& net, unsigned timeout)
{
    if (timeout != 0) {
        c.network(net).StartWithConfirmation(timeout);
        std::cout << "Network " << net << " started; run `kvmnetctl confirm " << net << "` within " << timeout
                  << " s or it is rolled back.\n";
        return 0;
    }
    c.network(net).Start();
    std::cout << "Network " << net << " started.\n";
    return 0;
}

int cmd_confirm(Context& c, const std::string& net)
{
    c.network(net).Confirm();
    std::cout << "Network " << net << " confirmed.\n";
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
// set NET PATH=VALUE|PATH+=VALUE...: merged into the document
// (client/doc_path.hpp), all in one revision-checked Update. The
// assignments are parsed before the bus (usage errors).
std::vector<kvmnet::client::Assignment> parse_assignments(const std::vector<std::string>& items)
{
    std::vector<kvmnet::client::Assignment> assignments;
    for (const auto& item : items) {
        try {
            assignments.push_back(kvmnet::client::parse_assignment(item));
        } catch (const kvmnet::client::PathError& e) {
            throw UsageError(e.what());
        }
        refuse_identity(assignments.back().path);
    }
    return assignments;
}

int cmd_set(Context& c, const std::string& net, const std::vector<kvmnet::client::Assignment>& assignments)
{
    auto network = c.network(net);
    edit_document(network, [&](json& doc) {
        for (const auto& a : assignments) {
            if (a.append)
                kvmnet::client::append_path(doc, a.path, a.value);
            else
                kvmnet::client::set_path(doc, a.path, a.value);
        }
    });
    std::cout << "Network " << net << " updated.\n";
    return 0;
}

void check_unset_paths(const std::vector<std::string>& paths)
{
    for (const auto& path : paths) {
        try {
            refuse_identity(path);
        } catch (const kvmnet::client::PathError& e) {
            throw UsageError(e.what());
        }
    }
}

// unset NET PATH...: removes fields or array elements.
int cmd_unset(Context& c, const std::string& net, const std::vector<std::string>& paths)
{
    auto network = c.network(net);
    edit_document(network, [&](json& doc) {
        for (const auto& path : paths)
            kvmnet::client::unset_path(doc, path);
    });
    std::cout << "Network " << net << " updated.\n";
    return 0;
}

// edit NET: $EDITOR (else vi) on the export, then one UpdateIfRevision. On
// any failure the network is unchanged and the edited text stays in the
// temporary file, named in the message, for another try.
int cmd_edit(Context& c, const std::string& net)
{
    auto network = c.network(net);
    const Exported before = export_document(network);
    const std::string original = before.document.dump(2) + "\n";
    const char* tmpdir = std::getenv("TMPDIR");
    std::string path = std::string(tmpdir && *tmpdir ? tmpdir : "/tmp") + "/kvmnetctl-edit-" + net + "-XXXXXX.json";
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
        std::cerr << "kvmnetctl: " << why << "\nkvmnetctl: network " << net
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
        std::cout << "Network " << net << " unchanged.\n";
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
    std::cout << "Network " << net << " updated.\n";
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

// The port of `port attach`, built before the bus.
struct PortOptions {
    std::string ifname, owner, mac, inbound, outbound;
    bool tap = false, isolated = false;
    unsigned vlan = 0, queues = 0;
    std::vector<unsigned> vlan_tagged;
    CLI::App* app = nullptr;
};

json port_document(const PortOptions& o)
{
    json port = {{"name", o.ifname}};
    if (o.tap) port["tap"] = true;
    if (o.app->count("--owner")) {
        const auto colon = o.owner.find(':');
        port["owner"] = number(o.owner.substr(0, colon), "--owner");
        port["group"] = colon == std::string::npos ? port["owner"] : json(number(o.owner.substr(colon + 1), "--owner"));
    }
    // Range and the need for --tap are the daemon's to check, so the CLI and D-Bus say the same.
    if (o.app->count("--queues")) port["queues"] = o.queues;
    if (o.app->count("--mac")) port["mac"] = o.mac;
    if (o.isolated) port["isolated"] = true;
    if (o.app->count("--vlan")) port["vlan"]["pvid"] = o.vlan;
    if (o.app->count("--vlan-tagged")) port["vlan"]["tagged"] = o.vlan_tagged;
    json bandwidth = json::object();
    if (o.app->count("--inbound")) bandwidth["inbound"] = rate(o.inbound, "--inbound");
    if (o.app->count("--outbound")) bandwidth["outbound"] = rate(o.outbound, "--outbound");
    if (!bandwidth.empty()) port["bandwidth"] = bandwidth;
    return port;
}

int cmd_port_list(Context& c, const std::string& net)
{
    auto network = c.network(net);
    const json ports =
        all_pages([&](const std::string& cursor, std::uint32_t limit) { return network.ListPortsPage(cursor, limit); });
    if (c.as_json) {
        json shaped = json::array();
        for (const auto& p : ports)
            shaped.push_back(kvmnet::client::with_nulls(p, {"mac", "problem", "host_mac", "rx_bytes", "tx_bytes",
                                                            "rx_packets", "tx_packets", "vlan", "bandwidth", "queues",
                                                            "multi_queue", "open_queues"}));
        std::cout << shaped.dump(2) << "\n";
        return 0;
    }
    std::vector<std::vector<std::string>> rows;
    std::vector<std::string> notes;
    for (const auto& p : ports) {
        std::string options;
        const auto add = [&](const std::string& word) { options += (options.empty() ? "" : " ") + word; };
        if (p.value("tap", false)) add("tap(uid " + std::to_string(p.value("owner", 0u)) + ")");
        // The configured queues, and how many QEMU has open, as the kernel counts them.
        if (p.value("queues", 1u) > 1)
            add(std::string("queues ")
                    .append(std::to_string(p.value("queues", 1u)))
                    .append("(")
                    .append(std::to_string(p.value("open_queues", 0u)))
                    .append(" open")
                    .append(p.value("multi_queue", true) ? "" : ", tap not multiqueue")
                    .append(")"));
        if (p.value("isolated", false)) add("isolated");
        if (p.contains("vlan")) add("vlan");
        if (p.contains("bandwidth")) add("limited");
        rows.push_back({p["name"], p["state"], p.value("mac", std::string()), options,
                        std::to_string(p.value("rx_bytes", 0ull)), std::to_string(p.value("tx_bytes", 0ull)),
                        p.value("problem", std::string())});
        notes.push_back(p.contains("problem") ? "  problem: " + p["problem"].get<std::string>() : std::string());
    }
    print_table(c, port_columns, rows, notes);
    return 0;
}

int cmd_port_detach(Context& c, const std::string& net, const std::string& ifname)
{
    c.network(net).DetachPort(ifname);
    std::cout << "Port " << ifname << " detached from " << net << ".\n";
    return 0;
}

int cmd_port_attach(Context& c, const std::string& net, const json& port)
{
    c.network(net).AttachPort(port.dump());
    std::cout << "Port " << port["name"].get<std::string>() << " attached to " << net << ".\n";
    return 0;
}

int cmd_stop(Context& c, const std::string& net)
{
    c.network(net).Stop();
    std::cout << "Network " << net << " stopped.\n";
    return 0;
}

int cmd_delete(Context& c, const std::string& net)
{
    c.manager.DeleteNetwork(net);
    std::cout << "Network " << net << " deleted.\n";
    return 0;
}

int cmd_reload(Context& c)
{
    c.manager.Reload();
    std::cout << "Stored networks reloaded.\n";
    return 0;
}

int cmd_autostart(Context& c, const std::string& net, bool on)
{
    c.network(net).SetAutostart(on);
    std::cout << "Network " << net << " will " << (on ? "" : "not ") << "start with the daemon.\n";
    return 0;
}

int cmd_leases(Context& c, const std::string& net)
{
    auto network = c.network(net);
    const json leases =
        all_pages([&](const std::string& cursor, std::uint32_t limit) { return network.LeasesPage(cursor, limit); });
    if (c.as_json) {
        json shaped = json::array();
        for (const auto& l : leases)
            shaped.push_back(kvmnet::client::with_nulls(
                l, {"mac", "hostname", "type", "family", "expires_at", "iaid", "duid", "vtep"}));
        std::cout << shaped.dump(2) << "\n";
        return 0;
    }
    std::vector<std::vector<std::string>> rows;
    for (const auto& l : leases) {
        // Another host's guest (EVPN): its lease is that host's.
        const bool remote = l.value("type", std::string()) == "remote";
        std::string expires = remote ? "" : "never";
        if (const std::time_t when = l.value("expiry", std::int64_t{0}); when != 0) {
            std::tm local{};
            char text[32];
            ::localtime_r(&when, &local);
            std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S", &local);
            expires = text;
        }
        const json at = l.value("expires_at", json());
        // A DHCPv6 lease has a MAC only when the client's DUID carries one.
        rows.push_back({l.value("mac", std::string()), l["ip"], l.value("hostname", std::string()),
                        l.value("type", std::string()), expires, l.value("family", std::string()),
                        at.is_string() ? at.get<std::string>() : expires, l.value("vtep", std::string())});
    }
    print_table(c, lease_columns, rows);
    return 0;
}

int cmd_host_list(Context& c, const std::string& net)
{
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
        json shaped = json::array();
        for (const auto& h : hosts)
            shaped.push_back(kvmnet::client::with_nulls(h, {"mac", "duid", "name"}));
        std::cout << shaped.dump(2) << "\n";
        return 0;
    }
    std::vector<std::vector<std::string>> rows;
    for (const auto& h : hosts)
        rows.push_back({h.value("mac", h.value("duid", std::string())), h["ip"], h.value("name", std::string())});
    print_table(c, host_columns, rows);
    return 0;
}

int cmd_host_remove(Context& c, const std::string& net, const std::string& mac)
{
    c.network(net).RemoveHost(mac);
    std::cout << "Static host " << mac << " removed from " << net << ".\n";
    return 0;
}

int cmd_host_add(Context& c, const std::string& net, const json& host)
{
    c.network(net).AddHost(host.dump());
    std::cout << "Static host " << host.value("mac", host.value("duid", std::string())) << " ("
              << host["ip"].get<std::string>() << ") added to " << net << ".\n";
    return 0;
}

// ---- forwards -----------------------------------------------------------------

// "8080" or "8080-8090" as the document has it (a number or a string range).
json port_value(const std::string& text, const std::string& option)
{
    if (text.find('-') != std::string::npos) return text;
    return number(text, option);
}

// The options of `forward add`; the document is built before the bus.
struct ForwardOptions {
    std::string proto_word, host_port_word, target;  // the positional form
    std::string file, proto, host_port, host_address, guest, guest_port, description, rate;
    CLI::App* app = nullptr;
};

std::string forward_document(const ForwardOptions& o)
{
    json forward = json::object();
    // design.md's form: forward add NET PROTO HOSTPORT GUEST:GUESTPORT [options]
    // (an IPv6 guest as [ADDRESS]:PORT).
    if (!o.proto_word.empty()) {
        if (o.target.empty()) throw UsageError("forward add NET PROTO HOSTPORT GUEST:GUESTPORT: the three go together");
        forward["proto"] = o.proto_word;
        forward["host_port"] = port_value(o.host_port_word, "HOSTPORT");
        const std::string& target = o.target;
        const auto colon = target.rfind(':');
        if (colon == std::string::npos || colon == 0 || colon + 1 == target.size())
            throw UsageError("expected GUEST:GUESTPORT (or [IPv6]:GUESTPORT), got '" + target + "'");
        std::string guest = target.substr(0, colon);
        if (guest.size() >= 2 && guest.front() == '[' && guest.back() == ']') guest = guest.substr(1, guest.size() - 2);
        forward["guest"] = guest;
        forward["guest_port"] = port_value(target.substr(colon + 1), "GUESTPORT");
    }
    const auto given = [&](const char* option) { return o.app->count(option) > 0; };
    if (given("--proto")) forward["proto"] = o.proto;
    if (given("--host-port")) forward["host_port"] = port_value(o.host_port, "--host-port");
    if (given("--host-address")) forward["host_address"] = o.host_address;
    if (given("--guest")) forward["guest"] = o.guest;
    if (given("--guest-port")) forward["guest_port"] = port_value(o.guest_port, "--guest-port");
    if (given("--description")) forward["description"] = o.description;
    if (given("--rate")) {
        // "5" or "5/s": new connections per second
        std::string rate = o.rate;
        if (rate.size() > 2 && rate.compare(rate.size() - 2, 2, "/s") == 0) rate.resize(rate.size() - 2);
        forward["rate"] = number(rate, "--rate");
    }
    if (given("--file")) {
        if (!forward.empty()) throw UsageError("forward add: --file or options, not both");
        return {};
    }
    if (forward.empty())
        throw UsageError("forward add needs PROTO HOSTPORT GUEST:GUESTPORT, --host-port PORT[-LAST] --guest ADDRESS "
                         "--guest-port PORT[-LAST], or --file FILE");
    if (!forward.contains("proto")) forward["proto"] = "tcp";
    return forward.dump();
}

// The introspection XML's Method.Timeout, as the generated proxies use:
// longer than the daemon waits for polkit (5 min).
constexpr std::chrono::microseconds add_forwards_timeout{330000000};

// From this many forwards on, --file sends them in a sealed memfd
// (AddForwardsFromFd): the bus relays a descriptor instead of ~70 bytes a
// forward. Fewer go as structs (AddForwardsTyped), where the memfd's
// creation and mapping would cost more than it saves.
constexpr std::size_t forward_file_fd_threshold = 1000;

// --file: the forwards go as structs or records, no JSON on the bus.
// The file is checked here first, entry by entry, with the daemon's own
// per-forward checks; a refusal reads as the daemon's would.
std::vector<std::string> add_forward_file(Context& c, const std::string& net, const std::string& path)
{
    std::vector<kvmnet::model::ForwardFields> fields;
    try {
        fields = kvmnet::client::forward_file_fields(read_text(path));
    } catch (const kvmnet::Error& e) {
        throw sdbus::Error(std::string("org.kvmnet1.Error.").append(kvmnet::error_kind_name(e.kind())), e.what());
    }
    auto network = c.network(net);
    if (fields.size() >= forward_file_fd_threshold)
        return kvmnet::client::add_forwards_from_fd(network.proxy(), fields, add_forwards_timeout);
    return kvmnet::client::add_forwards_typed(network.proxy(), fields, add_forwards_timeout);
}

int cmd_forward_add(Context& c, const std::string& net, const ForwardOptions& o, const std::string& document)
{
    const auto warnings =
        o.app->count("--file") > 0 ? add_forward_file(c, net, o.file) : c.network(net).AddForwards(document);
    for (const std::string& w : warnings)
        std::cerr << "kvmnetctl: warning: " << w << "\n";
    std::cout << "Forward(s) added to " << net << ".\n";
    return 0;
}

// forward remove NET PROTO [ADDRESS:]PORT, split before the bus.
struct ForwardKey {
    std::string address;
    std::uint32_t port = 0;
};

ForwardKey forward_key(const std::string& text)
{
    std::string where = text, address;
    if (const auto colon = where.rfind(':'); colon != std::string::npos) {
        address = where.substr(0, colon);
        where = where.substr(colon + 1);
    }
    if (address == "*") address.clear();
    // "[fd00::1]:8080", "[::]:8080" (every IPv6 address)
    if (address.size() >= 2 && address.front() == '[' && address.back() == ']')
        address = address.substr(1, address.size() - 2);
    return {address, static_cast<std::uint32_t>(number(where, "PORT"))};
}

int cmd_forward_remove(Context& c, const std::string& net, const std::string& proto, const std::string& text)
{
    const ForwardKey key = forward_key(text);
    c.network(net).RemoveForward(proto, key.address, key.port);
    std::cout << "Forward " << proto << " " << text << " removed from " << net << ".\n";
    return 0;
}

std::string port_text(const json& port) { return port.is_string() ? port.get<std::string>() : port.dump(); }

int cmd_forward_list(Context& c, const std::string& net)
{
    auto network = c.network(net);
    const json forwards = all_pages(
        [&](const std::string& cursor, std::uint32_t limit) { return network.ListForwardsPage(cursor, limit); });
    if (c.as_json) {
        json shaped = json::array();
        for (const auto& f : forwards)
            shaped.push_back(kvmnet::client::forward_shape(f));
        std::cout << shaped.dump(2) << "\n";
        return 0;
    }
    std::vector<std::vector<std::string>> rows;
    for (const auto& f : forwards) {
        // append, not operator+: g++ 12 at -O3 warns a false -Wrestrict on
        // "const char*" + std::string&& (GCC bug 105329).
        std::string host = f.value("host_address", std::string("*"));
        host.append(":").append(port_text(f["host_port"]));
        std::string guest = f["guest"].get<std::string>();
        if (f.contains("guest_address")) guest.append(" (").append(f["guest_address"].get<std::string>()).append(")");
        guest.append(":").append(port_text(f["guest_port"]));
        const auto counter = [&](const char* key) { return f.contains(key) ? f[key].dump() : std::string(); };
        rows.push_back({f["proto"], host, guest, f.contains("rate") ? f["rate"].dump() + "/s" : std::string(),
                        counter("connections"), counter("dropped"), f.value("description", std::string())});
    }
    print_table(c, forward_columns, rows);
    return 0;
}

int cmd_stats(Context& c, const std::string& net)
{
    const json stats = json::parse(c.network(net).Statistics());
    if (c.as_json) {
        std::cout << stats.dump(2) << "\n";
        return 0;
    }
    if (!c.style.terse) {
        if (!stats["running"].get<bool>()) std::cout << "(not running: no counters)\n";
        const json& f = stats["forwards"];
        std::cout << "forwards: " << f["count"] << ", connections forwarded: " << f["connections"]
                  << ", dropped over their rate: " << f["dropped"] << "\n";
    }
    std::vector<std::vector<std::string>> rows;
    for (const auto& r : stats["drops"])
        rows.push_back({r["packets"].dump(), r["bytes"].dump(), r["rule"], r.value("chain", std::string())});
    print_table(c, drop_columns, rows);
    return 0;
}

// overlay status NET: the tunnel per remote host and the BGP sessions.
int cmd_overlay_status(Context& c, const std::string& net)
{
    const json status = json::parse(c.network(net).OverlayStatus());
    if (c.as_json)
        std::cout << status.dump(2) << "\n";
    else
        std::cout << overlay_status_text(status);
    return 0;
}

// Exit status 1 when a check fails, so scripts can use it as a health check.
int cmd_diagnose(Context& c, const std::string& net)
{
    const json report = json::parse(c.network(net).Diagnose());
    const bool failed = report["verdict"] == "fail";
    if (c.as_json) {
        std::cout << report.dump(2) << "\n";
        return failed ? 1 : 0;
    }
    std::cout << "network " << report["network"].get<std::string>() << ": " << report["state"].get<std::string>();
    const std::string reason = report["state_reason"].get<std::string>();
    if (!reason.empty()) std::cout << " (" << reason << ")";
    std::cout << "\n";
    // The check names' column measured from them; the status is 4 letters.
    std::size_t width = 0;
    for (const auto& check : report["checks"])
        width = std::max(width, check["check"].get<std::string>().size());
    for (const auto& check : report["checks"]) {
        std::string status = check["status"].get<std::string>();
        std::transform(status.begin(), status.end(), status.begin(), [](unsigned char ch) { return std::toupper(ch); });
        const std::string name = check["check"];
        std::cout << status << std::string(status.size() < 6 ? 6 - status.size() : 1, ' ') << name
                  << std::string(width - name.size() + 2, ' ') << check["detail"].get<std::string>() << "\n";
    }
    return failed ? 1 : 0;
}

// ---- monitor ----------------------------------------------------------------

// The kinds of event monitor prints (and --event selects), in --help's order.
const std::vector<std::string> monitor_events = {"NetworkAdded",   "NetworkRemoved", "PropertiesChanged",
                                                 "LeaseChanged",   "Repaired",       "MacConflict",
                                                 "OverlayChanged", "DaemonStarted",  "DaemonStopped"};

struct MonitorOptions {
    std::string network;              // empty: every network
    std::vector<std::string> events;  // empty: every kind
    unsigned long count = 0;          // 0: no limit
    unsigned long timeout_s = 0;      // 0: none
};

// An --event KIND named in any case, as the kind's own spelling.
std::string monitor_event(const std::string& kind)
{
    const auto known = std::find_if(monitor_events.begin(), monitor_events.end(), [&](const std::string& k) {
        return k.size() == kind.size() && std::equal(k.begin(), k.end(), kind.begin(), [](char x, char y) {
                   return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
               });
    });
    if (known == monitor_events.end()) {
        std::string list;
        for (const auto& k : monitor_events)
            list += (list.empty() ? "" : ", ") + k;
        throw UsageError("monitor: unknown event kind '" + kind + "' (kinds: " + list + ")");
    }
    return *known;
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
        // No host name: null in JSON, as every absent value; "-" in text.
        event(member, network_of(path),
              {{"event", what}, {"mac", mac}, {"ip", ip}, {"hostname", hostname.empty() ? json() : json(hostname)}},
              {what, mac, ip, hostname.empty() ? "-" : hostname});
    } else if (iface == "org.kvmnet1.Network" && member == "Repaired") {
        std::string what, detail;
        m >> what >> detail;
        event(member, network_of(path), {{"what", what}, {"detail", detail}}, {what, detail});
    } else if (iface == "org.kvmnet1.Network" && member == "OverlayChanged") {
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

// ---- the command line -----------------------------------------------------------

// One verb (a leaf subcommand): its checks that need no bus, and its call.
struct Verb {
    std::function<void()> prepare = [] {};
    std::function<int(Context&)> run;
    std::function<bool()> changes = [] { return false; };  // calls a polkit-checked method
    const std::vector<Column>* columns = nullptr;          // prints a table (-o)
};

// Every option's storage, alive while the verbs run.
struct Values {
    std::string net, ifname, mac, ip, name, proto, where, on_off;
    unsigned confirm_timeout = 0;
    std::vector<std::string> words, events;
    unsigned long count = 0, timeout_s = 0;
    CreateOptions create;
    PortOptions port;
    ForwardOptions forward;
    kvmnet::cli::ImportOptions import;
    std::vector<kvmnet::client::Assignment> assignments;
    json document;
    std::string text;
};

const char* const footer =
    "Options of kvmnetctl (--json, -o, -t, --no-legend, --no-ask-password) go before or after the verb.\n"
    "`kvmnetctl help VERB` and `kvmnetctl VERB --help` describe a verb; kvmnetctl(1) all of them.\n";

const char* const main_footer = "--json prints read commands' results as JSON. A command that changes something,\n"
                                "run by a user other than root from a terminal, starts pkttyagent so that polkit\n"
                                "can ask for a password; --no-ask-password does not, and tells the daemon not to\n"
                                "let polkit ask at all. The daemon is reached on the system bus\n"
                                "(DBUS_SYSTEM_BUS_ADDRESS overrides it). `kvmnetctl help VERB` describes a verb;\n"
                                "see kvmnetctl(1).\n";

class CommandLine {
public:
    CommandLine()
        : app_("kvmnetctl: the command-line client of kvmnetd (virtual networks for KVM/QEMU guests)", "kvmnetctl")
    {
        build();
    }

    // Parses argv; returns an exit status when kvmnetctl is done before the
    // bus (help, version, usage error), else nullopt and the verb to run.
    std::optional<int> parse(int argc, char** argv);

    Globals globals;
    Values v;
    Verb* verb = nullptr;
    std::string verb_name;  // "forward add"

private:
    CLI::App* add(CLI::App& parent, const std::string& name, const std::string& description, Verb verb = {});
    CLI::App* net(CLI::App* sub, const std::string& what = "the network's name");
    void build();
    const CLI::App* find(const std::vector<std::string>& words) const;

    CLI::App app_;
    std::map<const CLI::App*, Verb> verbs_;
};

CLI::App* CommandLine::add(CLI::App& parent, const std::string& name, const std::string& description, Verb verb)
{
    CLI::App* sub = parent.add_subcommand(name, description);
    // The global options are taken after the verb too (kvmnetctl list --json).
    sub->fallthrough();
    std::string text = footer;
    if (verb.columns) {
        // The columns -o takes (the completion reads this line too).
        std::string shown, more;
        for (const Column& c : *verb.columns) {
            std::string& list = c.shown ? shown : more;
            list += (list.empty() ? "" : ",") + c.key;
        }
        text = "Columns for -o: " + shown + (more.empty() ? "" : " (and by -o only: " + more + ")") + "\n" + text;
    }
    sub->footer(text);
    sub->require_subcommand(0, 1);
    if (verb.run) verbs_.emplace(sub, std::move(verb));
    return sub;
}

CLI::App* CommandLine::net(CLI::App* sub, const std::string& what)
{
    sub->add_option("NET", v.net, what)->required();
    return sub;
}

void CommandLine::build()
{
    app_.footer(main_footer);
    app_.set_version_flag("--version", std::string("kvmnetctl ") + KVMNET_VERSION, "print the version and exit");
    // Unknown words are collected (not refused by CLI11 itself) so that the
    // message names them as kvmnetctl's own usage errors do.
    app_.allow_extras();
    // One verb: a later word that names another verb is an argument (a
    // network may be called "list").
    app_.require_subcommand(0, 1);
    app_.add_flag("--json", globals.as_json, "print read commands' results as JSON");
    app_.add_flag_callback(
        "--no-ask-password", [this] { globals.ask_password = false; },
        "start no polkit agent and let polkit ask nobody (for scripts)");
    app_.add_flag_callback(
        "--no-legend", [this] { globals.style.legend = false; }, "tables without their header line");
    app_.add_option("-o,--columns", globals.style.columns, "the columns of a table to print, in this order")
        ->delimiter(',')
        ->type_name("COL,...");
    app_.add_flag("-t,--terse", globals.style.terse,
                  "tables as colon-separated fields, no header (':' and '\\' escaped with '\\')");

    Values& v = this->v;
    add(app_, "list", "networks with mode, state and addresses",
        {.run = [](Context& c) { return cmd_list(c); }, .columns = &list_columns});
    net(add(app_, "show", "one network's configuration (all of it) and status",
            {.run = [&v](Context& c) { return cmd_show(c, v.net); }}));
    net(add(app_, "export", "the document as JSON, exactly as create --file takes it",
            {.run = [&v](Context& c) { return cmd_export(c, v.net); }}));

    {
        CreateOptions& o = v.create;
        auto* sub = net(add(app_, "create",
                            "define a network from a JSON document (--file; NET names it, whatever its \"name\" "
                            "says) or from options (--mode ...)",
                            {.prepare =
                                 [&v] {
                                     if (v.create.file.empty()) {
                                         v.text = document_from_options(v.net, v.create);
                                         return;
                                     }
                                     for (const auto* option : v.create.options)
                                         if (option->count() > 0)
                                             throw UsageError("create: --file or options, not both (" +
                                                              option->get_name() + ")");
                                     v.text = document_from_file(v.net, v.create.file);
                                 },
                             .run = [&v](Context& c) { return cmd_create(c, v.net, v.text); },
                             .changes = [] { return true; }}));
        o.app = sub;
        sub->add_option("--file", o.file, "the JSON document (- for stdin)")->type_name("FILE");
        std::vector<CLI::Option*> options = {
            sub->add_option("--mode", o.mode, "nat, isolated, routed or bridge")->type_name("MODE"),
            sub->add_option("--ipv4", o.ipv4, "the gateway address")->type_name("GATEWAY/PREFIX"),
            sub->add_option("--bridge", o.bridge, "the bridge's name (default: kvmbrN)")->type_name("BR"),
            sub->add_option("--dhcp-range", o.dhcp_ranges, "a DHCP range (repeatable; turns DHCP on)")
                ->type_name("FIRST-LAST"),
            sub->add_option("--dhcp-host", o.dhcp_hosts, "a static DHCP host (repeatable)")->type_name("MAC,IP[,NAME]"),
            sub->add_option("--uplink", o.uplink, "the uplink interface")->type_name("IFNAME"),
            sub->add_option("--mtu", o.mtu, "the bridge's MTU")->type_name("N"),
            sub->add_option("--stp", o.stp, "spanning tree")
                ->type_name("on|off")
                ->check(CLI::IsMember({"on", "off", "yes", "no", "true", "false"}).description("")),
            sub->add_option("--forward-delay", o.forward_delay, "STP forward delay")->type_name("S"),
            sub->add_option("--hello-time", o.hello_time, "STP hello time")->type_name("S"),
            sub->add_option("--max-age", o.max_age, "STP max age")->type_name("S"),
            sub->add_option("--priority", o.priority, "STP bridge priority")->type_name("N"),
            sub->add_option("--multicast-snooping", o.multicast_snooping, "IGMP/MLD snooping")
                ->type_name("on|off")
                ->check(CLI::IsMember({"on", "off", "yes", "no", "true", "false"}).description("")),
            sub->add_flag("--autostart", o.autostart, "start with the daemon"),
            sub->add_flag("--fast-path", o.fast_path, "an nftables flowtable for established flows (needs --uplink)"),
            sub->add_option("--domain", o.domain, "the DNS domain (dns.domain)")->type_name("DOMAIN"),
            sub->add_option("--forwarder", o.forwarders, "a DNS forwarder (repeatable; dns.forwarders)")
                ->type_name("IP"),
            sub->add_option("--ipv6", o.ipv6, "the IPv6 gateway address")->type_name("GATEWAY/PREFIX"),
            sub->add_option("--ipv6-range", o.ipv6_ranges, "a DHCPv6 range (repeatable)")->type_name("FIRST-LAST"),
            sub->add_flag("--nat66", o.nat66, "masquerade IPv6 too"),
            sub->add_flag("--no-ra", o.no_ra, "no router advertisements"),
            sub->add_option("--vni", o.vni, "span hosts over VXLAN with this VNI (overlay.vni)")->type_name("N"),
            sub->add_option("--local", o.overlay_local, "this host's underlay address (overlay.local)")
                ->type_name("IP"),
            sub->add_option("--local-interface", o.overlay_local_interface,
                            "take the underlay address from this interface (overlay.local_interface)")
                ->type_name("IFNAME"),
            sub->add_option("--peer", o.peers, "another host's underlay address (repeatable; overlay.peers)")
                ->type_name("IP"),
            sub->add_option("--dhcp-slice", o.dhcp_slice, "this host's share of the DHCP ranges (overlay.dhcp_slice)")
                ->type_name("INDEX/COUNT"),
        };
        o.options = options;
    }

    net(add(app_, "start", "bring the network up",
            {.run = [&v](Context& c) { return cmd_start(c, v.net, v.confirm_timeout); },
             .changes = [] { return true; }}))
        ->add_option("--confirm-timeout", v.confirm_timeout,
                     "roll the start back unless `confirm NET` follows within SECONDS (1 to 3600)")
        ->type_name("SECONDS")
        ->check(CLI::Range(1u, 3600u).description(""));
    net(add(app_, "confirm", "keep a network started with --confirm-timeout",
            {.run = [&v](Context& c) { return cmd_confirm(c, v.net); }, .changes = [] { return true; }}));
    net(add(app_, "stop", "take the network down",
            {.run = [&v](Context& c) { return cmd_stop(c, v.net); }, .changes = [] { return true; }}));
    net(add(app_, "delete", "stop the network and remove its document",
            {.run = [&v](Context& c) { return cmd_delete(c, v.net); }, .changes = [] { return true; }}));
    net(add(app_, "autostart", "whether the daemon starts the network when it starts",
            {.run = [&v](Context& c) { return cmd_autostart(c, v.net, on_off(v.on_off, "autostart")); },
             .changes = [] { return true; }}))
        ->add_option("WHEN", v.on_off, "on or off (also yes/no, true/false)")
        ->required()
        ->check(CLI::IsMember({"on", "off", "yes", "no", "true", "false"}).description(""));
    net(add(app_, "set", "change document fields, e.g. stp=on ipv4.address=10.0.0.1/24 (objects are merged)",
            {.prepare = [&v] { v.assignments = parse_assignments(v.words); },
             .run = [&v](Context& c) { return cmd_set(c, v.net, v.assignments); },
             .changes = [] { return true; }}))
        ->add_option("ASSIGNMENT", v.words, "PATH=VALUE or PATH+=VALUE (appends to an array)")
        ->required();
    net(add(app_, "unset", "remove fields or array elements, e.g. ipv4.dhcp.hosts[0]",
            {.prepare = [&v] { check_unset_paths(v.words); },
             .run = [&v](Context& c) { return cmd_unset(c, v.net, v.words); },
             .changes = [] { return true; }}))
        ->add_option("PATH", v.words, "a field or array element")
        ->required();
    net(add(app_, "edit", "edit the document in $EDITOR (else vi), applied as one update",
            {.run = [&v](Context& c) { return cmd_edit(c, v.net); }, .changes = [] { return true; }}));

    {
        auto* port = add(app_, "port", "guest ports: attach, detach, list");
        PortOptions& o = v.port;
        auto* attach = net(add(*port, "attach", "attach a guest port (an interface, or with --tap a tap for QEMU)",
                               {.prepare = [&v] { v.document = port_document(v.port); },
                                .run = [&v](Context& c) { return cmd_port_attach(c, v.net, v.document); },
                                .changes = [] { return true; }}));
        o.app = attach;
        attach->add_option("IFNAME", o.ifname, "the interface")->required();
        attach->add_flag("--tap", o.tap, "create a persistent tap for QEMU");
        attach->add_option("--owner", o.owner, "who may open the tap")->type_name("UID[:GID]");
        attach->add_option("--queues", o.queues, "a multiqueue tap for QEMU's queues=N (1-256)")->type_name("N");
        attach->add_option("--mac", o.mac, "the guest's MAC")->type_name("MAC");
        attach->add_flag("--isolated", o.isolated, "no traffic to other isolated ports");
        attach->add_option("--vlan", o.vlan, "the port's VLAN (PVID)")->type_name("PVID");
        attach->add_option("--vlan-tagged", o.vlan_tagged, "tagged VLANs")->delimiter(',')->type_name("ID,...");
        attach->add_option("--inbound", o.inbound, "limit to the guest (kB/s, burst in kB)")
            ->type_name("AVG[,PEAK[,BURST]]");
        attach->add_option("--outbound", o.outbound, "limit from the guest (kB/s, burst in kB)")
            ->type_name("AVG[,PEAK[,BURST]]");
        net(add(*port, "detach", "detach a port (a tap the daemon made is deleted)",
                {.run = [&v](Context& c) { return cmd_port_detach(c, v.net, v.ifname); },
                 .changes = [] { return true; }}))
            ->add_option("IFNAME", v.ifname, "the interface")
            ->required();
        net(add(*port, "list", "ports with state, MAC, options and counters",
                {.run = [&v](Context& c) { return cmd_port_list(c, v.net); }, .columns = &port_columns}));
    }

    net(add(app_, "leases", "DHCP leases: MAC, IP, host name, type, expiry",
            {.run = [&v](Context& c) { return cmd_leases(c, v.net); }, .columns = &lease_columns}));

    {
        auto* host = add(app_, "host", "static DHCP hosts: add, remove, list");
        auto* add_host = net(add(*host, "add", "add a static DHCP host, IPv4 or IPv6 (no dnsmasq restart)",
                                 {.prepare =
                                      [&v] {
                                          // A DHCPv6 client may be named by its DUID (longer than a MAC).
                                          v.document = {{v.mac.size() > 17 ? "duid" : "mac", v.mac}, {"ip", v.ip}};
                                          if (!v.name.empty()) v.document["name"] = v.name;
                                      },
                                  .run = [&v](Context& c) { return cmd_host_add(c, v.net, v.document); },
                                  .changes = [] { return true; }}));
        add_host->add_option("MAC", v.mac, "the guest's MAC, or a DHCPv6 client's DUID")->required();
        add_host->add_option("IP", v.ip, "its address (IPv6: a static DHCPv6 host)")->required();
        add_host->add_option("NAME", v.name, "its host name");
        net(add(*host, "remove", "remove a static DHCP host",
                {.run = [&v](Context& c) { return cmd_host_remove(c, v.net, v.mac); }, .changes = [] { return true; }}))
            ->add_option("MAC", v.mac, "the host's MAC (hosts of both families), or a DHCPv6 host's DUID")
            ->required();
        net(add(*host, "list", "static DHCP hosts: MAC or DUID, IP, name",
                {.run = [&v](Context& c) { return cmd_host_list(c, v.net); }, .columns = &host_columns}));
    }

    {
        auto* forward = add(app_, "forward", "port forwards (nat networks): add, remove, list");
        ForwardOptions& o = v.forward;
        auto* fadd = net(add(*forward, "add",
                             "forward a host port (or range) to a guest: PROTO HOSTPORT GUEST:GUESTPORT, the same "
                             "with named options, or --file",
                             {.prepare = [&v] { v.text = forward_document(v.forward); },
                              .run = [&v](Context& c) { return cmd_forward_add(c, v.net, v.forward, v.text); },
                              .changes = [] { return true; }}));
        o.app = fadd;
        fadd->add_option("PROTO", o.proto_word, "tcp, udp or both");
        fadd->add_option("HOSTPORT", o.host_port_word, "the host port, PORT[-LAST]");
        fadd->add_option("GUEST:GUESTPORT", o.target,
                         "the guest (address, [IPv6 address] or static host name) and its port, PORT[-LAST]");
        fadd->add_option("--file", o.file,
                         "a JSON array of forward objects, or one (- for stdin); sent as structs (AddForwardsTyped)")
            ->type_name("FILE");
        fadd->add_option("--proto", o.proto, "tcp, udp or both (default tcp)")->type_name("tcp|udp|both");
        fadd->add_option("--host-port", o.host_port, "the host port")->type_name("PORT[-LAST]");
        fadd->add_option("--guest", o.guest, "the guest")->type_name("ADDRESS|HOSTNAME");
        fadd->add_option("--guest-port", o.guest_port, "the guest's port")->type_name("PORT[-LAST]");
        fadd->add_option("--host-address", o.host_address, "only packets to this host address")->type_name("A");
        fadd->add_option("--rate", o.rate, "new connections per second")->type_name("N[/s]");
        fadd->add_option("--description", o.description, "a description")->type_name("TEXT");
        auto* fremove =
            net(add(*forward, "remove",
                    "remove a forward by protocol, host address and first port ([ADDRESS6]:PORT; [::]:PORT: every "
                    "IPv6 address)",
                    {.prepare = [&v] { forward_key(v.where); },
                     .run = [&v](Context& c) { return cmd_forward_remove(c, v.net, v.proto, v.where); },
                     .changes = [] { return true; }}));
        fremove->add_option("PROTO", v.proto, "tcp, udp or both")->required();
        fremove->add_option("WHERE", v.where, "[ADDRESS:]PORT")->required();
        net(add(*forward, "list", "forwards with connection and drop counters",
                {.run = [&v](Context& c) { return cmd_forward_list(c, v.net); }, .columns = &forward_columns}));
    }

    net(add(app_, "stats", "drop counters of the network's rules, forward totals",
            {.run = [&v](Context& c) { return cmd_stats(c, v.net); }, .columns = &drop_columns}));
    {
        auto* overlay = add(app_, "overlay", "networks that span hosts: status");
        net(add(*overlay, "status",
                "the VXLAN tunnel per remote host (flood entry, reachability, remote MACs) and BGP EVPN sessions",
                {.run = [&v](Context& c) { return cmd_overlay_status(c, v.net); }}));
    }
    net(add(app_, "diagnose", "check the network against the kernel (exit 1 when a check fails)",
            {.run = [&v](Context& c) { return cmd_diagnose(c, v.net); }}));
    add(app_, "reload", "make the daemon re-read the stored documents (as SIGHUP)",
        {.run = [](Context& c) { return cmd_reload(c); }, .changes = [] { return true; }});

    {
        // run is set for the table of verbs; main runs monitor on its own connection.
        auto* monitor = add(app_, "monitor",
                            "print the daemon's signals (about NET; of the --event kinds) until interrupted, N "
                            "events printed or SECONDS passed",
                            {.prepare =
                                 [&v] {
                                     for (auto& kind : v.events)
                                         kind = monitor_event(kind);
                                 },
                             .run = [](Context&) { return 0; }});
        monitor->add_option("NET", v.net, "only the signals about this network (which need not exist yet)");
        std::string kinds;
        for (const auto& k : monitor_events)
            kinds += (kinds.empty() ? "" : " ") + k;
        monitor->add_option("--event", v.events, "only events of this kind (repeatable): " + kinds)->type_name("KIND");
        monitor->add_option("--count", v.count, "stop after N events (1 to 1000000000)")
            ->type_name("N")
            ->check(CLI::Range(1ul, 1'000'000'000ul).description(""));
        monitor->add_option("--timeout", v.timeout_s, "stop after SECONDS (1 to 31536000)")
            ->type_name("SECONDS")
            ->check(CLI::Range(1ul, 31'536'000ul).description(""));
    }

    {
        kvmnet::cli::ImportOptions& o = v.import;
        auto* import = add(app_, "import-libvirt", "create networks from libvirt network XML",
                           {.prepare =
                                [&v] {
                                    try {
                                        kvmnet::cli::check_import_options(v.import);
                                    } catch (const std::invalid_argument& e) {
                                        throw UsageError(e.what());
                                    }
                                },
                            .run = [](Context&) { return 0; },
                            .changes = [&v] { return !v.import.dry_run; }});
        import->add_option("FILE", o.files, "libvirt network XML (virsh net-dumpxml)");
        import->add_flag("--all", o.all, "every DIR/*.xml");
        import->add_option("--dir", o.dir, "with --all (default /etc/libvirt/qemu/networks)")->type_name("DIR");
        import->add_flag("--strict", o.strict, "refuse a file that loses a setting");
        import->add_flag("--dry-run", o.dry_run, "print the documents; no bus");
    }

    auto* help = add(app_, "help", "describe kvmnetctl, or one verb", {.run = [](Context&) { return 0; }});
    help->add_option("VERB", v.words, "a verb, e.g. start or forward add");

    // The help without CLI11's type words on arguments ("NET TEXT").
    app_.get_formatter()->column_width(34);
    std::function<void(CLI::App*)> untyped = [&](CLI::App* at) {
        for (CLI::Option* option : at->get_options([](const CLI::Option* o) { return o->get_positional(); }))
            option->type_name("");
        for (CLI::App* sub : at->get_subcommands([](const CLI::App*) { return true; }))
            untyped(sub);
    };
    untyped(&app_);
}

const CLI::App* CommandLine::find(const std::vector<std::string>& words) const
{
    const CLI::App* at = &app_;
    for (const auto& word : words) {
        const CLI::App* next = nullptr;
        for (const CLI::App* sub : at->get_subcommands([](const CLI::App*) { return true; }))
            if (sub->get_name() == word) next = sub;
        if (!next) {
            const std::string where = at == &app_ ? "" : at->get_name() + " ";
            throw UsageError("help: no command '" + where + word + "' (see kvmnetctl help)");
        }
        at = next;
    }
    return at;
}

std::optional<int> CommandLine::parse(int argc, char** argv)
{
    if (argc <= 1) {
        std::cerr << app_.help();
        return 2;
    }
    try {
        app_.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        // --help and --version are "errors" that succeed.
        if (e.get_exit_code() == 0) return app_.exit(e);
        std::cerr << "kvmnetctl: " << e.what() << "\n";
        return 2;
    }
    // The deepest verb named.
    const CLI::App* at = &app_;
    for (;;) {
        const auto chosen = at->get_subcommands();
        if (chosen.empty()) break;
        at = chosen.front();
        verb_name += (verb_name.empty() ? "" : " ") + at->get_name();
    }
    try {
        const auto extras = app_.remaining();
        if (at == &app_) {
            if (extras.empty()) throw UsageError("no command given (see kvmnetctl --help)");
            throw UsageError("unknown command '" + extras.front() + "' (see kvmnetctl --help)");
        }
        const auto found = verbs_.find(at);
        if (found == verbs_.end()) {
            std::string list;
            for (const CLI::App* sub : at->get_subcommands([](const CLI::App*) { return true; }))
                list += (list.empty() ? "" : ", ") + sub->get_name();
            if (extras.empty()) throw UsageError(verb_name + " needs a command: " + list);
            throw UsageError("unknown " + verb_name + " command '" + extras.front() + "' (" + list + ")");
        }
        if (!extras.empty())
            throw UsageError(verb_name + ": unexpected argument '" + extras.front() + "' (see kvmnetctl help " +
                             verb_name + ")");
        verb = &found->second;
        if (verb_name == "help") {
            // Through the formatter: App::help() would describe the verb
            // that is running (help) instead.
            std::string name = "kvmnetctl";
            for (const auto& word : v.words)
                name += " " + word;
            const CLI::App* described = find(v.words);
            std::cout << described->get_formatter()->make_help(described, name, CLI::AppFormatMode::Normal);
            return 0;
        }
        if (globals.as_json && globals.style.terse) throw UsageError("--json or -t, not both");
        if (!globals.style.columns.empty() || globals.style.terse || !globals.style.legend) {
            if (!verb->columns)
                throw UsageError("-o, -t and --no-legend go with the verbs that print a table (list, port list, "
                                 "leases, host list, forward list, stats), not " +
                                 verb_name);
            if (!globals.style.columns.empty()) {
                try {
                    kvmnet::client::select_columns(*verb->columns, globals.style.columns);
                } catch (const kvmnet::client::ColumnError& e) {
                    throw UsageError(verb_name + " -o: " + e.what());
                }
            }
        }
        verb->prepare();
    } catch (const UsageError& e) {
        std::cerr << "kvmnetctl: " << e.what() << "\n";
        return 2;
    }
    return std::nullopt;
}

}  // namespace

int main(int argc, char** argv)
{
    CommandLine cli;
    try {
        if (const auto done = cli.parse(argc, argv)) return *done;
    } catch (const std::exception& e) {
        // A file of --file that cannot be read, and the like.
        std::cerr << "kvmnetctl: " << e.what() << "\n";
        return 2;
    }
    const Globals& g = cli.globals;
    const std::string& command = cli.verb_name;
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
    const bool may_ask = g.ask_password && cli.verb->changes() && ::geteuid() != 0;
    PolkitAgent agent;
    if (may_ask && ::isatty(STDIN_FILENO)) agent.open();
    try {
        if (command == "import-libvirt") return kvmnet::cli::import_libvirt(cli.v.import, g.ask_password);
        auto bus = sdbus::createSystemBusConnection();
        if (command == "monitor") {
            const MonitorOptions options{cli.v.net, cli.v.events, cli.v.count, cli.v.timeout_s};
            return Monitor(*bus, g.as_json, options).run();
        }
        Context c{*bus, ManagerProxy(*bus), g.as_json, g.style};
        // As systemctl: interactive authorization is allowed unless
        // --no-ask-password, also without a terminal (a desktop session's
        // agent may ask); polkit answers at once when no agent is there.
        if (g.ask_password) allow_interactive_authorization(c.manager);
        return cli.verb->run(c);
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
