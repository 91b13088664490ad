// The record of the last nftables commit; see committed_table.hpp.
#include "core/committed_table.hpp"

#include "core/log.hpp"
#include "core/phases.hpp"
#include "plan/part_diff.hpp"
#include "plan/planner.hpp"
#include "store/files.hpp"

#include <sys/stat.h>

#include <algorithm>
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

bool same_generation(const CommittedRecord& a, const CommittedRecord& b)
{
    return a.netns == b.netns && a.generation == b.generation;
}

// The table, rules and elements of `table`; no namespace or generation.
// Fills `parts` (when given) with the hash of each chain and declaration.
CommittedRecord fingerprint(const std::optional<plan::Table>& table, PartHashes* parts = nullptr)
{
    CommittedRecord f;
    if (!table) return f;
    f.table = true;
    f.rules = fnv1a(table->name);
    for (const plan::Set& set : table->sets) {
        const std::uint64_t hash = fnv1a(plan::render_declaration(set));
        f.rules += hash;
        if (parts) parts->sets[set.name] = hash;
        for (const plan::SetElement& e : set.elements)
            f.elements += plan::element_hash(set.name, e);
    }
    for (const plan::Chain& chain : table->chains) {
        const std::uint64_t hash = fnv1a(plan::render_chain(chain));
        f.rules += hash;
        if (parts) parts->chains[chain.name] = hash;
    }
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
    // In place, at every forward change: torn by a crash, the record does
    // not parse (parse_committed_record rejects trailing bytes) and the next
    // apply writes the whole table, as without a record.
    if (record)
        store::overwrite(path_, nlohmann::json(*record).dump() + "\n", 0644);
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

void CommittedTable::remember(std::optional<plan::Table> table, plan::ElementState elements, PartHashes parts)
{
    last_elements_.clear();
    last_parts_ = {};
    last_.reset();
    parts_valid_ = false;
    last_stale_ = false;
    specs_.clear();
    if (!table || !record_) return;
    for (plan::Set& set : table->sets)
        std::vector<plan::SetElement>().swap(set.elements);
    last_elements_ = std::move(elements);
    last_parts_ = std::move(parts);
    last_ = std::move(table);
}

void CommittedTable::apply_diff(plan::Table& table, const plan::TableDiff& diff,
                                const std::optional<CommittedRecord>& before)
{
    log_debug("nftables: updating table inet " + std::string(plan::table_name) + ": " + diff.summary());
    // The record's sums move by what the diff adds and removes; the hashes
    // of what it removes are the ones kept of the last commit.
    CommittedRecord wanted = *recorded();
    const auto hash_of = [](const std::unordered_map<std::string, std::uint64_t>& hashes, const std::string& name) {
        const auto it = hashes.find(name);
        return it == hashes.end() ? std::uint64_t{0} : it->second;
    };
    std::vector<std::pair<std::string, std::uint64_t>> chains, sets;  // new hashes, kept once committed
    for (const std::vector<const plan::Chain*>* list : {&diff.added_chains, &diff.changed_chains})
        for (const plan::Chain* c : *list) {
            const std::uint64_t hash = fnv1a(plan::render_chain(*c));
            wanted.rules += hash - hash_of(last_parts_.chains, c->name);
            chains.emplace_back(c->name, hash);
        }
    for (const std::string& name : diff.removed_chains)
        wanted.rules -= hash_of(last_parts_.chains, name);
    for (const plan::Set* set : diff.added_sets) {
        const std::uint64_t hash = fnv1a(plan::render_declaration(*set));
        wanted.rules += hash;
        sets.emplace_back(set->name, hash);
    }
    for (const std::string& name : diff.removed_sets) {
        wanted.rules -= hash_of(last_parts_.sets, name);
        if (const auto it = last_elements_.find(name); it != last_elements_.end())
            for (const auto& [key, hash] : it->second)
                wanted.elements -= hash;
    }
    // The element state after the commit, built aside (O(changes)) so that
    // a failed commit leaves the kept one as the kernel still has it.
    std::vector<plan::ElementChange> added_sets;
    for (const plan::Set* set : diff.added_sets)
        added_sets.push_back({set, set->elements, true});

    // Marked before the commit: one that fails half way may have changed any of it.
    for (const plan::Set* set : diff.added_sets)
        touched_.sets.insert(set->name);
    touched_.sets.insert(diff.removed_sets.begin(), diff.removed_sets.end());
    for (const std::vector<const plan::Chain*>* list : {&diff.added_chains, &diff.changed_chains})
        for (const plan::Chain* c : *list)
            touched_.chains.insert(c->name);
    touched_.chains.insert(diff.removed_chains.begin(), diff.removed_chains.end());
    for (const std::vector<plan::ElementChange>* list : {&diff.removed_elements, &diff.added_elements})
        for (const plan::ElementChange& c : *list) {
            auto& keys = touched_.elements[c.set->name];
            for (const plan::SetElement& e : c.elements)
                keys.push_back(e.key);
        }
    firewall_.update_table(table, diff);

    for (const std::string& name : diff.removed_sets)
        last_elements_.erase(name);
    for (const plan::Set* set : diff.added_sets)
        last_elements_[set->name];
    // Removed first: an element whose data changed is removed and added again.
    wanted.elements += plan::apply_element_changes(last_elements_, diff.removed_elements);
    wanted.elements += plan::apply_element_changes(last_elements_, diff.added_elements);
    wanted.elements += plan::apply_element_changes(last_elements_, added_sets);
    record(before, wanted);
    if (!record_) {
        remember(std::nullopt, {}, {});
        return;
    }
    for (const std::string& name : diff.removed_chains)
        last_parts_.chains.erase(name);
    for (const std::string& name : diff.removed_sets)
        last_parts_.sets.erase(name);
    for (auto& [name, hash] : chains)
        last_parts_.chains[name] = hash;
    for (auto& [name, hash] : sets)
        last_parts_.sets[name] = hash;
}

bool CommittedTable::apply(std::optional<plan::Table> table)
{
    touched_ = {};
    if (last_stale_) materialize_last();
    parts_valid_ = false;  // apply_networks makes them valid again after this
    const auto before = current_generation();
    const auto& committed = recorded();
    const bool untouched = before && committed && same_generation(*before, *committed);
    // Only the differences when the kernel still has exactly what we last
    // committed: a network's start is then its own chains and elements, not
    // a table that grows with every network.
    if (table && untouched && committed->table && last_) {
        const plan::TableDiff diff = plan::diff_tables(*last_, last_elements_, *table);
        if (diff.empty()) {
            log_debug("nftables: table inet " + std::string(plan::table_name) +
                      " is already as planned; not rewritten");
            return false;
        }
        if (!diff.replace) {
            apply_diff(*table, diff, before);
            if (record_) {
                for (plan::Set& set : table->sets)
                    std::vector<plan::SetElement>().swap(set.elements);
                last_ = std::move(table);
            }
            return true;
        }
    }
    PartHashes parts;
    const CommittedRecord wanted = fingerprint(table, &parts);
    if (untouched && same_content(*committed, wanted)) {
        log_debug("nftables: table inet " + std::string(plan::table_name) + " is already as planned; not rewritten");
        if (!last_ && table) {
            plan::ElementState elements = plan::element_state(*table);
            remember(std::move(table), std::move(elements), std::move(parts));
        }
        return false;
    }
    touched_.everything = true;
    if (table)
        firewall_.replace_table(*table);
    else
        firewall_.delete_table(plan::table_name);
    record(before, wanted);
    plan::ElementState elements = table ? plan::element_state(*table) : plan::ElementState{};
    remember(std::move(table), std::move(elements), std::move(parts));
    return true;
}

void CommittedTable::materialize_last()
{
    last_stale_ = false;
    if (!last_) return;
    std::vector<plan::NetworkPart> parts;
    parts.reserve(specs_.size());
    for (const auto& [name, spec] : specs_) {
        parts.push_back(plan::plan_network_part(spec));
        parts.back().elements.clear();  // the shape only: elements are in last_elements_
        parts.back().forwards.clear();
    }
    std::vector<plan::NetworkPart*> pointers;
    for (plan::NetworkPart& part : parts)
        pointers.push_back(&part);
    last_ = plan::assemble_ruleset(std::move(pointers));
}

bool CommittedTable::apply_parts(const std::vector<const model::Network*>& active, const plan::Shape& shape,
                                 bool& wrote)
{
    wrote = false;
    // Another shape (the first NAT network, a prefix length coming into use
    // or going out of it) changes the hooked chains: planned whole.
    if (!parts_valid_ || !last_ || !(shape == parts_shape_)) return false;
    const auto before = current_generation();
    const auto& committed = recorded();
    if (!before || !committed || !committed->table || !same_generation(*before, *committed)) return false;

    // The networks whose document differs from the one their part was
    // committed from: a walk of two lists sorted by name, comparing
    // documents (no planning, no allocation) for the ones that stay.
    std::vector<const model::Network*> sorted = active;
    const auto by_name = [](const model::Network* a, const model::Network* b) { return a->name < b->name; };
    if (!std::is_sorted(sorted.begin(), sorted.end(), by_name)) std::sort(sorted.begin(), sorted.end(), by_name);
    struct Changed {
        const model::Network* to;                              // nullptr: leaves the table
        std::map<std::string, model::Network>::iterator from;  // specs_.end(): not in the table
    };
    std::vector<Changed> changed;
    auto kept = specs_.begin();
    for (const model::Network* n : sorted) {
        for (; kept != specs_.end() && kept->first < n->name; ++kept)
            changed.push_back({nullptr, kept});
        if (kept != specs_.end() && kept->first == n->name) {
            if (!(kept->second == *n)) changed.push_back({n, kept});
            ++kept;
        } else {
            changed.push_back({n, specs_.end()});
        }
    }
    for (; kept != specs_.end(); ++kept)
        changed.push_back({nullptr, kept});
    if (changed.empty()) {
        log_debug("nftables: table inet " + std::string(plan::table_name) + " is already as planned; not rewritten");
        return true;
    }

    // Both sides of each changed network planned from its documents: the
    // old side is what the table has of it (element batches since would
    // have made parts_valid_ false).
    std::vector<plan::NetworkPart> from, to;
    from.reserve(changed.size());
    to.reserve(changed.size());
    plan::Table table = plan::fixed_ruleset(shape);
    table.chains.clear();  // the sets' declarations are what the commit looks up
    for (const Changed& c : changed) {
        from.push_back(c.from != specs_.end() ? plan::plan_network_part(c.from->second) : plan::NetworkPart{});
        to.push_back(c.to ? plan::plan_network_part(*c.to) : plan::NetworkPart{});
        if (to.back().meter) table.sets.push_back(*to.back().meter);
    }
    std::vector<plan::PartChange> changes;
    for (std::size_t i = 0; i < changed.size(); ++i)
        changes.push_back({changed[i].from != specs_.end() ? &from[i] : nullptr, changed[i].to ? &to[i] : nullptr});
    plan::TableDiff diff;
    plan::diff_parts(changes, table, last_elements_, diff);
    if (diff.replace) return false;
    if (!diff.empty()) {
        apply_diff(table, diff, before);
        wrote = true;
        if (!record_) return true;  // apply_diff forgot the parts (remember)
    }
    for (const Changed& c : changed) {
        if (c.to)
            specs_.insert_or_assign(c.to->name, *c.to);
        else
            specs_.erase(c.from);
    }
    last_stale_ = true;
    return true;
}

bool CommittedTable::apply_networks(const std::vector<const model::Network*>& active)
{
    touched_ = {};
    if (active.empty()) return apply(std::nullopt);
    plan::Shape shape = plan::table_shape(active);
    bool wrote = false;
    if (apply_parts(active, shape, wrote)) return wrote;
    // Every network planned: the first apply, or what differences of
    // parts cannot say.
    std::map<std::string, model::Network> specs;
    std::vector<plan::NetworkPart> parts;
    parts.reserve(active.size());
    for (const model::Network* n : active)
        specs.emplace(n->name, *n);
    for (const auto& [name, spec] : specs)
        parts.push_back(plan::plan_network_part(spec));
    std::vector<plan::NetworkPart*> pointers;
    for (plan::NetworkPart& part : parts)
        pointers.push_back(&part);
    wrote = apply(plan::assemble_ruleset(std::move(pointers)));
    if (last_ && record_) {
        specs_ = std::move(specs);
        parts_valid_ = true;
        parts_shape_ = std::move(shape);
    }
    return wrote;
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
    if (before && !before->table) before.reset();
    phases::mark("commit record");
    commit_elements(changes);
    phases::mark("kernel commit");
    // The record's element sum moves by what the batch changed: the kept
    // element state gives it (each element hashed once); without one, hashed here.
    if (record_ && last_) {
        const std::uint64_t moved = plan::apply_element_changes(last_elements_, changes);
        if (before) before->elements += moved;
    } else if (before) {
        for (const plan::ElementChange& c : changes)
            for (const plan::SetElement& e : c.elements)
                before->elements = c.add ? before->elements + plan::element_hash(c.set->name, e)
                                         : before->elements - plan::element_hash(c.set->name, e);
    }
    if (before)
        record(before, *before);
    else
        record(std::nullopt, {});
    if (!record_ || !last_) remember(std::nullopt, {}, {});
    // The forwards of the kept documents are not what the table has now:
    // the next apply_networks plans every network once.
    parts_valid_ = false;
    phases::mark("commit record");
}

}  // namespace kvmnet::core
