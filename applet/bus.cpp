#include "bus.hpp"

#include <memory>
#include <utility>

namespace kvmnet::applet {

namespace {

// The changing methods' org.freedesktop.DBus.Method.Timeout (dbus/*.xml):
// longer than the daemon waits for polkit, so an open password dialog never
// makes the applet give up on a call that is still going to run.
constexpr int change_timeout_ms = 330000;
constexpr unsigned page_limit = 4096;

struct Pending {
    Bus::Reply ok;
    Bus::Error err;
};

void finished(GObject* source, GAsyncResult* result, gpointer data)
{
    std::unique_ptr<Pending> pending(static_cast<Pending*>(data));
    GError* error = nullptr;
    GVariant* reply = g_dbus_connection_call_finish(G_DBUS_CONNECTION(source), result, &error);
    if (reply == nullptr) {
        Failure f = failure_of(error);
        g_error_free(error);
        if (pending->err) pending->err(f);
        return;
    }
    if (pending->ok) pending->ok(reply);
    g_variant_unref(reply);
}

}  // namespace

Dict::Dict(GVariant* asv)
{
    if (asv == nullptr) return;
    GVariantIter it;
    g_variant_iter_init(&it, asv);
    const char* key = nullptr;
    GVariant* value = nullptr;
    while (g_variant_iter_next(&it, "{&sv}", &key, &value)) {
        auto [pos, inserted] = values_.emplace(key, value);
        if (!inserted) {
            g_variant_unref(pos->second);
            pos->second = value;
        }
    }
}

Dict::Dict(const Dict& other) : values_(other.values_)
{
    for (auto& [key, value] : values_)
        g_variant_ref(value);
}

Dict& Dict::operator=(const Dict& other)
{
    if (this != &other) {
        clear();
        values_ = other.values_;
        for (auto& [key, value] : values_)
            g_variant_ref(value);
    }
    return *this;
}

Dict::~Dict() { clear(); }

void Dict::clear()
{
    for (auto& [key, value] : values_)
        g_variant_unref(value);
    values_.clear();
}

void Dict::merge(const Dict& other)
{
    for (const auto& [key, value] : other.values_) {
        g_variant_ref(value);
        auto [pos, inserted] = values_.emplace(key, value);
        if (!inserted) {
            g_variant_unref(pos->second);
            pos->second = value;
        }
    }
}

std::string Dict::str(const std::string& key) const
{
    auto it = values_.find(key);
    if (it == values_.end()) return {};
    if (g_variant_is_of_type(it->second, G_VARIANT_TYPE_STRING) ||
        g_variant_is_of_type(it->second, G_VARIANT_TYPE_OBJECT_PATH))
        return g_variant_get_string(it->second, nullptr);
    return {};
}

std::uint64_t Dict::num(const std::string& key) const
{
    auto it = values_.find(key);
    if (it == values_.end()) return 0;
    GVariant* v = it->second;
    switch (g_variant_classify(v)) {
    case G_VARIANT_CLASS_BYTE: return g_variant_get_byte(v);
    case G_VARIANT_CLASS_UINT16: return g_variant_get_uint16(v);
    case G_VARIANT_CLASS_UINT32: return g_variant_get_uint32(v);
    case G_VARIANT_CLASS_UINT64: return g_variant_get_uint64(v);
    case G_VARIANT_CLASS_INT16: return static_cast<std::uint64_t>(g_variant_get_int16(v));
    case G_VARIANT_CLASS_INT32: return static_cast<std::uint64_t>(g_variant_get_int32(v));
    case G_VARIANT_CLASS_INT64: return static_cast<std::uint64_t>(g_variant_get_int64(v));
    default: return 0;
    }
}

std::int64_t Dict::signed_num(const std::string& key) const { return static_cast<std::int64_t>(num(key)); }

bool Dict::flag(const std::string& key) const
{
    auto it = values_.find(key);
    if (it == values_.end() || !g_variant_is_of_type(it->second, G_VARIANT_TYPE_BOOLEAN)) return false;
    return g_variant_get_boolean(it->second) != 0;
}

std::vector<std::string> Dict::strings(const std::string& key) const
{
    std::vector<std::string> out;
    auto it = values_.find(key);
    if (it == values_.end() || !g_variant_is_of_type(it->second, G_VARIANT_TYPE_STRING_ARRAY)) return out;
    gsize n = 0;
    const gchar** items = g_variant_get_strv(it->second, &n);
    for (gsize i = 0; i < n; ++i)
        out.emplace_back(items[i]);
    g_free(items);
    return out;
}

std::vector<Dict> Dict::dicts(const std::string& key) const
{
    auto it = values_.find(key);
    if (it == values_.end() || !g_variant_is_of_type(it->second, G_VARIANT_TYPE("aa{sv}"))) return {};
    return dict_array(it->second);
}

std::vector<Dict> dict_array(GVariant* aasv)
{
    std::vector<Dict> out;
    const gsize n = g_variant_n_children(aasv);
    out.reserve(n);
    for (gsize i = 0; i < n; ++i) {
        GVariant* child = g_variant_get_child_value(aasv, i);
        out.emplace_back(child);
        g_variant_unref(child);
    }
    return out;
}

Failure failure_of(const GError* error)
{
    Failure f;
    if (error == nullptr) return f;
    gchar* remote = g_dbus_error_get_remote_error(error);
    GError* copy = g_error_copy(error);
    g_dbus_error_strip_remote_error(copy);
    f.message = copy->message != nullptr ? copy->message : "";
    g_error_free(copy);
    if (remote != nullptr) {
        const std::string name = remote;
        g_free(remote);
        const std::string ours = "org.kvmnet1.Error.";
        const std::string denied = "org.freedesktop.DBus.Error.AccessDenied";
        if (name.rfind(ours, 0) == 0)
            f.kind = name.substr(ours.size());
        else if (name == denied)
            f.kind = "AccessDenied";
        else
            f.kind = name;
    }
    return f;
}

Bus Bus::connect(const std::string& address, std::string& error)
{
    Bus bus;
    GError* e = nullptr;
    if (address.empty()) {
        bus.conn_ = g_bus_get_sync(G_BUS_TYPE_SYSTEM, nullptr, &e);
    } else {
        const auto flags = static_cast<GDBusConnectionFlags>(G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT |
                                                             G_DBUS_CONNECTION_FLAGS_MESSAGE_BUS_CONNECTION);
        bus.conn_ = g_dbus_connection_new_for_address_sync(address.c_str(), flags, nullptr, nullptr, &e);
    }
    if (bus.conn_ == nullptr) {
        error = e != nullptr ? e->message : "unknown error";
        if (e != nullptr) g_error_free(e);
    }
    return bus;
}

Bus::Bus(Bus&& other) noexcept : conn_(std::exchange(other.conn_, nullptr)) {}

Bus& Bus::operator=(Bus&& other) noexcept
{
    if (this != &other) {
        if (conn_ != nullptr) g_object_unref(conn_);
        conn_ = std::exchange(other.conn_, nullptr);
    }
    return *this;
}

Bus::~Bus()
{
    if (conn_ != nullptr) g_object_unref(conn_);
}

void Bus::call(const std::string& path, const char* iface, const char* method, GVariant* args, bool changing, Reply ok,
               Error err) const
{
    if (conn_ == nullptr) {
        if (args != nullptr) g_variant_unref(g_variant_ref_sink(args));
        if (err) err(Failure{"", "not connected to the bus"});
        return;
    }
    auto* pending = new Pending{std::move(ok), std::move(err)};
    g_dbus_connection_call(conn_, bus_name, path.c_str(), iface, method, args, nullptr,
                           changing ? G_DBUS_CALL_FLAGS_ALLOW_INTERACTIVE_AUTHORIZATION : G_DBUS_CALL_FLAGS_NONE,
                           changing ? change_timeout_ms : -1, nullptr, finished, pending);
}

void Bus::read(const std::string& path, const char* iface, const char* method, GVariant* args, Reply ok,
               Error err) const
{
    call(path, iface, method, args, false, std::move(ok), std::move(err));
}

void Bus::change(const std::string& path, const char* iface, const char* method, GVariant* args, Reply ok,
                 Error err) const
{
    call(path, iface, method, args, true, std::move(ok), std::move(err));
}

void Bus::read_all_pages(const std::string& path, const char* method, std::function<void(std::vector<Dict>)> ok,
                         Error err) const
{
    // One page after the other, each its own reply, until the cursor is "".
    struct Walk {
        const Bus* bus;
        std::string path;
        const char* method;
        std::vector<Dict> items;
        std::function<void(std::vector<Dict>)> ok;
        Error err;
        void next(std::shared_ptr<Walk> self, const std::string& cursor)
        {
            bus->read(
                path, network_iface, method, g_variant_new("(su)", cursor.c_str(), page_limit),
                [self](GVariant* reply) {
                    GVariant* page = g_variant_get_child_value(reply, 0);
                    for (auto& d : dict_array(page))
                        self->items.push_back(std::move(d));
                    g_variant_unref(page);
                    const gchar* following = nullptr;
                    g_variant_get_child(reply, 1, "&s", &following);
                    if (following == nullptr || *following == '\0')
                        self->ok(std::move(self->items));
                    else
                        self->next(self, following);
                },
                err);
        }
    };
    auto walk = std::make_shared<Walk>(Walk{this, path, method, {}, std::move(ok), std::move(err)});
    walk->next(walk, "");
}

}  // namespace kvmnet::applet
