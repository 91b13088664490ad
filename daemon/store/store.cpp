// JSON persistence of the desired state.
#include "store/store.hpp"

#include "store/files.hpp"

#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <sstream>

namespace kvmnet::store {

Store::Store(std::string state_dir) : dir_(std::move(state_dir) + "/networks") { make_directories(dir_, 0755); }

std::string Store::path_of(const std::string& name) const { return dir_ + "/" + name + ".json"; }

std::string Store::journal_of(const std::string& name) const { return dir_ + "/" + name + ".forwards"; }

namespace {

// The journal's first line names the document it continues, by a hash of
// the document's text. save() writes a new document and then drops the
// journal; a crash between the two leaves a journal whose base is no longer
// the document, and it is ignored: replaying it could bring back a forward
// that the new document had removed.
std::string document_hash(const std::string& text)
{
    std::uint64_t hash = 14695981039346656037ull;
    for (const unsigned char c : text) {
        hash ^= c;
        hash *= 1099511628211ull;
    }
    char buffer[17];
    std::snprintf(buffer, sizeof buffer, "%016llx", static_cast<unsigned long long>(hash));
    return buffer;
}

// Replays a forwards journal onto the document's JSON: adds replace any
// forward with the same key, removes drop it (absent is fine), so replaying
// onto a document that already holds some of the changes gives the same
// result. A last line cut short by a crash is ignored (it never returned).
void replay_journal(nlohmann::json& document, const std::string& document_text, const std::string& journal,
                    std::vector<std::string>& problems, const std::string& path)
{
    using nlohmann::json;
    json& forwards = document["forwards"];
    if (forwards.is_null()) forwards = json::array();
    if (!forwards.is_array()) return;  // parse_network names the problem
    std::vector<json> entries(forwards.begin(), forwards.end());
    std::vector<bool> alive(entries.size(), true);
    std::map<model::ForwardKey, std::size_t> index;
    for (std::size_t i = 0; i < entries.size(); ++i) {
        try {
            index[model::forward_key(model::parse_forward(entries[i]))] = i;
        } catch (const Error&) {
            // parse_network names it
        }
    }
    const auto drop = [&](const model::ForwardKey& key) {
        if (auto it = index.find(key); it != index.end()) {
            alive[it->second] = false;
            index.erase(it);
        }
    };
    std::istringstream in(journal);
    std::size_t number = 0;
    for (std::string line; std::getline(in, line);) {
        ++number;
        const bool last = in.peek() == std::char_traits<char>::eof();
        const std::string where = path + ":" + std::to_string(number) + ": ";
        json change;
        try {
            change = json::parse(line);
        } catch (const json::parse_error&) {
            if (!(last && journal.back() != '\n')) problems.push_back(where + "not JSON; line skipped");
            continue;
        }
        if (change.is_object() && change.contains("base")) {
            // Written before the document was last saved: already in it, or overruled by it.
            if (change["base"] != document_hash(document_text)) return;
            continue;
        }
        try {
            if (const auto added = change.find("add"); added != change.end() && added->is_array()) {
                for (const json& f : *added) {
                    const auto key = model::forward_key(model::parse_forward(f));
                    drop(key);
                    index[key] = entries.size();
                    entries.push_back(f);
                    alive.push_back(true);
                }
            } else if (const auto removed = change.find("remove"); removed != change.end()) {
                drop(model::make_forward_key(removed->at("proto").get<std::string>(),
                                             removed->at("host_address").get<std::string>(),
                                             removed->at("host_port").get<std::uint32_t>()));
            } else {
                problems.push_back(where + "neither add nor remove; line skipped");
            }
        } catch (const std::exception& e) {
            problems.push_back(where + e.what() + "; line skipped");
        }
    }
    forwards = json::array();
    for (std::size_t i = 0; i < entries.size(); ++i)
        if (alive[i]) forwards.push_back(std::move(entries[i]));
}

void append_line(const std::string& path, const std::string& document_path, const std::string& line)
{
    std::string text = line + "\n";
    int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd >= 0) {
        // A new journal: the header goes in the same write(2) as the first change.
        const auto document = read_file(document_path);
        text = nlohmann::json{{"base", document_hash(document.value_or(""))}}.dump() + "\n" + text;
    } else if (errno == EEXIST) {
        fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
    }
    if (fd < 0) throw Error(ErrorKind::Kernel, "cannot open " + path + ": " + std::strerror(errno));
    const ssize_t n = ::write(fd, text.data(), text.size());
    const int error = errno;
    ::close(fd);
    if (n != static_cast<ssize_t>(text.size()))
        throw Error(ErrorKind::Kernel,
                    "cannot append to " + path + ": " + (n < 0 ? std::strerror(error) : std::string("short write")));
}

}  // namespace

std::string revision_of(const nlohmann::json& document) { return document_hash(document.dump()); }

std::string revision_of(const model::Network& network) { return revision_of(model::to_json(network)); }

void Store::journal_add(const std::string& name, const std::vector<model::PortForward>& forwards) const
{
    nlohmann::json added = nlohmann::json::array();
    for (const model::PortForward& f : forwards)
        added.push_back(model::to_json(f));
    append_line(journal_of(name), path_of(name), nlohmann::json{{"add", std::move(added)}}.dump());
}

void Store::journal_remove(const std::string& name, const model::ForwardKey& key) const
{
    const nlohmann::json removed{{"proto", std::string(model::proto_name(key.proto))},
                                 {"host_address", key.host_address ? key.host_address->str() : ""},
                                 {"host_port", key.host_port}};
    append_line(journal_of(name), path_of(name), nlohmann::json{{"remove", removed}}.dump());
}

std::vector<model::Network> Store::load_all(std::vector<std::string>& problems) const
{
    std::vector<model::Network> result;
    std::vector<std::filesystem::path> files;
    for (const auto& entry : std::filesystem::directory_iterator(dir_))
        if (entry.path().extension() == ".json") files.push_back(entry.path());
    std::sort(files.begin(), files.end());
    for (const auto& file : files) {
        try {
            auto text = read_file(file.string());
            if (!text) throw Error(ErrorKind::Kernel, "cannot read");
            const std::string stem = file.stem().string();
            model::Network n;
            if (const auto journal = read_file(journal_of(stem)); journal && !journal->empty()) {
                nlohmann::json document;
                try {
                    document = nlohmann::json::parse(*text);
                } catch (const nlohmann::json::parse_error& e) {
                    throw Error(ErrorKind::InvalidArgument, std::string("not valid JSON: ") + e.what());
                }
                if (document.is_object()) replay_journal(document, *text, *journal, problems, journal_of(stem));
                n = model::parse_network(document);
            } else {
                n = model::parse_network(*text);
            }
            if (n.name + ".json" != file.filename().string())
                throw Error(ErrorKind::InvalidArgument, "name '" + n.name + "' does not match the file name");
            result.push_back(std::move(n));
        } catch (const Error& e) {
            problems.push_back(file.string() + ": " + e.what());
        }
    }
    return result;
}

void Store::save(const model::Network& network) const
{
    write_atomic(path_of(network.name), model::to_json(network).dump(2) + "\n", 0644);
    remove_file(journal_of(network.name));
}

void Store::remove(const std::string& name) const
{
    remove_file(path_of(name));
    remove_file(journal_of(name));
}

}  // namespace kvmnet::store
