// JSON persistence of the desired state.
#include "store/store.hpp"

#include "model/forward_text.hpp"
#include "store/files.hpp"

#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <sstream>

namespace kvmnet::store {

Store::Store(Layout layout, Syncer* syncer)
    : layout_(std::move(layout)), durable_(std::make_unique<DurableWriter>(syncer))
{
    make_directories(layout_.networks_dir(), 0755);
    // Contents of saves that a crash kept from being renamed into place:
    // their calls never returned.
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(layout_.networks_dir(), ec)) {
        const std::string file = entry.path().filename().string();
        if (file.find(".json.tmp") != std::string::npos) {
            std::filesystem::remove(entry.path(), ec);
            continue;
        }
        // Journal generations go on from the highest on disk, so replay
        // order (by generation) stays the order of the saves across restarts.
        const auto dot = file.rfind('.');
        if (dot != std::string::npos && dot >= 9 && file.compare(dot - 9, 9, ".forwards") == 0)
            if (const auto g = Layout::journal_generation(file, file.substr(0, dot - 9)))
                generations_ = std::max(generations_, *g);
    }
}

std::string Store::path_of(const std::string& name) const { return layout_.document(name); }

std::string Store::journal_of(const std::string& name) const { return layout_.journal(name); }

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

// A journal's first line names the document it continues: by the hash of
// its text ("base") when the text is at hand, or by its revision
// ("revision") for a save whose text is made on the writer's thread
// (DurableWriter::replace_made), which the loop never sees.
std::string base_header(const std::string& text) { return nlohmann::json{{"base", document_hash(text)}}.dump(); }
std::string revision_header(const std::string& revision) { return nlohmann::json{{"revision", revision}}.dump(); }
bool is_header(const nlohmann::json& line)
{
    return line.is_object() && (line.contains("base") || line.contains("revision"));
}

// Whether `header` (a journal's first line, parsed) names the document of `text`.
bool names_document(const nlohmann::json& header, const std::string& text)
{
    if (!header.is_object()) return false;
    if (const auto base = header.find("base"); base != header.end()) return *base == document_hash(text);
    if (const auto revision = header.find("revision"); revision != header.end()) {
        try {
            return *revision == revision_of(model::parse_network(text));
        } catch (const std::exception&) {
            return false;  // a document that does not load names nothing (load reports it)
        }
    }
    return false;
}

