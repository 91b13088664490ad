// kvmnetctl import-libvirt: reads libvirt network XML files, converts them
// all (client/libvirt_import), and only then creates the networks, so a
// file that cannot be imported leaves nothing behind.
#include "import_libvirt.hpp"

#include "libvirt_import.hpp"
#include "sdbus_raw.hpp"

#include <sdbus-c++/sdbus-c++.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

namespace kvmnet::cli {

namespace {

namespace fs = std::filesystem;

constexpr const char* default_dir = "/etc/libvirt/qemu/networks";

struct Imported {
    std::string file;
    libvirt::Conversion conversion;
};

// libvirt marks an autostarted network with a link autostart/NAME.xml in
// the directory of its definition (the link's target is not looked at).
bool has_autostart_link(const fs::path& file)
{
    std::error_code ec;
    const fs::path link = file.parent_path() / "autostart" / file.filename();
    return fs::exists(fs::symlink_status(link, ec));
}

}  // namespace

void check_import_options(const ImportOptions& options)
{
    if (options.all == !options.files.empty())
        throw std::invalid_argument("import-libvirt takes FILE... or --all, not both or neither");
    if (!options.dir.empty() && !options.all) throw std::invalid_argument("--dir goes with --all");
}

int import_libvirt(ImportOptions options, bool ask_password)
{
    auto& [files, all, strict, dry_run, dir] = options;
    if (all) {
        if (dir.empty()) dir = default_dir;
        std::error_code ec;
        for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
            if (it->path().extension() == ".xml" && it->is_regular_file(ec)) files.push_back(it->path().string());
        if (ec) {
            std::cerr << "kvmnetctl: cannot read " << dir << ": " << ec.message() << "\n";
            return 1;
        }
        std::sort(files.begin(), files.end());
        if (files.empty()) {
            std::cerr << "kvmnetctl: no libvirt network definitions (*.xml) in " << dir << "\n";
            return 0;
        }
    }

    std::vector<Imported> imports;
    bool refused = false;
    for (const std::string& file : files) {
        std::ifstream in(file, std::ios::binary);
        std::ostringstream text;
        if (!in || !(text << in.rdbuf())) {
            std::cerr << "kvmnetctl: cannot read " << file << "\n";
            refused = true;
            continue;
        }
        Imported imported{file, libvirt::convert(text.str(), has_autostart_link(file))};
        for (const libvirt::Note& note : imported.conversion.notes)
            std::cerr << libvirt::format_note(file, note) << "\n";
        if (!imported.conversion.ok()) {
            std::cerr << libvirt::format_error(file, imported.conversion) << "\n";
            refused = true;
        } else if (strict && imported.conversion.lossy()) {
            std::cerr << file << ": error: --strict: refused, kvmnet cannot do everything it describes (see above)\n";
            refused = true;
        }
        imports.push_back(std::move(imported));
    }
    if (refused) {
        std::cerr << "kvmnetctl: nothing imported\n";
        return 1;
    }

    if (dry_run) {
        if (!all && imports.size() == 1) {
            std::cout << imports.front().conversion.document.dump(2) << "\n";
        } else {
            nlohmann::json documents = nlohmann::json::array();
            for (const Imported& i : imports)
                documents.push_back(i.conversion.document);
            std::cout << documents.dump(2) << "\n";
        }
        return 0;
    }

    auto bus = sdbus::createSystemBusConnection();
    auto manager = sdbus::createProxy(*bus, "org.kvmnet1", "/org/kvmnet1");
    if (ask_password) {
        // As allow_interactive_authorization in kvmnetctl.cpp: the flag lives
        // on the sd_bus, reached through a message (sdbus-c++ 1.2 has no call).
        const auto probe = manager->createMethodCall("org.freedesktop.DBus.Peer", "Ping");
        if (sd_bus* raw = sd_bus_message_get_bus(kvmnet::dbus::raw_message(probe)))
            sd_bus_set_allow_interactive_authorization(raw, 1);
    }
    std::vector<std::string> created;
    std::string current;
    try {
        for (const Imported& i : imports) {
            current = i.file;
            const nlohmann::json& doc = i.conversion.document;
            sdbus::ObjectPath path;
            manager->callMethod("CreateNetwork")
                .onInterface("org.kvmnet1.Manager")
                .withArguments(doc.dump())
                .storeResultsTo(path);
            created.push_back(doc["name"]);
        }
    } catch (const sdbus::Error& e) {
        std::cerr << current << ": error: kvmnetd refused the network; nothing imported\n";
        // All or nothing: the networks of this run that did get created go again.
        for (const std::string& name : created) {
            try {
                manager->callMethod("DeleteNetwork").onInterface("org.kvmnet1.Manager").withArguments(name);
            } catch (const sdbus::Error& d) {
                std::cerr << "kvmnetctl: could not delete " << name << " again: " << d.getMessage() << "\n";
            }
        }
        throw;
    }
    for (const Imported& i : imports) {
        const nlohmann::json& doc = i.conversion.document;
        std::cout << "Network " << doc["name"].get<std::string>() << " imported from " << i.file << " (stopped"
                  << (doc.value("autostart", false) ? "; starts with the daemon" : "") << ").\n";
    }
    return 0;
}

}  // namespace kvmnet::cli
