// Helpers shared by unit tests of the network document: merge-patching a
// base document, the error a document gets, and line searches in generated
// configuration text.
#pragma once

#include "model/error.hpp"
#include "model/network.hpp"

#include <nlohmann/json.hpp>

#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace kvmnet::test {

// `base` with an RFC 7386 merge patch applied, as text.
inline std::string merged(const char* base, const char* patch)
{
    nlohmann::json document = nlohmann::json::parse(base);
    document.merge_patch(nlohmann::json::parse(patch));
    return document.dump();
}

struct Failure {
    ErrorKind kind;
    std::string message;
};

// What parse_network makes of `text`: nothing when it parses.
inline std::optional<Failure> failure_of(const std::string& text)
{
    try {
        model::parse_network(text);
    } catch (const Error& e) {
        return Failure{e.kind(), e.what()};
    }
    return std::nullopt;
}

inline std::vector<std::string> lines_starting(const std::string& text, const std::string& prefix)
{
    std::vector<std::string> result;
    std::istringstream in(text);
    for (std::string l; std::getline(in, l);)
        if (l.rfind(prefix, 0) == 0) result.push_back(l);
    return result;
}

inline bool has_line(const std::string& text, const std::string& line)
{
    std::istringstream in(text);
    for (std::string l; std::getline(in, l);)
        if (l == line) return true;
    return false;
}

}  // namespace kvmnet::test