// Replays a forwards journal onto the document's JSON: adds replace any
// forward with the same key, removes drop it (absent is fine), so replaying
// onto a document that already holds some of the changes gives the same
// result. A last line cut short by a crash is ignored (it never returned).
// False when the journal names another document (nothing replayed).
bool replay_journal(nlohmann::json& document, const std::string& document_text, const std::string& journal,
                    std::vector<std::string>& problems, const std::string& path)
{
    using nlohmann::json;
    json& forwards = document["forwards"];
    if (forwards.is_null()) forwards = json::array();
    if (!forwards.is_array()) return false;  // parse_network names the problem
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
        json change = json::parse(line, nullptr, false);
        if (change.is_discarded()) {
            if (last && journal.back() != '\n') continue;  // cut short: its call never returned
            // A line a successful call wrote, glued onto the fragment of a
            // failed write (journals of versions that left such fragments):
            // the change is the longest suffix that is a change of its own.
            for (std::size_t at = line.find("{\"", 1); at != std::string::npos; at = line.find("{\"", at + 1)) {
                change = json::parse(line.substr(at), nullptr, false);
                if (change.is_object() && (change.contains("add") || change.contains("remove"))) break;
                change = json(json::value_t::discarded);
            }
            if (change.is_discarded()) {
                problems.push_back(where + "not JSON; line skipped");
                continue;
            }
        }
        if (is_header(change)) {
            // Written before the document was last saved: already in it, or overruled by it.
            if (!names_document(change, document_text)) return false;
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
    return true;
}

// A failed append (a full disk: short write) may have left part of its line,
// and a crash can cut one short too. The journal must still end at a line
// boundary before the next line goes on, or that line is glued onto the
// fragment and lost at load although its call succeeded.
void trim_partial_line(int fd, const std::string& path)
{
    struct stat st {};
    if (::fstat(fd, &st) != 0) throw Error(ErrorKind::Kernel, "cannot stat " + path + ": " + std::strerror(errno));
    off_t end = st.st_size;
    char buffer[4096];
    while (end > 0) {
        const off_t start = end > static_cast<off_t>(sizeof buffer) ? end - static_cast<off_t>(sizeof buffer) : 0;
        const ssize_t n = ::pread(fd, buffer, static_cast<std::size_t>(end - start), start);
        if (n != end - start)
            throw Error(ErrorKind::Kernel,
                        "cannot read " + path + ": " + (n < 0 ? std::strerror(errno) : "short read"));
        const char* newline = static_cast<const char*>(::memrchr(buffer, '\n', static_cast<std::size_t>(n)));
        if (newline) {
            end = start + (newline - buffer) + 1;
            break;
        }
        end = start;
    }
    if (end != st.st_size && ::ftruncate(fd, end) != 0)
        throw Error(ErrorKind::Kernel, "cannot truncate " + path + ": " + std::strerror(errno));
}

// `header`: the first line of a new journal (base_header or
// revision_header); empty: base_header of the document on disk at
// `document_path` (no save pending).
void append_line(const std::string& path, const std::string& header, const std::string& document_path, std::string text)
{
    // In place: a line of 100,000 forwards is 11 MB.
    text += '\n';
    bool created = false;
    // The journal that is there first: one open(2) per append but the
    // first (two, O_EXCL failing and then without, made open 7 % of
    // kvmnetd's CPU in the load test's write mix).
    int fd = ::open(path.c_str(), O_RDWR | O_APPEND | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
        fd = ::open(path.c_str(), O_RDWR | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd >= 0) {
            // A new journal: the header goes in the same write(2) as the first change.
            created = true;
            text.insert(0, (header.empty() ? base_header(read_file(document_path).value_or("")) : header) + "\n");
        }
    }
    if (fd < 0) throw Error(ErrorKind::Kernel, "cannot open " + path + ": " + std::strerror(errno));
    off_t size = 0;
    try {
        if (!created) trim_partial_line(fd, path);
        size = ::lseek(fd, 0, SEEK_END);
    } catch (...) {
        ::close(fd);
        throw;
    }
    const ssize_t n = ::write(fd, text.data(), text.size());
    const int error = errno;
    if (n != static_cast<ssize_t>(text.size())) {
        // All or nothing: what part of the line reached the file goes again
        // (if this fails too, the next append trims it).
        if (created) {
            ::unlink(path.c_str());
        } else if (n > 0 && size >= 0) {
            [[maybe_unused]] const int ignored = ::ftruncate(fd, size);
        }
        ::close(fd);
        throw Error(ErrorKind::Kernel,
                    "cannot append to " + path + ": " + (n < 0 ? std::strerror(error) : std::string("short write")));
    }
    ::close(fd);
}

}  // namespace

namespace {

struct Fnv {
    std::uint64_t hash = 14695981039346656037ull;
    void bytes(const void* data, std::size_t size)
    {
        for (const auto* c = static_cast<const unsigned char*>(data); size-- > 0; ++c) {
            hash ^= *c;
            hash *= 1099511628211ull;
        }
    }
    template <typename T>
    void value(const T& v)
    {
        bytes(&v, sizeof v);
    }
    void text(const std::string& s)
    {
        value(s.size());
        bytes(s.data(), s.size());
    }
};

}  // namespace

