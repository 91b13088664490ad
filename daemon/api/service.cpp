// D-Bus adaptors for org.kvmnet1.Manager and org.kvmnet1.Network.
#include "api/service.hpp"

#include "api/authorization.hpp"
#include "api/dbus_string.hpp"
#include "api/forward_fd.hpp"
#include "api/forward_structs.hpp"
#include "api/typed.hpp"
#include "core/log.hpp"
#include "core/loop_trace.hpp"
#include "core/phases.hpp"
#include "org.kvmnet1.Manager-adaptor.h"
#include "org.kvmnet1.Network-adaptor.h"
#include "sdbus_raw.hpp"
#include "store/store.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <functional>
#include <optional>
#include <string_view>
#include <tuple>
#include <unistd.h>
#include <unordered_map>

namespace kvmnet::api {
namespace {

constexpr const char* version = KVMNET_VERSION;

// Runs a handler, turning our typed errors into named D-Bus errors.
template <typename F>
auto guarded(F&& body) -> decltype(body())
{
    try {
        return body();
    } catch (const sdbus::Error&) {
        throw;
    } catch (const Error& e) {
        throw sdbus::Error("org.kvmnet1.Error." + std::string(error_kind_name(e.kind())), e.what());
    } catch (const std::exception& e) {
        core::log_error(std::string("unexpected failure: ") + e.what());
        throw sdbus::Error("org.freedesktop.DBus.Error.Failed", e.what());
    }
}

// Every read replies through here: a reply larger than the bus accepts would
// make dbus-daemon disconnect the daemon (issue 11), so past
// core::max_reply_bytes the caller gets TooLarge instead.
void bounded_size(std::size_t size, const char* what)
{
    if (size > core::max_reply_bytes)
        throw Error(ErrorKind::TooLarge, std::string(what) + ": the reply would be " + std::to_string(size) +
                                             " bytes, more than the " + std::to_string(core::max_reply_bytes) +
                                             " a reply may carry; use the brief or paged methods (DescribeBrief, "
                                             "ListForwardsPage, LeasesPage, ListPortsPage)");
}
std::string bounded(std::string text, const char* what)
{
    bounded_size(text.size(), what);
    return text;
}

// Replies to `call` with `text` (bounded) as its one string, copied once,
// into the message. sd-bus's own append checks a string's UTF-8 with a
// decoding call per byte: that was most of the CPU of a Describe or a
// ListForwards of some 700 forwards; this checks ASCII a word at a time.
// Describe and ListForwards are registered for this (dbus/meson.build).
void reply_text(sdbus::MethodCall& call, const std::string& text, const char* what)
{
    bounded_size(text.size(), what);
    if (!dbus_string_ok(text)) throw std::runtime_error(std::string(what) + ": the reply is not valid UTF-8");
    auto reply = call.createReply();
    char* space = nullptr;
    if (const int r = sd_bus_message_append_string_space(dbus::raw_message(reply), text.size(), &space); r < 0)
        throw std::runtime_error(std::string(what) + ": cannot make the reply: " + std::strerror(-r));
    std::memcpy(space, text.data(), text.size());
    reply.send();
}

std::tuple<std::string, std::string> page_reply(core::Page page) { return {page.items.dump(), std::move(page.next)}; }

// A page in its typed form: page sizes are bounded by the JSON form, and
// the typed form of an item is of the same order of size.
template <typename Convert>
std::tuple<std::vector<VarDict>, std::string> typed_page(core::Page page, const Convert& convert)
{
    std::vector<VarDict> items;
    items.reserve(page.items.size());
    for (const auto& item : page.items)
        items.push_back(convert(item));
    return {std::move(items), std::move(page.next)};
}

// A page of a read whose whole array is cheap to make (leases, ports); key
// names an item for the cursor.
core::Page json_page(const nlohmann::json& all, const std::string& cursor, std::uint32_t limit,
                     const std::function<std::string(const nlohmann::json&)>& key)
{
    return core::make_page(
        cursor, limit, all.size(), [&](std::size_t i) { return key(all[i]); }, [&](std::size_t i) { return all[i]; });
}
std::tuple<std::string, std::string> page_of(const nlohmann::json& all, const std::string& cursor, std::uint32_t limit,
                                             const std::function<std::string(const nlohmann::json&)>& key)
{
    return page_reply(json_page(all, cursor, limit, key));
}

std::string port_key(const nlohmann::json& p) { return p.value("name", ""); }
std::string lease_key(const nlohmann::json& l) { return l.value("mac", "") + "/" + l.value("ip", ""); }

// How long the daemon waits for polkit's answer: interactive authentication
// may take minutes (polkit's own dialog gives up after about five).
constexpr auto polkit_timeout = std::chrono::minutes(5);

// Sends a reply and never throws: a caller that went away while its call
// waited for polkit only costs a log line.
template <typename... R, typename... V>
void send_results(const sdbus::Result<R...>& result, const V&... values) noexcept
{
    try {
        result.returnResults(values...);
        core::phases::mark("reply sent");
    } catch (const std::exception& e) {
        core::log_warning(std::string("cannot send a reply: ") + e.what());
    }
}
template <typename... R>
void send_error(const sdbus::Result<R...>& result, const sdbus::Error& error) noexcept
{
    try {
        result.returnError(error);
    } catch (const std::exception& e) {
        core::log_warning(std::string("cannot send an error reply: ") + e.what());
    }
}

// Runs body through guarded() and replies with its value (methods return at
// most one) or with the D-Bus error it raised.
template <typename... R, typename F>
void reply_with(const sdbus::Result<R...>& result, F& body) noexcept
{
    try {
        if constexpr (sizeof...(R) == 0) {
            guarded(body);
            send_results(result);
        } else {
            send_results(result, guarded(body));
        }
    } catch (const sdbus::Error& e) {
        send_error(result, e);
    }
}

}  // namespace

// Decides whether the sender of a changing call may go ahead: root at once,
// anyone else through polkit's CheckAuthorization for the method's action
// (action_for_method), asked asynchronously on the daemon's own connection so that the event
// loop keeps serving while an authentication dialog is open.
class Authorizer {
public:
    // Called with nothing when the call may proceed, else with the
    // AccessDenied message.
    using Decision = std::function<void(const std::optional<std::string>& denial)>;

