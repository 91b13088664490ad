// The applet's one window: the networks on the left, the selected one's
// details and actions on the right. Everything it shows comes from typed
// reads and is kept current by kvmnetd's signals; only the counters of
// forwards and ports are re-read on a visible timer.
#pragma once

#include "bus.hpp"

#include <gtkmm.h>

#include <map>
#include <string>
#include <vector>

namespace kvmnet::applet {

class Window : public Gtk::ApplicationWindow {
public:
    Window(Bus bus, const std::string& connect_error);
    ~Window() override;

    // The D-Bus signal trampolines' targets.
    void on_signal(const std::string& path, const std::string& iface, const std::string& member, GVariant* params);
    void on_daemon(bool present);

private:
    struct Net {
        std::string path;
        Dict props;
        Gtk::ListBoxRow* row = nullptr;
        Gtk::Label* title = nullptr;
        Gtk::Label* state = nullptr;
        Gtk::Label* summary = nullptr;
        std::string mac_conflict;
        std::string repaired;  // the last Repaired signal seen, as text
    };

    void build_details();
    void load_all();
    void upsert(const std::string& path, const Dict& props);
    void remove(const std::string& path);
    void update_row(Net& net);
    void select(const std::string& path);
    Net* selected();

    void show_details();
    void refresh_leases();
    void refresh_forwards();
    void refresh_ports();
    void refresh_hosts();
    void refresh_diagnose();
    bool on_counter_timer();

    void start_stop(const char* method);
    void on_autostart_toggled();
    void add_forward();
    void remove_forward(const std::string& proto, const std::string& address, unsigned port);
    void add_host();
    void remove_host(const std::string& key);

    // Runs a changing call on the selected network; shows "waiting" while it
    // is out (polkit may be asking), then done_text or the daemon's error.
    void change(const char* method, GVariant* args, const std::string& done_text,
                std::function<void(GVariant*)> then = {});
    void show_error(const std::string& what, const Failure& f);
    void show_message(const std::string& text);

    bool running() const;

    // The rows the counter timer updates in place while the same forwards
    // and ports are listed, so that a keyboard user's focus (on a Remove
    // button) is not lost every few seconds: (key, label).
    using TextRows = std::vector<std::pair<std::string, Gtk::Label*>>;
    TextRows forward_rows_;
    TextRows port_rows_;

    Bus bus_;
    std::map<std::string, Net> nets_;
    std::string selected_;
    std::vector<guint> subscriptions_;
    guint name_watch_ = 0;
    bool updating_autostart_ = false;
    sigc::connection timer_;

    Gtk::Paned paned_;
    Gtk::Box side_{Gtk::Orientation::VERTICAL, 6};
    Gtk::Label daemon_label_;
    Gtk::ScrolledWindow list_scroll_;
    Gtk::ListBox list_;
    Gtk::ScrolledWindow details_scroll_;
    Gtk::Box details_{Gtk::Orientation::VERTICAL, 8};
    Gtk::Label placeholder_;

    Gtk::Label name_label_;
    Gtk::Label state_label_;
    Gtk::Label info_label_;
    Gtk::Label repair_label_;
    Gtk::Label conflict_label_;
    Gtk::Box actions_{Gtk::Orientation::HORIZONTAL, 6};
    Gtk::Button start_button_{"_Start", true};
    Gtk::Button stop_button_{"S_top", true};
    Gtk::Button diagnose_button_{"_Diagnose", true};
    // A toggle button: GTK 4.8 gives a check button no accessible action, so
    // assistive technology could not change it.
    Gtk::ToggleButton autostart_toggle_{"Start with the _daemon", true};
    Gtk::Label message_label_;
    Gtk::Label error_label_;

    Gtk::Label leases_heading_;
    Gtk::ListBox leases_list_;
    Gtk::Label forwards_heading_;
    Gtk::ListBox forwards_list_;
    Gtk::Grid forward_form_;
    Gtk::DropDown forward_proto_;
    Gtk::Entry forward_host_port_;
    Gtk::Entry forward_guest_;
    Gtk::Entry forward_guest_port_;
    Gtk::Entry forward_description_;
    Gtk::Button forward_add_{"Add _forward", true};
    Gtk::Label hosts_heading_;
    Gtk::ListBox hosts_list_;
    Gtk::Grid host_form_;
    Gtk::Entry host_mac_;
    Gtk::Entry host_ip_;
    Gtk::Entry host_name_;
    Gtk::Button host_add_{"Add static _host", true};
    Gtk::Label ports_heading_;
    Gtk::ListBox ports_list_;
    Gtk::Label diagnose_heading_;
    Gtk::Label diagnose_label_;
};

}  // namespace kvmnet::applet