std::uint64_t forward_hash(const model::PortForward& f)
{
    // The fields to_json writes, each with its presence: a forward of a
    // named guest is the name, whatever address it resolves to.
    Fnv h;
    h.value(static_cast<int>(f.proto));
    h.value(f.host_port_first);
    h.value(f.host_port_last);
    h.value(f.guest_port_first);
    h.value(f.ipv6);
    if (f.ipv6) {
        h.value(f.host_address6.has_value());
        if (f.host_address6) h.value(f.host_address6->bytes);
        h.value(f.guest6.bytes);
    } else {
        h.value(f.host_address.has_value());
        if (f.host_address) h.value(f.host_address->value);
        h.text(f.guest_name);
        if (f.guest_name.empty()) h.value(f.guest.value);
    }
    h.text(f.description);
    h.value(f.rate.has_value());
    if (f.rate) h.value(*f.rate);
    return h.hash;
}

std::uint64_t forwards_hash(const std::vector<model::PortForward>& forwards)
{
    std::uint64_t sum = 0;
    for (const model::PortForward& f : forwards)
        sum += forward_hash(f);
    return sum;
}

std::uint64_t revision_base(const model::Network& network)
{
    Fnv h;
    const std::string text = model::network_text(network, false, -1);  // to_json(network, false).dump()
    h.bytes(text.data(), text.size());
    return h.hash;
}

std::string revision_of(std::uint64_t base, std::uint64_t forwards_part)
{
    // document_hash of the text and "/PART": FNV-1a goes on from the text's state.
    char part[18];
    std::snprintf(part, sizeof part, "/%016llx", static_cast<unsigned long long>(forwards_part));
    Fnv h{base};
    h.bytes(part, std::strlen(part));
    char buffer[17];
    std::snprintf(buffer, sizeof buffer, "%016llx", static_cast<unsigned long long>(h.hash));
    return buffer;
}

std::string revision_of(const model::Network& network, std::uint64_t forwards_part)
{
    return revision_of(revision_base(network), forwards_part);
}

std::string revision_of(const model::Network& network) { return revision_of(network, forwards_hash(network.forwards)); }

void Store::settle(const std::string& name) const
{
    if (durable_->pending(path_of(name))) durable_->flush();
}

std::string Store::journal_add_line(const std::vector<model::PortForward>& forwards)
{
    std::string line = R"({"add":[)";
    line.reserve(line.size() + forwards.size() * 112);
    for (std::size_t i = 0; i < forwards.size(); ++i) {
        if (i != 0) line += ',';
        model::append_json(line, forwards[i]);
    }
    line += "]}";
    return line;
}

Store::Journals& Store::journals(const std::string& name) const
{
    auto it = journals_.find(name);
    if (it == journals_.end()) it = journals_.emplace(name, Journals{{journal_of(name), "", ""}, 0, {}}).first;
    return it->second;
}

void Store::append(const std::string& name, std::string line) const
{
    const JournalFile& journal = journals(name).current;
    append_line(journal.path, journal.header, path_of(name), std::move(line));
}

void Store::journal_append(const std::string& name, std::string line) const { append(name, std::move(line)); }

void Store::journal_add(const std::string& name, const std::vector<model::PortForward>& forwards) const
{
    journal_append(name, journal_add_line(forwards));
}

void Store::journal_remove(const std::string& name, const model::ForwardKey& key) const
{
    const nlohmann::json removed{{"proto", std::string(model::proto_name(key.proto))},
                                 // make_forward_key's spelling: "" every IPv4 address, "::" every IPv6 one.
                                 {"host_address", key.ipv6 ? (key.host_address6 ? key.host_address6->str() : "::")
                                                  : key.host_address ? key.host_address->str()
                                                                     : ""},
                                 {"host_port", key.host_port}};
    append(name, nlohmann::json{{"remove", removed}}.dump());
}

