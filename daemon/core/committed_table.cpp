// The record of the last nftables commit; see committed_table.hpp.
#include "core/committed_table.hpp"

#include "core/log.hpp"
#include "core/phases.hpp"
#include "plan/planner.hpp"
#include "store/files.hpp"

#include <sys/stat.h>

#include <charconv>
#include <cstdint>
#include <cstdio>
#include <sstream>
#include <string_view>
#include <system_error>
#include <vector>

namespace kvmnet::core {
namespace {

std::uint64_t fnv1a(std::string_view text, std::uint64_t hash = 14695981039346656037ull)
{
    for (const unsigned char c : text) {
        hash ^= c;
        hash *= 1099511628211ull;
    }
    return hash;
}

// FNV-1a of set, "\x1f" key..., "\x1e", "\x1f" data..., "\x1e", comment,
// "\x1e", "RATE/BURST", fed part by part: no string is built (an element
// batch of 100,000 forwards hashes 100,000 elements).
std::uint64_t element_hash(const std::string& set, const plan::SetElement& e)
{
    std::uint64_t hash = fnv1a(set);
    const auto byte = [&hash](char c) { hash = fnv1a(std::string_view(&c, 1), hash); };
    for (const std::string& k : e.key) {
        byte('\x1f');
        hash = fnv1a(k, hash);
    }
    byte('\x1e');
    for (const std::string& d : e.data) {
        byte('\x1f');
        hash = fnv1a(d, hash);
    }
    byte('\x1e');
    hash = fnv1a(e.comment, hash);
    byte('\x1e');
    char limit[48];  // "%llu/%llu" as before (the sum is on disk), without printf's cost per element
    char* end = std::to_chars(limit, limit + 20, e.limit_per_second).ptr;
    *end++ = '/';
    end = std::to_chars(end, end + 20, e.limit_burst).ptr;
    return fnv1a(std::string_view(limit, static_cast<std::size_t>(end - limit)), hash);
}

bool same_generation(const CommittedRecord& a, const CommittedRecord& b)
{
    return a.netns == b.netns && a.generation == b.generation;
}

// The table, rules and elements of `table`; no namespace or generation.
CommittedRecord fingerprint(const std::optional<plan::Table>& table)
{
    CommittedRecord f;
    if (!table) return f;
    f.table = true;
    plan::Table shape(table->name, table->chains);
    for (const plan::Set& set : table->sets) {
        plan::Set declaration = set;
        declaration.elements.clear();
        shape.sets.push_back(std::move(declaration));
        for (const plan::SetElement& e : set.elements)
            f.elements += element_hash(set.name, e);
    }
    f.rules = fnv1a(plan::render(shape));
    return f;
}

bool same_content(const CommittedRecord& a, const CommittedRecord& b)
{
    return a.table == b.table && a.rules == b.rules && a.elements == b.elements;
}

}  // namespace

std::optional<CommittedRecord> parse_committed_record(const std::string& text)
{
    try {
        return nlohmann::json::parse(text).get<CommittedRecord>();
    } catch (const std::exception&) {
    }
    // The text format of daemons before the record was JSON, "NETNS
    // GENERATION RULES ELEMENTS" (hashes in hex) or "NETNS GENERATION
    // absent": after an upgrade over running networks, the table they
    // committed is kept as it is.
    std::istringstream in(text);
    std::vector<std::string> fields;
    for (std::string field; in >> field;)
        fields.push_back(field);
    const bool absent = fields.size() == 3 && fields[2] == "absent";
    if (!absent && fields.size() != 4) return std::nullopt;
    const auto number = [](const std::string& field, int base) -> std::optional<std::uint64_t> {
        std::uint64_t value = 0;
        const auto [end, error] = std::from_chars(field.data(), field.data() + field.size(), value, base);
        if (error != std::errc{} || end != field.data() + field.size()) return std::nullopt;
        return value;
    };
    const auto generation = number(fields[1], 10);
    if (!generation || *generation > UINT32_MAX) return std::nullopt;
    CommittedRecord r;
    r.netns = fields[0];
    r.generation = static_cast<std::uint32_t>(*generation);
    if (absent) return r;
    const auto rules = number(fields[2], 16);
    const auto elements = number(fields[3], 16);
    if (!rules || !elements) return std::nullopt;
    r.table = true;
    r.rules = *rules;
    r.elements = *elements;
    return r;
}

CommittedTable::CommittedTable(plan::FirewallAdapter& firewall, std::string record_path)
    : firewall_(firewall), path_(std::move(record_path))
{
}

std::optional<CommittedRecord> CommittedTable::current_generation()
{
    // The namespace too: generations of different namespaces are unrelated.
    struct stat ns {};
    if (::stat("/proc/self/ns/net", &ns) != 0) return std::nullopt;
    std::optional<std::uint32_t> generation;
    try {
        generation = firewall_.generation();
    } catch (const std::exception& err) {
        log_error(std::string("nftables: ") + err.what());
    }
    if (!generation) return std::nullopt;
    CommittedRecord now;
    now.netns = std::to_string(ns.st_dev) + ":" + std::to_string(ns.st_ino);
    now.generation = *generation;
    return now;
}

const std::optional<CommittedRecord>& CommittedTable::recorded()
{
    if (!loaded_) {
        // A record that does not parse only costs one write.
        record_.reset();
        if (const auto text = store::read_file(path_)) record_ = parse_committed_record(*text);
        loaded_ = true;
    }
    return record_;
}

bool CommittedTable::unchanged_since_commit()
{
    const auto& committed = recorded();
    if (!committed) return false;
    const auto now = current_generation();
    return now && same_generation(*now, *committed);
}

void CommittedTable::write_record(const std::optional<CommittedRecord>& record)
{
    loaded_ = true;
    record_.reset();  // unknown until written: a failed write leaves no stale copy
    if (record)
        store::write_replace(path_, nlohmann::json(*record).dump() + "\n", 0644);
    else
        store::remove_file(path_);
    record_ = record;
}

void CommittedTable::record(const std::optional<CommittedRecord>& before, const CommittedRecord& fingerprint)
{
    const auto after = current_generation();
    try {
        // Ours alone: the generation rose by exactly one across our commit.
        const bool ours =
            before && after && before->netns == after->netns && after->generation == before->generation + 1;
        std::optional<CommittedRecord> committed;
        if (ours) {
            committed = fingerprint;
            committed->netns = after->netns;
            committed->generation = after->generation;
        }
        write_record(committed);
    } catch (const std::exception& err) {
        log_error("nftables: recording the committed table failed: " + std::string(err.what()));
        try {
            write_record(std::nullopt);
        } catch (const std::exception&) {
        }
    }
}

void CommittedTable::remember(const std::optional<plan::Table>& table)
{
    last_elements_.clear();
    last_.reset();
    if (!table || !record_) return;
    plan::Table shape(table->name, table->chains);
    shape.sets.reserve(table->sets.size());
    for (const plan::Set& set : table->sets) {
        shape.sets.push_back(plan::Set{set.name, set.key, set.data, set.size, set.dynamic, set.counter, {}, set.limit});
    }
    last_elements_ = plan::element_state(*table);
    last_ = std::move(shape);
}

bool CommittedTable::apply(const std::optional<plan::Table>& table)
{
    const CommittedRecord wanted = fingerprint(table);
    const auto before = current_generation();
    const auto& committed = recorded();
    const bool untouched = before && committed && same_generation(*before, *committed);
    if (untouched && same_content(*committed, wanted)) {
        log_debug("nftables: table inet " + std::string(plan::table_name) + " is already as planned; not rewritten");
        if (!last_) remember(table);
        return false;
    }
    // Only the differences when the kernel still has exactly what we last
    // committed: a network's start is then its own chains and elements, not
    // a table that grows with every network.
    std::optional<plan::TableDiff> diff;
    if (table && untouched && committed->table && last_) {
        diff = plan::diff_tables(*last_, last_elements_, *table);
        if (diff->replace) diff.reset();
    }
    if (diff) {
        log_debug("nftables: updating table inet " + std::string(plan::table_name) + ": " + diff->summary());
        firewall_.update_table(*table, *diff);
    } else if (table) {
        firewall_.replace_table(*table);
    } else {
        firewall_.delete_table(plan::table_name);
    }
    record(before, wanted);
    remember(table);
    return true;
}

void CommittedTable::commit_elements(const std::vector<plan::ElementChange>& changes)
{
    std::size_t count = 0;
    for (const plan::ElementChange& c : changes)
        count += c.elements.size();
    if (!pause_ || count < pause_from_) {
        firewall_.change_elements(plan::table_name, changes);
        return;
    }
    // The generation across the quiet window tells whether anyone else
    // committed in it: exactly ours (one transaction, or none when ours
    // failed) means no notification was missed.
    const auto before = current_generation();
    pause_->pause();
    const auto resume = [&](std::uint32_t ours) {
        const auto after = current_generation();
        const bool alone =
            before && after && before->netns == after->netns && after->generation == before->generation + ours;
        pause_->resume(!alone);
    };
    try {
        firewall_.change_elements(plan::table_name, changes);
    } catch (...) {
        resume(0);
        throw;
    }
    resume(1);
}

void CommittedTable::change_elements(const std::vector<plan::ElementChange>& changes)
{
    // The record names the generation it was taken at. No generation query
    // before the batch (this is the per-forward path): if anyone else
    // committed since the record, the generation after ours is not the
    // record's plus one, and record() drops it.
    std::optional<CommittedRecord> before = recorded();
    if (before && before->table) {
        for (const plan::ElementChange& c : changes)
            for (const plan::SetElement& e : c.elements)
                before->elements = c.add ? before->elements + element_hash(c.set->name, e)
                                         : before->elements - element_hash(c.set->name, e);
    } else {
        before.reset();
    }
    phases::mark("commit record");
    commit_elements(changes);
    phases::mark("kernel commit");
    if (before)
        record(before, *before);
    else
        record(std::nullopt, {});
    if (record_ && last_)
        plan::apply_element_changes(last_elements_, changes);
    else
        remember(std::nullopt);
    phases::mark("commit record");
}

}  // namespace kvmnet::core