    explicit Authorizer(sdbus::IConnection& connection)
        : polkit_(sdbus::createProxy(connection, "org.freedesktop.PolicyKit1", "/org/freedesktop/PolicyKit1/Authority"))
    {
    }

    // The caller's user id, asked of the bus once per connection: sd-bus
    // answers getCredsUid with a blocking call to the bus and reads of
    // /proc/PID/status and /proc/PID/stat, which held the event loop at each
    // changing call (a third of a write's cost in the D-Bus load test). A
    // connection's credentials are fixed when it connects and the bus never
    // gives a unique name twice, so the answer holds for the connection's
    // life; the cache forgets everything past `uid_cache_max` names.
    uid_t uid_of(const sdbus::Message& call)
    {
        const std::string sender = call.getSender();
        if (sender.empty() || sender[0] != ':') return call.getCredsUid();  // not a unique name: ask every time
        if (const auto it = uids_.find(sender); it != uids_.end()) return it->second;
        // Named in KVMNET_LOOP_TRACE's log: the first changing call of every
        // connection (each kvmnetctl run) waits here for the bus.
        const core::TraceSpan span("the caller's uid, asked of the bus");
        const uid_t uid = call.getCredsUid();
        if (uids_.size() >= uid_cache_max) uids_.clear();
        uids_.emplace(sender, uid);
        return uid;
    }