namespace {

// The journals of `name` among `files` (names in networks_dir), by generation.
std::vector<std::string> journals_among(const std::vector<std::string>& files, const std::string& name,
                                        const std::string& dir)
{
    std::vector<std::pair<std::uint64_t, std::string>> found;
    for (const std::string& file : files)
        if (const auto generation = Layout::journal_generation(file, name)) found.emplace_back(*generation, file);
    std::sort(found.begin(), found.end());
    std::vector<std::string> paths;
    for (auto& [generation, file] : found)
        paths.push_back(dir + "/" + file);
    return paths;
}

// The network of document `text` with every journal in `journal_paths` that
// continues it replayed, in order; `replayed` gets the last of those.
model::Network parse_stored(const std::string& text, const std::vector<std::string>& journal_paths,
                            std::vector<std::string>& problems, std::string* replayed = nullptr)
{
    std::optional<nlohmann::json> document;
    for (const std::string& path : journal_paths) {
        const auto journal = read_file(path);
        if (!journal || journal->empty()) continue;
        if (!document) {
            try {
                document = nlohmann::json::parse(text);
            } catch (const nlohmann::json::parse_error& e) {
                throw Error(ErrorKind::InvalidArgument, std::string("not valid JSON: ") + e.what());
            }
            if (!document->is_object()) break;
        }
        if (replay_journal(*document, text, *journal, problems, path) && replayed) *replayed = path;
    }
    return document ? model::parse_network(*document) : model::parse_network(text);
}

}  // namespace

Store::Loaded Store::load(std::vector<std::string>& problems) const
{
    durable_->flush();
    Loaded result;
    std::vector<std::filesystem::path> files;
    std::vector<std::string> names;  // every file's name, for the journals
    for (const auto& entry : std::filesystem::directory_iterator(layout_.networks_dir())) {
        names.push_back(entry.path().filename().string());
        if (entry.path().extension() == ".json") files.push_back(entry.path());
    }
    std::sort(files.begin(), files.end());
    std::sort(names.begin(), names.end());
    for (const auto& file : files) {
        const std::string stem = file.stem().string();
        try {
            auto text = read_file(file.string());
            if (!text) throw Error(ErrorKind::Kernel, "cannot read");
            // A network's journals sort right after NAME.forwards.
            const std::string first = stem + ".forwards";
            std::vector<std::string> candidates;
            for (auto it = std::lower_bound(names.begin(), names.end(), first);
                 it != names.end() && it->compare(0, first.size(), first) == 0; ++it)
                candidates.push_back(*it);
            const std::vector<std::string> journals_found = journals_among(candidates, stem, layout_.networks_dir());
            std::string replayed;
            model::Network n = parse_stored(*text, journals_found, problems, &replayed);
            if (n.name + ".json" != file.filename().string())
                throw Error(ErrorKind::InvalidArgument, "name '" + n.name + "' does not match the file name");
            // Lines go on in the last journal that continues this document,
            // or in a new one naming it (NAME.forwards unless a stale one is
            // there); the next save removes the others.
            Journals& j = journals_[stem];
            std::string next = replayed;
            if (next.empty()) next = journals_found.empty() ? journal_of(stem) : layout_.journal(stem, ++generations_);
            j = Journals{{std::move(next), base_header(*text), ""}, 0, {}};
            for (const std::string& path : journals_found)
                if (path != j.current.path) j.older.push_back({path, "", ""});
            mirror(n.name, *text);
            result.networks.push_back(std::move(n));
        } catch (const Error& e) {
            result.unreadable[stem] = file.string() + ": " + e.what();
        }
    }
    return result;
}

std::optional<model::Network> Store::last_good(const std::string& name, std::vector<std::string>& problems) const
{
    if (!mirrored()) return std::nullopt;
    const auto text = read_file(layout_.mirror(name));
    if (!text) return std::nullopt;
    try {
        model::Network n = parse_stored(*text, journals_on_disk(name), problems);
        if (n.name == name) return n;
    } catch (const Error& e) {
        problems.push_back(layout_.mirror(name) + ": " + e.what());
    }
    return std::nullopt;
}

void Store::mirror(const std::string& name, const std::string& text) const
{
    if (!mirrored()) return;
    // Best effort: without a copy a broken document later means a network
    // that cannot be adopted, nothing worse.
    try {
        make_directories(layout_.mirror_dir(), 0755);
        write_replace(layout_.mirror(name), text, 0644);
    } catch (const Error&) {
    }
}

