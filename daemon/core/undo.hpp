// A rollback journal for the start transaction: each applied step pushes
// its inverse; unwind() runs them newest first and keeps going when one fails.
#pragma once

#include "core/log.hpp"

#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace kvmnet::core {

class Undo {
public:
    void push(std::string what, std::function<void()> action)
    {
        steps_.emplace_back(std::move(what), std::move(action));
    }
    void unwind()
    {
        for (auto it = steps_.rbegin(); it != steps_.rend(); ++it) {
            try {
                it->second();
            } catch (const std::exception& e) {
                log_error("rollback: " + it->first + " failed: " + e.what());
            }
        }
        steps_.clear();
    }
    void commit() { steps_.clear(); }

private:
    std::vector<std::pair<std::string, std::function<void()>>> steps_;
};

}  // namespace kvmnet::core
