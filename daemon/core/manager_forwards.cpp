// Port forwards on a network, running or not: added and removed as element
// batches of the forward maps (one transaction each, whatever the number of
// forwards already there), journalled next to the network's document, and
// listed with the kernel's per-element counters.
#include "core/manager.hpp"

#include "core/log.hpp"
#include "core/phases.hpp"
#include "model/json_text.hpp"
#include "plan/listeners.hpp"
#include "plan/planner.hpp"
#include "store/files.hpp"
#include "store/store.hpp"

#include <algorithm>
#include <future>
#include <map>
#include <system_error>
#include <systemd/sd-event.h>

namespace kvmnet::core {
namespace {

// Journal lines after which the document is rewritten (and the journal dropped).
constexpr std::size_t journal_limit = 1024;
// From this many forwards in one call, their journal line is built on a
// thread of its own (below that, starting the thread costs more).
constexpr std::size_t parallel_line_from = 512;
// How long a dump of the kernel's counters that took `took` microseconds
// is reused: 20 times that, so the dumps take at most a 21st of the loop
// however many reads of them queue (with 4 times, Statistics and
// ListForwards were a quarter of kvmnetd's CPU in the D-Bus load test) and
// a small table's counters are a few milliseconds old at most; but no
// longer than a second unless 4 times the dump is longer (a large table's
// counters are not kept for minutes).
std::uint64_t counters_reuse_usec(std::uint64_t took)
{
    return std::max(4 * took, std::min<std::uint64_t>(20 * took, 1000000));
}

// The element changes that add (or remove) these forwards.
std::vector<plan::ElementChange> element_changes(const std::vector<plan::Set>& sets,
                                                 const std::vector<model::PortForward>& forwards,
                                                 const std::string& network, bool add)
{
    std::map<std::string, std::vector<plan::SetElement>> by_set;
    for (const model::PortForward& f : forwards)
        for (plan::SetElements& part : plan::forward_elements(f, network)) {
            auto& into = by_set[part.set];
            into.insert(into.end(), std::make_move_iterator(part.elements.begin()),
                        std::make_move_iterator(part.elements.end()));
        }
    std::vector<plan::ElementChange> changes;
    for (const plan::Set& set : sets)
        if (auto it = by_set.find(set.name); it != by_set.end()) changes.push_back({&set, std::move(it->second), add});
    return changes;
}

std::string listener_text(const plan::Listener& l)
{
    const std::string address = l.address.str();
    return std::string(l.tcp ? "tcp " : "udp ") + (l.address.is_v6() ? "[" + address + "]" : address) + ":" +
           std::to_string(l.port);
}

}  // namespace

std::vector<std::string> Manager::add_forwards(const std::string& name, const std::string& forwards_document)
{
    const nlohmann::json parsed = model::parse_json_text(forwards_document, "forwards", "forward");
    phases::mark("JSON parse");
    std::vector<model::PortForward> forwards = model::parse_forwards(parsed);
    phases::mark("forwards from JSON");
    return add_forwards(name, std::move(forwards), parsed.is_object());
}

Manager::ForwardCache& Manager::forward_cache(const Entry& e) const
{
    ForwardCache& c = forward_caches_[e.spec.name];
    const auto& forwards = e.spec.forwards;
    if (c.data != forwards.data() || c.size != forwards.size()) {
        c.index = model::ForwardIndex(forwards);
        c.revision_part = store::forwards_hash(forwards);
        c.data = forwards.data();
        c.size = forwards.size();
        c.texts_made = false;
        c.texts.clear();
        c.text_ends.clear();
    }
    return c;
}

namespace {

void append_forward_text(std::string& texts, std::vector<std::size_t>& ends, const model::PortForward& f)
{
    if (!ends.empty()) texts += ',';
    model::append_json_text(texts, f);
    ends.push_back(texts.size());
}

}  // namespace

const std::string& Manager::forwards_text(const Entry& e) const
{
    ForwardCache& c = forward_cache(e);
    if (!c.texts_made) {
        c.texts.clear();
        c.text_ends.clear();
        c.text_ends.reserve(e.spec.forwards.size());
        for (const model::PortForward& f : e.spec.forwards)
            append_forward_text(c.texts, c.text_ends, f);
        c.texts_made = true;
    }
    return c.texts;
}

Manager::Entry& Manager::forwards_changeable(const std::string& name)
{
    auto kept = forward_caches_.extract(name);
    Entry& e = changeable(name);
    if (kept) forward_caches_.insert(std::move(kept));
    return e;
}

const std::vector<plan::Listener>& Manager::local_listeners()
{
    // The loop's iteration counter, not sd_event_now: an iteration that
    // dispatches a source left pending by the one before does not read the
    // clock again, so two turns could share one time.
    std::uint64_t turn = 0;
    const bool in_turn = sd_event_get_iteration(loop_.get(), &turn) >= 0 && turn > 0;
    if (!in_turn || !listener_dump_ || listener_dump_->turn != turn) {
        listener_dump_.reset();  // a listing that fails is not kept
        listener_dump_ = ListenerDump{turn, links_.list_listeners()};
    }
    return listener_dump_->listeners;
}

std::vector<std::string> Manager::add_forwards(const std::string& name, std::vector<model::PortForward> added,
                                               bool single)
{
    Entry& e = forwards_changeable(name);
    const auto field = [single](std::size_t i) {
        return single ? std::string("forward") : "forwards[" + std::to_string(i) + "]";
    };
    model::check_added_forwards(e.spec, added, field);
    phases::mark("validation");
    std::vector<model::IndexedForwards> others;
    for (const auto& [other, entry] : networks_)
        if (other != name && !entry.spec.forwards.empty()) others.push_back({&entry.spec, &forward_cache(entry).index});
    model::ForwardIndex added_index;
    model::check_added_overlaps(e.spec, forward_cache(e).index, added, field, others, &added_index);
    phases::mark("overlap check");

    // Reported, not refused: a forward takes precedence over a local
    // service on the same port (DNAT happens before local delivery).
    std::vector<std::string> warnings;
    static const std::vector<plan::Listener> none;
    const std::vector<plan::Listener>* listeners = &none;
    try {
        listeners = &local_listeners();
    } catch (const std::exception& err) {
        log_error("network " + name + ": cannot list local listeners (no warnings about them): " + err.what(), name);
    }
    for (std::size_t i = 0; i < added.size(); ++i)
        for (const plan::Listener& l : plan::shadowed_listeners(added[i], *listeners))
            warnings.push_back(field(i) + ": a local process listens on " + listener_text(l) +
                               "; connections that the forward matches go to the guest instead");
    phases::mark("local listeners");

    // A large batch's journal line is built on the other core while this
    // one builds the elements and waits for the kernel's commit; it is
    // appended after the commit all the same (journalled_change's order).
    std::future<std::string> line;
    if (added.size() >= parallel_line_from) try {
            line = std::async(std::launch::async, [&added] { return store::Store::journal_add_line(added); });
        } catch (const std::system_error&) {
            // No thread: the line is built after the commit, as for a few forwards.
        }
    // A save of this network waiting for its fsync does not hold the line
    // back: it goes to the journal that continues the pending document
    // (store/store.hpp), and the reply waits for that save as for any.
    journalled_change(e, added, true, [&] {
        return line.valid() ? store_.journal_append(name, line.get()) : store_.journal_add(name, added);
    });
    if (line.valid()) line.wait();  // not taken when the kernel refused: it still reads `added`
    ForwardCache& cache = forward_cache(e);
    cache.index.merge(std::move(added_index));
    for (const model::PortForward& f : added)
        cache.revision_part += store::forward_hash(f);
    if (cache.texts_made)
        for (const model::PortForward& f : added)
            append_forward_text(cache.texts, cache.text_ends, f);
    e.spec.forwards.insert(e.spec.forwards.end(), std::make_move_iterator(added.begin()),
                           std::make_move_iterator(added.end()));
    cache.data = e.spec.forwards.data();
    cache.size = e.spec.forwards.size();
    note_journal(e);
    phases::mark("bookkeeping");
    for (const std::string& w : warnings)
        log_info("network " + name + ": " + w, name);
    log_info("network " + name + ": " + std::to_string(added.size()) + " forward(s) added" +
                 (single ? ": " + model::describe(e.spec.forwards.back()) : ""),
             name);
    if (listener_) listener_->network_changed(name);
    phases::mark("bus properties");
    return warnings;
}

void Manager::remove_forward(const std::string& name, const model::ForwardKey& key)
{
    Entry& e = forwards_changeable(name);
    auto& forwards = e.spec.forwards;
    // From the end: the forward removed is most often one added lately. The
    // port first: building every forward's key made an old one's removal
    // cost ~10 ns per forward there.
    auto it = std::find_if(forwards.rbegin(), forwards.rend(), [&](const model::PortForward& f) {
        return f.host_port_first == key.host_port && model::forward_key(f) == key;
    });
    if (it == forwards.rend())
        throw Error(ErrorKind::NotFound, "network '" + name + "' has no forward " + model::describe(key));
    // A static host's name in a forward keeps it (validate); nothing else depends on a forward.
    const model::PortForward removed = *it;
    journalled_change(e, {removed}, false, [&] { store_.journal_remove(name, key); });
    ForwardCache& cache = forward_cache(e);
    cache.index.erase(removed);
    cache.revision_part -= store::forward_hash(removed);
    if (cache.texts_made) {
        // Its text and the comma before it (after it, for the first).
        const auto i = static_cast<std::size_t>(std::distance(forwards.begin(), std::next(it).base()));
        auto& ends = cache.text_ends;
        const std::size_t begin = i == 0 ? 0 : ends[i - 1];
        const std::size_t end = i == 0 && ends.size() > 1 ? ends[0] + 1 : ends[i];
        cache.texts.erase(begin, end - begin);
        ends.erase(ends.begin() + static_cast<std::ptrdiff_t>(i));
        for (std::size_t k = i; k < ends.size(); ++k)
            ends[k] -= end - begin;
    }
    forwards.erase(std::next(it).base());
    cache.data = forwards.data();
    cache.size = forwards.size();
    note_journal(e);
    log_info("network " + name + ": forward removed: " + model::describe(removed), name);
    if (listener_) listener_->network_changed(name);
}

void Manager::journalled_change(Entry& e, const std::vector<model::PortForward>& forwards, bool add,
                                const std::function<void()>& journal)
{
    // Kernel first (one batch), then the journal line; a journal that cannot
    // be written takes the kernel change back, so both or neither happen.
    const bool running = is_running(e.state);
    const std::vector<plan::Set> sets = plan::forward_sets();
    // The counters dumped before stay in use: a forward added or removed
    // since reads as new (no counts, nothing missing), and the network's
    // sums are made again (forward_counters).
    forward_counters_.totals.erase(e.spec.name);
    // Only while a dump is in use: without a reader nothing would clear it.
    if (forward_counters_.valid)
        for (const model::PortForward& f : forwards)
            forward_counters_.changed.insert(model::forward_key(f));
    reads_.forget(e.spec.name);  // forwards added or removed in place
    std::vector<plan::ElementChange> changes;
    if (running) {
        changes = element_changes(sets, forwards, e.spec.name, add);
        phases::mark("elements");
        committed_.change_elements(changes);
    }
    try {
        journal();
        phases::mark("journal");
    } catch (...) {
        if (running) {
            for (auto& c : changes)
                c.add = !add;
            try {
                committed_.change_elements(changes);
            } catch (const std::exception& err) {
                log_error("network " + e.spec.name +
                          ": undoing a forward change that could not be stored failed: " + err.what());
            }
        }
        throw;
    }
}

void Manager::note_journal(Entry& e)
{
    if (++e.journal_lines < journal_limit) return;
    try {
        store_.save(e.spec);
        e.journal_lines = 0;
    } catch (const std::exception& err) {
        // The journal still holds every change; compaction is retried next time.
        log_error("network " + e.spec.name + ": rewriting the stored document failed: " + err.what(), e.spec.name);
    }
}

namespace {

std::string forward_key_text(const model::PortForward& f) { return model::describe(model::forward_key(f)); }

}  // namespace

const Manager::ForwardCounters& Manager::forward_counters() const
{
    ForwardCounters& c = forward_counters_;
    const std::uint64_t now = clock_.now_usec();
    if (c.valid && now - c.taken_usec < c.reuse_usec) return c;
    c.by_set.clear();
    c.totals.clear();
    c.per_forward.clear();
    c.changed.clear();
    bool any = false;
    for (const auto& [name, e] : networks_)
        any = any || (is_running(e.state) && !e.spec.forwards.empty());
    if (any) {
        for (const plan::Set& set : plan::forward_sets()) {
            try {
                auto& into = c.by_set[set.name];
                for (plan::ElementCounters& element : firewall_.list_elements(plan::table_name, set))
                    into.emplace(element.element.key, std::move(element));
            } catch (const std::exception& err) {
                log_error("reading the counters of @" + set.name + " failed: " + err.what());
            }
        }
    }
    c.taken_usec = clock_.now_usec();
    // No fixed floor: a small network's dump takes well under a millisecond, so
    // its counters stay current; a large one's is reused longer.
    c.reuse_usec = counters_reuse_usec(c.taken_usec - now);
    c.valid = true;
    return c;
}

bool Manager::RuleCounters::fresh(const std::vector<std::string>& names, std::uint64_t now) const
{
    if (!valid || now - taken_usec >= reuse_usec) return false;
    return std::none_of(names.begin(), names.end(), [&](const std::string& n) { return stale.count(n) != 0; });
}

const std::vector<plan::RuleCounter>& Manager::drop_counters(const std::string& bridge) const
{
    RuleCounters& c = drop_counters_;
    const std::uint64_t now = clock_.now_usec();
    if (c.fresh({bridge}, now)) return c.rules;
    c.valid = false;
    c.rules.clear();
    c.stale.clear();
    // The fixed rules count their drops per network in the elements of a
    // set each (plan::drop_counter_sets), commented "NAME: what".
    for (const plan::DropCounterSet& d : plan::drop_counter_sets()) {
        plan::Set set;
        set.name = d.set;
        set.key = {plan::SetType::ifname};
        set.counter = true;
        try {
            for (plan::ElementCounters& element : firewall_.list_elements(plan::table_name, set))
                if (element.has_counter && !element.element.comment.empty())
                    c.rules.push_back({d.chain, std::move(element.element.comment), element.packets, element.bytes});
        } catch (const Error& err) {
            if (err.kind() != ErrorKind::NotFound) throw;  // no table (nothing runs), or not this shape yet
        }
    }
    c.taken_usec = clock_.now_usec();
    c.reuse_usec = counters_reuse_usec(c.taken_usec - now);
    c.valid = true;
    return c.rules;
}

const std::vector<plan::RuleCounter>& Manager::rule_counters(const std::vector<std::string>& chains) const
{
    RuleCounters& c = rule_counters_;
    const std::uint64_t now = clock_.now_usec();
    if (c.fresh(chains, now)) return c.rules;
    c.valid = false;
    c.stale.clear();
    // The limits chains' rules are commented "NAME: what" themselves.
    c.rules = firewall_.rule_counters(plan::table_name);
    c.taken_usec = clock_.now_usec();
    c.reuse_usec = counters_reuse_usec(c.taken_usec - now);
    c.valid = true;
    return c.rules;
}

void Manager::forget_counters()
{
    forward_counters_.valid = false;
    forward_counters_.changed.clear();
    drop_counters_.valid = false;
    rule_counters_.valid = false;
}

void Manager::keep_counters(const TableTouched& touched)
{
    if (touched.everything) return forget_counters();
    const auto in = [&](const std::string& set) {
        return touched.sets.count(set) != 0 || touched.elements.count(set) != 0;
    };
    // Which forwards a map element is of is not kept: any forward map
    // touched (a network with forwards started, stopped or changed) drops
    // the dump; the load test's starts and stops of other networks do not.
    const auto forward_sets = plan::forward_sets();
    if (std::any_of(forward_sets.begin(), forward_sets.end(), [&](const plan::Set& s) { return in(s.name); })) {
        forward_counters_.valid = false;
        forward_counters_.changed.clear();
    }
    // A drop set's element is keyed by its network's bridge: the bridges in
    // the keys deleted or added are stale (every value of the key, to be safe).
    for (const plan::DropCounterSet& d : plan::drop_counter_sets()) {
        if (touched.sets.count(d.set) != 0) drop_counters_.valid = false;
        if (auto it = touched.elements.find(d.set); it != touched.elements.end())
            for (const std::vector<std::string>& key : it->second)
                drop_counters_.stale.insert(key.begin(), key.end());
    }
    rule_counters_.stale.insert(touched.chains.begin(), touched.chains.end());
}

model::ForwardListing Manager::forward_listing(const Entry& e, const model::PortForward& f,
                                               const ForwardCounters& counters) const
{
    model::ForwardListing listing;
    listing.guest_address = !f.guest_name.empty();
    if (!is_running(e.state)) return listing;
    listing.counters = true;
    // Added (or removed and added again) since the counters were dumped: no counts.
    if (!counters.changed.empty() && counters.changed.count(model::forward_key(f)) != 0) return listing;
    // Summed once per dump and forward (its elements' keys are strings: a
    // ListForwards of some 700 forwards built and looked up each of them).
    // The elements' keys are made of what the key below holds.
    const ForwardCounters::Counted key{model::forward_key(f), f.host_port_last, f.rate.has_value()};
    auto& sums = counters.per_forward[e.spec.name];
    auto [it, fresh] = sums.try_emplace(key);
    ForwardCounters::Sums& sum = it->second;
    if (fresh) {
        for (const plan::SetElements& part : plan::forward_elements(f, e.spec.name)) {
            const bool over = plan::is_over_set(part.set);
            const auto in = counters.by_set.find(part.set);
            for (const plan::SetElement& element : part.elements) {
                if (in == counters.by_set.end()) {
                    ++sum.missing;
                    continue;
                }
                auto found = in->second.find(element.key);
                if (found == in->second.end()) {
                    ++sum.missing;
                    continue;
                }
                (over ? sum.dropped : sum.connections) += found->second.packets;
                if (!over) sum.bytes += found->second.bytes;
            }
        }
    }
    // The NAT chains see a connection's first packet only: one packet, one connection.
    listing.connections = sum.connections;
    listing.first_packet_bytes = sum.bytes;
    listing.dropped = sum.dropped;
    listing.missing = sum.missing;
    return listing;
}

nlohmann::json Manager::forward_json(const Entry& e, const model::PortForward& f, const ForwardCounters& counters) const
{
    const model::ForwardListing listing = forward_listing(e, f, counters);
    nlohmann::json j = model::to_json(f);
    if (listing.guest_address) j["guest_address"] = f.guest.str();
    if (!listing.counters) return j;
    j["connections"] = listing.connections;
    j["first_packet_bytes"] = listing.first_packet_bytes;
    j["dropped"] = listing.dropped;
    if (listing.missing != 0) j["problem"] = std::to_string(listing.missing) + " element(s) missing from the kernel";
    return j;
}

std::string Manager::list_forwards_text(const std::string& name) const
{
    const Entry& e = entry(name);
    static const ForwardCounters none;
    const ForwardCounters& counters = is_running(e.state) ? forward_counters() : none;
    // Built item by item and given up once past the reply bound: the whole
    // list of a large network costs no more than the bound's worth of work.
    // Written as text (model::append_json_text), the bytes nlohmann would dump.
    std::string result = "[";
    for (const model::PortForward& f : e.spec.forwards) {
        if (result.size() > 1) result += ',';
        model::append_json_text(result, f, forward_listing(e, f, counters));
        if (result.size() + 1 > max_reply_bytes)
            throw Error(ErrorKind::TooLarge, "network '" + name + "' has " + std::to_string(e.spec.forwards.size()) +
                                                 " forwards, more than a reply of " + std::to_string(max_reply_bytes) +
                                                 " bytes carries; read them with ListForwardsPage");
    }
    result += ']';
    return result;
}

Page Manager::list_forwards_page(const std::string& name, const std::string& cursor, std::uint32_t limit) const
{
    const Entry& e = entry(name);
    const auto& forwards = e.spec.forwards;
    check_page_limit(limit);
    static const ForwardCounters none;
    const ForwardCounters* counters = is_running(e.state) ? nullptr : &none;
    return make_page(
        cursor, limit, forwards.size(), [&](std::size_t i) { return forward_key_text(forwards[i]); },
        [&](std::size_t i) {
            if (!counters) counters = &forward_counters();
            return forward_json(e, forwards[i], *counters);
        });
}

nlohmann::json Manager::describe_brief(const std::string& name) const
{
    const Entry& e = entry(name);
    model::Network spec = e.spec;
    const std::size_t count = spec.forwards.size();
    spec.forwards.clear();
    nlohmann::json j = model::to_json(spec);
    j["forward_count"] = count;
    j["state"] = state_name(e.state);
    j["state_reason"] = e.reason;
    return j;
}

nlohmann::json Manager::statistics(const std::string& name) const
{
    const Entry& e = entry(name);
    nlohmann::json rules = nlohmann::json::array();
    const bool running = is_running(e.state);
    if (running) {
        const std::string prefix = name + ": ";
        const auto add = [&](const std::vector<plan::RuleCounter>& counters) {
            for (const plan::RuleCounter& r : counters) {
                if (r.comment.rfind(prefix, 0) != 0) continue;
                rules.push_back({{"rule", r.comment.substr(prefix.size())},
                                 {"chain", plan::hook_chain_of(r.chain)},
                                 {"packets", r.packets},
                                 {"bytes", r.bytes}});
            }
        };
        add(drop_counters(e.spec.bridge));
        // Only limits chains have rules commented "NAME: ": without them
        // the table's rules are not read.
        if (const std::vector<std::string> chains = plan::limits_chains(e.spec); !chains.empty())
            add(rule_counters(chains));
    }
    std::uint64_t connections = 0, dropped = 0;
    if (running && !e.spec.forwards.empty()) {
        // Summed once per counter snapshot, not per call.
        const ForwardCounters& counters = forward_counters();
        auto [it, fresh] = forward_counters_.totals.try_emplace(name);
        if (fresh) {
            // From each forward's sums as ListForwards reads them (kept per
            // dump across forward changes, which make these totals again).
            for (const model::PortForward& f : e.spec.forwards) {
                const model::ForwardListing listing = forward_listing(e, f, counters);
                it->second.first += listing.connections;
                it->second.second += listing.dropped;
            }
        }
        connections = it->second.first;
        dropped = it->second.second;
    }
    return {{"running", running},
            {"drops", std::move(rules)},
            {"forwards", {{"count", e.spec.forwards.size()}, {"connections", connections}, {"dropped", dropped}}}};
}

}  // namespace kvmnet::core