void Store::save(const model::Network& network, std::string revision, Text where) const
{
    // A read-only or immutable state directory is still a typed error here,
    // before anything changed; a full disk shows on the writer's thread.
    if (where == Text::on_writer && durable_->threaded()) check_writable();
    if (revision.empty()) revision = revision_of(network);
    const std::string& name = network.name;
    const std::string path = path_of(name);
    // A network of this name created again: journals a deletion cut short
    // by a crash left behind (the document went first) would replay onto
    // an equal text. They go before the new document exists.
    if (!durable_->pending(path) && ::access(path.c_str(), F_OK) != 0 && !journals_.count(name)) {
        for (const std::string& leftover : journals_on_disk(name))
            remove_file(leftover);
    }
    Journals& j = journals(name);
    // Two pending journals naming equal documents with another between them
    // could not be told apart after a crash (which one continues the
    // document on disk?): let the earlier saves finish first. Rare: the
    // same document again within one fsync (or a journal of a document
    // whose revision is not known, as load() leaves it, and a second save
    // while the first is pending).
    const auto same = [&](const JournalFile& f) {
        return (f.revision.empty() || f.revision == revision) && ::access(f.path.c_str(), F_OK) == 0;
    };
    if (durable_->pending(path) && (same(j.current) || std::any_of(j.older.begin(), j.older.end(), same)))
        durable_->flush();
    // A name of its own per save: the writer may still sync an earlier one.
    const std::string tmp = path + ".tmp." + std::to_string(++temporaries_);
    // Once the new document is durable every journal before it is folded in
    // (or overruled): the writer removes them.
    std::vector<std::string> folded{j.current.path};
    for (const JournalFile& f : j.older)
        folded.push_back(f.path);
    const std::uint64_t generation = ++generations_;
    std::string header;
    if (where == Text::on_loop) {
        // The text and its temporary on the loop: a full disk throws here,
        // before anything else changed. The mirror copy is written by the
        // writer's thread once the document is durable, so it is never
        // ahead of the document on disk.
        std::string text = model::document_text(network);
        const int fd = write_temp(tmp, text, 0644, true);
        header = base_header(text);
        durable_->replace(fd, tmp, path, std::move(folded), [this, name, text] { mirror(name, text); });
    } else {
        // The text is made and written on the writer's thread, from a copy
        // of the network: to_json and a new temporary of a document with
        // hundreds of forwards were most of SetAutostart's cost on the
        // event loop. A full disk fails the batch there: the call hears
        // Kernel once memory is back to the document on disk (on_lost).
        auto text = std::make_shared<std::string>();
        durable_->replace_made(
            [copy = network, text] {
                *text = model::document_text(copy);
                return *text;
            },
            tmp, path, std::move(folded), [this, name, text] { mirror(name, *text); });
        header = revision_header(revision);
    }
    j.older.push_back(std::move(j.current));
    j.current = {layout_.journal(name, generation), std::move(header), revision};
    j.generation = generation;
    durable_->when_durable([this, name, generation](std::exception_ptr error) { saved(name, generation, error); });
}

void Store::saved(const std::string& name, std::uint64_t generation, std::exception_ptr error) const
{
    const auto it = journals_.find(name);
    if (it == journals_.end() || it->second.generation != generation) return;  // saved again, or removed
    Journals& j = it->second;
    j.generation = 0;
    if (error) {
        const auto text = read_file(path_of(name));
        if (!text || !names_document(nlohmann::json::parse(j.current.header, nullptr, false), *text)) {
            // The disk holds an earlier document: the journals naming it
            // stay, and the next lines go to a new one naming it too.
            j.older.push_back(std::move(j.current));
            j.current = {layout_.journal(name, ++generations_), text ? base_header(*text) : "", ""};
            carry_lines(name, text.value_or(""));
            return;
        }
        return;  // in place; an older journal the writer could not remove stays listed
    }
    j.older.clear();
    // Back to the steady name (the writer removed it): one file per network at rest.
    const std::string steady = journal_of(name);
    if (::rename(j.current.path.c_str(), steady.c_str()) == 0 || errno == ENOENT) j.current.path = steady;
}

