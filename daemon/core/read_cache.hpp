// Reads kept between changes (issue 12, the D-Bus load): a network's
// revision and its Describe text are what every Revision property, GetAll,
// GetManagedObjects, PropertiesChanged and Describe asked for, each time
// serialising the whole document. Kept here, they are made again only when
// what they are made of differs:
//  - the revision's hash of the document without its forwards
//    (store::revision_base), when anything of the document but its forwards
//    differs from the copy it was made of (compared, not trusted to a
//    notification: no change of a network can be missed); the forwards'
//    part is added on each call (O(1));
//  - Describe's text, when its key (revision, state, reason, firewalld
//    zone) differs, or forget() was called. The revision's forwards part
//    is a sum and blind to their order, so whatever adds, removes or
//    reorders forwards calls forget() (core::Manager: forget_forwards and
//    journalled_change).
// Entries are per network name; a deleted network's entry is erased, and
// a new network of the same name is compared like any change.
#pragma once

#include "model/network.hpp"

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>

namespace kvmnet::core {

class ReadCache {
public:
    // What makes a revision's document part: store::revision_base, unless
    // another is given (one that counts its calls, in the unit tests).
    using Base = std::function<std::uint64_t(const model::Network&)>;
    explicit ReadCache(Base base = {});

    // store::revision_of(spec, forwards_part), its document part made again
    // only when needed. `spec` is only compared and copied (its forwards are
    // set aside for that, and back before this returns).
    std::string revision(const model::Network& spec, std::uint64_t forwards_part);
    // Describe's text kept for `key`, or nullptr.
    const std::string* describe(const std::string& name, const std::string& key) const;
    const std::string& keep_describe(const std::string& name, std::string key, std::string text);
    // The forwards of `name` were added, removed or reordered: its
    // Describe text is made again.
    void forget(const std::string& name);
    // The network is gone.
    void erase(const std::string& name);

private:
    struct Entry {
        std::optional<model::Network> spec;  // without forwards
        std::uint64_t base = 0;              // store::revision_base of spec
        std::optional<std::string> describe_key;
        std::string describe_text;
    };
    Base base_;
    std::map<std::string, Entry> entries_;
};

}  // namespace kvmnet::core
