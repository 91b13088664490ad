// What the unit tests read back from a store: every network that loads,
// the unreadable files' problems appended to `problems` (the daemon keeps
// them apart: store::Store::load).
#pragma once

#include "store/store.hpp"

#include <string>
#include <utility>
#include <vector>

namespace kvmnet::test {

inline std::vector<model::Network> load_all(const store::Store& store, std::vector<std::string>& problems)
{
    store::Store::Loaded loaded = store.load(problems);
    for (const auto& [name, problem] : loaded.unreadable)
        problems.push_back(problem);
    return std::move(loaded.networks);
}

}  // namespace kvmnet::test