void Store::carry_lines(const std::string& name, const std::string& on_disk) const
{
    // The lines written while the failed saves were pending continue those
    // documents, which never reached the disk; their calls were answered
    // (a reply waits for the batches before it, not for their success).
    // They go on after the document still on disk, as a line that waited
    // for the save used to: copied, in order, into the journal naming it.
    // Only the journals after the last one naming that document: those
    // before it are folded into it already and must not replay again.
    Journals& j = journals_.at(name);
    const auto header_of = [&](const JournalFile& f) -> nlohmann::json {
        if (!f.header.empty()) return nlohmann::json::parse(f.header, nullptr, false);
        const auto first = read_file(f.path);
        if (!first) return nullptr;
        return nlohmann::json::parse(first->substr(0, first->find('\n')), nullptr, false);
    };
    std::size_t from = 0;
    for (std::size_t i = 0; i < j.older.size(); ++i)
        if (names_document(header_of(j.older[i]), on_disk)) from = i + 1;
    std::string lines;
    for (std::size_t i = from; i < j.older.size(); ++i) {
        const auto journal = read_file(j.older[i].path);
        if (!journal) continue;
        const std::size_t header_end = journal->find('\n');
        const std::size_t last_line_end = journal->rfind('\n');
        // The header, and a line cut short (its call never returned), stay behind.
        if (header_end == std::string::npos || last_line_end == header_end) continue;
        lines.append(*journal, header_end + 1, last_line_end - header_end);
    }
    if (lines.empty()) return;
    lines.pop_back();  // append_line ends it
    try {
        append_line(j.current.path, j.current.header, path_of(name), std::move(lines));
    } catch (const Error&) {
        // Nothing to answer here: the lines stay in their own journals, and
        // the document on disk decides at the next load.
    }
}

bool Store::has_journal(const std::string& name) const
{
    const Journals& j = journals(name);
    const auto exists = [](const JournalFile& f) { return ::access(f.path.c_str(), F_OK) == 0; };
    return exists(j.current) || std::any_of(j.older.begin(), j.older.end(), exists);
}

std::vector<std::string> Store::journals_on_disk(const std::string& name) const
{
    std::vector<std::string> files;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(layout_.networks_dir(), ec))
        files.push_back(entry.path().filename().string());
    return journals_among(files, name, layout_.networks_dir());
}

void Store::remove(const std::string& name) const
{
    // The document decides: once it is gone the network is. A journal left
    // behind (a crash before the lines below) is removed when a network of
    // this name is created again (save), before its document exists.
    settle(name);
    remove_file(path_of(name));
    journals_.erase(name);
    try {
        for (const std::string& journal : journals_on_disk(name))
            remove_file(journal);
        if (mirrored()) remove_file(layout_.mirror(name));
    } catch (const Error&) {
    }
}

std::optional<model::Network> Store::stored(const std::string& name, std::vector<std::string>& problems) const
{
    const auto text = read_file(path_of(name));
    if (!text) return std::nullopt;
    return parse_stored(*text, journals_on_disk(name), problems);
}

void Store::on_lost(std::function<void(const std::string& name, std::exception_ptr error)> lost) const
{
    durable_->on_lost([lost = std::move(lost)](const std::string& path, std::exception_ptr error) {
        // Only documents go through this store's writer: STATE/networks/NAME.json.
        lost(std::filesystem::path(path).stem().string(), error);
    });
}

void Store::check_writable() const
{
    const std::string dir = layout_.networks_dir();
    if (::access(dir.c_str(), W_OK) != 0)
        throw Error(ErrorKind::Kernel, "the state directory " + dir + " is not writable: " + std::strerror(errno));
}

}  // namespace kvmnet::store
