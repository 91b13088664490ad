// Desired state on disk: one JSON document per network under
// <state-dir>/networks/<name>.json, each written atomically, and beside it
// <name>.forwards, a journal of the port forwards added and removed since
// the document was last written (one JSON line per change), so one forward
// more costs an append, not a rewrite of a document holding thousands.
//
// The journal rotates at each save: lines appended while the new document
// waits for its fsync go to a journal of its own, <name>.forwards.<G>, whose
// first line names the new document (by its revision: its text is made on
// the writer's thread; a journal begun against the document on disk names
// it by a hash of its text), so a forward
// change never waits for a save nor rewrites the document. Once the document
// is durable the writer removes the older journals and the loop renames
// <name>.forwards.<G> to <name>.forwards. Loading replays every journal that
// names the document on disk (<name>.forwards first, then by generation), so
// a crash at any step - before the rename of the document, between it and
// the journal's first line, before the old journals are removed - keeps
// exactly the lines written against the document that survived.
#pragma once

#include "model/network.hpp"
#include "store/durable.hpp"
#include "store/layout.hpp"

#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace kvmnet::store {

// The revision of a stored document: a hash of its canonical JSON (as
// model::to_json gives it) without "forwards", and of the forwards as a set
// (the sum of a hash of each), so every change to the document - by Update,
// AddHost, AddForwards, AttachPort, SetAutostart, Reload or a hand edit - is a
// new revision without each of them keeping a counter, and a daemon restart
// keeps it; and a forward added or removed changes the forwards' part in
// O(1), without hashing the other 100,000 (core::Manager keeps the sum).
// Opaque to clients: only compared for equality.
std::string revision_of(const model::Network& network);
// With the forwards' part given (forwards_hash of network.forwards).
std::string revision_of(const model::Network& network, std::uint64_t forwards_part);
// The same in two steps, so that the first can be kept while only the
// forwards change (core/read_cache.hpp): the hash state after the document
// without its forwards, then the revision with the forwards' part.
std::uint64_t revision_base(const model::Network& network);
std::string revision_of(std::uint64_t base, std::uint64_t forwards_part);
// One forward's term of the forwards' part (a hash of what to_json writes of it).
std::uint64_t forward_hash(const model::PortForward& forward);
std::uint64_t forwards_hash(const std::vector<model::PortForward>& forwards);

class Store {
public:
    // With a runtime directory in `layout` every document the store writes
    // or loads is also copied to its mirror there, as read: last_good()
    // gives it back when the stored one no longer loads.
    explicit Store(Layout layout, Syncer* syncer = nullptr);

