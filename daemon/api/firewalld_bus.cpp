#include "api/firewalld_bus.hpp"

#include <chrono>

namespace kvmnet::api {
namespace {
constexpr const char* fw_name = "org.fedoraproject.FirewallD1";
constexpr const char* fw_path = "/org/fedoraproject/FirewallD1";
constexpr const char* fw_zone = "org.fedoraproject.FirewallD1.zone";
// firewalld takes its bus name before it loads its rules and answers only
// once it has (a second or two here); D-Bus's usual limit bounds a firewalld
// that hangs. Every call is asynchronous, so only its reply waits, never
// the loop; Diagnose's calls have a shorter limit, since its caller waits.
constexpr auto call_timeout = std::chrono::seconds(25);
constexpr auto diagnose_timeout = std::chrono::seconds(core::firewalld_diagnose_timeout_seconds);

std::string error_text(const sdbus::Error* e)
{
    if (!e) return {};
    std::string text = e->getName();
    text.append(": ").append(e->getMessage());
    return text;
}
}  // namespace

FirewalldBusClient::FirewalldBusClient(sdbus::IConnection& connection, std::function<void()> changed)
    : changed_(std::move(changed)),
      bus_(sdbus::createProxy(connection, "org.freedesktop.DBus", "/org/freedesktop/DBus")),
      firewalld_(sdbus::createProxy(connection, fw_name, fw_path))
{
    bus_->uponSignal("NameOwnerChanged")
        .onInterface("org.freedesktop.DBus")
        .call([this](const std::string& name, const std::string&, const std::string&) {
            if (name == fw_name) changed_();
        });
    bus_->finishRegistration();
    firewalld_->uponSignal("Reloaded").onInterface(fw_name).call([this] { changed_(); });
    firewalld_->finishRegistration();
}

bool FirewalldBusClient::running()
{
    // NameHasOwner, not a call to firewalld itself: a call would have the
    // bus activate a firewalld that is installed but meant to stay off.
    try {
        bool owned = false;
        bus_->callMethod("NameHasOwner")
            .onInterface("org.freedesktop.DBus")
            .withTimeout(call_timeout)
            .withArguments(std::string(fw_name))
            .storeResultsTo(owned);
        return owned;
    } catch (const sdbus::Error&) {
        return false;
    }
}

void FirewalldBusClient::zones(ListDone done)
{
    firewalld_->callMethodAsync("getZones")
        .onInterface(fw_zone)
        .withTimeout(diagnose_timeout)
        .uponReplyInvoke([done = std::move(done)](const sdbus::Error* e, std::vector<std::string> zones) {
            done(std::move(zones), error_text(e));
        });
}

void FirewalldBusClient::zone_of(const std::string& interface, ZoneDone done)
{
    firewalld_->callMethodAsync("getZoneOfInterface")
        .onInterface(fw_zone)
        .withTimeout(diagnose_timeout)
        .withArguments(interface)
        .uponReplyInvoke([done = std::move(done)](const sdbus::Error* e, std::string zone) {
            done(std::move(zone), error_text(e));
        });
}

void FirewalldBusClient::interfaces_of(const std::string& zone, ListDone done)
{
    firewalld_->callMethodAsync("getInterfaces")
        .onInterface(fw_zone)
        .withTimeout(call_timeout)
        .withArguments(zone)
        .uponReplyInvoke([done = std::move(done)](const sdbus::Error* e, std::vector<std::string> interfaces) {
            done(std::move(interfaces), error_text(e));
        });
}

void FirewalldBusClient::change_zone(const std::string& zone, const std::string& interface, Done done)
{
    firewalld_->callMethodAsync("changeZoneOfInterface")
        .onInterface(fw_zone)
        .withTimeout(call_timeout)
        .withArguments(zone, interface)
        .uponReplyInvoke([done = std::move(done)](const sdbus::Error* e, const std::string&) { done(error_text(e)); });
}

void FirewalldBusClient::remove_interface(const std::string& zone, const std::string& interface, Done done)
{
    firewalld_->callMethodAsync("removeInterface")
        .onInterface(fw_zone)
        .withTimeout(call_timeout)
        .withArguments(zone, interface)
        .uponReplyInvoke([done = std::move(done)](const sdbus::Error* e, const std::string&) { done(error_text(e)); });
}

}  // namespace kvmnet::api
