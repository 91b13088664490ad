// Helpers shared by unit tests of the network document: merge-patching a
// base document, the error a document (or any call) gets, the checks of a
// good and a refused document, and line searches in generated configuration
// text.
#pragma once

#include "model/error.hpp"
#include "model/network.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <concepts>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace kvmnet::test {

// `base` with an RFC 7386 merge patch applied (null removes a field, arrays
// are replaced whole), as text.
inline std::string merged(const std::string& base, const std::string& patch)
{
    nlohmann::json document = nlohmann::json::parse(base);
    document.merge_patch(nlohmann::json::parse(patch));
    return document.dump();
}

inline std::string kind_name(ErrorKind kind) { return std::string(error_kind_name(kind)); }

// The kvmnet::Error that `action` throws; nothing when it returns. Any other
// exception escapes and fails the test.
template <std::invocable F>
std::optional<Error> error_of(F&& action)
{
    try {
        action();
    } catch (const Error& e) {
        return e;
    }
    return std::nullopt;
}

struct Failure {
    ErrorKind kind;
    std::string message;
};

template <std::invocable F>
std::optional<Failure> failure_of(F&& action)
{
    if (const auto e = error_of(std::forward<F>(action))) return Failure{e->kind(), e->what()};
    return std::nullopt;
}

// What parse_network makes of `text`: nothing when it parses.
inline std::optional<Failure> failure_of(const std::string& text)
{
    return failure_of([&] { model::parse_network(text); });
}

// The network `text` parses into; a parse error fails the test.
inline model::Network parse_ok(const std::string& text)
{
    CAPTURE(text);
    try {
        return model::parse_network(text);
    } catch (const Error& e) {
        FAIL("parse_network threw " << kind_name(e.kind()) << ": " << e.what());
    }
    return {};
}

// One row of a table of refused documents.
struct BadDocument {
    const char* label;
    std::string text;
    ErrorKind kind;
    std::string field;  // the message must start with "<field>: "
};

// parse_network refuses `text` with `kind`, and the message starts with the
// path of the field at fault ("<field>: ").
inline void check_refused(const std::string& text, ErrorKind kind, const std::string& field)
{
    const auto failure = failure_of(text);
    REQUIRE(failure);
    CAPTURE(failure->message);
    CHECK(kind_name(failure->kind) == kind_name(kind));
    CHECK_THAT(failure->message, Catch::Matchers::StartsWith(field + ": "));
}

// A row of a table of documents refused as InvalidArgument.
struct InvalidDocument {
    const char* label;
    std::string text;
    std::string field;  // the message must start with "<field>: "
};

inline void check_all_invalid(const std::vector<InvalidDocument>& cases)
{
    for (const InvalidDocument& c : cases) {
        CAPTURE(c.label, c.text);
        check_refused(c.text, ErrorKind::InvalidArgument, c.field);
    }
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