    struct Loaded {
        std::vector<model::Network> networks;
        // Documents that do not load, by file name without ".json": the problem.
        std::map<std::string, std::string> unreadable;
    };
    // Every stored network. A file that does not parse is skipped and named
    // in `unreadable`, so one bad file cannot hide the others; `problems`
    // gets the journal lines that were skipped.
    Loaded load(std::vector<std::string>& problems) const;
    // The last document of `name` that this store wrote or loaded (its
    // journal replayed), when the mirror has it.
    std::optional<model::Network> last_good(const std::string& name, std::vector<std::string>& problems) const;
    // Writes the whole document and then drops its journal, whose changes
    // the document now holds. Making the text, writing it to a temporary,
    // syncing and renaming it into place is durable().replace_made's, at
    // once unless durable() runs a thread (a full file system throws here
    // then): with the thread, a read-only or immutable directory throws
    // here (check_writable), a write or sync that fails on the thread (a
    // full disk) is reported by on_lost and the batch's error, and the
    // document is durable when
    // durable().when_durable says so, and until then every other method
    // of this store that reads or changes its files first waits for it
    // (load, remove, the journal).
    // `revision`: revision_of(network) when the caller has it at hand; "":
    // computed. `text`: where the document's text is made and its temporary
    // written. On the loop (the default), a full disk throws here, before
    // the caller changed anything else: the kernel, dnsmasq and taps may
    // follow the save only then. On the writer's thread (for changes that
    // touch nothing but the document: SetAutostart, a stored-only update),
    // to_json of hundreds of forwards leaves the event loop, and a full
    // disk is reported through on_lost; the new journal's first line then
    // names the document by its revision, as the loop never sees the text.
    enum class Text { on_loop, on_writer };
    void save(const model::Network& network, std::string revision = "", Text text = Text::on_loop) const;
    // Removes the document (throws when it cannot), then its journal.
    void remove(const std::string& name) const;
    // The document of `name` as the disk holds it now, its journal replayed
    // (nullopt: there is none), without waiting for pending saves. Throws
    // InvalidArgument when it does not load.
    std::optional<model::Network> stored(const std::string& name, std::vector<std::string>& problems) const;
    // `lost` is called on the event loop (DurableWriter::complete) with the
    // network's name when a save failed after its call returned - the disk
    // still holds the document before it (stored() reads it) - unless the
    // network was saved again after it (that save decides).
    void on_lost(std::function<void(const std::string& name, std::exception_ptr error)> lost) const;
    DurableWriter& durable() const { return *durable_; }
    // Throws Kernel when no file can be written or removed in the directory
    // (read-only file system, immutable directory), before a change starts.
    void check_writable() const;
    std::string path_of(const std::string& name) const;
    // The journal of `name` in its steady state (the next line may go to
    // a rotated one while a save is pending).
    std::string journal_of(const std::string& name) const;
    // Whether a journal of `name` may hold lines that its document does not
    // (as load() or the last save left it): the daemon folds those at start.
    bool has_journal(const std::string& name) const;

    // Journal lines: {"add": [forward, ...]} and {"remove": {"proto",
    // "host_address", "host_port"}}. One write(2) with O_APPEND, not fsynced:
    // it survives the daemon crashing or being killed at any moment; a power
    // loss may lose the last changes (save() and every other change fsync).
    // Never waits for a pending save (the line goes to its rotated journal).
    void journal_add(const std::string& name, const std::vector<model::PortForward>& forwards) const;
    // journal_add in two steps: the line (pure: another thread may build it
    // while the kernel commits), then its append.
    static std::string journal_add_line(const std::vector<model::PortForward>& forwards);
    void journal_append(const std::string& name, std::string line) const;
    void journal_remove(const std::string& name, const model::ForwardKey& key) const;

private:
    // Where the lines of a network go, on the event loop's thread.
    struct JournalFile {
        std::string path;
        std::string header;    // its first line, naming the document it continues; "": the one on disk
        std::string revision;  // of that document; "": not known
    };
    struct Journals {
        JournalFile current;
        std::uint64_t generation = 0;    // of the save that began `current` (0: none pending)
        std::vector<JournalFile> older;  // may still be on disk; the next durable save removes them
    };
    void mirror(const std::string& name, const std::string& text) const;
    // Waits for a pending save of `name` (its rename and journal removal).
    void settle(const std::string& name) const;
    // The journals of `name` on disk, in replay order (NAME.forwards first).
    std::vector<std::string> journals_on_disk(const std::string& name) const;
    Journals& journals(const std::string& name) const;
    void append(const std::string& name, std::string line) const;
    // On the loop once the save of `generation` is durable or failed.
    void saved(const std::string& name, std::uint64_t generation, std::exception_ptr error) const;
    // After a failed save: the lines of the journals continuing documents
    // that never reached the disk follow the one on it (text `on_disk`).
    void carry_lines(const std::string& name, const std::string& on_disk) const;

    bool mirrored() const { return !layout_.runtime_dir().empty(); }

    Layout layout_;
    std::unique_ptr<DurableWriter> durable_;
    mutable std::uint64_t temporaries_ = 0;
    mutable std::uint64_t generations_ = 0;  // the highest journal generation on disk or given out
    mutable std::map<std::string, Journals> journals_;
};

}  // namespace kvmnet::store
