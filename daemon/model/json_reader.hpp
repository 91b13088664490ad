// Strict reading of JSON objects for the document parsers (network.cpp,
// forward.cpp): every error names the field path, and unknown fields are
// refused. Internal to the model library.
#pragma once

#include "model/error.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <optional>
#include <set>
#include <string>

namespace kvmnet::model::detail {

using json = nlohmann::json;

inline const char* type_name(const json& j)
{
    switch (j.type()) {
    case json::value_t::null: return "null";
    case json::value_t::boolean: return "a boolean";
    case json::value_t::string: return "a string";
    case json::value_t::array: return "an array";
    case json::value_t::object: return "an object";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
    case json::value_t::number_float: return "a number";
    default: return "an unsupported value";
    }
}

// Walks one JSON object: each accessor marks its key as known, and finish()
// rejects whatever is left, so a typo never passes silently.
class ObjectReader {
public:
    ObjectReader(const json& object, std::string path) : object_(object), path_(std::move(path))
    {
        if (!object_.is_object())
            throw invalid_field(display(), std::string("expected an object, got ") + type_name(object_));
    }

    const json* get(const std::string& key)
    {
        known_.insert(key);
        auto it = object_.find(key);
        return it == object_.end() ? nullptr : &*it;
    }

    std::string field(const std::string& key) const { return path_.empty() ? key : path_ + "." + key; }

    std::optional<std::string> string(const std::string& key, std::size_t max_length = 256)
    {
        const json* v = get(key);
        if (!v) return std::nullopt;
        if (!v->is_string()) throw invalid_field(field(key), std::string("expected a string, got ") + type_name(*v));
        const auto& s = v->get_ref<const std::string&>();
        if (s.size() > max_length)
            throw invalid_field(field(key), "longer than " + std::to_string(max_length) + " bytes");
        return s;
    }

    std::optional<bool> boolean(const std::string& key)
    {
        const json* v = get(key);
        if (!v) return std::nullopt;
        if (!v->is_boolean())
            throw invalid_field(field(key), std::string("expected true or false, got ") + type_name(*v));
        return v->get<bool>();
    }

    std::optional<std::uint64_t> unsigned_integer(const std::string& key, std::uint64_t min, std::uint64_t max)
    {
        const json* v = get(key);
        if (!v) return std::nullopt;
        if (!v->is_number_integer())
            throw invalid_field(field(key), std::string("expected an integer, got ") + type_name(*v));
        if (v->is_number_unsigned() || v->get<std::int64_t>() >= 0) {
            const auto n = v->get<std::uint64_t>();
            if (n >= min && n <= max) return n;
        }
        throw invalid_field(field(key), "must be between " + std::to_string(min) + " and " + std::to_string(max));
    }

    const json* array(const std::string& key, std::size_t max_items)
    {
        const json* v = get(key);
        if (!v) return nullptr;
        if (!v->is_array()) throw invalid_field(field(key), std::string("expected an array, got ") + type_name(*v));
        if (v->size() > max_items)
            throw invalid_field(field(key), "more than " + std::to_string(max_items) + " entries");
        return v;
    }

    void finish() const
    {
        for (auto it = object_.begin(); it != object_.end(); ++it)
            if (!known_.count(it.key())) throw invalid_field(field(it.key()), "unknown field");
    }

private:
    std::string display() const { return path_.empty() ? "document" : path_; }

    const json& object_;
    std::string path_;
    std::set<std::string> known_;
};

inline std::string item(const std::string& field, std::size_t index)
{
    return field + "[" + std::to_string(index) + "]";
}

inline std::string lower(std::string s)
{
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return s;
}

// RFC 1123 host name label.
inline bool valid_host_name(const std::string& name)
{
    if (name.empty() || name.size() > 63 || name.front() == '-' || name.back() == '-') return false;
    return std::all_of(name.begin(), name.end(), [](unsigned char c) { return std::isalnum(c) || c == '-'; });
}

}  // namespace kvmnet::model::detail
