// Desired state on disk: one JSON document per network under
// <state-dir>/networks/<name>.json, each written atomically.
#pragma once

#include "model/network.hpp"

#include <string>
#include <vector>

namespace kvmnet::store {

class Store {
public:
    explicit Store(std::string state_dir);

    // Every stored network. A file that does not parse is skipped and its
    // problem appended to `problems`, so one bad file cannot hide the others.
    std::vector<model::Network> load_all(std::vector<std::string>& problems) const;
    void save(const model::Network& network) const;
    void remove(const std::string& name) const;
    std::string path_of(const std::string& name) const;

private:
    std::string dir_;
};

}  // namespace kvmnet::store
