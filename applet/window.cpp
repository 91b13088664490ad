#include "window.hpp"

#include "text.hpp"

#include <ctime>
#include <utility>

namespace kvmnet::applet {

namespace {

constexpr unsigned counter_seconds = 5;
constexpr const char* properties_iface = "org.freedesktop.DBus.Properties";
constexpr const char* object_manager_iface = "org.freedesktop.DBus.ObjectManager";

void signal_trampoline(GDBusConnection*, const gchar*, const gchar* path, const gchar* iface, const gchar* member,
                       GVariant* params, gpointer self)
{
    static_cast<Window*>(self)->on_signal(path, iface, member, params);
}

void appeared_trampoline(GDBusConnection*, const gchar*, const gchar*, gpointer self)
{
    static_cast<Window*>(self)->on_daemon(true);
}

void vanished_trampoline(GDBusConnection*, const gchar*, gpointer self)
{
    static_cast<Window*>(self)->on_daemon(false);
}

// Accessible names and descriptions: what a screen reader says, and how the
// AT-SPI test finds a widget whose text changes.
void accessible_label(Gtk::Widget& w, const char* text)
{
    gtk_accessible_update_property(GTK_ACCESSIBLE(w.gobj()), GTK_ACCESSIBLE_PROPERTY_LABEL, text, -1);
}

void accessible_description(Gtk::Widget& w, const char* text)
{
    gtk_accessible_update_property(GTK_ACCESSIBLE(w.gobj()), GTK_ACCESSIBLE_PROPERTY_DESCRIPTION, text, -1);
}

void text_label(Gtk::Label& l, const char* description)
{
    l.set_xalign(0);
    l.set_wrap(true);
    l.set_wrap_mode(Pango::WrapMode::WORD_CHAR);
    accessible_description(l, description);
}

void heading(Gtk::Label& l, const std::string& text)
{
    l.set_markup("<b>" + Glib::Markup::escape_text(text) + "</b>");
    l.set_xalign(0);
    l.set_margin_top(8);
}

void clear(Gtk::ListBox& list)
{
    while (auto* child = list.get_first_child())
        list.remove(*child);
}

// One line of text as a list row (leases, ports, hosts).
Gtk::Label* append_line(Gtk::ListBox& list, const std::string& text)
{
    auto* label = Gtk::make_managed<Gtk::Label>(text);
    label->set_xalign(0);
    label->set_wrap(true);
    label->set_wrap_mode(Pango::WrapMode::WORD_CHAR);
    label->set_margin(4);
    list.append(*label);
    return label;
}

// Whether rows show the same items, in the same order, as a new read.
template <typename Key>
bool same_keys(const std::vector<std::pair<std::string, Gtk::Label*>>& rows, const std::vector<Dict>& items, Key key)
{
    if (rows.empty() || rows.size() != items.size()) return false;
    for (std::size_t i = 0; i < items.size(); ++i)
        if (rows[i].first != key(items[i])) return false;
    return true;
}

// The label's mnemonic makes it the entry's accessible name (labelled-by).
void entry_row(Gtk::Grid& grid, int row, const char* mnemonic, Gtk::Entry& entry, const char* placeholder)
{
    auto* label = Gtk::make_managed<Gtk::Label>(mnemonic, true);
    label->set_xalign(1);
    label->set_mnemonic_widget(entry);
    entry.set_placeholder_text(placeholder);
    entry.set_hexpand(true);
    grid.attach(*label, 0, row);
    grid.attach(entry, 1, row);
}

void set_state_class(Gtk::Label& label, const std::string& state)
{
    for (const char* c : {"success", "warning", "error", "dim-label"})
        label.remove_css_class(c);
    if (state == "active")
        label.add_css_class("success");
    else if (state == "degraded")
        label.add_css_class("warning");
    else if (state == "failed")
        label.add_css_class("error");
    else
        label.add_css_class("dim-label");
}

std::string repair_summary(const std::string& last_repair)
{
    // "TIME WHAT: DETAIL" → "TIME WHAT"
    const auto colon = last_repair.find(':', last_repair.find(' ') == std::string::npos ? 0 : last_repair.find(' '));
    return colon == std::string::npos ? last_repair : last_repair.substr(0, colon);
}

}  // namespace

Window::Window(Bus bus, const std::string& connect_error) : bus_(std::move(bus))
{
    set_title("kvmnet networks");
    set_default_size(1100, 760);
    set_icon_name("org.kvmnet.Applet");

    daemon_label_.set_xalign(0);
    daemon_label_.set_wrap(true);
    accessible_description(daemon_label_, "daemon status");
    side_.set_margin(8);
    auto* networks_heading = Gtk::make_managed<Gtk::Label>();
    heading(*networks_heading, "Networks");
    networks_heading->set_margin_top(0);
    side_.append(*networks_heading);
    side_.append(daemon_label_);
    list_.set_selection_mode(Gtk::SelectionMode::SINGLE);
    accessible_label(list_, "Networks");
    list_.set_sort_func([](Gtk::ListBoxRow* a, Gtk::ListBoxRow* b) { return a->get_name().compare(b->get_name()); });
    list_.signal_row_selected().connect([this](Gtk::ListBoxRow* row) {
        for (auto& [path, net] : nets_)
            if (net.row == row && path != selected_) select(path);
    });
    list_scroll_.set_child(list_);
    list_scroll_.set_vexpand(true);
    list_scroll_.set_size_request(300, -1);
    side_.append(list_scroll_);

    build_details();
    details_scroll_.set_child(details_);
    details_scroll_.set_hexpand(true);
    paned_.set_start_child(side_);
    paned_.set_end_child(details_scroll_);
    paned_.set_resize_start_child(false);
    paned_.set_shrink_start_child(false);
    set_child(paned_);
    show_details();

    if (!bus_.connected()) {
        daemon_label_.set_text("Cannot connect to the system bus: " + connect_error);
        daemon_label_.add_css_class("error");
        return;
    }
    daemon_label_.set_text("Looking for kvmnetd…");
    GDBusConnection* c = bus_.connection();
    // Every signal kvmnetd sends that the window shows; the bus routes those
    // of org.kvmnet1's current owner.
    subscriptions_.push_back(g_dbus_connection_signal_subscribe(c, bus_name, object_manager_iface, nullptr,
                                                                manager_path, nullptr, G_DBUS_SIGNAL_FLAGS_NONE,
                                                                signal_trampoline, this, nullptr));
    subscriptions_.push_back(g_dbus_connection_signal_subscribe(c, bus_name, properties_iface, "PropertiesChanged",
                                                                nullptr, network_iface, G_DBUS_SIGNAL_FLAGS_NONE,
                                                                signal_trampoline, this, nullptr));
    subscriptions_.push_back(g_dbus_connection_signal_subscribe(c, bus_name, network_iface, nullptr, nullptr, nullptr,
                                                                G_DBUS_SIGNAL_FLAGS_NONE, signal_trampoline, this,
                                                                nullptr));
    name_watch_ = g_bus_watch_name_on_connection(c, bus_name, G_BUS_NAME_WATCHER_FLAGS_NONE, appeared_trampoline,
                                                 vanished_trampoline, this, nullptr);
    timer_ = Glib::signal_timeout().connect_seconds(sigc::mem_fun(*this, &Window::on_counter_timer), counter_seconds);
}

Window::~Window()
{
    timer_.disconnect();
    if (name_watch_ != 0) g_bus_unwatch_name(name_watch_);
    for (guint id : subscriptions_)
        g_dbus_connection_signal_unsubscribe(bus_.connection(), id);
}

void Window::build_details()
{
    details_.set_margin(12);
    placeholder_.set_text("No network selected.");
    placeholder_.set_xalign(0);
    details_.append(placeholder_);

    name_label_.set_xalign(0);
    name_label_.add_css_class("title-1");
    details_.append(name_label_);
    text_label(state_label_, "state");
    details_.append(state_label_);
    text_label(info_label_, "configuration");
    info_label_.set_selectable(true);
    details_.append(info_label_);
    text_label(repair_label_, "last repair");
    details_.append(repair_label_);
    text_label(conflict_label_, "mac conflict");
    conflict_label_.add_css_class("warning");
    details_.append(conflict_label_);

    start_button_.signal_clicked().connect([this] { start_stop("Start"); });
    stop_button_.signal_clicked().connect([this] { start_stop("Stop"); });
    diagnose_button_.signal_clicked().connect([this] { refresh_diagnose(); });
    autostart_toggle_.signal_toggled().connect(sigc::mem_fun(*this, &Window::on_autostart_toggled));
    // GTK 4.8 names a button with a mnemonic "_Start Start"; a screen
    // reader should say "Start".
    accessible_label(start_button_, "Start");
    accessible_label(stop_button_, "Stop");
    accessible_label(diagnose_button_, "Diagnose");
    accessible_label(forward_add_, "Add forward");
    accessible_label(host_add_, "Add static host");
    accessible_label(autostart_toggle_, "Start with the daemon");
    actions_.append(start_button_);
    actions_.append(stop_button_);
    actions_.append(diagnose_button_);
    actions_.append(autostart_toggle_);
    details_.append(actions_);

    text_label(message_label_, "message");
    details_.append(message_label_);
    text_label(error_label_, "error");
    error_label_.add_css_class("error");
    error_label_.set_selectable(true);
    details_.append(error_label_);

    heading(leases_heading_, "Leases");
    details_.append(leases_heading_);
    leases_list_.set_selection_mode(Gtk::SelectionMode::NONE);
    accessible_label(leases_list_, "Leases");
    details_.append(leases_list_);

    heading(forwards_heading_, "Port forwards");
    details_.append(forwards_heading_);
    forwards_list_.set_selection_mode(Gtk::SelectionMode::NONE);
    accessible_label(forwards_list_, "Port forwards");
    details_.append(forwards_list_);
    forward_form_.set_row_spacing(4);
    forward_form_.set_column_spacing(8);
    forward_proto_.set_model(Gtk::StringList::create({"tcp", "udp", "both"}));
    auto* proto_label = Gtk::make_managed<Gtk::Label>("Pr_otocol", true);
    proto_label->set_xalign(1);
    proto_label->set_mnemonic_widget(forward_proto_);
    forward_form_.attach(*proto_label, 0, 0);
    forward_form_.attach(forward_proto_, 1, 0);
    entry_row(forward_form_, 1, "Host _port", forward_host_port_, "8080 or 8000-8010");
    entry_row(forward_form_, 2, "_Guest", forward_guest_, "guest address or static host name");
    entry_row(forward_form_, 3, "G_uest port", forward_guest_port_, "80");
    entry_row(forward_form_, 4, "D_escription", forward_description_, "optional");
    forward_add_.signal_clicked().connect(sigc::mem_fun(*this, &Window::add_forward));
    forward_guest_port_.signal_activate().connect(sigc::mem_fun(*this, &Window::add_forward));
    forward_form_.attach(forward_add_, 1, 5);
    forward_add_.set_halign(Gtk::Align::START);
    details_.append(forward_form_);

    heading(hosts_heading_, "Static DHCP hosts");
    details_.append(hosts_heading_);
    hosts_list_.set_selection_mode(Gtk::SelectionMode::NONE);
    accessible_label(hosts_list_, "Static DHCP hosts");
    details_.append(hosts_list_);
    host_form_.set_row_spacing(4);
    host_form_.set_column_spacing(8);
    entry_row(host_form_, 0, "_MAC", host_mac_, "52:54:00:12:34:56");
    entry_row(host_form_, 1, "_IP address", host_ip_, "192.168.122.10");
    entry_row(host_form_, 2, "Host _name", host_name_, "optional");
    host_add_.signal_clicked().connect(sigc::mem_fun(*this, &Window::add_host));
    host_form_.attach(host_add_, 1, 3);
    host_add_.set_halign(Gtk::Align::START);
    details_.append(host_form_);

    heading(ports_heading_, "Guest ports");
    details_.append(ports_heading_);
    ports_list_.set_selection_mode(Gtk::SelectionMode::NONE);
    accessible_label(ports_list_, "Guest ports");
    details_.append(ports_list_);

    heading(diagnose_heading_, "Diagnose");
    details_.append(diagnose_heading_);
    text_label(diagnose_label_, "diagnose result");
    diagnose_label_.set_selectable(true);
    details_.append(diagnose_label_);
}

// ---------------------------------------------------------------- the daemon and its signals

void Window::on_daemon(bool present)
{
    if (present) {
        daemon_label_.set_text("kvmnetd is running.");
        daemon_label_.remove_css_class("error");
        load_all();
        return;
    }
    daemon_label_.set_text("kvmnetd is not running (or not reachable on this bus).");
    daemon_label_.add_css_class("error");
    std::vector<std::string> paths;
    for (auto& [path, net] : nets_)
        paths.push_back(path);
    for (auto& path : paths)
        remove(path);
}

void Window::load_all()
{
    bus_.read(
        manager_path, object_manager_iface, "GetManagedObjects", nullptr,
        [this](GVariant* reply) {
            std::map<std::string, Dict> found;
            GVariant* objects = g_variant_get_child_value(reply, 0);
            GVariantIter it;
            g_variant_iter_init(&it, objects);
            const gchar* path = nullptr;
            GVariant* ifaces = nullptr;
            while (g_variant_iter_next(&it, "{&o@a{sa{sv}}}", &path, &ifaces)) {
                if (GVariant* props = g_variant_lookup_value(ifaces, network_iface, G_VARIANT_TYPE("a{sv}"))) {
                    found.emplace(path, Dict(props));
                    g_variant_unref(props);
                }
                g_variant_unref(ifaces);
            }
            g_variant_unref(objects);
            std::vector<std::string> gone;
            for (auto& [p, net] : nets_)
                if (!found.count(p)) gone.push_back(p);
            for (auto& p : gone)
                remove(p);
            for (auto& [p, props] : found)
                upsert(p, props);
        },
        [this](const Failure& f) { show_error("Listing the networks failed", f); });
}

void Window::on_signal(const std::string& path, const std::string& iface, const std::string& member, GVariant* params)
{
    if (iface == object_manager_iface) {
        const gchar* object = nullptr;
        if (member == "InterfacesAdded") {
            GVariant* ifaces = nullptr;
            g_variant_get(params, "(&o@a{sa{sv}})", &object, &ifaces);
            if (GVariant* props = g_variant_lookup_value(ifaces, network_iface, G_VARIANT_TYPE("a{sv}"))) {
                upsert(object, Dict(props));
                g_variant_unref(props);
            }
            g_variant_unref(ifaces);
        } else if (member == "InterfacesRemoved") {
            g_variant_get_child(params, 0, "&o", &object);
            remove(object);
        }
        return;
    }
    auto it = nets_.find(path);
    if (it == nets_.end()) return;
    Net& net = it->second;
    const bool shown = path == selected_;
    if (iface == properties_iface && member == "PropertiesChanged") {
        GVariant* changed_v = g_variant_get_child_value(params, 1);
        const Dict changed(changed_v);
        g_variant_unref(changed_v);
        net.props.merge(changed);
        update_row(net);
        if (!shown) return;
        show_details();
        if (changed.has("State")) {
            // Leases, counters and the diagnosis all change with the state.
            refresh_leases();
            refresh_forwards();
            refresh_ports();
            refresh_diagnose();
            return;
        }
        if (changed.has("LeaseCount")) refresh_leases();
        if (changed.has("ForwardCount")) refresh_forwards();
        if (changed.has("Ports") || changed.has("PortCount")) refresh_ports();
        if (changed.has("Revision")) refresh_hosts();
        if (changed.has("LastRepair") || changed.has("StateReasonCode")) refresh_diagnose();
        return;
    }
    if (iface != network_iface) return;
    if (member == "LeaseChanged") {
        const gchar *event = nullptr, *mac = nullptr, *ip = nullptr, *hostname = nullptr;
        g_variant_get(params, "(&s&s&s&s)", &event, &mac, &ip, &hostname);
        if (shown) {
            refresh_leases();
            show_message(std::string("Lease ") + event + ": " + mac + " " + ip);
        }
    } else if (member == "Repaired") {
        const gchar *what = nullptr, *detail = nullptr;
        g_variant_get(params, "(&s&s)", &what, &detail);
        net.repaired = std::string("Repaired ") + what + ": " + detail;
        update_row(net);
        if (shown) {
            show_details();
            refresh_diagnose();
            refresh_forwards();
        }
    } else if (member == "MacConflict") {
        const gchar* mac = nullptr;
        GVariant* ports = nullptr;
        g_variant_get(params, "(&s@as)", &mac, &ports);
        std::string text = std::string("MAC conflict: ") + mac + " is seen behind";
        gsize n = 0;
        const gchar** names = g_variant_get_strv(ports, &n);
        for (gsize i = 0; i < n; ++i)
            text.append(i == 0 ? " " : ", ").append(names[i]);
        g_free(names);
        g_variant_unref(ports);
        net.mac_conflict = text;
        if (shown) show_details();
    }
}

// ---------------------------------------------------------------- the list

void Window::upsert(const std::string& path, const Dict& props)
{
    auto [it, added] = nets_.try_emplace(path);
    Net& net = it->second;
    net.path = path;
    if (added) {
        net.props = props;
        auto* row = Gtk::make_managed<Gtk::ListBoxRow>();
        auto* box = Gtk::make_managed<Gtk::Box>(Gtk::Orientation::VERTICAL, 2);
        box->set_margin(6);
        net.title = Gtk::make_managed<Gtk::Label>();
        net.state = Gtk::make_managed<Gtk::Label>();
        net.summary = Gtk::make_managed<Gtk::Label>();
        for (Gtk::Label* l : {net.title, net.state, net.summary}) {
            l->set_xalign(0);
            l->set_wrap(true);
            l->set_wrap_mode(Pango::WrapMode::WORD_CHAR);
            box->append(*l);
        }
        row->set_child(*box);
        net.row = row;
        list_.append(*row);
    } else {
        net.props.merge(props);
    }
    update_row(net);
    if (selected_.empty()) {
        select(path);
    } else if (path == selected_) {
        // Read again (the daemon may have restarted): lists carry no signal
        // of their own for what changed meanwhile.
        show_details();
        refresh_leases();
        refresh_forwards();
        refresh_ports();
        refresh_hosts();
        refresh_diagnose();
    }
}

void Window::remove(const std::string& path)
{
    auto it = nets_.find(path);
    if (it == nets_.end()) return;
    list_.remove(*it->second.row);
    nets_.erase(it);
    if (path == selected_) {
        selected_.clear();
        if (!nets_.empty())
            select(nets_.begin()->first);
        else
            show_details();
    }
}

void Window::update_row(Net& net)
{
    const std::string name = net.props.str("Name");
    net.row->set_name(name);
    net.title->set_markup("<b>" + Glib::Markup::escape_text(name) + "</b>");
    std::string state = state_text(net.props);
    const std::string last_repair = net.props.str("LastRepair");
    if (!last_repair.empty()) state.append(" · repaired ").append(repair_summary(last_repair));
    net.state->set_text(state);
    set_state_class(*net.state, net.props.str("State"));
    net.summary->set_text(summary_text(net.props));
    list_.invalidate_sort();
}

void Window::select(const std::string& path)
{
    auto it = nets_.find(path);
    if (it == nets_.end()) return;
    selected_ = path;
    list_.select_row(*it->second.row);
    message_label_.set_text("");
    error_label_.set_text("");
    clear(leases_list_);
    clear(forwards_list_);
    clear(ports_list_);
    clear(hosts_list_);
    forward_rows_.clear();
    port_rows_.clear();
    diagnose_label_.set_text("");
    show_details();
    refresh_leases();
    refresh_forwards();
    refresh_ports();
    refresh_hosts();
    refresh_diagnose();
}

Window::Net* Window::selected()
{
    auto it = nets_.find(selected_);
    return it == nets_.end() ? nullptr : &it->second;
}

bool Window::running() const
{
    auto it = nets_.find(selected_);
    if (it == nets_.end()) return false;
    const std::string state = it->second.props.str("State");
    return state == "active" || state == "degraded" || state == "activating";
}

// ---------------------------------------------------------------- details

void Window::show_details()
{
    Net* net = selected();
    placeholder_.set_visible(net == nullptr);
    for (Gtk::Widget* w : std::initializer_list<Gtk::Widget*>{
             &name_label_, &state_label_, &info_label_, &repair_label_, &actions_, &leases_heading_, &leases_list_,
             &forwards_heading_, &forwards_list_, &forward_form_, &hosts_heading_, &hosts_list_, &host_form_,
             &ports_heading_, &ports_list_, &diagnose_heading_, &diagnose_label_})
        w->set_visible(net != nullptr);
    conflict_label_.set_visible(net != nullptr && !net->mac_conflict.empty());
    if (net == nullptr) return;
    const Dict& p = net->props;
    name_label_.set_text(p.str("Name"));
    const std::string state = p.str("State");
    state_label_.set_text("State: " + state_text(p));
    set_state_class(state_label_, state);
    std::string info = "Mode: " + p.str("Mode");
    info.append("\nBridge: ").append(p.str("Bridge").empty() ? "-" : p.str("Bridge"));
    if (!p.str("IPv4Address").empty()) info.append("\nIPv4: ").append(p.str("IPv4Address"));
    if (!p.str("IPv6Address").empty()) info.append("\nIPv6: ").append(p.str("IPv6Address"));
    const auto ranges = p.strings("DhcpRanges");
    if (!ranges.empty()) {
        info.append("\nDHCP:");
        for (const auto& r : ranges)
            info.append(" ").append(r);
    }
    if (!p.str("Domain").empty()) info.append("\nDomain: ").append(p.str("Domain"));
    if (!p.str("Uplink").empty()) info.append("\nUplink: ").append(p.str("Uplink"));
    info.append("\ndnsmasq: ").append(p.str("Dnsmasq"));
    info.append("\nGuests: ").append(std::to_string(p.num("LeaseCount")));
    info.append(" · forwards: ").append(std::to_string(p.num("ForwardCount")));
    info.append(" · ports: ").append(std::to_string(p.num("PortCount")));
    info_label_.set_text(info);
    const std::string last = p.str("LastRepair");
    std::string repair = "Last repair: " + (last.empty() ? std::string("none since kvmnetd started") : last);
    if (!net->repaired.empty()) repair.append("\n").append(net->repaired);
    repair_label_.set_text(repair);
    conflict_label_.set_text(net->mac_conflict);
    start_button_.set_sensitive(state == "inactive" || state == "failed");
    stop_button_.set_sensitive(state != "inactive");
    updating_autostart_ = true;
    autostart_toggle_.set_active(p.flag("Autostart"));
    updating_autostart_ = false;
    forward_form_.set_sensitive(p.str("Mode") == "nat");
    forwards_heading_.set_markup("<b>Port forwards</b> (counters refresh every " + std::to_string(counter_seconds) +
                                 " s)");
}

void Window::refresh_leases()
{
    const std::string path = selected_;
    if (path.empty()) return;
    bus_.read_all_pages(
        path, "LeasesTyped",
        [this, path](std::vector<Dict> leases) {
            if (path != selected_) return;
            clear(leases_list_);
            const auto now = static_cast<std::int64_t>(std::time(nullptr));
            for (const auto& l : leases)
                append_line(leases_list_, lease_text(l, now));
            if (leases.empty()) append_line(leases_list_, running() ? "No leases." : "No leases (not running).");
        },
        [this](const Failure& f) { show_error("Reading the leases failed", f); });
}

void Window::refresh_forwards()
{
    const std::string path = selected_;
    if (path.empty()) return;
    bus_.read_all_pages(
        path, "ListForwardsTyped",
        [this, path](std::vector<Dict> forwards) {
            if (path != selected_) return;
            const bool on = running();
            if (same_keys(forward_rows_, forwards, forward_key_text)) {
                for (std::size_t i = 0; i < forwards.size(); ++i)
                    forward_rows_[i].second->set_text(forward_text(forwards[i], on));
                return;
            }
            clear(forwards_list_);
            forward_rows_.clear();
            for (const auto& f : forwards) {
                auto* box = Gtk::make_managed<Gtk::Box>(Gtk::Orientation::HORIZONTAL, 8);
                box->set_margin(4);
                auto* label = Gtk::make_managed<Gtk::Label>(forward_text(f, on));
                label->set_xalign(0);
                label->set_hexpand(true);
                label->set_wrap(true);
                label->set_wrap_mode(Pango::WrapMode::WORD_CHAR);
                auto* button = Gtk::make_managed<Gtk::Button>("Remove");
                const std::string key = forward_key_text(f);
                forward_rows_.emplace_back(key, label);
                accessible_label(*button, ("Remove forward " + key).c_str());
                const std::string proto = f.str("proto");
                const std::string address = f.str("host_address");
                const auto port = static_cast<unsigned>(f.num("host_port"));
                button->signal_clicked().connect(
                    [this, proto, address, port] { remove_forward(proto, address, port); });
                box->append(*label);
                box->append(*button);
                forwards_list_.append(*box);
            }
            if (forwards.empty()) append_line(forwards_list_, "No port forwards.");
        },
        [this](const Failure& f) { show_error("Reading the forwards failed", f); });
}

void Window::refresh_ports()
{
    const std::string path = selected_;
    if (path.empty()) return;
    bus_.read_all_pages(
        path, "ListPortsTyped",
        [this, path](std::vector<Dict> ports) {
            if (path != selected_) return;
            auto name = [](const Dict& p) { return p.str("name"); };
            if (same_keys(port_rows_, ports, name)) {
                for (std::size_t i = 0; i < ports.size(); ++i)
                    port_rows_[i].second->set_text(port_text(ports[i]));
                return;
            }
            clear(ports_list_);
            port_rows_.clear();
            for (const auto& p : ports)
                port_rows_.emplace_back(name(p), append_line(ports_list_, port_text(p)));
            if (ports.empty()) append_line(ports_list_, "No guest ports configured.");
        },
        [this](const Failure& f) { show_error("Reading the ports failed", f); });
}

void Window::refresh_hosts()
{
    const std::string path = selected_;
    if (path.empty()) return;
    // No typed read lists the static hosts: they are part of the document.
    bus_.read(
        path, network_iface, "Export", nullptr,
        [this, path](GVariant* reply) {
            if (path != selected_) return;
            const gchar* document = nullptr;
            g_variant_get_child(reply, 0, "&s", &document);
            clear(hosts_list_);
            const auto hosts = static_hosts(document != nullptr ? document : "");
            for (const auto& h : hosts) {
                auto* box = Gtk::make_managed<Gtk::Box>(Gtk::Orientation::HORIZONTAL, 8);
                box->set_margin(4);
                auto* label = Gtk::make_managed<Gtk::Label>(h.text);
                label->set_xalign(0);
                label->set_hexpand(true);
                auto* button = Gtk::make_managed<Gtk::Button>("Remove");
                accessible_label(*button, ("Remove static host " + h.key).c_str());
                const std::string key = h.key;
                button->signal_clicked().connect([this, key] { remove_host(key); });
                box->append(*label);
                box->append(*button);
                hosts_list_.append(*box);
            }
            if (hosts.empty()) append_line(hosts_list_, "No static hosts.");
        },
        [this, path](const Failure& f) {
            if (path != selected_) return;
            clear(hosts_list_);
            append_line(hosts_list_, "Static hosts not shown: " + f.text());
        });
}

void Window::refresh_diagnose()
{
    const std::string path = selected_;
    if (path.empty()) return;
    bus_.read(
        path, network_iface, "Diagnose", nullptr,
        [this, path](GVariant* reply) {
            if (path != selected_) return;
            const gchar* json = nullptr;
            g_variant_get_child(reply, 0, "&s", &json);
            std::string text;
            for (const auto& line : diagnose_lines(json != nullptr ? json : "")) {
                if (!text.empty()) text.append("\n");
                text.append(line);
            }
            diagnose_label_.set_text(text);
        },
        [this, path](const Failure& f) {
            if (path == selected_) diagnose_label_.set_text("Diagnose failed: " + f.text());
        });
}

bool Window::on_counter_timer()
{
    // The one poll: counters change with traffic, which sends no signal.
    if (running()) {
        refresh_forwards();
        refresh_ports();
    }
    return true;
}

// ---------------------------------------------------------------- actions

void Window::show_error(const std::string& what, const Failure& f)
{
    error_label_.set_text(what + ": " + f.text());
    message_label_.set_text("");
}

void Window::show_message(const std::string& text) { message_label_.set_text(text); }

void Window::change(const char* method, GVariant* args, const std::string& done_text,
                    std::function<void(GVariant*)> then)
{
    Net* net = selected();
    if (net == nullptr) {
        if (args != nullptr) g_variant_unref(g_variant_ref_sink(args));
        return;
    }
    const std::string name = net->props.str("Name");
    error_label_.set_text("");
    show_message(std::string(method) + " " + name + ": waiting for kvmnetd (it may ask for a password)…");
    bus_.change(
        net->path, network_iface, method, args,
        [this, done_text, then](GVariant* reply) {
            show_message(done_text);
            if (then) then(reply);
        },
        [this, method, name](const Failure& f) { show_error(std::string(method) + " " + name + " refused", f); });
}

void Window::start_stop(const char* method)
{
    Net* net = selected();
    if (net == nullptr) return;
    const std::string name = net->props.str("Name");
    change(method, nullptr, "Network " + name + (std::string(method) == "Start" ? " started." : " stopped."));
}

void Window::on_autostart_toggled()
{
    if (updating_autostart_) return;
    Net* net = selected();
    if (net == nullptr) return;
    const bool on = autostart_toggle_.get_active();
    const std::string name = net->props.str("Name");
    const std::string path = net->path;
    error_label_.set_text("");
    bus_.change(
        path, network_iface, "SetAutostart", g_variant_new("(b)", on),
        [this, name, on](GVariant*) {
            show_message("Network " + name + (on ? " will start" : " will not start") + " with the daemon.");
        },
        [this, name, path](const Failure& f) {
            show_error("SetAutostart " + name + " refused", f);
            // The property did not change: show it as it is.
            if (path == selected_) show_details();
        });
}

void Window::add_forward()
{
    static const char* protos[] = {"tcp", "udp", "both"};
    const guint index = forward_proto_.get_selected();
    const std::string proto = index < 3 ? protos[index] : "tcp";
    const std::string document = forward_document(proto, forward_host_port_.get_text(), forward_guest_.get_text(),
                                                  forward_guest_port_.get_text(), forward_description_.get_text());
    change("AddForwards", g_variant_new("(s)", document.c_str()), "Forward added.", [this](GVariant* reply) {
        forward_host_port_.set_text("");
        forward_guest_port_.set_text("");
        forward_description_.set_text("");
        GVariant* warnings = g_variant_get_child_value(reply, 0);
        gsize n = 0;
        const gchar** items = g_variant_get_strv(warnings, &n);
        std::string text = "Forward added.";
        for (gsize i = 0; i < n; ++i)
            text.append("\nWarning: ").append(items[i]);
        g_free(items);
        g_variant_unref(warnings);
        show_message(text);
    });
}

void Window::remove_forward(const std::string& proto, const std::string& address, unsigned port)
{
    change("RemoveForward", g_variant_new("(ssu)", proto.c_str(), address.c_str(), port),
           "Forward " + proto + " " + (address.empty() ? "*" : address) + ":" + std::to_string(port) + " removed.");
}

void Window::add_host()
{
    const std::string document = host_document(host_mac_.get_text(), host_ip_.get_text(), host_name_.get_text());
    change("AddHost", g_variant_new("(s)", document.c_str()), "Static host added.", [this](GVariant*) {
        host_mac_.set_text("");
        host_ip_.set_text("");
        host_name_.set_text("");
    });
}

void Window::remove_host(const std::string& key)
{
    change("RemoveHost", g_variant_new("(s)", key.c_str()), "Static host " + key + " removed.");
}

}  // namespace kvmnet::applet
