// The applet's side of org.kvmnet1: GDBus (GLib's own D-Bus, driven by the
// GTK main loop, so no call ever blocks the window), typed values only.
// Every call is asynchronous; changing calls carry
// ALLOW_INTERACTIVE_AUTHORIZATION and the 330 s timeout of the introspection
// XML, so the desktop's polkit agent can ask for a password meanwhile.
#pragma once

#include <gio/gio.h>

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace kvmnet::applet {

// One a{sv} dictionary with its values as GVariants (owned).
class Dict {
public:
    Dict() = default;
    explicit Dict(GVariant* asv);  // an a{sv}; takes no ownership of it
    Dict(const Dict& other);
    Dict& operator=(const Dict& other);
    ~Dict();

    bool has(const std::string& key) const { return values_.count(key) > 0; }
    std::string str(const std::string& key) const;                   // s or o; "" when absent
    std::uint64_t num(const std::string& key) const;                 // any integer type; 0 when absent
    std::int64_t signed_num(const std::string& key) const;           // x, i; 0 when absent
    bool flag(const std::string& key) const;                         // b; false when absent
    std::vector<std::string> strings(const std::string& key) const;  // as
    std::vector<Dict> dicts(const std::string& key) const;           // aa{sv}
    // Overrides or adds the values of other (PropertiesChanged).
    void merge(const Dict& other);

private:
    void clear();
    std::map<std::string, GVariant*> values_;
};

std::vector<Dict> dict_array(GVariant* aasv);

// What a failed call reports: the D-Bus error's short kind ("Conflict" for
// org.kvmnet1.Error.Conflict, else the full name) and the daemon's message.
struct Failure {
    std::string kind;
    std::string message;
    std::string text() const { return kind.empty() ? message : kind + ": " + message; }
};

class Bus {
public:
    using Reply = std::function<void(GVariant*)>;  // the reply tuple (borrowed)
    using Error = std::function<void(const Failure&)>;

    // address: a D-Bus address, or "" for the system bus (DBUS_SYSTEM_BUS_ADDRESS
    // overrides it, as for kvmnetd and kvmnetctl).
    static Bus connect(const std::string& address, std::string& error);

    Bus() = default;
    Bus(const Bus&) = delete;
    Bus& operator=(const Bus&) = delete;
    Bus(Bus&& other) noexcept;
    Bus& operator=(Bus&& other) noexcept;
    ~Bus();

    bool connected() const { return conn_ != nullptr; }
    GDBusConnection* connection() const { return conn_; }

    // A read: no interactive authorization, GDBus's default timeout.
    void read(const std::string& path, const char* iface, const char* method, GVariant* args, Reply ok,
              Error err) const;
    // A changing call (polkit may ask the desktop's agent).
    void change(const std::string& path, const char* iface, const char* method, GVariant* args, Reply ok,
                Error err) const;
    // Every page of a typed list read (LeasesTyped, ListPortsTyped,
    // ListForwardsTyped), concatenated.
    void read_all_pages(const std::string& path, const char* method, std::function<void(std::vector<Dict>)> ok,
                        Error err) const;

private:
    void call(const std::string& path, const char* iface, const char* method, GVariant* args, bool changing, Reply ok,
              Error err) const;
    GDBusConnection* conn_ = nullptr;
};

Failure failure_of(const GError* error);

inline constexpr const char* bus_name = "org.kvmnet1";
inline constexpr const char* manager_path = "/org/kvmnet1";
inline constexpr const char* network_iface = "org.kvmnet1.Network";

}  // namespace kvmnet::applet
