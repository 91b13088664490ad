// What the daemon last committed to its nftables table, so that a restarted
// daemon (or any apply that finds nothing to change) leaves an identical
// table alone: no write, no "delete table" event, counters and meters kept.
#pragma once

#include "model/network.hpp"
#include "plan/kernel_view.hpp"
#include "plan/ruleset.hpp"
#include "plan/ruleset_parts.hpp"
#include "plan/table_diff.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

namespace kvmnet::core {

// The record (RUNTIME/nftables.committed) holds the network namespace, the
// ruleset generation right after our commit, and a fingerprint of what we
// committed: a sum of hashes of the table's name, each chain (with its
// rules) and each set declaration, and a sum of element hashes. Both are
// sums so that a commit of differences updates them in O(changes): the
// start of one network hashes its own chains and elements, not the table.
struct CommittedRecord {
    std::string netns;  // "DEVICE:INODE" of /proc/self/ns/net
    std::uint32_t generation = 0;
    bool table = false;          // false: we committed "no table"
    std::uint64_t rules = 0;     // sum of the hashes of the name, chains and set declarations
    std::uint64_t elements = 0;  // sum of element hashes
    bool operator==(const CommittedRecord&) const = default;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(CommittedRecord, netns, generation, table, rules, elements)
// The record as written (JSON), or as a daemon before it wrote it (a
// line of fields); nullopt when it is neither.
std::optional<CommittedRecord> parse_committed_record(const std::string& text);

// The hash of each chain and set declaration of a table, by name.
struct PartHashes {
    std::unordered_map<std::string, std::uint64_t> chains, sets;
};

// What one apply changed in the kernel, for whoever keeps counters read
// before it (core::Manager's counter dumps): an element's counter survives
// a commit that neither deleted nor added that element nor declared its set
// anew, a rule's one that left its chain alone.
struct TableTouched {
    bool everything = false;       // the table replaced or deleted: every counter starts again
    std::set<std::string> sets;    // declared or removed (their elements with them)
    std::set<std::string> chains;  // added, flushed and filled again, or removed
    // By set: the keys of elements deleted or added (a changed one is both).
    std::map<std::string, std::vector<std::vector<std::string>>> elements;
    bool nothing() const { return !everything && sets.empty() && chains.empty() && elements.empty(); }
};

// Whoever watches the ruleset for changes (the nftables monitor): told to
// stop listening around a large element batch of ours, during which the
// kernel would otherwise build one notification per element only for the
// monitor to drop them as ours (at 100,000 forwards that costs more than
// adding the elements).
class NotificationPause {
public:
    virtual ~NotificationPause() = default;
    virtual void pause() = 0;
    // `maybe_lost`: the generation shows that another transaction may have
    // been committed while nobody listened; its changes are unknown.
    virtual void resume(bool maybe_lost) = 0;
};

// The generation rises with every transaction anyone commits in the
// namespace, so an equal generation proves nothing changed since our
// commit. A commit is recorded only when the generation rose by exactly one
// across it (ours alone); anything else drops the record, and the next
// apply writes.
class CommittedTable {
public:
    CommittedTable(plan::FirewallAdapter& firewall, std::string record_path);

    // Makes the table exactly `table` (nullopt: no table) in one transaction,
    // unless the record shows the kernel has exactly that already. True when
    // it wrote. When nobody changed the ruleset since our last commit, the
    // transaction holds only the differences from the table we committed
    // then (plan::diff_tables); otherwise (a foreign change, a restarted
    // daemon) it replaces the whole table. A commit of differences costs
    // O(the differences) in fingerprinting and bookkeeping: `table` is
    // kept (moved, without its elements) as the base of the next diff.
    bool apply(std::optional<plan::Table> table);
    // apply(plan::build_ruleset(active)) in O(the networks that changed):
    // each network's planned part is kept with the document it was planned
    // from, and while the kernel has exactly our last commit, only the
    // parts of networks whose document differs (started, stopped, updated)
    // are planned again and committed as differences (plan::diff_parts).
    // Anything else (the first apply, a foreign change, the NAT chains
    // coming or going, an element batch since) takes apply()'s path and
    // plans every network once.
    bool apply_networks(const std::vector<const model::Network*>& active);
    // change_elements, keeping the record up to date.
    void change_elements(const std::vector<plan::ElementChange>& changes);
    // What the last apply or apply_networks committed (nothing when it
    // found the table as planned). Element batches (change_elements) are
    // not in it: their caller knows what it changed.
    const TableTouched& touched() const { return touched_; }

    // True when the kernel's ruleset generation (and namespace) is the one
    // the record took right after our last commit: nobody has committed
    // anything since, so the table is exactly what we committed. What the
    // nftables monitor asks when it lost notifications (ENOBUFS).
    bool unchanged_since_commit();

    // Element batches of at least `from_elements` elements run with `pause`
    // paused (nullptr: never).
    void set_notification_pause(NotificationPause* pause, std::size_t from_elements)
    {
        pause_ = pause;
        pause_from_ = from_elements;
    }

private:
    // firewall_.change_elements, with the monitor paused when the batch is large.
    void commit_elements(const std::vector<plan::ElementChange>& changes);
    // Namespace and generation now; the fingerprint fields are left empty.
    std::optional<CommittedRecord> current_generation();
    // Records `fingerprint` (its table, rules and elements) as committed
    // across the change that began at generation `before`, if ours alone.
    void record(const std::optional<CommittedRecord>& before, const CommittedRecord& fingerprint);
    // The record as last read or written: the file is read once, then kept
    // in memory (element batches are a hot path).
    const std::optional<CommittedRecord>& recorded();
    void write_record(const std::optional<CommittedRecord>& record);

    // What the kernel has since our last recorded commit, for the next
    // diff: the table's chains and set declarations, its elements, and the
    // hash of each chain and declaration (`parts`, from fingerprint()).
    void remember(std::optional<plan::Table> table, plan::ElementState elements, PartHashes parts);
    // Commits `diff` (from last_ to `table`) and records it: O(diff). The
    // caller keeps the new shape (last_) when the record was written.
    void apply_diff(plan::Table& table, const plan::TableDiff& diff, const std::optional<CommittedRecord>& before);
    // The incremental path of apply_networks: true when it committed (or
    // found nothing to commit, `wrote` false); false when it cannot say
    // the change as differences of parts.
    bool apply_parts(const std::vector<const model::Network*>& active, const plan::Shape& shape, bool& wrote);
    // last_ made again from the kept parts after apply_parts changed them.
    void materialize_last();

    plan::FirewallAdapter& firewall_;
    std::string path_;
    std::optional<plan::Table> last_;  // without elements
    // The documents of the networks last committed, by name: their parts
    // are planned again from these when they change. parts_valid_ while
    // the table (its chains, sets and elements) is exactly what they plan;
    // last_stale_: last_ is to be made from them before use (apply_parts
    // leaves it so, not to copy every network's chains).
    std::map<std::string, model::Network> specs_;
    bool parts_valid_ = false;
    plan::Shape parts_shape_;
    bool last_stale_ = false;
    plan::ElementState last_elements_;
    PartHashes last_parts_;
    bool loaded_ = false;
    std::optional<CommittedRecord> record_;
    NotificationPause* pause_ = nullptr;
    std::size_t pause_from_ = 0;
    TableTouched touched_;
};

}  // namespace kvmnet::core