    void check(const sdbus::Message* call, std::string_view action, const std::string& what, Decision then)
    {
        uid_t uid = 0;
        std::string sender;
        bool interactive = false;
        try {
            if (!call) throw sdbus::Error(access_denied_error, "no current message");
            uid = uid_of(*call);
            sender = call->getSender();
            // The D-Bus specification: without ALLOW_INTERACTIVE_AUTHORIZATION
            // the receiver must not start interactive authentication, so a
            // `kvmnetctl --no-ask-password` (or a script) never gets a dialog.
            interactive = sd_bus_message_get_allow_interactive_authorization(kvmnet::dbus::raw_message(*call)) > 0;
        } catch (const sdbus::Error& e) {
            then(std::string("cannot determine the caller's user id: ") + e.getMessage());
            return;
        }
        // root, and the daemon's own user (under systemd: kvmnet, which runs
        // ExecReload=kvmnetctl reload; a process of that user can already do
        // whatever the daemon can).
        if (uid == 0 || uid == geteuid()) {
            then(std::nullopt);
            return;
        }
        if (action.empty()) {  // a changing method without an action: refuse rather than ask polkit about ""
            then(access_denied_message(uid, "(none)", "no polkit action is defined for this method"));
            return;
        }
        const std::string who = "uid " + std::to_string(uid) + " (" + sender + ")";
        core::log_info("asking polkit whether " + who + " may " + what + " (" + std::string(action) +
                       (interactive ? ", interactive" : ", not interactive") + ")");
        try {
            auto request = polkit_->createMethodCall("org.freedesktop.PolicyKit1.Authority", "CheckAuthorization");
            const std::map<std::string, sdbus::Variant> subject_details{{"name", sdbus::Variant(sender)}};
            request << sdbus::make_struct(std::string("system-bus-name"), subject_details) << std::string(action)
                    << std::map<std::string, std::string>{}
                    << std::uint32_t{interactive ? polkit_allow_user_interaction : 0u} << std::string();
            auto on_reply = [uid, who, what, then, interactive, action](sdbus::MethodReply& reply,
                                                                        const sdbus::Error* error) {
                std::string reason;
                if (error) {
                    reason = polkit_failure(error->getName(), error->getMessage(), action);
                } else {
                    try {
                        sdbus::Struct<bool, bool, std::map<std::string, std::string>> result;
                        reply >> result;
                        reason = polkit_refusal(result.get<0>(), result.get<1>(), result.get<2>(), interactive);
                    } catch (const sdbus::Error& e) {
                        reason = polkit_failure(e.getName(), e.getMessage(), action);
                    }
                }
                if (reason.empty()) {
                    core::log_info("polkit authorized " + who + " to " + what);
                    then(std::nullopt);
                } else {
                    core::log_info("refused " + who + " to " + what + ": " + reason);
                    then(access_denied_message(uid, action, reason));
                }
            };
            polkit_->callMethod(request, std::move(on_reply), polkit_timeout);
        } catch (const sdbus::Error& e) {
            then(access_denied_message(uid, action, polkit_failure(e.getName(), e.getMessage(), action)));
        }
    }

private:
    static constexpr std::size_t uid_cache_max = 4096;
    std::unique_ptr<sdbus::IProxy> polkit_;        // cancels the calls still pending when it goes
    std::unordered_map<std::string, uid_t> uids_;  // by unique bus name
};

namespace {

// Replies to a changing call whose body succeeded once what it stored is
// durable (core::Manager::when_durable): the event loop serves everyone
// else while the store syncs, and a caller never hears success for a
// change that a crash would lose.
template <typename... R, typename... V>
void reply_when_durable(core::Manager& manager, std::shared_ptr<sdbus::Result<R...>> pending, V... values) noexcept
{
    try {
        manager.when_durable([pending, values...](std::exception_ptr error) {
            auto outcome = [&] {
                if (error) std::rethrow_exception(error);
                if constexpr (sizeof...(V) == 1) return (values, ...);
            };
            reply_with(*pending, outcome);
        });
    } catch (const std::exception& e) {
        send_error(*pending, sdbus::Error("org.freedesktop.DBus.Error.Failed", e.what()));
    }
}

// The one path of every changing method: authorize the caller for the
// polkit action of METHOD, then run body and reply. body must not capture the adaptor object: it may run
// minutes later (interactive authentication), when the network object is
// gone; it names the network, and the manager looks it up again (NotFound
// when it has vanished meanwhile).
template <typename... R, typename F>
void changing(Authorizer& authorizer, core::Manager& manager, sdbus::IObject& object, std::string_view method,
              const std::string& what, sdbus::Result<R...>&& result, F body)
{
    core::TraceSpan::relabel(method);
    auto pending = std::make_shared<sdbus::Result<R...>>(std::move(result));
    authorizer.check(object.getCurrentlyProcessedMessage(), action_for_method(method), what,
                     [&manager, pending, body = std::move(body)](const std::optional<std::string>& denial) mutable {
                         if (denial) {
                             send_error(*pending, sdbus::Error(access_denied_error, *denial));
                             return;
                         }
                         try {
                             if constexpr (sizeof...(R) == 0) {
                                 guarded(body);
                                 reply_when_durable(manager, pending);
                             } else {
                                 reply_when_durable(manager, pending, guarded(body));
                             }
                         } catch (const sdbus::Error& e) {
                             send_error(*pending, e);
                         }
                     });
}

// As changing(), for a body that finishes later: it gets a Done to call
// with the outcome (core::Manager::Done), and the caller's reply waits for
// it while the event loop serves everyone else.
template <typename F>
void changing_later(Authorizer& authorizer, core::Manager& manager, sdbus::IObject& object, std::string_view method,
                    const std::string& what, sdbus::Result<>&& result, F body)
{
    core::TraceSpan::relabel(method);
    auto pending = std::make_shared<sdbus::Result<>>(std::move(result));
    authorizer.check(object.getCurrentlyProcessedMessage(), action_for_method(method), what,
                     [&manager, pending, body = std::move(body)](const std::optional<std::string>& denial) mutable {
                         if (denial) {
                             send_error(*pending, sdbus::Error(access_denied_error, *denial));
                             return;
                         }
                         body([&manager, pending](std::exception_ptr error) {
                             if (!error) {
                                 reply_when_durable(manager, pending);
                                 return;
                             }
                             auto rethrow = [&] { std::rethrow_exception(error); };
                             reply_with(*pending, rethrow);
                         });
                     });
}

}  // namespace

std::string network_path(const std::string& name)
{
    static const char hex[] = "0123456789abcdef";
    std::string path = "/org/kvmnet1/network/";
    for (unsigned char c : name) {
        if (std::isalnum(c)) {
            path += static_cast<char>(c);
        } else {
            path += '_';
            path += hex[c >> 4];
            path += hex[c & 0xf];
        }
    }
    return path;
}

class ManagerObject final
    : public sdbus::AdaptorInterfaces<org::kvmnet1::Manager_adaptor, sdbus::ObjectManager_adaptor> {
public:
    ManagerObject(sdbus::IConnection& connection, core::Manager& manager, Authorizer& authorizer)
        : AdaptorInterfaces(connection, manager_path), manager_(manager), authorizer_(authorizer)
    {
        getObject().registerMethod(org::kvmnet1::Manager_adaptor::INTERFACE_NAME, "Describe", "", {}, "s", {"json"},
                                   [this](sdbus::MethodCall call) { Describe(call); });
        registerAdaptor();
    }
    ~ManagerObject() { unregisterAdaptor(); }

private:
    void CreateNetwork(sdbus::Result<sdbus::ObjectPath>&& result, std::string document) override
    {
        changing(authorizer_, manager_, getObject(), "CreateNetwork", "call CreateNetwork", std::move(result),
                 [&manager = manager_, document = std::move(document)] {
                     return sdbus::ObjectPath(network_path(manager.create(document)));
                 });
    }
    void DeleteNetwork(sdbus::Result<>&& result, std::string name) override
    {
        // As Stop: replies once a running network's bridge is deleted.
        changing_later(
            authorizer_, manager_, getObject(), "DeleteNetwork",
            "call DeleteNetwork on network '" + log_safe(name) + "'", std::move(result),
            [&manager = manager_, name](core::Manager::Done done) { manager.remove(name, std::move(done)); });
    }
    sdbus::ObjectPath GetNetwork(const std::string& name) override
    {
        return guarded([&] {
            manager_.spec(name);  // NotFound when absent
            return sdbus::ObjectPath(network_path(name));
        });
    }
    std::vector<sdbus::ObjectPath> ListNetworks() override
    {
        std::vector<sdbus::ObjectPath> paths;
        for (const auto& name : manager_.names())
            paths.emplace_back(network_path(name));
        return paths;
    }
    // Registered by the constructor (reply_text).
    void Describe(sdbus::MethodCall& call)
    {
        core::TraceSpan::relabel("Manager.Describe");
        guarded([&] { reply_text(call, manager_.describe_all_text(), "Describe"); });
    }
    std::string DescribeBrief() override
    {
        return guarded([&] {
            nlohmann::json networks = nlohmann::json::array();
            for (const auto& name : manager_.names())
                networks.push_back(manager_.describe_brief(name));
            return bounded(nlohmann::json{{"networks", std::move(networks)}}.dump(), "DescribeBrief");
        });
    }
    void Reload(sdbus::Result<>&& result) override
    {
        changing(authorizer_, manager_, getObject(), "Reload", "call Reload", std::move(result),
                 [&manager = manager_] { manager.reload(); });
    }
    std::string Version() override { return version; }

    core::Manager& manager_;
    Authorizer& authorizer_;
};

class NetworkObject final : public sdbus::AdaptorInterfaces<org::kvmnet1::Network_adaptor, sdbus::ManagedObject_adaptor,
                                                            sdbus::Properties_adaptor> {
public:
    NetworkObject(sdbus::IConnection& connection, core::Manager& manager, Authorizer& authorizer, std::string name)
        : AdaptorInterfaces(connection, network_path(name)), manager_(manager), authorizer_(authorizer),
          name_(std::move(name))
    {
        getObject().registerMethod(org::kvmnet1::Network_adaptor::INTERFACE_NAME, "AddForwardsTyped", "a(ssqqsqsu)",
                                   {"forwards"}, "as", {"warnings"},
                                   [this](sdbus::MethodCall call) { AddForwardsTyped(std::move(call)); });
        getObject().registerMethod(org::kvmnet1::Network_adaptor::INTERFACE_NAME, "Describe", "", {}, "s", {"json"},
                                   [this](sdbus::MethodCall call) { Describe(call); });
        getObject().registerMethod(org::kvmnet1::Network_adaptor::INTERFACE_NAME, "ListForwards", "", {}, "s", {"json"},
                                   [this](sdbus::MethodCall call) { ListForwards(call); });
        registerAdaptor();
        snapshot_ = snapshot();
        emitInterfacesAddedSignal({org::kvmnet1::Network_adaptor::INTERFACE_NAME});
    }
    ~NetworkObject()
    {
        // When the daemon exits, networks keep running: their objects go away
        // with the daemon but must not be announced as removed.
        if (!daemon_exiting_) emitInterfacesRemovedSignal({org::kvmnet1::Network_adaptor::INTERFACE_NAME});
        unregisterAdaptor();
    }

    void daemon_exiting() { daemon_exiting_ = true; }

    // Whether State, StateReason or StateReasonCode moved since the last
    // refresh(): each value of those is a step an applet shows, so they are
    // never merged with a later one.
    bool state_moved()
    {
        return snapshot_["State"] != core::state_name(manager_.state(name_)) ||
               snapshot_["StateReason"] != manager_.state_reason(name_) ||
               snapshot_["StateReasonCode"] != manager_.state_reason_code(name_);
    }

    // Emits PropertiesChanged for exactly the properties whose value moved.
    void refresh()
    {
        const core::TraceSpan span("PropertiesChanged " + name_);
        auto now = snapshot();
        std::vector<std::string> changed;
        for (const auto& [property, value] : now)
            if (snapshot_[property] != value) changed.push_back(property);
        snapshot_ = std::move(now);
        if (!changed.empty()) emitPropertiesChangedSignal(org::kvmnet1::Network_adaptor::INTERFACE_NAME, changed);
    }

private:
    std::map<std::string, std::string> snapshot()
    {
        const auto& s = manager_.spec(name_);
        return {{"Name", s.name},
                {"Mode", std::string(model::mode_name(s.mode))},
                {"State", std::string(core::state_name(manager_.state(name_)))},
                {"StateReason", manager_.state_reason(name_)},
                {"StateReasonCode", manager_.state_reason_code(name_)},
                {"Bridge", s.bridge},
                {"IPv4Address", IPv4Address()},
                {"Autostart", s.autostart ? "true" : "false"},
                {"Uplink", s.uplink},
                {"Mtu", std::to_string(s.mtu)},
                {"Ports",
                 [&] {
                     std::string names;
                     for (const auto& p : s.ports)
                         names += p.name + "\n";
                     return names;
                 }()},
                {"AwaitingConfirmation", manager_.awaiting_confirmation(name_) ? "true" : "false"},
                {"Dnsmasq", Dnsmasq()},
                {"IPv6Address", IPv6Address()},
                {"LastRepair", manager_.last_repair(name_)},
                {"Revision", manager_.revision(name_)},
                {"LeaseCount", std::to_string(LeaseCount())},
                {"PortCount", std::to_string(PortCount())},
                {"ForwardCount", std::to_string(ForwardCount())},
                {"DhcpRanges",
                 [&] {
                     std::string ranges;
                     for (const auto& r : DhcpRanges())
                         ranges += r + "\n";
                     return ranges;
                 }()},
                {"Domain", Domain()},
                {"EvpnState", EvpnState()}};
    }

    void Start(sdbus::Result<>&& result) override
    {
        change_later("Start", std::move(result), [](core::Manager& m, const std::string& n, core::Manager::Done done) {
            m.start(n, 0, std::move(done));
        });
    }
    void Stop(sdbus::Result<>&& result) override
    {
        // Replies once the bridge is deleted (on the manager's worker
        // thread); every other call is served meanwhile.
        change_later("Stop", std::move(result), [](core::Manager& m, const std::string& n, core::Manager::Done done) {
            m.stop(n, std::move(done));
        });
    }
    void Update(sdbus::Result<>&& result, std::string document) override
    {
        change_later(
            "Update", std::move(result),
            [document = std::move(document)](core::Manager& m, const std::string& n, core::Manager::Done done) {
                m.update(n, document, std::move(done));
            });
    }
    void UpdateIfRevision(sdbus::Result<>&& result, std::string document, std::string revision) override
    {
        change_later("UpdateIfRevision", std::move(result),
                     [document = std::move(document), revision = std::move(revision)](
                         core::Manager& m, const std::string& n, core::Manager::Done done) {
                         m.update_at_revision(n, document, revision, std::move(done));
                     });
    }
    // Describe and ListForwards are registered by the constructor (reply_text).
    void Describe(sdbus::MethodCall& call)
    {
        core::TraceSpan::relabel("Network.Describe");
        guarded([&] { reply_text(call, manager_.describe_text(name_), "Describe"); });
    }
    std::string DescribeBrief() override
    {
        return guarded([&] { return bounded(manager_.describe_brief(name_).dump(), "DescribeBrief"); });
    }
    std::tuple<std::string, std::string> Export() override
    {
        return guarded([&] {
            const nlohmann::json document = model::to_json(manager_.spec(name_));
            return std::tuple<std::string, std::string>(bounded(document.dump(), "Export"), manager_.revision(name_));
        });
    }
    void StartWithConfirmation(sdbus::Result<>&& result, uint32_t timeout_seconds) override
    {
        change_later("StartWithConfirmation", std::move(result),
                     [timeout_seconds](core::Manager& m, const std::string& n, core::Manager::Done done) {
                         if (timeout_seconds == 0 || timeout_seconds > 3600) {
                             done(std::make_exception_ptr(
                                 Error(ErrorKind::InvalidArgument, "timeout_seconds: must be between 1 and 3600")));
                             return;
                         }
                         m.start(n, timeout_seconds, std::move(done));
                     });
    }
    void Confirm(sdbus::Result<>&& result) override
    {
        change("Confirm", std::move(result), [](core::Manager& m, const std::string& n) { m.confirm(n); });
    }
    void AttachPort(sdbus::Result<>&& result, std::string port) override
    {
        change("AttachPort", std::move(result),
               [port = std::move(port)](core::Manager& m, const std::string& n) { m.attach_port(n, port); });
    }
    void DetachPort(sdbus::Result<>&& result, std::string port) override
    {
        change("DetachPort", std::move(result),
               [port = std::move(port)](core::Manager& m, const std::string& n) { m.detach_port(n, port); });
    }
    std::string ListPorts() override
    {
        return guarded([&] { return bounded(manager_.list_ports(name_).dump(), "ListPorts"); });
    }
    std::tuple<std::string, std::string> ListPortsPage(const std::string& cursor, const uint32_t& limit) override
    {
        return guarded([&] {
            core::check_page_limit(limit);
            return page_of(manager_.list_ports(name_), cursor, limit, port_key);
        });
    }
    std::tuple<std::vector<VarDict>, std::string> ListPortsTyped(const std::string& cursor,
                                                                 const uint32_t& limit) override
    {
        return guarded([&] {
            core::check_page_limit(limit);
            return typed_page(json_page(manager_.list_ports(name_), cursor, limit, port_key), typed_port);
        });
    }
    std::string Leases() override
    {
        return guarded([&] { return bounded(manager_.leases(name_).dump(), "Leases"); });
    }
    std::tuple<std::string, std::string> LeasesPage(const std::string& cursor, const uint32_t& limit) override
    {
        return guarded([&] {
            core::check_page_limit(limit);
            return page_of(manager_.leases(name_), cursor, limit, lease_key);
        });
    }
    std::tuple<std::vector<VarDict>, std::string> LeasesTyped(const std::string& cursor, const uint32_t& limit) override
    {
        return guarded([&] {
            core::check_page_limit(limit);
            const auto& spec = manager_.spec(name_);
            return typed_page(json_page(manager_.leases(name_), cursor, limit, lease_key),
                              [&](const nlohmann::json& l) {
                                  const std::string mac = l.value("mac", "");
                                  bool static_host = false;
                                  if (spec.ipv4)
                                      for (const auto& h : spec.ipv4->hosts)
                                          static_host = static_host || h.mac == mac;
                                  return typed_lease(l, static_host);
                              });
        });
    }
    void AddHost(sdbus::Result<>&& result, std::string host) override
    {
        change("AddHost", std::move(result),
               [host = std::move(host)](core::Manager& m, const std::string& n) { m.add_host(n, host); });
    }
    void RemoveHost(sdbus::Result<>&& result, std::string mac) override
    {
        change("RemoveHost", std::move(result),
               [mac = std::move(mac)](core::Manager& m, const std::string& n) { m.remove_host(n, mac); });
    }
    void AddForwards(sdbus::Result<std::vector<std::string>>&& result, std::string forwards) override
    {
        change("AddForwards", std::move(result),
               [forwards = std::move(forwards)](core::Manager& m, const std::string& n) {
                   return m.add_forwards(n, forwards);
               });
    }
    // Registered by the constructor, not by the generated adaptor
    // (dbus/meson.build): the structs are read with sd-bus straight into
    // the fields (api/forward_structs.hpp).
    void AddForwardsTyped(sdbus::MethodCall call)
    {
        core::phases::mark("request read");
        auto fields = guarded([&] { return read_forward_structs(dbus::raw_message(call)); });
        core::phases::mark("structs read");
        change("AddForwardsTyped", sdbus::Result<std::vector<std::string>>(std::move(call)),
               [fields = std::move(fields)](core::Manager& m, const std::string& n) {
                   auto forwards = model::forwards_from_fields(fields);
                   core::phases::mark("forwards from D-Bus");
                   return m.add_forwards(n, std::move(forwards), false);
               });
    }
    // The same path as AddForwardsTyped once the records are fields; they
    // are mapped and decoded only after the caller is authorized.
    void AddForwardsFromFd(sdbus::Result<std::vector<std::string>>&& result, sdbus::UnixFd fd) override
    {
        core::phases::mark("request read");
        change("AddForwardsFromFd", std::move(result), [fd = std::move(fd)](core::Manager& m, const std::string& n) {
            const auto fields = read_forward_records_fd(fd.get());
            core::phases::mark("records read");
            auto forwards = model::forwards_from_fields(fields);
            core::phases::mark("forwards from D-Bus");
            return m.add_forwards(n, std::move(forwards), false);
        });
    }
    void RemoveForward(sdbus::Result<>&& result, std::string proto, std::string host_address,
                       uint32_t host_port) override
    {
        change("RemoveForward", std::move(result),
               [proto = std::move(proto), host_address = std::move(host_address), host_port](core::Manager& m,
                                                                                             const std::string& n) {
                   m.remove_forward(n, model::make_forward_key(proto, host_address, host_port));
               });
    }
    void ListForwards(sdbus::MethodCall& call)
    {
        guarded([&] { reply_text(call, manager_.list_forwards_text(name_), "ListForwards"); });
    }
    std::tuple<std::string, std::string> ListForwardsPage(const std::string& cursor, const uint32_t& limit) override
    {
        return guarded([&] { return page_reply(manager_.list_forwards_page(name_, cursor, limit)); });
    }
    std::tuple<std::vector<VarDict>, std::string> ListForwardsTyped(const std::string& cursor,
                                                                    const uint32_t& limit) override
    {
        return guarded([&] { return typed_page(manager_.list_forwards_page(name_, cursor, limit), typed_forward); });
    }
    VarDict StatisticsTyped() override
    {
        return guarded([&] { return typed_statistics(manager_.statistics(name_)); });
    }
    std::string Statistics() override
    {
        return guarded([&] { return bounded(manager_.statistics(name_).dump(), "Statistics"); });
    }
    std::string OverlayStatus() override
    {
        return guarded([&] { return bounded(manager_.overlay_status(name_).dump(), "OverlayStatus"); });
    }
    // Asynchronous: its firewalld check waits for firewalld's reply.
    void Diagnose(sdbus::Result<std::string>&& result) override
    {
        auto pending = std::make_shared<sdbus::Result<std::string>>(std::move(result));
        const auto reply = [pending](const nlohmann::json& report) {
            auto body = [&] { return bounded(report.dump(), "Diagnose"); };
            reply_with(*pending, body);
        };
        auto ask = [&] { manager_.diagnose(name_, reply); };
        try {
            guarded(ask);
        } catch (const sdbus::Error& e) {
            send_error(*pending, e);
        }
    }
    std::vector<std::string> Ports() override
    {
        std::vector<std::string> names;
        for (const auto& p : manager_.spec(name_).ports)
            names.push_back(p.name);
        return names;
    }
    bool AwaitingConfirmation() override { return manager_.awaiting_confirmation(name_); }
    std::string Dnsmasq() override { return std::string(manager_.dnsmasq_state(name_)); }
    void SetAutostart(sdbus::Result<>&& result, bool autostart) override
    {
        change("SetAutostart", std::move(result),
               [autostart](core::Manager& m, const std::string& n) { m.set_autostart(n, autostart); });
    }

    std::string Name() override { return name_; }
    std::string Mode() override { return std::string(model::mode_name(manager_.spec(name_).mode)); }
    std::string State() override { return std::string(core::state_name(manager_.state(name_))); }
    std::string StateReason() override { return manager_.state_reason(name_); }
    std::string StateReasonCode() override { return manager_.state_reason_code(name_); }
    std::string Bridge() override { return manager_.spec(name_).bridge; }
    std::string IPv4Address() override
    {
        const auto& ipv4 = manager_.spec(name_).ipv4;
        return ipv4 ? ipv4->address.str() : "";
    }
    std::string IPv6Address() override
    {
        const auto& ipv6 = manager_.spec(name_).ipv6;
        return ipv6 ? ipv6->address.str() : "";
    }
    bool Autostart() override { return manager_.spec(name_).autostart; }
    // A property setter must answer before it returns, so it cannot wait
    // for polkit as SetAutostart does: root and the daemon's own user only.
    void Autostart(const bool& value) override
    {
        guarded([&] {
            const sdbus::Message* call = getObject().getCurrentlyProcessedMessage();
            uid_t uid = 0;
            try {
                if (!call) throw sdbus::Error(access_denied_error, "no current message");
                uid = authorizer_.uid_of(*call);
            } catch (const sdbus::Error& e) {
                throw sdbus::Error(access_denied_error, "cannot determine the caller's user id: " + e.getMessage());
            }
            if (uid != 0 && uid != geteuid())
                throw sdbus::Error(access_denied_error,
                                   access_denied_message(uid, action_for_method("SetAutostart"),
                                                         "setting the Autostart property is reserved to root; "
                                                         "call SetAutostart, which asks polkit"));
            core::log_info("uid " + std::to_string(uid) + " sets Autostart of network '" + name_ + "' to " +
                           (value ? "true" : "false"));
            // A setter answers when it returns (sdbus-c++ 1.2), and waiting
            // here for the fsync would hold every other caller on the disk.
            // The value is in effect and written to a temporary file (a full
            // or read-only state directory fails here, nothing changed); it
            // becomes durable on the store's thread, and should that fail
            // it goes back, with PropertiesChanged (Manager::document_lost).
            // SetAutostart is the call that replies once it is on disk.
            manager_.set_autostart(name_, value);
        });
    }
    uint32_t LeaseCount() override
    {
        const core::TraceSpan span("LeaseCount");
        // This host's leases, without the other hosts' guests (nor asking FRR),
        // as the lease watch last read them: no read of the file per GetAll.
        return static_cast<uint32_t>(manager_.lease_count(name_));
    }
    uint32_t PortCount() override { return static_cast<uint32_t>(manager_.spec(name_).ports.size()); }
    uint32_t ForwardCount() override { return static_cast<uint32_t>(manager_.spec(name_).forwards.size()); }
    std::vector<std::string> DhcpRanges() override
    {
        const auto& s = manager_.spec(name_);
        std::vector<std::string> ranges;
        if (s.ipv4 && s.ipv4->dhcp)
            for (const auto& r : s.ipv4->ranges)
                ranges.push_back(r.first.str() + "-" + r.last.str());
        if (s.ipv6)
            for (const auto& r : s.ipv6->ranges)
                ranges.push_back(r.first.str() + "-" + r.last.str());
        return ranges;
    }
    std::string Domain() override { return manager_.spec(name_).dns.domain; }
    std::string Uplink() override { return manager_.spec(name_).uplink; }
    uint32_t Mtu() override { return manager_.spec(name_).mtu; }
    std::string LastRepair() override { return manager_.last_repair(name_); }
    std::string EvpnState() override { return manager_.evpn_state(name_); }
    std::string Revision() override { return manager_.revision(name_); }

    // Authorizes and runs a changing method of this network. body gets the
    // manager and the network's name, never this object (see changing()).
    template <typename... R, typename F>
    void change(const char* method, sdbus::Result<R...>&& result, F body)
    {
        changing(authorizer_, manager_, getObject(), method,
                 std::string("call ") + method + " on network '" + name_ + "'", std::move(result),
                 [&manager = manager_, name = name_, body = std::move(body)]() mutable { return body(manager, name); });
    }

    // change() for a method that replies when the manager calls its Done
    // (a start waiting for dnsmasq).
    template <typename F>
    void change_later(const char* method, sdbus::Result<>&& result, F body)
    {
        changing_later(authorizer_, manager_, getObject(), method,
                       std::string("call ") + method + " on network '" + name_ + "'", std::move(result),
                       [&manager = manager_, name = name_, body = std::move(body)](core::Manager::Done done) mutable {
                           body(manager, name, std::move(done));
                       });
    }

    core::Manager& manager_;
    Authorizer& authorizer_;
    std::string name_;
    std::map<std::string, std::string> snapshot_;
    bool daemon_exiting_ = false;
};

Service::Service(sdbus::IConnection& connection, core::Manager& manager, core::EventLoop* loop)
    : connection_(connection), manager_(manager), authorizer_(std::make_unique<Authorizer>(connection)),
      manager_object_(std::make_unique<ManagerObject>(connection, manager, *authorizer_)), loop_(loop)
{
    manager_.set_listener(this);
}

Service::~Service()
{
    manager_.set_listener(nullptr);
    for (auto& [name, object] : networks_)
        object->daemon_exiting();
    networks_.clear();
}

void Service::network_added(const std::string& name)
{
    networks_[name] = std::make_unique<NetworkObject>(connection_, manager_, *authorizer_, name);
    manager_object_->emitNetworkAdded(name, sdbus::ObjectPath(network_path(name)));
}

void Service::network_removed(const std::string& name)
{
    changed_.erase(name);
    networks_.erase(name);
    manager_object_->emitNetworkRemoved(name, sdbus::ObjectPath(network_path(name)));
}

void Service::mac_conflict(const std::string& name, const std::string& mac, const std::vector<std::string>& ports)
{
    if (auto it = networks_.find(name); it != networks_.end()) it->second->emitMacConflict(mac, ports);
}

void Service::lease_changed(const std::string& name, const std::string& event, const std::string& mac,
                            const std::string& ip, const std::string& hostname)
{
    if (auto it = networks_.find(name); it != networks_.end()) {
        it->second->emitLeaseChanged(event, mac, ip, hostname);
        it->second->refresh();  // LeaseCount
    }
}

void Service::network_repaired(const std::string& name, const std::string& what, const std::string& detail)
{
    if (auto it = networks_.find(name); it != networks_.end()) it->second->emitRepaired(what, detail);
}

void Service::overlay_changed(const std::string& name, const std::string& what, const std::string& detail)
{
    if (auto it = networks_.find(name); it != networks_.end()) it->second->emitOverlayChanged(what, detail);
}

// A snapshot of every property (the revision's hash, the lease count from
// dnsmasq's file) and a signal per change cost the loop about a tenth of a
// forward or host change under the D-Bus load test, where one turn serves
// several changes of the same network: those are one snapshot and one
// signal at the end of the turn, carrying the last values. A move of the
// state goes out at once, so that no step of it is merged away.
void Service::network_changed(const std::string& name)
{
    const auto it = networks_.find(name);
    if (it == networks_.end()) return;
    if (!loop_ || it->second->state_moved()) {
        changed_.erase(name);
        it->second->refresh();
        return;
    }
    changed_.insert(name);
    if (!flush_) flush_ = loop_->add_timer(0, [this] { flush_changes(); });
}

void Service::flush_changes()
{
    const auto flush = std::move(flush_);  // a change made while flushing schedules anew
    const std::set<std::string> names = std::move(changed_);
    changed_.clear();
    for (const std::string& name : names)
        if (auto it = networks_.find(name); it != networks_.end()) it->second->refresh();
}

}  // namespace kvmnet::api
