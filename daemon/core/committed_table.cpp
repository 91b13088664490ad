// The record of the last nftables commit; see committed_table.hpp.
#include "core/committed_table.hpp"

#include "core/log.hpp"
#include "plan/planner.hpp"
#include "store/files.hpp"

#include <sys/stat.h>

#include <cstdio>
#include <sstream>
#include <string_view>

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

std::uint64_t element_hash(const std::string& set, const plan::SetElement& e)
{
    std::string text = set;
    for (const std::string& k : e.key)
        text += '\x1f' + k;
    text += '\x1e';
    for (const std::string& d : e.data)
        text += '\x1f' + d;
    text += '\x1e' + e.comment + '\x1e' + std::to_string(e.limit_per_second) + '/' + std::to_string(e.limit_burst);
    return fnv1a(text);
}

std::string hex(std::uint64_t value)
{
    char buffer[17];
    std::snprintf(buffer, sizeof buffer, "%016llx", static_cast<unsigned long long>(value));
    return buffer;
}

}  // namespace

CommittedTable::CommittedTable(plan::FirewallAdapter& firewall, std::string record_path)
    : firewall_(firewall), path_(std::move(record_path))
{
}

std::string CommittedTable::fingerprint(const std::optional<plan::Table>& table)
{
    if (!table) return "absent";
    plan::Table shape(table->name, table->chains);
    std::uint64_t elements = 0;
    for (const plan::Set& set : table->sets) {
        plan::Set declaration = set;
        declaration.elements.clear();
        shape.sets.push_back(std::move(declaration));
        for (const plan::SetElement& e : set.elements)
            elements += element_hash(set.name, e);
    }
    return hex(fnv1a(plan::render(shape))) + " " + hex(elements);
}

std::optional<std::string> CommittedTable::current_generation()
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
    return std::to_string(ns.st_dev) + ":" + std::to_string(ns.st_ino) + " " + std::to_string(*generation);
}

const std::optional<std::string>& CommittedTable::recorded()
{
    if (!loaded_) {
        record_ = store::read_file(path_);
        loaded_ = true;
    }
    return record_;
}

bool CommittedTable::unchanged_since_commit()
{
    const auto& text = recorded();
    if (!text) return false;
    const auto now = current_generation();
    // The record starts with "NAMESPACE GENERATION ".
    return now && text->compare(0, now->size() + 1, *now + " ") == 0;
}

void CommittedTable::write_record(const std::optional<std::string>& text)
{
    loaded_ = true;
    record_.reset();  // unknown until written: a failed write leaves no stale copy
    if (text)
        store::write_replace(path_, *text, 0644);
    else
        store::remove_file(path_);
    record_ = text;
}

void CommittedTable::record(const std::optional<std::string>& before, const std::string& fingerprint)
{
    const auto after = current_generation();
    try {
        // Ours alone: the generation rose by exactly one across our commit.
        bool ours = before && after;
        if (ours) {
            const auto space = before->find(' ');
            ours = before->substr(0, space) == after->substr(0, after->find(' ')) &&
                   std::stoull(after->substr(space + 1)) == std::stoull(before->substr(space + 1)) + 1;
        }
        write_record(ours ? std::optional<std::string>(*after + " " + fingerprint + "\n") : std::nullopt);
    } catch (const std::exception& err) {
        log_error("nftables: recording the committed table failed: " + std::string(err.what()));
        try {
            write_record(std::nullopt);
        } catch (const std::exception&) {
        }
    }
}

bool CommittedTable::apply(const std::optional<plan::Table>& table)
{
    const std::string wanted = fingerprint(table);
    const auto before = current_generation();
    if (before && recorded() == *before + " " + wanted + "\n") {
        log_debug("nftables: table inet " + std::string(plan::table_name) + " is already as planned; not rewritten");
        return false;
    }
    if (table)
        firewall_.replace_table(*table);
    else
        firewall_.delete_table(plan::table_name);
    record(before, wanted);
    return true;
}

void CommittedTable::change_elements(const std::vector<plan::ElementChange>& changes)
{
    // The record names the generation it was taken at. No generation query
    // before the batch (this is the per-forward path): if anyone else
    // committed since the record, the generation after ours is not the
    // record's plus one, and record() drops it.
    std::optional<std::string> before, updated;
    const auto& text = recorded();
    if (text && text->find("absent") == std::string::npos) {
        std::istringstream fields(*text);
        std::string ns, generation, rules, elements;
        if (fields >> ns >> generation >> rules >> elements) {
            try {
                std::uint64_t sum = std::stoull(elements, nullptr, 16);
                for (const plan::ElementChange& c : changes)
                    for (const plan::SetElement& e : c.elements)
                        sum = c.add ? sum + element_hash(c.set->name, e) : sum - element_hash(c.set->name, e);
                before = ns + " " + generation;
                updated = rules + " " + hex(sum);
            } catch (const std::exception&) {
            }
        }
    }
    firewall_.change_elements(plan::table_name, changes);
    if (updated)
        record(before, *updated);
    else
        record(std::nullopt, "");
}

}  // namespace kvmnet::core
