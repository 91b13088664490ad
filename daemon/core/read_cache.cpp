// The reads kept between changes (read_cache.hpp).
#include "core/read_cache.hpp"

#include "store/store.hpp"

#include <utility>
#include <vector>

namespace kvmnet::core {

namespace {

// Whether `now` equals `kept` (which has no forwards) but for the forwards:
// comparing 100,000 forwards per read is what the cache avoids, so they are
// swapped out for the comparison (no allocation, nothing that throws) and
// back. The manager's networks are never const objects.
bool same_but_forwards(const model::Network& now, const model::Network& kept)
{
    auto& forwards = const_cast<model::Network&>(now).forwards;
    std::vector<model::PortForward> aside;
    aside.swap(forwards);
    const bool same = now == kept;
    aside.swap(forwards);
    return same;
}

}  // namespace

ReadCache::ReadCache(Base base) : base_(base ? std::move(base) : Base(store::revision_base)) {}

std::string ReadCache::revision(const model::Network& spec, std::uint64_t forwards_part)
{
    Entry& e = entries_[spec.name];
    if (!e.spec || !same_but_forwards(spec, *e.spec)) {
        e.spec.reset();
        e.base = base_(spec);
        // Everything but the forwards, copied.
        auto& forwards = const_cast<model::Network&>(spec).forwards;
        std::vector<model::PortForward> aside;
        aside.swap(forwards);
        try {
            e.spec = spec;
        } catch (...) {
            aside.swap(forwards);
            throw;
        }
        aside.swap(forwards);
    }
    return store::revision_of(e.base, forwards_part);
}

const std::string* ReadCache::describe(const std::string& name, const std::string& key) const
{
    const auto it = entries_.find(name);
    if (it == entries_.end() || !it->second.describe_key || *it->second.describe_key != key) return nullptr;
    return &it->second.describe_text;
}

const std::string& ReadCache::keep_describe(const std::string& name, std::string key, std::string text)
{
    Entry& e = entries_[name];
    e.describe_key = std::move(key);
    e.describe_text = std::move(text);
    return e.describe_text;
}

void ReadCache::forget(const std::string& name)
{
    if (const auto it = entries_.find(name); it != entries_.end()) it->second.describe_key.reset();
}

void ReadCache::erase(const std::string& name) { entries_.erase(name); }

}  // namespace kvmnet::core
